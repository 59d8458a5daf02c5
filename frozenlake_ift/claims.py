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
from dataclasses import dataclass

from . import stats
from .methods import get_method, paper_method_names
from .metrics import METRICS

PAPER_EXPLORATION_ORDER = ("dpo", "ift", "orpo", "sft")
# The paper's sentences (Sec. 5.3), as ``check_claims`` names them
DPO_LOWEST = "DPO has the lowest MSE to the optimal policy"
IFT_BETTER = "IFT is better (lower MSE) than SFT and ORPO"
EXPLORE_ALIGNS = "explored grid aligns with the agent's preference: DPO > IFT > ORPO > SFT"
EXPLORE_MORE = "DPO, ORPO and IFT explore more grids than SFT"


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
                    DPO_LOWEST,
                    metric,
                    [("dpo", o, metric) for o in others],
                    sorted(methods),
                )
            )
        if {"ift", "sft", "orpo"} <= methods:
            out.append(
                _claim(
                    summary,
                    IFT_BETTER,
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
                    EXPLORE_ALIGNS,
                    "explored_alignment",
                    [(a, b, "explored_alignment") for a, b in itertools.pairwise(order)],
                    order,
                )
            )
        if all("explored" in summary[m] for m in order):
            out.append(
                _claim(
                    summary,
                    EXPLORE_MORE,
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


# ------------------------------------------------------------------------------ claims by name
@dataclass(frozen=True)
class NamedClaim:
    """One claim that ``search`` and the phenomena can name: a sentence judged on one metric.

    name: ``SENTENCE-ID[:METRIC]`` (``CLAIM_IDS``), e.g. "dpo-lowest:param_mse". paper: one of the paper's
    sentences, judged exactly as ``check_claims`` judges it; otherwise a pair the sentence implies
    (``pair``: x better than y), judged the same way (means in order, P(improvement) >= the threshold).
    """

    name: str
    sentence: str
    metric: str
    paper: bool
    pair: tuple[str, str] | None = None


CLAIM_IDS = {  # sentence id -> (sentence, metrics it is judged on, the pair of a pairwise claim)
    "dpo-lowest": (DPO_LOWEST, MSE_CLAIM_METRICS, None),
    "ift-better": (IFT_BETTER, MSE_CLAIM_METRICS, None),
    "explored-aligns": (EXPLORE_ALIGNS, ("explored_alignment",), None),
    "explored-more": (EXPLORE_MORE, ("explored",), None),
    # pairs a sentence implies (the comparison an independent re-implementation reported): not sentences of the paper
    "dpo-beats-sft": ("DPO has a lower MSE than SFT", MSE_CLAIM_METRICS, ("dpo", "sft")),
    "ift-beats-sft": ("IFT has a lower MSE than SFT", MSE_CLAIM_METRICS, ("ift", "sft")),
}


def named_claims() -> dict[str, NamedClaim]:
    """Every claim by name: ``SENTENCE-ID:METRIC`` for the MSE sentences, the sentence id alone for exploration."""
    out = {}
    for cid, (sentence, metrics, pair) in CLAIM_IDS.items():
        for metric in metrics:
            name = cid if len(metrics) == 1 else f"{cid}:{metric}"
            out[name] = NamedClaim(name, sentence, metric, paper=pair is None, pair=pair)
    return out


def get_claim(name: str) -> NamedClaim:
    """The claim called ``name``; an unknown name lists the known ones (ValueError)."""
    claims = named_claims()
    if name not in claims:
        raise ValueError(f"unknown claim {name!r}; claims: {', '.join(claims)}")
    return claims[name]


def judge_claim(summary: dict, name: str) -> dict | None:
    """One named claim judged on a results summary (``results.summarize``): the ``check_claims`` entry
    {claim, metric, holds, p_improvement, detail}, or None when the summary lacks its methods or metric."""
    claim = get_claim(name)
    if claim.paper:
        for entry in check_claims(summary):
            if entry["claim"] == claim.sentence and entry["metric"] == claim.metric:
                return entry
        return None
    assert claim.pair is not None, "a claim that is not the paper's sentence is a pair"
    x, y = claim.pair
    papers = {m: s for m, s in summary.items() if in_paper(m)}
    if not ({x, y} <= set(papers) and all(claim.metric in papers[m] for m in (x, y))):
        return None
    return _claim(papers, claim.sentence, claim.metric, [(x, y, claim.metric)], (x, y))


def claim_score(entry: dict | None) -> float:
    """How near a judged claim is to holding, in [0, 1]: its smallest P(improvement) (0 when not judged).
    The claim holds when its means are in order and this score >= ``stats.CLAIM_THRESHOLD``."""
    if entry is None:
        return 0.0
    values = [v for v in entry["p_improvement"].values() if v is not None]
    return float(min(values)) if values else 0.0
