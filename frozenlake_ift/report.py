"""The sensitivity report of a sweep (issue 8): merge finished cells, write report.md / report.json / figures.

``load_cells`` merges one or more sweep folders (e.g. the shards of one sweep, written by
``sweep.run_sweep``; the folder layout is described in ``frozenlake_ift.sweep``), ``analyze`` turns
the finished cells into claim-holds rates overall and per value of each swept field, single values
that flip a claim, pair flip rates and ranking frequencies, and ``write_report`` writes

    OUT/report.md, report.json, claims_by_field.{png,svg}

This module imports ``sweep`` (for the labels and the StudyConfig defaults), never the reverse.
"""

from __future__ import annotations

import io
import itertools
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np

from . import results
from .sweep_spec import DEFAULTS, label


def as_dirs(dirs) -> list[str]:
    """Sweep folders as a list of strings: one folder (a str or path) or a list of them; TypeError otherwise."""
    if isinstance(dirs, (str, os.PathLike)):
        dirs = [dirs]
    if not isinstance(dirs, (list, tuple)) or not all(isinstance(d, (str, os.PathLike)) for d in dirs):
        raise TypeError(f"dirs must be a sweep folder or a list of them, got {type(dirs).__name__}")
    return [str(d) for d in dirs]


def load_cells(dirs) -> tuple[dict, list[dict], list[str]]:
    """Merge sweep folders (or shards): ({swept field: value labels in grid order}, finished cell
    records in grid order, keys of missing cells). Only cells named in some folder's manifest count;
    a cell saved in several folders is read once. A manifest or cell file the report cannot read
    (binary, not JSON, truncated, another version's layout) raises ValueError naming the file.
    """
    dirs = as_dirs(dirs)
    labels: dict[str, dict[str, None]] = {}  # field -> its value labels, in order (an ordered set)
    grid: dict[str, dict] = {}
    records: dict[str, dict] = {}
    for d in map(Path, dirs):
        if not (d / "sweep.json").is_file():
            raise FileNotFoundError(f"{str(d)!r} is not a sweep folder (no sweep.json)")
        man = _read_json(d / "sweep.json", "manifest")
        for key, values in man["cells"].items():
            grid.setdefault(key, values)
            for f in man["fields"]:
                labels.setdefault(f, {})[label(values.get(f))] = None
        for path in sorted((d / "cells").glob("*.json")):
            if path.stem in grid and path.stem not in records:
                rec = _read_json(path, "cell")
                if rec["key"] != path.stem:  # the key is the cell's id: a file renamed or copied over another
                    raise ValueError(
                        f"{str(path)!r} holds cell {rec['key'][:40]!r}, not {path.stem!r}: a cell file was renamed "
                        "or copied; remove it and rerun the sweep to recompute it"
                    )
                if "error" not in rec:  # a failed cell's record (if a sweep saves one) counts as not finished
                    records[path.stem] = rec
    keysets = {frozenset(r["config"]) for r in records.values()}
    if len(keysets) > 1:
        raise ValueError(
            f"the cells in {', '.join(map(str, dirs))} were written by different versions (their "
            "configs have different fields); report them separately"
        )
    fields = {f: list(v) for f, v in labels.items()}
    return fields, [records[k] for k in grid if k in records], [k for k in grid if k not in records]


def _read_json(path: Path, kind: str = "cell") -> dict:
    """A sweep manifest (kind "manifest") or cell record ("cell"), checked (``layouts.check_sweep_layout``)."""
    from .layouts import check_sweep_layout, read_json_file

    obj = read_json_file(path)
    check_sweep_layout(obj, str(path), kind, tuple(DEFAULTS.to_dict()))
    return obj


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
    present = {f: {label(r["values"].get(f)) for r in records} for f in fields}
    values = {f: [v for v in vals if v in present[f]] for f, vals in fields.items()}
    swept = [f for f in fields if len(values[f]) > 1]
    by_claim: dict = {}
    for rec in records:
        for c in rec["claims"]:
            if c["holds"] is not None:  # cells with one seed are not judged
                by_claim.setdefault(f"{c['claim']} [{c['metric']}]", []).append((rec, bool(c["holds"])))
    claims = {}
    for name, items in by_claim.items():
        rate = sum(h for _, h in items) / len(items)
        by_field = {}
        for f in swept:
            agg: dict = {}
            for rec, holds in items:
                a = agg.setdefault(label(rec["values"].get(f)), [0, 0])
                a[0], a[1] = a[0] + holds, a[1] + 1
            by_field[f] = agg
        flips = [
            f"{f}={v}" for f, agg in by_field.items() for v, (h, n) in agg.items() if (h / n >= 0.5) != (rate >= 0.5)
        ]
        claims[name] = {
            "holds": sum(h for _, h in items),
            "n": len(items),
            "rate": rate,
            "by_field": by_field,
            "flipped_by": flips,
            "pair_flip_rate": {f: _pair_flip_rate(items, f, swept) for f in swept},
        }
    rankings = {}
    for metric, spec in results.METRICS.items():
        orders = Counter(" > ".join(r["ranking"][metric]) for r in records if metric in r.get("ranking", {}))
        if spec.higher_is_better is not None and orders:
            rankings[metric] = dict(orders.most_common())
    return {
        "swept": swept,
        "values": {f: values[f] for f in swept},
        "n_done": len(records),
        "claims": claims,
        "rankings": rankings,
        "metrics_by_field": metrics_by_field(records, swept),
        "cell_seconds": float(sum(r["seconds"] for r in records)),
    }


