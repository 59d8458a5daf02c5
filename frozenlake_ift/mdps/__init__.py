"""Tabular MDPs from anywhere: the registry of MDP sources (``StudyConfig.env``, ``--env``).

    from frozenlake_ift.mdps import MDPSource, make_env, register_env

    make_env("gym:Taxi-v4")                        # gymnasium's exact model, as a TabularMDP
    make_env("bandit:1,0.5,0")                     # a 3-armed bandit
    register_env(MDPSource("ring", build="mypkg.ring:build"))   # your own family

Families, one file each: ``gym_text`` (gym:ID), ``bandit``, ``chain``, ``tokens``, ``npz`` (file:PATH);
the lake's is ``frozenlake_ift.lakes``. Importing this package imports neither torch nor gymnasium.
"""

from . import builtin  # noqa: F401  (registers the built-in sources)
from .registry import (
    MDPSource,
    check_env,
    env_names,
    env_source,
    get_source,
    make_env,
    register_env,
    split_spec,
    unregister_env,
)

__all__ = [
    "MDPSource",
    "check_env",
    "env_names",
    "env_source",
    "get_source",
    "make_env",
    "register_env",
    "split_spec",
    "unregister_env",
]
