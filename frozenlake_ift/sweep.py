"""Grids of StudyConfigs: resumable, sharded, parallel runs (issue 8); the report is in ``report``.

A SPEC names a grid (field -> list of values; the cells are their Cartesian product) and fixed
overrides (field -> value) of ``StudyConfig``, as JSON, TOML ([grid] / [fixed] tables) or YAML
(when pyyaml is installed):

    {"name": "mine", "grid": {"base": ["random", "uniform"], "lam": [0.0, 0.2]},
     "fixed": {"seeds": 20, "device": "cpu"}}

In a grid a custom map (a list of rows) is one value, so it is nested: "map": ["4x4", ["SFF", "FFG"]].
Each cell is one StudyConfig with its seeds batched inside it. A sweep folder DIR holds:

    DIR/sweep.json        manifest: the spec, swept fields, every cell's key and swept values
    DIR/cells/<key>.json  one finished cell, written atomically when it finishes; key = the first 16
                          hex digits of sha256 of the cell's StudyConfig as sorted JSON. It holds
                          config, summary, ranking, claims, the final per-seed value of each metric
                          and seconds (no curves, so files stay small).
    DIR/report.md, report.json, claims_by_field.{png,svg}     from ``report.write_report``

Finished cells are skipped on a rerun, so an interrupt loses only the cells in flight. The key
depends on the config only: after changing the study's code, sweep into a new folder.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing as mp
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import results
from .study import StudyConfig, build_data, coerce_field, run_study

FORMAT = 1
SPEC_KEYS = ("name", "description", "grid", "fixed")
DEFAULT_SPEC = Path(__file__).with_name("sweeps") / "default.json"
DEFAULTS = StudyConfig()


@dataclass(frozen=True)
class Cell:
    key: str  # stable hash of the config (``cell_key``)
    config: StudyConfig
    values: dict  # swept field -> value of this cell


# ------------------------------------------------------------------------------------- spec
def _value(name: str, value, where: str):
    """One StudyConfig field's value from a spec, checked for type (strings parsed as --set does)."""
    if name not in StudyConfig.field_names():
        raise ValueError(f"{where}: unknown StudyConfig field {name!r}; allowed: {', '.join(StudyConfig.field_names())}")
    default = getattr(DEFAULTS, name)
    if isinstance(value, str) and not isinstance(default, str):
        try:
            value = coerce_field(name, value)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    if name in ("map", "methods") and isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    kind = type(default)
    if isinstance(value, bool) != isinstance(default, bool) or not isinstance(value, (int, float) if kind is float else kind):
        raise ValueError(f"{where}: {value!r} is not a valid {name!r} (expects {kind.__name__})")
    return float(value) if kind is float else value


def make_spec(raw, source: str = "spec") -> dict:
    """Check a parsed spec and return it normalised: {"name", "description", "grid", "fixed"}."""
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: a sweep spec must be a mapping with keys {list(SPEC_KEYS)}, got {type(raw).__name__}")
    unknown = [k for k in raw if k not in SPEC_KEYS]
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown}; a sweep spec has {list(SPEC_KEYS)}")
    grid, fixed = raw.get("grid") or {}, raw.get("fixed") or {}
    if not isinstance(grid, dict) or not isinstance(fixed, dict):
        raise ValueError(f"{source}: 'grid' and 'fixed' must be mappings of StudyConfig fields")
    both = sorted(set(grid) & set(fixed))
    if both:
        raise ValueError(f"{source}: field(s) {both} are both in 'grid' and in 'fixed'")
    out_grid = {}
    for name, values in grid.items():
        values = values if isinstance(values, list) else [values]
        if not values:
            raise ValueError(f"{source}: grid field {name!r} has no values")
        out_grid[name] = [_value(name, v, f"{source}: grid {name}") for v in values]
    out_fixed = {name: _value(name, v, f"{source}: fixed {name}") for name, v in fixed.items()}
    return {"name": str(raw.get("name", "")), "description": str(raw.get("description", "")),
            "grid": out_grid, "fixed": out_fixed}