FIELD_METRICS = ("param_mse", "policy_mse", "tmatrix_mse", "success", "value_ratio", "explored", "explored_alignment")


def metrics_by_field(records: list[dict], swept: list[str]) -> dict:
    """Each metric against each swept field, per method: {metric: {field: {value: {method: mean of the
    cells' final means}}}}, over the finished cells that hold that value (a marginal over the other fields)."""
    out: dict = {}
    for metric in FIELD_METRICS:
        for f in swept:
            agg: dict = {}
            for rec in records:
                for method, ms in rec["summary"].items():
                    if metric in ms:
                        agg.setdefault(label(rec["values"].get(f)), {}).setdefault(method, []).append(
                            ms[metric]["final_mean"]
                        )
            if agg:
                out.setdefault(metric, {})[f] = {
                    v: {m: float(np.mean(x)) for m, x in by.items()} for v, by in agg.items()
                }
    return out


def _ranking_text(rec: dict, metric: str) -> str:
    """'dpo 1.2e-03±3e-04 > ift ...'; '~' instead of '>' where adjacent 95% CIs overlap."""
    order, s = rec["ranking"][metric], rec["summary"]
    text = ""
    for i, m in enumerate(order):
        st = s[m][metric]
        if i:
            prev = s[order[i - 1]][metric]
            pc, sc = prev.get("final_ci95") or 0.0, st.get("final_ci95") or 0.0
            text += " ~ " if abs(prev["final_mean"] - st["final_mean"]) <= pc + sc else " > "
        ci = st.get("final_ci95")
        text += f"{m} {st['final_mean']:.3g}" + (f"±{ci:.2g}" if ci is not None else "")
    return text


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return (
        ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        + ["| " + " | ".join(r) + " |" for r in rows]
        + [""]
    )


def render_markdown(rep: dict, records: list[dict]) -> str:
    swept, pct = rep["swept"], (lambda x: "n/a" if x is None else f"{100 * x:.0f}%")
    const = {
        k: v
        for k, v in records[0]["config"].items()
        if k not in swept
        and all(r["config"][k] == v for r in records)
        and json.dumps(v) != json.dumps(DEFAULTS.to_dict()[k])
    }
    lines = [
        "# Sensitivity of the paper's Frozen-Lake claims",
        "",
        (
            f"Sweep folders: {', '.join(rep['dirs'])}. Cells finished: {rep['n_done']} of {rep['n_cells']} "
            f"({len(rep['missing'])} missing); compute: {rep['cell_seconds'] / 60:.1f} cell-minutes."
        ),
        "",
        "Swept: " + ("; ".join(f"`{f}` = " + ", ".join(rep["values"][f]) for f in swept) or "nothing") + ". "
        "Fixed (where not StudyConfig's default): "
        + (", ".join(f"`{k}={label(v)}`" for k, v in const.items()) or "none")
        + ".",
        "",
        "## How often each claim holds",
        "",
        (
            'Claims are judged per cell over seeds (`results.check_claims`): a "better" needs the means in order '
            "and P(improvement) >= 0.75 (rliable's probability of improvement). *Flipped by*: single "
            "field values under which the claim's majority verdict is the opposite of the overall one. "
            "*Pair flip rate*: among pairs of cells that differ in that field only, how often the verdict differs."
        ),
        "",
    ]
    lines += _table(
        ["claim", "holds in", "flipped by"] + [f"pair flip rate: {f}" for f in swept],
        [
            [name, f"{c['holds']}/{c['n']} ({pct(c['rate'])})", ", ".join(c["flipped_by"]) or "none"]
            + [pct(c["pair_flip_rate"][f]) for f in swept]
            for name, c in rep["claims"].items()
        ],
    )
    lines += ["## Claim-holds rate per value of each swept field", "", "![claims by field](claims_by_field.png)", ""]
    for f in swept:
        by = lambda c, v: c["by_field"][f].get(v)  # noqa: E731, B023  (a local shorthand, used within the same iteration)
        lines += [f"### `{f}`", ""] + _table(
            ["claim"] + rep["values"][f],
            [
                [name]
                + [
                    "" if by(c, v) is None else f"{pct(by(c, v)[0] / by(c, v)[1])} ({by(c, v)[0]}/{by(c, v)[1]})"
                    for v in rep["values"][f]
                ]
                for name, c in rep["claims"].items()
            ],
        )
    lines += [
        "## Each metric against each swept field",
        "",
        "Mean over the cells that hold the value (of each cell's final mean over seeds), per method.",
        "",
        "![metrics by field](metrics_by_field.png)",
        "",
    ]
    for metric, by_field in rep.get("metrics_by_field", {}).items():
        lines += [f"### `{metric}`: {results.METRICS[metric].label}", ""]
        for f, by_value in by_field.items():
            methods = sorted({m for by in by_value.values() for m in by})
            lines += _table(
                [f] + methods,
                [
                    [v] + [f"{by_value[v].get(m, float('nan')):.4g}" for m in methods]
                    for v in rep["values"].get(f, by_value)
                    if v in by_value  # a value whose cells lack the metric (success on a bandit): no row
                ],
            )
    lines += ["## Rankings across cells", "", "How often each full ordering (best first, by final mean) occurs.", ""]
    for metric, orders in rep["rankings"].items():
        top = ", ".join(f"{o} ({n})" for o, n in list(orders.items())[:4])
        lines.append(f"- `{metric}` ({results.METRICS[metric].label}): {top}")
    lines += [
        "",
        "## Per-cell rankings (final mean ± 95% CI over seeds)",
        "",
        "`>`: the adjacent 95% CIs do not overlap; `~`: they overlap.",
        "",
    ]
    for metric in rep["rankings"]:
        lines += [f"### `{metric}`: {results.METRICS[metric].label}", ""] + _table(
            ["cell"] + swept + ["ranking"],
            [
                [r["key"][:8]] + [label(r["values"].get(f)) for f in swept] + [_ranking_text(r, metric)]
                for r in records
                if metric in r["ranking"]  # cells of an MDP without goal states rank no success
            ],
        )
    return "\n".join(lines)


