"""Grids of StudyConfigs: resumable, sharded, parallel runs, and the sensitivity report (issue 8).

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
    DIR/report.md, report.json, claims_by_field.{png,svg}     from ``write_report``

Finished cells are skipped on a rerun, so an interrupt loses only the cells in flight. The key
depends on the config only: after changing the study's code, sweep into a new folder.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import multiprocessing as mp
import re
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import results
from .study import StudyConfig, build_data, coerce_field, run_study

FORMAT = 1
SPEC_KEYS = ("name", "description", "grid", "fixed")
DEFAULT_SPEC = Path(__file__).with_name("sweeps") / "default.json"
_DEFAULTS = StudyConfig()


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
    default = getattr(_DEFAULTS, name)
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


def _label(value) -> str:
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
            where = ", ".join(f"{k}={_label(v)}" for k, v in values.items()) or "fixed values"
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
                raise ValueError(f"map {_label(config.map)!r}: {exc.args[0] if exc.args else exc}") from None
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


# ----------------------------------------------------------------------------------- report
def load_cells(dirs) -> tuple[dict, list[dict], list[str]]:
    """Merge sweep folders (or shards): ({swept field: value labels in grid order}, finished cell
    records in grid order, keys of missing cells). Only cells named in some folder's manifest count;
    a cell saved in several folders is read once.
    """
    fields, grid, records = {}, {}, {}
    for d in map(Path, dirs):
        if not (d / "sweep.json").is_file():
            raise FileNotFoundError(f"{str(d)!r} is not a sweep folder (no sweep.json)")
        man = _read_json(d / "sweep.json")
        for key, values in man["cells"].items():
            grid.setdefault(key, values)
            for f in man["fields"]:
                fields.setdefault(f, {})[_label(values.get(f))] = None
        for path in sorted((d / "cells").glob("*.json")):
            if path.stem in grid and path.stem not in records:
                records[path.stem] = _read_json(path)
    fields = {f: list(v) for f, v in fields.items()}
    return fields, [records[k] for k in grid if k in records], [k for k in grid if k not in records]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not valid JSON: {exc}") from None


def _pair_flip_rate(items, field, swept):
    """Among pairs of cells that differ only in ``field``, the fraction where the claim's verdict differs."""
    groups: dict = {}
    for rec, holds in items:
        groups.setdefault(json.dumps([rec["values"].get(g) for g in swept if g != field]), []).append(holds)
    pairs = [a != b for hs in groups.values() for a, b in itertools.combinations(hs, 2)]
    return sum(pairs) / len(pairs) if pairs else None


def analyze(fields: dict, records: list[dict]) -> dict:
    """Claim-holds rates overall and per value of each swept field, flips, and ranking frequencies.

    ``fields``: swept field -> value labels in grid order (``load_cells``).
    """
    present = {f: {_label(r["values"].get(f)) for r in records} for f in fields}
    values = {f: [v for v in vals if v in present[f]] for f, vals in fields.items()}
    swept = [f for f in fields if len(values[f]) > 1]
    by_claim: dict = {}
    for rec in records:
        for c in rec["claims"]:
            by_claim.setdefault(f"{c['claim']} [{c['metric']}]", []).append((rec, bool(c["holds"])))
    claims = {}
    for name, items in by_claim.items():
        rate = sum(h for _, h in items) / len(items)
        by_field = {}
        for f in swept:
            agg: dict = {}
            for rec, holds in items:
                a = agg.setdefault(_label(rec["values"].get(f)), [0, 0])
                a[0], a[1] = a[0] + holds, a[1] + 1
            by_field[f] = agg
        flips = [f"{f}={v}" for f, agg in by_field.items() for v, (h, n) in agg.items() if (h / n >= 0.5) != (rate >= 0.5)]
        claims[name] = {"holds": sum(h for _, h in items), "n": len(items), "rate": rate, "by_field": by_field,
                        "flipped_by": flips, "pair_flip_rate": {f: _pair_flip_rate(items, f, swept) for f in swept}}
    rankings = {}
    for metric, (_, higher) in results.METRICS.items():
        orders = Counter(" > ".join(r["ranking"][metric]) for r in records if metric in r.get("ranking", {}))
        if higher is not None and orders:
            rankings[metric] = dict(orders.most_common())
    return {"swept": swept, "values": {f: values[f] for f in swept}, "n_done": len(records), "claims": claims,
            "rankings": rankings, "cell_seconds": float(sum(r["seconds"] for r in records))}


def _ranking_text(rec: dict, metric: str) -> str:
    """'dpo 1.2e-03±3e-04 > ift ...'; '~' instead of '>' where adjacent 95% CIs overlap."""
    order, s = rec["ranking"][metric], rec["summary"]
    text = ""
    for i, m in enumerate(order):
        st = s[m][metric]
        if i:
            prev = s[order[i - 1]][metric]
            text += " ~ " if abs(prev["final_mean"] - st["final_mean"]) <= prev["final_ci"] + st["final_ci"] else " > "
        text += f"{m} {st['final_mean']:.3g}±{st['final_ci']:.2g}"
    return text


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows] + [""]


