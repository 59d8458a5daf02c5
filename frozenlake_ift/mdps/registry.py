"""The MDP-source registry: the one place a family of tabular MDPs is named (like the method registry).

An env spec is ``NAME`` or ``NAME:ARG``: ``lake`` (the lake of StudyConfig.map / slippery),
``gym:Taxi-v4``, ``bandit:1,0.5,0``, ``chain:8:0.1``, ``tokens:2:3``, ``file:mdp.npz``. Each family is
one file in ``frozenlake_ift/mdps/`` (the lake's is ``frozenlake_ift/lakes.py``) and one ``MDPSource``
record in ``mdps.builtin``; a plugin adds its own with ``register_env``. Functions may be callables or
``"module:function"`` strings loaded on first use, so this module imports neither torch nor gymnasium.

    register_env(MDPSource("ring", build=my_build, check=my_check))
    make_env("ring:12")            # -> TabularMDP
    check_env("ring:12")           # the spec's syntax, without building: ValueError or the state count
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..plugins import FunctionRef, Registry, check_ref, resolve

_NAME = re.compile(r"[a-z][a-z0-9_-]*")


@dataclass(frozen=True)
class MDPSource:
    """One family of tabular MDPs.

    name: the spec's prefix (``[a-z][a-z0-9_-]*``).
    build: ``build(arg, config) -> TabularMDP``; ``arg`` is the text after ``NAME:`` ("" if none),
        ``config`` the StudyConfig of the study (None outside one). Errors are ValueErrors naming the
        bad value and what is allowed.
    check: ``check(arg) -> int | None``: the spec's syntax checked without building (cheap: StudyConfig
        calls it), returning the number of states when known (memory estimates), else None. Default:
        accept any argument.
    default_rule: the data rule ``negatives="fixed"`` means on this family (``data_rules``):
        ``second-route`` on lakes, ``second-best`` elsewhere.
    example: a spec that works, for ``--help`` and the docs. description: one line.
    """

    name: str
    build: FunctionRef
    check: FunctionRef | None = None
    default_rule: str = "second-best"
    example: str = ""
    description: str = ""
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"MDP source name must match [a-z][a-z0-9_-]*, got {self.name!r}")
        check_ref(self.build, f"MDP source {self.name!r}: build")
        if self.check is not None:
            check_ref(self.check, f"MDP source {self.name!r}: check")

    def _fn(self, what: str):
        if what not in self._cache:
            self._cache[what] = resolve(getattr(self, what), f"{what} function of MDP source {self.name!r}")
        return self._cache[what]

    def build_fn(self, arg: str, config=None):
        return self._fn("build")(arg, config)

    def check_fn(self, arg: str) -> int | None:
        return None if self.check is None else self._fn("check")(arg)


SOURCES: Registry[MDPSource] = Registry("MDP source", MDPSource)  # mdps.builtin registers and seals the built-ins


def register_env(source: MDPSource, replace: bool = False) -> MDPSource:
    """Add an MDP source; returns it. Built-in names are refused; a plugin's name needs ``replace=True``."""
    return SOURCES.register(source, replace)


def unregister_env(name: str) -> None:
    """Remove a plugin's MDP source (not a built-in)."""
    SOURCES.unregister(name)


def env_names() -> tuple[str, ...]:
    """Every registered MDP source, built-ins first."""
    return SOURCES.names()


def get_source(name: str) -> MDPSource:
    """The registered source ``name``; an unknown name lists the registered ones."""
    return SOURCES.get(name)


def split_spec(spec: str) -> tuple[MDPSource, str]:
    """``NAME[:ARG]`` -> (its source, ARG); ValueError for a spec that names no registered source."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"env must be a spec such as {', '.join(_examples())}, got {spec!r}")
    name, _, arg = spec.strip().partition(":")
    try:
        return SOURCES.records[name], arg
    except KeyError:
        shown = spec if len(spec) <= 60 else spec[:57] + "..."
        raise ValueError(
            f"unknown env {shown!r}: {name!r} is no registered MDP source; registered: "
            f"{', '.join(SOURCES.records)} (e.g. {', '.join(_examples())})"
        ) from None


def check_env(spec: str) -> int | None:
    """Check an env spec's syntax without building it; the number of states when the spec tells it."""
    source, arg = split_spec(spec)
    return source.check_fn(arg)


def make_env(spec: str, config=None):
    """The TabularMDP an env spec names (``config``: the study's StudyConfig, for the lake's map)."""
    source, arg = split_spec(spec)
    return source.build_fn(arg, config)


def env_source(spec: str) -> MDPSource:
    """The MDPSource record of a spec."""
    return split_spec(spec)[0]


def _examples() -> list[str]:
    return [s.example for s in SOURCES.records.values() if s.example][:6]