def metrics_figure(rep: dict):
    """Grid of panels: a metric (row) against a swept field (column), one line per method (registry colours)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plots import method_color, method_marker

    data = rep.get("metrics_by_field", {})
    rows, cols = list(data), rep["swept"]
    if not rows or not cols:
        return None
    fig, axes = plt.subplots(
        len(rows),
        len(cols),
        figsize=(2.8 * len(cols) + 0.6, 2.2 * len(rows) + 0.8),
        squeeze=False,
        layout="constrained",
    )
    handles = {}
    for i, metric in enumerate(rows):
        for j, f in enumerate(cols):
            ax, by_value = axes[i, j], data[metric].get(f, {})
            vals = [v for v in rep["values"].get(f, []) if v in by_value]
            for m in sorted({m for by in by_value.values() for m in by}):
                ys = [by_value[v].get(m, np.nan) for v in vals]
                (h,) = ax.plot(
                    range(len(vals)), ys, marker=method_marker(m), color=method_color(m), lw=1.5, ms=4, label=m.upper()
                )
                handles[m] = h
            ax.set_xticks(range(len(vals)), vals, rotation=30 if len(vals) > 3 else 0, fontsize=7)
            ax.tick_params(axis="y", labelsize=7)
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(f, fontsize=9)
            if j == 0:
                ax.set_ylabel(metric, fontsize=8)
    fig.legend(
        handles=list(handles.values()),
        loc="outside lower center",
        ncols=min(8, len(handles)),
        fontsize=8,
        frameon=False,
    )
    return fig


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
    for ax, f in zip(axes.flat, swept, strict=False):  # the grid may have spare axes
        vals = rep["values"].get(f, ["all"])
        for j, name in enumerate(names):
            by = rep["claims"][name]["by_field"].get(f)
            rates = [by[v][0] / by[v][1] if by and v in by else rep["claims"][name]["rate"] for v in vals]
            ax.bar(np.arange(len(vals)) + (j - (len(names) - 1) / 2) * width, rates, width, label=name, color=f"C{j}")
        ax.axhline(0.5, color="0.5", lw=0.8, ls=":")
        ax.set_xticks(np.arange(len(vals)), vals, rotation=30 if len(vals) > 4 else 0, fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.set_title(f, fontsize=10)
        ax.set_ylabel("claim holds (fraction of cells)", fontsize=8)
    for ax in list(axes.flat)[len(swept) :]:
        ax.axis("off")
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08 + 0.04 * (len(names) > 2), 1, 1))
    return fig


def write_report(dirs, out_dir=None, figures: bool = True) -> tuple[dict, list[Path]]:
    """Merge the sweep folders and write report.md, report.json (and the figure) to out_dir (default: dirs[0]).

    ``dirs``: a list of sweep folders, or one folder (a str or path)."""
    dirs = as_dirs(dirs)
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

        for name, fig in (("claims_by_field", claims_figure(rep)), ("metrics_by_field", metrics_figure(rep))):
            if fig is None:
                continue
            for ext in ("png", "svg"):
                buf = io.BytesIO()
                fig.savefig(buf, format=ext, dpi=120, metadata={"svg": {"Date": None}, "png": {"Software": None}}[ext])
                results.atomic_write(out / f"{name}.{ext}", buf.getvalue())
                written.append(out / f"{name}.{ext}")
            plt.close(fig)
    results.atomic_write(out / "report.json", json.dumps(rep, indent=1))
    results.atomic_write(out / "report.md", render_markdown(rep, records))
    return rep, [out / "report.md", out / "report.json"] + written
