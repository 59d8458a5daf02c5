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
    curves          {method: {metric: [n_evals][E]}}   (metrics: ``metrics.METRICS``)
    stats           {method: {statistic: [n_evals][E]}}   the loss's own statistics (TRL's names, e.g.
                    rewards/margins, logps/chosen; nll_loss; rollout/success for on-policy methods)
    final_occupancy {method: [E][S]}
    explored        {method: [E][S]} 0/1: first-layer rows that received gradient
    summary         {method: {metric: {final_mean, final_ci, best_mean, best_ci}}}
    ranking         {metric: [methods, best first by final mean]}
    claims          [{claim, metric, holds, detail}]   judged over the paper's methods only (``in_paper``)
    methods         {method: {in_paper, table1_row, on_policy, description}}   from the registry

params.pt beside it holds the trained parameters (``load_params``): every method's final E members,
theta_0 and theta*, as CPU tensors (``torch.save``; read with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import tempfile
from pathlib import Path

from dataclasses import dataclass

import numpy as np

from . import metrics
from .methods import get_method, paper_method_names
from .metrics import METRICS

PAPER_EXPLORATION_ORDER = ("dpo", "ift", "orpo", "sft")
PARAMS_FILE = "params.pt"
PARAMS_FORMAT = 1


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
            spec = METRICS.get(metric)
            higher = spec.higher_is_better if spec else None
            best = arr.max(0) if higher else arr.min(0)  # (E,) best over the run, per seed
            fm, fc = metrics.mean_ci95(arr[-1])
            bm, bc = metrics.mean_ci95(best)
            summary[method][metric] = {"final_mean": float(fm), "final_ci": float(fc),
                                       "best_mean": float(bm), "best_ci": float(bc)}
    ranking = {}
    for metric, spec in METRICS.items():
        if spec.higher_is_better is None or not all(metric in summary[m] for m in summary):
            continue
        ranking[metric] = sorted(summary, key=lambda m: summary[m][metric]["final_mean"],
                                 reverse=bool(spec.higher_is_better))
    return summary, ranking


def _in_paper(method: str) -> bool:
    """A method the paper's Frozen-Lake study trained (registry flag); unknown names (another session's
    registrations, read back from a file) count only if they are the paper's own names."""
    try:
        return get_method(method).in_paper
    except ValueError:
        return method in paper_method_names()


def check_claims(summary: dict) -> list[dict]:
    """The paper's Frozen-Lake claims (Sec. 5.3), judged on final means; CIs are in ``detail``.

    Only the paper's methods (the registry's ``in_paper``) take part, so running or registering
    other methods never changes a verdict.
    """
    summary = {m: s for m, s in summary.items() if _in_paper(m)}
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
        "stats": {m: {k: np.asarray(v).tolist() for k, v in st.items()} for m, st in getattr(result, "stats", {}).items()},
        "methods": {m: method_info(m) for m in result.curves},
    }


def method_info(method: str) -> dict:
    """What results.json records of a method's registry entry."""
    try:
        rec = get_method(method)
    except ValueError:
        return {"in_paper": method in paper_method_names(), "table1_row": "", "on_policy": False, "description": ""}
    return {"in_paper": rec.in_paper, "table1_row": rec.table1_row, "on_policy": rec.on_policy,
            "description": rec.description}


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
    """Write results.json and summary.csv (and, for a StudyResult, params.pt) into out_dir, each
    atomically; return the dict."""
    res = result_or_dict if isinstance(result_or_dict, dict) else to_dict(result_or_dict)
    out = Path(out_dir)
    if not isinstance(result_or_dict, dict) and getattr(result_or_dict, "params", None):
        atomic_write(out / PARAMS_FILE, params_bytes(result_or_dict))
    atomic_write(out / "summary.csv", summary_csv(res))
    atomic_write(out / "results.json", json.dumps(res, separators=(",", ":")))
    return res


@dataclass(frozen=True)
class SavedParams:
    """The trained parameters of a run (``params.pt``).

    methods: {method: policy-network parameter dict} with W1 (E, S, H), b1 (E, H), W2 (E, H, A),
    b2 (E, A) as CPU tensors; base, star: the same for theta_0 and theta*. seeds: the E seeds.
    """

    activation: str
    n_states: int
    n_actions: int
    seeds: list
    methods: dict
    base: dict
    star: dict

    def params(self, method: str) -> dict:
        """The parameter dict of a method, or of "base" (theta_0) / "star" (theta*)."""
        if method == "base":
            return self.base
        if method == "star":
            return self.star
        if method not in self.methods:
            raise ValueError(f"no saved parameters for method {method!r}; saved: "
                             f"{', '.join(list(self.methods) + ['base', 'star'])}")
        return self.methods[method]

    def policy_table(self, method: str):
        """pi_theta(a | s) of every member on every state, float64. Shape: (E, S, A)."""
        from . import policy

        p = {k: v.double() for k, v in self.params(method).items()}
        return policy.policy_table(p, self.n_states, self.activation)


def params_bytes(result) -> bytes:
    """A StudyResult's trained parameters as the bytes of params.pt."""
    import torch

    def cpu(p):
        return {k: v.detach().cpu().clone() for k, v in p.items()}

    cfg = result.config
    payload = {"format": PARAMS_FORMAT, "activation": cfg.activation, "n_states": int(result.data.mdp.n_states),
               "n_actions": int(result.data.mdp.n_actions), "seeds": [cfg.seed + i for i in range(cfg.seeds)],
               "methods": {m: cpu(p) for m, p in result.params.items()}, "base": cpu(result.base),
               "star": cpu(result.star)}
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def load_params(run_dir: str | os.PathLike) -> SavedParams:
    """Read the params.pt of a run folder (or the path of the file itself)."""
    import torch

    path = Path(run_dir)
    if path.is_dir():
        path = path / PARAMS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no saved parameters at {str(path)!r} (runs save them as {PARAMS_FILE})")
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: one clear line
        raise ValueError(f"{str(path)!r} is not a frozenlake-ift {PARAMS_FILE}: {exc}") from None
    if not isinstance(d, dict) or d.get("format") != PARAMS_FORMAT:
        raise ValueError(f"{str(path)!r} is not a frozenlake-ift {PARAMS_FILE} (format {PARAMS_FORMAT})")
    return SavedParams(activation=d["activation"], n_states=d["n_states"], n_actions=d["n_actions"],
                       seeds=list(d["seeds"]), methods=d["methods"], base=d["base"], star=d["star"])


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
    width = max([5] + [len(m) for m in methods])
    for metric, spec in METRICS.items():
        if not all(metric in res["summary"][m] for m in methods):
            continue
        higher = spec.higher_is_better
        arrow = "" if higher is None else (" (higher is better)" if higher else " (lower is better)")
        lines.append(f"{metric}: {spec.label}{arrow}")
        for m in methods:
            s = res["summary"][m][metric]
            lines.append(f"  {m:<{width}} final {s['final_mean']:>10.4g} ± {s['final_ci']:<9.2g}"
                         f" best {s['best_mean']:>10.4g} ± {s['best_ci']:.2g}")
        if metric in res.get("ranking", {}):
            lines.append("  ranking: " + " > ".join(res["ranking"][metric]))
    for c in res.get("claims", []):
        lines.append(f"claim [{c['metric']}] {c['claim']}: {'HOLDS' if c['holds'] else 'does NOT hold'} ({c['detail']})")
    return "\n".join(lines)
