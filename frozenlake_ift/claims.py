"""The paper's Frozen-Lake claims (Sec. 5.3), judged on a results summary, and rankings that show ties.

Each sentence is judged on its own: "DPO has the lowest MSE to the optimal policy" and "IFT is better
than SFT and ORPO" on the parameters and on both matrices (pi(a|s), Eq. 1; T_pi(s'|s), Eq. 2) against
theta* and pi*; "how closely the explored grid aligns with the agent's preference: DPO > IFT > ORPO >
SFT" (``explored_alignment``) and "DPO, ORPO and IFT explore more grids than SFT" (``explored``). A
"better" needs the means in order and P(improvement) >= ``stats.CLAIM_THRESHOLD`` over seeds; only the
paper's methods (the registry's ``in_paper``) take part. ``summary`` is ``results.summarize``'s.
"""

from __future__ import annotations

import itertools

from . import stats
from .methods import get_method, paper_method_names
from .metrics import METRICS

PAPER_EXPLORATION_ORDER = ("dpo", "ift", "orpo", "sft")


def in_paper(method: str) -> bool:
    """A method the paper's Frozen-Lake study trained (registry flag); unknown names (another session's
    registrations, read back from a file) count only if they are the paper's own names."""
    try:
        return get_method(method).in_paper
    except ValueError:
        return method in paper_method_names()


MSE_CLAIM_METRICS = ("param_mse", "policy_mse", "policy_mse_opt", "tmatrix_mse", "tmatrix_mse_opt")


def improvement(summary: dict, x: str, y: str, metric: str) -> float | None:
    """P(a seed of method x is better than a seed of method y) on a metric's final values (``stats``)."""
    a, b = summary[x][metric].get("final_values"), summary[y][metric].get("final_values")
    if a is None or b is None:
        return None
    return stats.probability_of_improvement(a, b, bool(METRICS[metric].higher_is_better))


def _fmt(summary: dict, m: str, k: str) -> str:
    s = summary[m][k]
    ci = s.get("final_ci95")
    return f"{m}={s['final_mean']:.4g}" + (f"±{ci:.2g}" if ci is not None else " (1 seed)")


def _claim(summary, claim: str, metric: str, pairs: list[tuple[str, str, str]], shown) -> dict:
    """A claim made of "x better than y" pairs (each: x, y, metric): it holds when every pair's mean
    ordering holds and P(improvement) >= stats.CLAIM_THRESHOLD; with one seed it is not judged."""
    probs = {f"{x}>{y} [{k}]": improvement(summary, x, y, k) for x, y, k in pairs}
    seeds = min(len(summary[m][metric].get("final_values") or [0, 0]) for m in shown)
    detail = ", ".join(_fmt(summary, m, metric) for m in shown)
    detail += "; P(improvement) " + ", ".join(f"{k} {v:.2f}" for k, v in probs.items() if v is not None)
    if seeds < 2:
        return {
            "claim": claim,
            "metric": metric,
            "holds": None,
            "p_improvement": probs,
            "detail": detail + "; one seed: not judged (there is no interval)",
        }
    higher = METRICS[metric].higher_is_better
    means = all(
        (summary[x][k]["final_mean"] > summary[y][k]["final_mean"]) == bool(higher)
        and summary[x][k]["final_mean"] != summary[y][k]["final_mean"]
        for x, y, k in pairs
    )
    holds = means and all(v is not None and v >= stats.CLAIM_THRESHOLD for v in probs.values())
    return {"claim": claim, "metric": metric, "holds": bool(holds), "p_improvement": probs, "detail": detail}


def check_claims(summary: dict) -> list[dict]:
    """The paper's Frozen-Lake claims (Sec. 5.3), each sentence judged on its own.

    - "DPO has the lowest MSE to the optimal policy" and "IFT is better than SFT and ORPO", on the
      parameters and on both matrices (pi(a|s), Eq. 1; T_pi(s'|s), Eq. 2), against theta* and pi*;
    - "how closely the explored grid aligns with the agent's preference: DPO > IFT > ORPO > SFT"
      (metric ``explored_alignment``) and "DPO, ORPO and IFT explore more grids than SFT" (``explored``).
    A "better" needs the means in order and P(improvement) >= ``stats.CLAIM_THRESHOLD`` (0.75) over
    seeds, so a difference inside the noise does not count. Only the paper's methods (the registry's
    ``in_paper``) take part: running or registering other methods never changes a verdict.
    """
    summary = {m: s for m, s in summary.items() if in_paper(m)}
    methods = set(summary)
    out = []
    for metric in MSE_CLAIM_METRICS:
        if not all(metric in summary[m] for m in methods):
            continue
        if "dpo" in methods and len(methods) > 1:
            others = sorted(methods - {"dpo"})
            out.append(
                _claim(
                    summary,
                    "DPO has the lowest MSE to the optimal policy",
                    metric,
                    [("dpo", o, metric) for o in others],
                    sorted(methods),
                )
            )
        if {"ift", "sft", "orpo"} <= methods:
            out.append(
                _claim(
                    summary,
                    "IFT is better (lower MSE) than SFT and ORPO",
                    metric,
                    [("ift", "sft", metric), ("ift", "orpo", metric)],
                    ("ift", "sft", "orpo"),
                )
            )
    if set(PAPER_EXPLORATION_ORDER) <= methods:
        order = PAPER_EXPLORATION_ORDER
        if all("explored_alignment" in summary[m] for m in order):
            out.append(
                _claim(
                    summary,
                    "explored grid aligns with the agent's preference: DPO > IFT > ORPO > SFT",
                    "explored_alignment",
                    [(a, b, "explored_alignment") for a, b in itertools.pairwise(order)],
                    order,
                )
            )
        out.append(
            _claim(
                summary,
                "DPO, ORPO and IFT explore more grids than SFT",
                "explored",
                [(m, "sft", "explored") for m in ("dpo", "orpo", "ift")],
                order,
            )
        )
    return out


def ranking_text(summary: dict, order: list[str], metric: str) -> str:
    """'sft > ift ~ orpo > dpo': '>' where P(improvement) of the left over the right >= stats.CLAIM_THRESHOLD,
    '~' where the pair is inside the noise (or with one seed)."""
    text = order[0]
    for a, b in itertools.pairwise(order):
        p = improvement(summary, a, b, metric)
        seeds = len(summary[a][metric].get("final_values") or [])
        text += (" > " if p is not None and seeds > 1 and p >= stats.CLAIM_THRESHOLD else " ~ ") + b
    return text
