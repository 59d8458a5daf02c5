"""frozenlake_ift: the Frozen-Lake study of Intuitive Fine-Tuning (arXiv 2405.11870), runnable.

Submodules are imported on demand (``from frozenlake_ift import lakes``); importing the
package pulls in neither torch, matplotlib nor transformers. Its one action is to register the
study's gymnasium environments (``envs.ENV_IDS``, idempotently), so that
``gym.make("frozenlake_ift:TwoRoute-v0")`` works without an explicit import.
"""

__version__ = "0.1.0"

from .envs import register_envs as _register_envs

_register_envs()