def load_spec(path) -> dict:
    """Read a JSON / TOML / YAML spec file (by suffix; JSON otherwise) and check it (``make_spec``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no sweep spec at {str(path)!r}")
    suffix, text = path.suffix.lower(), path.read_text()
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ValueError(f"{str(path)!r}: YAML specs need pyyaml (pip install pyyaml); or use JSON / TOML") from None
        parse, errors, kind = yaml.safe_load, (yaml.YAMLError,), "YAML"
    elif suffix == ".toml":
        import tomllib  # Python 3.11+

        parse, errors, kind = tomllib.loads, (tomllib.TOMLDecodeError,), "TOML"
    else:
        parse, errors, kind = json.loads, (json.JSONDecodeError,), "JSON"
    try:
        raw = parse(text)
    except errors as exc:
        raise ValueError(f"sweep spec {str(path)!r} is not valid {kind}: {exc}") from None
    return make_spec(raw, source=str(path))


def parse_assignments(items, many: bool) -> dict:
    """``["lam=0,0.2", ...]`` -> {"lam": [0.0, 0.2]} (many) or ``["seeds=4"]`` -> {"seeds": 4}."""
    out = {}
    for item in items or ():
        if "=" not in item:
            raise ValueError(f"expected FIELD=VALUE{',VALUE...' if many else ''}, got {item!r}")
        key, text = (s.strip() for s in item.split("=", 1))
        if many:
            parts = [t for t in text.split(",") if t.strip()]
            if not parts:
                raise ValueError(f"--set {key}: no values")
            out[key] = [coerce_field(key, t) for t in parts]
        else:
            out[key] = coerce_field(key, text)
    return out


def override(spec: dict, grid: dict | None = None, fixed: dict | None = None) -> dict:
    """A copy of spec with grid axes replaced/added and fixed values set (each removes the other)."""
    g, f = dict(spec["grid"]), dict(spec["fixed"])
    for k, vals in (grid or {}).items():
        g[k] = [_value(k, v, f"--set {k}") for v in vals]
        f.pop(k, None)
    for k, v in (fixed or {}).items():
        f[k] = _value(k, v, f"--fix {k}")
        g.pop(k, None)
    return {**spec, "grid": g, "fixed": f}


def cell_key(config: StudyConfig) -> str:
    return hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def label(value) -> str:
    """A short text label of a swept value (custom maps as "custom RxC", lists joined by "+")."""
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, str) and set(v) <= set("SFHG") for v in value):
            return f"custom {len(value)}x{len(value[0])}"
        return "+".join(map(str, value))
    return str(value)


def expand(spec: dict, check_maps: bool = True) -> list[Cell]:
    """Every cell of the grid, validated (StudyConfig, and each distinct map's data), in product order."""
    names = list(spec["grid"])
    cells, seen = [], set()
    for combo in itertools.product(*(spec["grid"][n] for n in names)):
        values = dict(zip(names, combo))
        try:
            config = StudyConfig(**{**spec["fixed"], **values})
        except (ValueError, TypeError) as exc:
            where = ", ".join(f"{k}={label(v)}" for k, v in values.items()) or "fixed values"
            raise ValueError(f"invalid cell ({where}): {exc}") from None
        key = cell_key(config)
        if key not in seen:
            seen.add(key)
            cells.append(Cell(key, config, {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}))
    if check_maps:  # bad maps / route pairs fail now, before anything is written
        data_fields = ("map", "slippery", "route_pair", "gamma", "temperature")
        for config in {tuple(getattr(c.config, f) for f in data_fields): c.config for c in cells}.values():
            try:
                build_data(config, "cpu")
            except (ValueError, KeyError) as exc:
                raise ValueError(f"map {label(config.map)!r}: {exc.args[0] if exc.args else exc}") from None
    return cells


def parse_shard(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise ValueError(f"--shard expects I/N with 1 <= I <= N (e.g. 1/4), got {text!r}")
    return int(m.group(1)), int(m.group(2))


def shard_cells(cells: list[Cell], i: int, n: int) -> list[Cell]:
    """Shard i of n (1-based): every n-th cell by sorted key, starting at the i-th."""
    mine = set(sorted(c.key for c in cells)[i - 1::n])
    return [c for c in cells if c.key in mine]


# -------------------------------------------------------------------------------------- run
def compact(result, cell: Cell) -> dict:
    """The small per-cell record saved as cells/<key>.json."""
    summary, ranking = results.summarize(result.curves)
    return {"format": FORMAT, "key": cell.key, "values": cell.values, "config": result.config.to_dict(),
            "summary": summary, "ranking": ranking, "claims": results.check_claims(summary),
            "final": {m: {k: np.asarray(v, dtype=np.float64)[-1].tolist() for k, v in mc.items()}
                      for m, mc in result.curves.items()},
            "fit": {"kl_max": float(np.max(result.fit_kl)), "steps_max": int(np.max(result.fit_steps)),
                    "base_success": float(np.mean(result.base_success)),
                    "star_success": float(np.mean(result.star_success))},
            "eval_steps": list(result.steps), "device": result.device, "versions": results.versions(),
            "seconds": result.seconds}


def run_cell(cell: Cell, out_dir) -> dict:
    """Run one cell and save it; a user error (ValueError) is returned, not saved, so a rerun retries."""
    try:
        result = run_study(cell.config)
    except ValueError as exc:
        return {"key": cell.key, "values": cell.values, "error": str(exc)}
    rec = compact(result, cell)
    results.atomic_write(Path(out_dir) / "cells" / f"{cell.key}.json", json.dumps(rec))
    return {"key": cell.key, "seconds": rec["seconds"], "held": sum(c["holds"] for c in rec["claims"]),
            "claims": len(rec["claims"])}


def _init_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and terminates the pool
    torch.set_num_threads(1)


def _run_cell_args(args) -> dict:
    return run_cell(*args)


def run_sweep(spec: dict, out_dir, *, workers: int = 1, shard: tuple[int, int] | None = None,
              progress: bool = False, on_cell=None) -> dict:
    """Run the cells of spec (or of one shard) not yet saved in out_dir; return a summary dict.

    Everything is validated before anything is written. ``workers`` > 1 runs cells in spawned
    processes (one torch thread each); the serial path also uses one thread, so results match.
    ``on_cell(record)`` is called after each cell. KeyboardInterrupt stops the sweep: finished cells
    stay saved; the cells in flight are lost.
    """
    if int(workers) < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    cells = expand(spec)
    mine = shard_cells(cells, *shard) if shard else cells
    out = Path(out_dir)
    todo = [c for c in mine if not (out / "cells" / f"{c.key}.json").exists()]
    man = json.dumps({"format": FORMAT, "spec": spec, "fields": list(spec["grid"]), "n_cells": len(cells),
                      "cells": {c.key: c.values for c in cells}}, indent=1)  # the manifest
    if not (out / "sweep.json").is_file() or (out / "sweep.json").read_text() != man:
        results.atomic_write(out / "sweep.json", man)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    t0, ran, failed = time.perf_counter(), [], []
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), unit="cell", desc="sweep" + (f" {shard[0]}/{shard[1]}" if shard else ""),
               disable=not progress, smoothing=0.1)

    def done(rec):
        (failed if "error" in rec else ran).append(rec)
        bar.update(1)
        bar.set_postfix_str(f"{rec['key'][:8]} " + ("FAILED" if "error" in rec else f"claims held {rec['held']}/{rec['claims']}"))
        if on_cell is not None:
            on_cell(rec)

    threads = torch.get_num_threads()
    try:
        if int(workers) == 1 or len(todo) <= 1:
            torch.set_num_threads(1)
            for c in todo:
                done(run_cell(c, out))
        else:
            with mp.get_context("spawn").Pool(min(int(workers), len(todo)), initializer=_init_worker) as pool:
                for rec in pool.imap_unordered(_run_cell_args, [(c, str(out)) for c in todo]):
                    done(rec)  # leaving the with-block (also on Ctrl-C) terminates the workers
    finally:
        torch.set_num_threads(threads)
        bar.close()
    return {"dir": str(out), "cells": len(cells), "shard": f"{shard[0]}/{shard[1]}" if shard else None,
            "shard_cells": len(mine), "skipped": len(mine) - len(todo), "ran": len(ran), "failed": failed,
            "cell_seconds": [r["seconds"] for r in ran], "seconds": time.perf_counter() - t0}
