"""The files of ``frozenlake-ift phenomena``: per scenario a table, a record and a figure, and one summary.

    OUT/<scenario>.md          the scenario's story, setting, citation and one row per expectation or claim:
                               both sides (mean ± 95% CI over seeds), P(improvement), holds
    OUT/<scenario>.json        the same, strict JSON, with every seed's values and the runs' configs
    OUT/<scenario>.png, .svg   the curves the scenario names (mean and 95% CI over seeds) and P(improvement)
                               of each expectation against the threshold
    OUT/phenomena.md           one line per scenario: reproduced or not, how many of its expectations hold

``write(results, out)`` stages every file and moves them in together (``safety.staged_run``); files of
other scenarios already in OUT stay.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from . import metrics, stats
from .phenomena import ScenarioResult, Verdict

SUMMARY = "phenomena"


def _num(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def _side(values: np.ndarray | None, mean: float) -> str:
    if values is None or values.size < 2:
        return _num(mean)
    m, ci = metrics.mean_ci95(values)
    return f"{_num(float(m))} ± {_num(float(ci))}"


def _verdict(v: Verdict) -> str:
    return "not judged" if v.holds is None else "**yes**" if v.holds else "**no**"


def scenario_markdown(res: ScenarioResult) -> str:
    """The table of one scenario (its expectations and claims, judged) with its story and citation."""
    s, b = res.scenario, res.budget
    held = sum(bool(v.holds) for v in res.verdicts)
    lines = [
        f"# {s.name}: {s.title}",
        "",
        s.story,
        "",
        f"Source: {s.citation}.",
        "",
        f"Budget: {b.seeds} seeds, {b.steps} steps (unless a run sets its own); runs: "
        + "; ".join(f"`{r.label}`: {_fields(r.fields)}" for r in s.runs)
        + f". Compute: {res.seconds:.1f} s.",
        "",
        (
            f"**{'Reproduced' if res.reproduced else 'Not reproduced'}**: {held} of {len(res.verdicts)} hold. An "
            f"expectation holds when the means are in its order and P(improvement) >= {stats.CLAIM_THRESHOLD} over "
            "seeds (against a number: the share of seeds beyond it)."
        ),
        "",
        "| expectation (the source) | left (mean ± 95% CI) | right | P(improvement) | holds |",
        "|---|---|---|---|---|",
    ]
    for v in res.verdicts:
        if v.left_values is None:  # a claim of the paper, judged by claims.judge_claim
            lines.append(f"| {v.text} | {_escape(v.detail)} | | {_num(v.p_improvement)} | {_verdict(v)} |")
            continue
        left = f"{v.left}: {_side(v.left_values, v.left_mean)}"
        right = f"{v.right}: {_side(v.right_values, v.right_mean)}" if v.right_values is not None else v.right
        lines.append(f"| {v.text} | {left} | {right} | {_num(v.p_improvement)} | {_verdict(v)} |")
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _fields(fields) -> str:
    return ", ".join(f"{k}={'+'.join(v) if isinstance(v, tuple) else v}" for k, v in fields.items())


def summary_markdown(results: list[ScenarioResult]) -> str:
    """One line per scenario: reproduced or not, and how many of its expectations and claims hold."""
    lines = [
        "# Phenomena",
        "",
        "| scenario | what | source | holds | reproduced |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        held = sum(bool(v.holds) for v in r.verdicts)
        source = r.scenario.citation.split(".")[0]
        lines.append(
            f"| [{r.scenario.name}]({r.scenario.name}.md) | {r.scenario.title} | {source} | "
            f"{held}/{len(r.verdicts)} | {'yes' if r.reproduced else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def to_dict(res: ScenarioResult) -> dict:
    """Everything about one scenario's run, as JSON-ready values (strict JSON: ``safety.strict_json``)."""

    def lst(x):
        return None if x is None else np.asarray(x, dtype=np.float64).tolist()

    return {
        "scenario": res.scenario.name,
        "title": res.scenario.title,
        "citation": res.scenario.citation,
        "story": res.scenario.story,
        "budget": {"seeds": res.budget.seeds, "steps": res.budget.steps},
        "reproduced": res.reproduced,
        "seconds": res.seconds,
        "runs": {k: r.config.to_dict() for k, r in res.runs.items()},
        "verdicts": [
            {
                "text": v.text,
                "left": v.left,
                "right": v.right,
                "left_values": lst(v.left_values),
                "right_values": lst(v.right_values),
                "left_mean": v.left_mean,
                "right_mean": v.right_mean,
                "p_improvement": v.p_improvement,
                "holds": v.holds,
                "detail": v.detail,
            }
            for v in res.verdicts
        ],
    }


def figure_bytes(res: ScenarioResult, fmt: str = "png", dpi: int = 110) -> bytes:
    """The scenario's figure: one panel per named curve (mean and 95% CI over seeds), then P(improvement) of
    every expectation and claim against the threshold (green: holds, red: does not)."""
    from .drawing import draw_series, pyplot

    plt = pyplot()
    curves = [c for r in res.runs.values() for c in r.curves]
    names = list(dict.fromkeys(c.name for c in curves))
    n = len(names) + 1
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=False):
        for c in (c for c in curves if c.name == name):
            label = c.method if len(res.runs) == 1 else f"{c.method} [{c.run}]"
            draw_series(ax, c.steps, {label: c.values})
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=8)
    ax = axes[0][-1]
    p = [0.0 if not math.isfinite(v.p_improvement) else v.p_improvement for v in res.verdicts]
    colors = ["#009E73" if v.holds else "#D55E00" for v in res.verdicts]
    y = np.arange(len(p))
    ax.barh(y, p, color=colors)
    ax.axvline(stats.CLAIM_THRESHOLD, color="#111111", ls="--", lw=1)
    ax.set_yticks(y, [f"{i + 1}" for i in y])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("P(improvement) (row = table row)")
    ax.set_title("expectations", fontsize=10)
    fig.suptitle(f"{res.scenario.name}: {res.scenario.title}", fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    try:
        with plt.rc_context({"svg.hashsalt": "frozenlake_ift"}):
            fig.savefig(buf, format=fmt, dpi=dpi, metadata={"svg": {"Date": None}}.get(fmt))
    finally:
        plt.close(fig)
    return buf.getvalue()


def write(results: list[ScenarioResult], out) -> list[Path]:
    """Write every scenario's files and the summary into ``out`` together (staged); return the paths."""
    from . import safety

    out = Path(out)
    safety.check_out_dir(out)
    safety.clean_orphans(out)
    with safety.staged_run(out) as stage:
        for res in results:
            name = res.scenario.name
            (stage.path / f"{name}.md").write_text(scenario_markdown(res), encoding="utf-8")
            (stage.path / f"{name}.json").write_text(safety.strict_json(to_dict(res), indent=1)[0], encoding="utf-8")
            for fmt in ("png", "svg"):
                (stage.path / f"{name}.{fmt}").write_bytes(figure_bytes(res, fmt))
        (stage.path / f"{SUMMARY}.md").write_text(summary_markdown(results), encoding="utf-8")
        return stage.commit(replace=False)
