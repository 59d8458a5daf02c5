"""StudyResult <-> files: results.json, summary.csv, the summary table and the paper's claims.

Files are written whole or not at all: each goes to a temporary file in the same folder and is
then renamed over the target (``atomic_write``).

results.json layout (the stable input of ``plots`` and ``sweep``):
    config          StudyConfig as a dict
    versions        python, torch, numpy, gymnasium, frozenlake_ift
    device, seconds
    map             desc (rows), shape, chosen/rejected {states, actions}, pi_star [S][A], terminal [S]
    fit             kl [E], steps [E], tol, base_success [E], star_success [E]
    steps           [n_evals] evaluation steps
    curves          {method: {metric: [n_evals][E]}}
    final_occupancy {method: [E][S]}
    explored        {method: [E][S]} 0/1: first-layer rows that received gradient
    summary         {method: {metric: {final_mean, final_ci, best_mean, best_ci}}}
    ranking         {metric: [methods, best first by final mean]}
    claims          [{claim, metric, holds, detail}]
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import tempfile
from pathlib import Path

import numpy as np

from . import metrics

# metric -> (label, True when higher is better); "loss" is each method's own objective: not ranked.
METRICS = {
    "param_mse": ("parameter MSE to theta*", False),
    "policy_mse": ("transition-matrix MSE to pi_theta*", False),
    "policy_mse_opt": ("transition-matrix MSE to pi*", False),
    "kl": ("KL(pi* || pi_theta)", False),
    "success": ("success probability", True),
    "value": ("value from rho0", True),
    "explored": ("explored states", True),
    "cosine": ("cos(theta - theta_0, theta* - theta_0)", True),
    "loss": ("training loss (own objective)", None),
}
PAPER_EXPLORATION_ORDER = ("dpo", "ift", "orpo", "sft")


def atomic_write(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename: readers see all or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; results are meant to be shared
        with os.fdopen(fd, mode) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def versions() -> dict:
    import gymnasium
    import torch

    from . import __version__
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "gymnasium": gymnasium.__version__, "frozenlake_ift": __version__}


def summarize(curves: dict[str, dict[str, np.ndarray]]) -> tuple[dict, dict]:
    """Final and best value per method and metric (mean and 95% CI over seeds), and rankings."""
    summary: dict = {}
    for method, mc in curves.items():
        summary[method] = {}
        for metric, arr in mc.items():
            arr = np.asarray(arr, dtype=np.float64)  # (n_evals, E)
            higher = METRICS.get(metric, ("", None))[1]
            best = arr.max(0) if higher else arr.min(0)  # (E,) best over the run, per seed
            fm, fc = metrics.mean_ci95(arr[-1])
            bm, bc = metrics.mean_ci95(best)
            summary[method][metric] = {"final_mean": float(fm), "final_ci": float(fc),
                                       "best_mean": float(bm), "best_ci": float(bc)}
    ranking = {}
    for metric, (_, higher) in METRICS.items():
        if higher is None or not all(metric in summary[m] for m in summary):
            continue
        ranking[metric] = sorted(summary, key=lambda m: summary[m][metric]["final_mean"], reverse=bool(higher))
    return summary, ranking


def check_claims(summary: dict) -> list[dict]:
    """The paper's Frozen-Lake claims (Sec. 5.3), judged on final means; CIs are in ``detail``."""
    methods = set(summary)
    out = []

    def fmt(m, k):
        s = summary[m][k]
        return f"{m}={s['final_mean']:.4g}±{s['final_ci']:.2g}"

    for metric in ("param_mse", "policy_mse"):
        if {"dpo"} <= methods and len(methods) > 1:
            best = min(methods, key=lambda m: summary[m][metric]["final_mean"])
            out.append({"claim": "DPO has the lowest MSE to the optimal policy", "metric": metric,
                        "holds": best == "dpo", "detail": ", ".join(fmt(m, metric) for m in sorted(methods))})
        if {"ift", "sft", "orpo"} <= methods:
            ift = summary["ift"][metric]["final_mean"]
            holds = ift < summary["sft"][metric]["final_mean"] and ift < summary["orpo"][metric]["final_mean"]
            out.append({"claim": "IFT is better (lower MSE) than SFT and ORPO", "metric": metric, "holds": holds,
                        "detail": ", ".join(fmt(m, metric) for m in ("ift", "sft", "orpo"))})
    if set(PAPER_EXPLORATION_ORDER) <= methods:
        vals = [summary[m]["explored"]["final_mean"] for m in PAPER_EXPLORATION_ORDER]
        holds = all(a > b for a, b in zip(vals, vals[1:]))
        out.append({"claim": "exploration DPO > IFT > ORPO > SFT", "metric": "explored", "holds": holds,
                    "detail": ", ".join(fmt(m, "explored") for m in PAPER_EXPLORATION_ORDER)})
    return out


