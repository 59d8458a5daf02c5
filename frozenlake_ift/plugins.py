"""What the three registries (MDP sources, data rules, methods) share, and loading plugins from outside.

    Registry(kind, record_type)   one registry of named records: register (the rule below), get, names
    resolve(ref, what)            a callable, or a "module:function" string imported on first use
    load_plugins(modules)         import ``--plugin`` modules and the ``frozenlake_ift.plugins`` entry points

Registration rule (``Registry.register``): a name must match the record's pattern; a name that a built-in already uses
is refused (a plugin cannot silently change what "dpo" or "gym" means); a name a plugin already
registered is refused unless ``replace=True``. Plugins are modules that register on import; an
entry point of the group ``frozenlake_ift.plugins`` names such a module (``pkg.module``) or a
function to call (``pkg.module:register``). Nothing here imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

FunctionRef = Callable | str
ENTRY_POINT_GROUP = "frozenlake_ift.plugins"
_LOADED: list[str] = []  # what load_plugins imported in this process, in order


def resolve(ref: FunctionRef, what: str) -> Callable:
    """``ref`` itself if callable, else the ``"module:function"`` it names (ValueError naming ``what``)."""
    if callable(ref):
        return ref
    module, _, attr = ref.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load the {what} {ref!r}: {exc}") from None


def check_ref(ref, what: str) -> None:
    """TypeError unless ``ref`` is a callable or a ``"module:function"`` string."""
    if not (callable(ref) or (isinstance(ref, str) and ":" in ref)):
        raise TypeError(f"{what} must be a callable or a 'module:function' string, got {ref!r}")


R = TypeVar("R")


class Registry(Generic[R]):
    """One registry of named records (``record.name``): methods, MDP sources, data rules.

    kind: what a record is called in messages ("method"). unknown: how an unknown name's message ends
    (default: the registered names). ``seal_builtins`` marks what is registered so far as built in.
    """

    def __init__(self, kind: str, record_type: type, unknown: Callable[[], str] | None = None) -> None:
        self.kind, self.record_type, self._unknown = kind, record_type, unknown
        self.records: dict[str, R] = {}
        self.builtin: set[str] = set()

    def register(self, record: R, replace: bool = False) -> R:
        """Add ``record``; returns it. A built-in name is refused (only an equal record may be registered
        again, with ``replace=True``: the package re-registering its own); a plugin's name needs ``replace``."""
        if not isinstance(record, self.record_type):
            raise TypeError(
                f"registering a {self.kind} expects a {self.record_type.__name__}, got {type(record).__name__}"
            )
        name = record.name  # type: ignore[attr-defined]  # every record type has a name
        if name in self.records:
            if name in self.builtin and self.records[name] != record:
                raise ValueError(
                    f"{self.kind} {name!r} is already registered as a built-in and cannot be replaced; "
                    f"register yours under another name"
                )
            if not replace:
                raise ValueError(f"{self.kind} {name!r} is already registered; pass replace=True to overwrite it")
        self.records[name] = record
        return record

    def unregister(self, name: str) -> None:
        """Remove a plugin's record (not a built-in)."""
        self.get(name)
        if name in self.builtin:
            raise ValueError(f"{self.kind} {name!r} is built in and cannot be removed")
        del self.records[name]

    def get(self, name: str) -> R:
        """The record called ``name``; an unknown name says what is allowed."""
        try:
            return self.records[name]
        except (KeyError, TypeError):
            tail = self._unknown() if self._unknown else f"registered: {', '.join(self.records)}"
            raise ValueError(f"unknown {self.kind} {name!r}; {tail}") from None

    def names(self) -> tuple[str, ...]:
        """Every registered name, in registration order (built-ins first)."""
        return tuple(self.records)

    def seal_builtins(self) -> None:
        """Mark every record registered so far as built in (the package's own)."""
        self.builtin.update(self.records)


def load_plugins(modules: Iterable[str] = (), entry_points: bool = True) -> list[str]:
    """Import each plugin module (they register methods, MDP sources or data rules on import), then
    every entry point of the ``frozenlake_ift.plugins`` group; returns what was loaded, in order.

    Idempotent: a module already loaded is not loaded again. A module that cannot be imported raises
    ValueError naming it (the CLI prints one line and exits 2).
    """
    loaded = []
    for name in modules:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"--plugin must name an importable module, got {name!r}")
        name = name.strip()
        if name in _LOADED:
            continue
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ValueError(f"cannot import plugin module {name!r}: {exc}") from None
        _LOADED.append(name)
        loaded.append(name)
    if entry_points:
        from importlib.metadata import entry_points as eps

        for ep in eps(group=ENTRY_POINT_GROUP):
            key = f"entry point {ep.name} = {ep.value}"
            if key in _LOADED:
                continue
            try:
                obj = ep.load()
            except Exception as exc:  # a broken third-party package: one clear line
                raise ValueError(f"cannot load the {ENTRY_POINT_GROUP} {key!r}: {exc}") from None
            if callable(obj) and ep.attr:
                obj()
            _LOADED.append(key)
            loaded.append(key)
    return loaded


def loaded_plugins() -> tuple[str, ...]:
    """The plugin modules and entry points this process has loaded (``load_plugins``), in order."""
    return tuple(_LOADED)


def plugin_modules() -> tuple[str, ...]:
    """The plugin modules (not entry points) loaded so far: what a sweep worker imports again."""
    return tuple(n for n in _LOADED if not n.startswith("entry point "))
