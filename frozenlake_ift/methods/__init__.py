"""Fine-tuning methods as plugins: the registry, the built-in methods and the records they use.

    from frozenlake_ift.methods import Method, register_method

    def my_loss(params, batch, ctx):                 # batch: PairBatch (the default builder)
        ...                                          # -> Tensor (E,), one loss per member
    register_method(Method("mine", loss=my_loss, needs_reference=True))
    run_study(StudyConfig(methods=("sft", "mine")))

Importing this package does not import torch: built-in functions are named as "module:function"
strings and loaded on first use (``methods.offline``, ``methods.online``, ``methods.batches``).
"""

from . import builtin  # noqa: F401  (registers the built-in methods)
from .context import LossOutput, StepContext
from .registry import Method, get_method, method_names, paper_method_names, register_method, unregister_method

__all__ = [
    "LossOutput",
    "Method",
    "StepContext",
    "get_method",
    "method_names",
    "paper_method_names",
    "register_method",
    "unregister_method",
]