def to_dict(result) -> dict:
    """A StudyResult as the JSON-ready dict described in the module docstring."""
    mdp, data = result.data.mdp, result.data
    summary, ranking = summarize(result.curves)
    return {
        "config": result.config.to_dict(),
        "versions": versions(),
        "device": result.device,
        "seconds": result.seconds,
        "map": {"desc": list(mdp.desc), "shape": list(mdp.shape),
                "chosen": {"states": list(data.chosen.states), "actions": list(data.chosen.actions)},
                "rejected": {"states": list(data.rejected.states), "actions": list(data.rejected.actions)},
                "pi_star": np.asarray(data.pi_star).tolist(), "terminal": mdp.terminal.astype(int).tolist()},
        "fit": {"kl": result.fit_kl.tolist(), "steps": np.asarray(result.fit_steps).tolist(), "tol": result.config.fit_tol,
                "base_success": result.base_success.tolist(), "star_success": result.star_success.tolist()},
        "steps": list(result.steps),
        "curves": {m: {k: np.asarray(v).tolist() for k, v in mc.items()} for m, mc in result.curves.items()},
        "final_occupancy": {m: np.asarray(v).tolist() for m, v in result.final_occupancy.items()},
        "explored": {m: np.asarray(v).astype(int).tolist() for m, v in result.explored.items()},
        "summary": summary,
        "ranking": ranking,
        "claims": check_claims(summary),
    }


def summary_csv(res: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "metric", "final_mean", "final_ci95", "best_mean", "best_ci95"])
    for method, ms in res["summary"].items():
        for metric, s in ms.items():
            w.writerow([method, metric, f"{s['final_mean']:.6g}", f"{s['final_ci']:.6g}",
                        f"{s['best_mean']:.6g}", f"{s['best_ci']:.6g}"])
    return buf.getvalue()


def save(result_or_dict, out_dir: str | os.PathLike) -> dict:
    """Write results.json and summary.csv into out_dir (each atomically); return the dict."""
    res = result_or_dict if isinstance(result_or_dict, dict) else to_dict(result_or_dict)
    out = Path(out_dir)
    atomic_write(out / "summary.csv", summary_csv(res))
    atomic_write(out / "results.json", json.dumps(res, separators=(",", ":")))
    return res


def load(path: str | os.PathLike) -> dict:
    """Read a results.json (or the folder holding one) with a clear error if it is not one."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.exists():
        raise FileNotFoundError(f"no results file at {str(path)!r}")
    try:
        res = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not valid JSON: {exc}") from None
    missing = [k for k in ("config", "steps", "curves", "summary", "map") if k not in res]
    if missing:
        raise ValueError(f"{str(path)!r} is not a frozenlake-ift results file: missing keys {missing}")
    return res


def format_table(res: dict) -> str:
    """The summary table the CLI prints: final and best (mean ± 95% CI) per method and metric, and ranks."""
    lines = []
    methods = list(res["summary"])
    for metric, (label, higher) in METRICS.items():
        if not all(metric in res["summary"][m] for m in methods):
            continue
        arrow = "" if higher is None else (" (higher is better)" if higher else " (lower is better)")
        lines.append(f"{metric}: {label}{arrow}")
        for m in methods:
            s = res["summary"][m][metric]
            lines.append(f"  {m:<5} final {s['final_mean']:>10.4g} ± {s['final_ci']:<9.2g}"
                         f" best {s['best_mean']:>10.4g} ± {s['best_ci']:.2g}")
        if metric in res.get("ranking", {}):
            lines.append("  ranking: " + " > ".join(res["ranking"][metric]))
    for c in res.get("claims", []):
        lines.append(f"claim [{c['metric']}] {c['claim']}: {'HOLDS' if c['holds'] else 'does NOT hold'} ({c['detail']})")
    return "\n".join(lines)
