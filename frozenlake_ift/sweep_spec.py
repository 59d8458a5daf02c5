"""Sweep specs: a grid of StudyConfig fields and fixed values, read, checked and expanded into cells.

A SPEC names a grid (field -> list of values; the cells are their Cartesian product) and fixed
overrides (field -> value) of ``StudyConfig``, as JSON, TOML ([grid] / [fixed] tables) or YAML
(when pyyaml is installed):

    {"name": "mine", "grid": {"base": ["random", "uniform"], "lam": [0.0, 0.2]},
     "fixed": {"seeds": 20, "device": "cpu"}}

In a grid a custom map (a list of rows) is one value, so it is nested: "map": ["4x4", ["SFF", "FFG"]].
``"grids": [{FIELD: [values]}, ...]`` adds further grids: the cells are the union of every grid's cells
(a field a grid does not name takes its fixed or default value), so a spec can sweep some fields only
where they matter without multiplying the whole grid; ``swept_fields`` is the union of their fields.
Each cell (``Cell``) is one StudyConfig with a stable key (``cell_key``: the first 16 hex digits of
sha256 of the config as sorted JSON) and its swept values; ``shard_cells`` splits the cells for a
job array. Running them and the cell store are ``sweep``'s.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from .layouts import check_bounds, read_mapping_file
from .study import StudyConfig, build_data, coerce_field

SPEC_KEYS = ("name", "description", "grid", "fixed", "grids")
SEMICOLON_FIELDS = ("env",)  # --set FIELD=V1;V2: values that may hold commas themselves
DEFAULT_SPEC = Path(__file__).with_name("sweeps") / "default.json"
DEFAULTS = StudyConfig()
MAX_CELLS = 100_000  # cells of one sweep (the product of the grid's lengths)
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # a spec name: part of the default folder's name


@dataclass(frozen=True)
class Cell:
    key: str  # stable hash of the config (``cell_key``)
    config: StudyConfig
    values: dict  # swept field -> value of this cell


# ------------------------------------------------------------------------------------- spec
def _value(name: str, value, where: str):
    """One StudyConfig field's value from a spec, checked for type (strings parsed as --set does)."""
    if name not in StudyConfig.field_names():
        raise ValueError(
            f"{where}: unknown StudyConfig field {name!r}; allowed: {', '.join(StudyConfig.field_names())}"
        )
    default = getattr(DEFAULTS, name)
    if isinstance(value, str) and not isinstance(default, str):
        try:
            value = coerce_field(name, value)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    if (
        name in ("map", "methods")
        and isinstance(value, (list, tuple))
        and value
        and all(isinstance(v, str) for v in value)
    ):
        return tuple(value)
    kind = type(default)
    if isinstance(value, bool) != isinstance(default, bool) or not isinstance(
        value, (int, float) if kind is float else kind
    ):
        raise ValueError(f"{where}: {value!r} is not a valid {name!r} (expects {kind.__name__})")
    return float(value) if kind is float else value


def make_spec(raw, source: str = "spec") -> dict:
    """Check a parsed spec and return it normalised: {"name", "description", "grid", "fixed"}."""
    if not isinstance(raw, dict):
        raise ValueError(  # noqa: TRY004  (a bad spec file is a user error: one line, exit 2, as every other)
            f"{source}: a sweep spec must be a mapping with keys {list(SPEC_KEYS)}, got {type(raw).__name__}"
        )
    check_bounds(raw, source)
    unknown = [k for k in raw if k not in SPEC_KEYS]
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {_brief(unknown)}; a sweep spec has {list(SPEC_KEYS)}")
    name = raw.get("name", "")
    if name not in ("", None) and not (isinstance(name, str) and NAME_RE.fullmatch(name)):
        raise ValueError(
            f"{source}: 'name' must be up to 64 letters, digits, '.', '_' or '-' (not starting with '.', '_' or '-'), "
            f"got {_brief(name)}: it names the default sweep folder runs/sweep-NAME-HASH"
        )
    grid, fixed = raw.get("grid") or {}, raw.get("fixed") or {}
    if not isinstance(grid, dict) or not isinstance(fixed, dict):
        raise ValueError(f"{source}: 'grid' and 'fixed' must be mappings of StudyConfig fields")  # noqa: TRY004  (user error in a spec file)
    grids = raw.get("grids") or []
    if not isinstance(grids, list) or not all(isinstance(g, dict) and g for g in grids):
        raise ValueError(f"{source}: 'grids' must be a list of non-empty mappings of StudyConfig fields")
    out = {
        "name": name or "",
        "description": str(raw.get("description", "")),
        "grid": _grid(grid, fixed, f"{source}: grid"),
        "fixed": {name: _value(name, v, f"{source}: fixed {name}") for name, v in fixed.items()},
    }
    if grids:
        out["grids"] = [_grid(g, fixed, f"{source}: grids[{i}]") for i, g in enumerate(grids)]
    return out