def render_markdown(rep: dict, records: list[dict]) -> str:
    swept, pct = rep["swept"], (lambda x: "n/a" if x is None else f"{100 * x:.0f}%")
    const = {k: v for k, v in records[0]["config"].items() if k not in swept and all(r["config"][k] == v for r in records)
             and json.dumps(v) != json.dumps(_DEFAULTS.to_dict()[k])}
    lines = ["# Sensitivity of the paper's Frozen-Lake claims", "",
             f"Sweep folders: {', '.join(rep['dirs'])}. Cells finished: {rep['n_done']} of {rep['n_cells']} "
             f"({len(rep['missing'])} missing); compute: {rep['cell_seconds'] / 60:.1f} cell-minutes.", "",
             "Swept: " + ("; ".join(f"`{f}` = " + ", ".join(rep["values"][f]) for f in swept) or "nothing") + ". "
             "Fixed (where not StudyConfig's default): " + (", ".join(f"`{k}={_label(v)}`" for k, v in const.items()) or "none") + ".",
             "", "## How often each claim holds", "",
             "Claims are judged per cell on final means over seeds (`results.check_claims`). *Flipped by*: single "
             "field values under which the claim's majority verdict is the opposite of the overall one. "
             "*Pair flip rate*: among pairs of cells that differ in that field only, how often the verdict differs.", ""]
    lines += _table(["claim", "holds in", "flipped by"] + [f"pair flip rate: {f}" for f in swept],
                    [[name, f"{c['holds']}/{c['n']} ({pct(c['rate'])})", ", ".join(c["flipped_by"]) or "none"]
                     + [pct(c["pair_flip_rate"][f]) for f in swept] for name, c in rep["claims"].items()])
    lines += ["## Claim-holds rate per value of each swept field", "", "![claims by field](claims_by_field.png)", ""]
    for f in swept:
        by = lambda c, v: c["by_field"][f].get(v)  # noqa: E731
        lines += [f"### `{f}`", ""] + _table(["claim"] + rep["values"][f], [
            [name] + ["" if by(c, v) is None else f"{pct(by(c, v)[0] / by(c, v)[1])} ({by(c, v)[0]}/{by(c, v)[1]})"
                      for v in rep["values"][f]] for name, c in rep["claims"].items()])
    lines += ["## Rankings across cells", "", "How often each full ordering (best first, by final mean) occurs.", ""]
    for metric, orders in rep["rankings"].items():
        top = ", ".join(f"{o} ({n})" for o, n in list(orders.items())[:4])
        lines.append(f"- `{metric}` ({results.METRICS[metric][0]}): {top}")
    lines += ["", "## Per-cell rankings (final mean ± 95% CI over seeds)", "",
              "`>`: the adjacent 95% CIs do not overlap; `~`: they overlap.", ""]
    for metric in rep["rankings"]:
        lines += [f"### `{metric}`: {results.METRICS[metric][0]}", ""] + _table(["cell"] + swept + ["ranking"], [
            [r["key"][:8]] + [_label(r["values"].get(f)) for f in swept] + [_ranking_text(r, metric)] for r in records])
    return "\n".join(lines)


def claims_figure(rep: dict):
    """Bar chart: claim-holds rate (y) per value (x) of each swept field (one panel each), one bar per claim."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    swept, names = rep["swept"] or ["(none)"], list(rep["claims"])
    ncols = min(3, len(swept))
    nrows = -(-len(swept) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.4 * nrows + 0.8), squeeze=False)
    width = 0.8 / max(1, len(names))
    for ax, f in zip(axes.flat, swept):
        vals = rep["values"].get(f, ["all"])
        for j, name in enumerate(names):
            by = rep["claims"][name]["by_field"].get(f)
            rates = [by[v][0] / by[v][1] if by and v in by else rep["claims"][name]["rate"] for v in vals]
            ax.bar(np.arange(len(vals)) + (j - (len(names) - 1) / 2) * width, rates, width, label=name,
                   color=f"C{j}")
        ax.axhline(0.5, color="0.5", lw=0.8, ls=":")
        ax.set_xticks(np.arange(len(vals)), vals, rotation=30 if len(vals) > 4 else 0, fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.set_title(f, fontsize=10)
        ax.set_ylabel("claim holds (fraction of cells)", fontsize=8)
    for ax in list(axes.flat)[len(swept):]:
        ax.axis("off")
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08 + 0.04 * (len(names) > 2), 1, 1))
    return fig


def write_report(dirs, out_dir=None, figures: bool = True) -> tuple[dict, list[Path]]:
    """Merge the sweep folders and write report.md, report.json (and the figure) to out_dir (default: dirs[0])."""
    dirs = [str(d) for d in dirs]
    if not dirs:
        raise ValueError("report needs at least one sweep folder")
    fields, records, missing = load_cells(dirs)
    if not records:
        raise ValueError(f"no finished cells in {', '.join(dirs)}; run the sweep first")
    rep = analyze(fields, records)
    rep.update(dirs=dirs, n_cells=len(records) + len(missing), missing=missing)
    out = Path(out_dir or dirs[0])
    written = []
    if figures:
        import matplotlib.pyplot as plt

        fig = claims_figure(rep)
        for ext in ("png", "svg"):
            buf = io.BytesIO()
            fig.savefig(buf, format=ext, dpi=120, metadata={"svg": {"Date": None}, "png": {"Software": None}}[ext])
            results.atomic_write(out / f"claims_by_field.{ext}", buf.getvalue())
            written.append(out / f"claims_by_field.{ext}")
        plt.close(fig)
    results.atomic_write(out / "report.json", json.dumps(rep, indent=1))
    results.atomic_write(out / "report.md", render_markdown(rep, records))
    return rep, [out / "report.md", out / "report.json"] + written