def _grid(grid: dict, fixed: dict, where: str) -> dict:
    """One grid of a spec, checked: {field: [values]} (a single value is a list of one)."""
    both = sorted(set(grid) & set(fixed))
    if both:
        raise ValueError(f"{where}: field(s) {both} are both in the grid and in 'fixed'")
    out = {}
    for name, values in grid.items():
        values = values if isinstance(values, list) else [values]
        if not values:
            raise ValueError(f"{where}: field {name!r} has no values")
        out[name] = [_value(name, v, f"{where} {name}") for v in values]
    return out


def all_grids(spec: dict) -> list[dict]:
    """The spec's grids: ``grid``, then the further ``grids`` (their cells are the union of all)."""
    return [spec["grid"], *spec.get("grids", [])]


def swept_fields(spec: dict) -> list[str]:
    """The fields some grid of the spec sweeps, in order of first appearance."""
    return list(dict.fromkeys(f for g in all_grids(spec) for f in g))


def _brief(value, limit: int = 80) -> str:
    """repr(value), cut to ``limit`` characters (a bad value is named, not echoed whole)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 20]}...({len(text)} characters)"


def load_spec(path) -> dict:
    """Read a JSON / TOML / YAML spec file (by suffix; JSON otherwise) and check it (``make_spec``).

    The file is read by ``layouts.read_mapping_file``, which refuses with one line naming the file one
    that is too large, not UTF-8 text, not parseable, nested or sized beyond its bounds (YAML alias bombs
    included); ``make_spec`` then names what a spec must hold.
    """
    return make_spec(read_mapping_file(path, "sweep spec", mapping=False), source=str(path))


def parse_assignments(items, many: bool) -> dict:
    """``["lam=0,0.2", ...]`` -> {"lam": [0.0, 0.2]} (many) or ``["seeds=4"]`` -> {"seeds": 4}.

    Several env specs are separated by ';' (``env=bandit:1,0.5,0;chain:8``): the specs hold commas."""
    out = {}
    for item in items or ():
        if "=" not in item:
            raise ValueError(f"expected FIELD=VALUE{',VALUE...' if many else ''}, got {item!r}")
        key, text = (s.strip() for s in item.split("=", 1))
        if many:
            sep = ";" if key in SEMICOLON_FIELDS else ","  # env specs hold commas: bandit:1,0.5,0
            parts = [t for t in text.split(sep) if t.strip()]
            if not parts:
                raise ValueError(f"--set {key}: no values")
            out[key] = [coerce_field(key, t) for t in parts]
        else:
            out[key] = coerce_field(key, text)
    return out


def override(spec: dict, grid: dict | None = None, fixed: dict | None = None) -> dict:
    """A copy of spec with grid axes replaced/added and fixed values set (each removes the other).

    An axis is replaced in every grid that sweeps it (added to ``grid`` when none does); a fixed field is
    removed from every grid."""
    gs, f = [dict(g) for g in all_grids(spec)], dict(spec["fixed"])
    for k, vals in (grid or {}).items():
        values = [_value(k, v, f"--set {k}") for v in vals]
        for g in [g for g in gs if k in g] or gs[:1]:
            g[k] = values
        f.pop(k, None)
    for k, v in (fixed or {}).items():
        f[k] = _value(k, v, f"--fix {k}")
        for g in gs:
            g.pop(k, None)
    out = {**spec, "grid": gs[0], "fixed": f}
    if len(gs) > 1:
        out["grids"] = [g for g in gs[1:] if g]
    return out


def cell_key(config: StudyConfig) -> str:
    return hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def label(value) -> str:
    """A short text label of a swept value (custom maps as "custom RxC", lists joined by "+")."""
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, str) and set(v) <= set("SFHG") for v in value):
            return f"custom {len(value)}x{len(value[0])}"
        return "+".join(map(str, value))
    return str(value)


def expand(spec: dict, check_maps: bool = True, max_bytes: float | None = None) -> list[Cell]:
    """Every cell of the grids, validated (StudyConfig, and each distinct map's data), in product order (grid
    by grid; a cell two grids share is kept once). A cell's values name every swept field (``swept_fields``):
    a field its own grid does not sweep shows the cell's config value.

    max_bytes: refuse (ValueError) a cell estimated to need more memory (``safety.config_bytes``), before
    any map's data is built (a large map's dense model alone may not fit)."""
    sizes = [math.prod(len(v) for v in g.values()) for g in all_grids(spec)]
    if sum(sizes) > MAX_CELLS:
        shape = " + ".join(" x ".join(f"{k} {len(v)}" for k, v in g.items()) or "1" for g in all_grids(spec))
        raise ValueError(
            f"the grid has {sum(sizes):,} cells ({shape}), more than a sweep may hold ({MAX_CELLS:,}); "
            "fix some fields (--fix) or split it into several sweeps"
        )
    swept = swept_fields(spec)
    cells, seen = [], set()
    for grid in all_grids(spec):
        names = list(grid)
        for combo in itertools.product(*(grid[n] for n in names)):
            values = dict(zip(names, combo, strict=True))
            try:
                config = StudyConfig(**{**spec["fixed"], **values})
            except (ValueError, TypeError) as exc:
                where = ", ".join(f"{k}={label(v)}" for k, v in values.items()) or "fixed values"
                raise ValueError(f"invalid cell ({where}): {exc}") from None
            key = cell_key(config)
            if key not in seen:
                seen.add(key)
                shown = {f: values[f] if f in values else getattr(config, f) for f in swept}
                cells.append(Cell(key, config, {k: list(v) if isinstance(v, tuple) else v for k, v in shown.items()}))
    if max_bytes is not None:
        from .safety import config_bytes

        for c in cells:
            need = config_bytes(c.config)
            if need is not None and need > max_bytes:
                where = ", ".join(f"{k}={label(v)}" for k, v in c.values.items()) or "every cell"
                raise ValueError(
                    f"cell {where} needs about {need / 1e9:.3g} GB of memory, more than --max-memory "
                    f"{max_bytes / 1e9:g} GB; use smaller maps or fewer seeds, or pass --force "
                    "(or a larger --max-memory)"
                )
    if check_maps:  # bad maps / route pairs fail now, before anything is written
        data_fields = (
            "env",
            "map",
            "slippery",
            "route_pair",
            "gamma",
            "temperature",
            "negatives",
            "max_starts",
            "horizon",
        )
        for config in {tuple(getattr(c.config, f) for f in data_fields): c.config for c in cells}.values():
            try:
                build_data(config, "cpu")
            except (ValueError, KeyError) as exc:
                what = f"map {label(config.map)!r}" if config.env == "lake" else f"env {config.env!r}"
                raise ValueError(f"{what}: {exc.args[0] if exc.args else exc}") from None
    return cells


def parse_shard(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise ValueError(f"--shard expects I/N with 1 <= I <= N (e.g. 1/4), got {text!r}")
    return int(m.group(1)), int(m.group(2))


def shard_cells(cells: list[Cell], i: int, n: int) -> list[Cell]:
    """Shard i of n (1-based): every n-th cell by sorted key, starting at the i-th."""
    mine = set(sorted(c.key for c in cells)[i - 1 :: n])
    return [c for c in cells if c.key in mine]
