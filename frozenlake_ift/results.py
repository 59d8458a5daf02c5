"""StudyResult <-> files: results.json, summary.csv, steps.csv, params.pt, and the summary table (claims: ``claims``).

Files are written whole or not at all: each goes to a temporary file in the same folder and is
then renamed over the target (``atomic_write``).

results.json layout (the stable input of ``plots`` and ``sweep``):
    config          StudyConfig as a dict
    versions        python, torch, numpy, gymnasium, frozenlake_ift
    device, seconds
    map             the MDP and its data: name, env (the config's spec, or "python" for an MDP passed to
                    run_study), desc (rows) and shape (grids; null elsewhere), chosen/rejected {states,
                    actions} (the first pair), pairs [{chosen, rejected}] (all of them, when there are
                    several), starts [..], pi_star [S][A], terminal [S], goal [S], v_star (V* at the
                    start), state_names [S] / action_names [A] (where the MDP has them), model
                    {next_states, probs} [S][A][K] (MDPs that are not lake maps: the T_pi figure)
    fit             kl [E], steps [E], tol, base_success [E], star_success [E] (MDPs with goal states;
                    else base_value_ratio [E], star_value_ratio [E])
    steps           [n_evals] evaluation steps
    curves          {method: {metric: [n_evals][E]}}   (metrics: ``metrics.METRICS``)
    stats           {method: {statistic: [n_evals][E]}}   the loss's own statistics (TRL's names, e.g.
                    rewards/margins, logps/chosen; nll_loss; rollout/success for on-policy methods)
    final_occupancy {method: [E][S]}
    final_policy    {method: [S][A]}   pi_theta(a|s) of the final parameters, mean over seeds
    explored        {method: [E][S]} 0/1: first-layer rows that received gradient
    summary         {method: {metric: {final_mean, final_ci95, best_mean, best_ci95, final_values [E],
                    final_iqm, final_iqm_ci95 [low, high]}}}   (intervals None with one seed)
    ranking         {metric: [methods, best first by final mean]}
    claims          [{claim, metric, holds, p_improvement, detail}]   over the paper's methods only (``in_paper``);
                    holds is None when not judged (one seed)
    methods         {method: {in_paper, table1_row, on_policy, description}}   from the registry
    run_id          a random id shared by every file of the run (``RUN_ID``): results.json, summary.csv and
                    steps.csv (a last column), params.pt and the figures' metadata; readers that combine
                    files (``load_params``, ``agents.Agent.from_run``) refuse files of two runs

params.pt beside it holds the trained parameters (``load_params``): every method's final E members,
theta_0 and theta*, as CPU tensors (``torch.save``; read with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import csv
import io
import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import metrics, stats
from .claims import (  # noqa: F401  (re-exported: results.check_claims is the stable name)
    MSE_CLAIM_METRICS,
    PAPER_EXPLORATION_ORDER,
    check_claims,
    improvement,
    ranking_text,
)
from .methods import get_method, paper_method_names
from .metrics import METRICS
from .rounding import as_list, round_floats

PARAMS_FILE = "params.pt"
PARAMS_FORMAT = 1
RUN_ID = "run_id"  # the key (results.json, params.pt) and column (the CSVs) of a run's id


def new_run_id() -> str:
    """A fresh run id: 16 random hex digits."""
    import secrets

    return secrets.token_hex(8)


def atomic_write(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename: readers see all or nothing.

    The temporary name carries this process's pid, so ``safety.clean_orphans`` removes those of
    killed writers only; on any error (a full disk) the temporary file is removed and the error
    raised, and ``path`` keeps its previous content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")  # safety.TMP_RE
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

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "gymnasium": gymnasium.__version__,
        "frozenlake_ift": __version__,
    }


def summarize(curves: dict[str, dict[str, np.ndarray]], robust: bool = True) -> tuple[dict, dict]:
    """Final and best value per method and metric, and rankings (best first by final mean).

    Per method and metric: final_mean / final_ci95 and best_mean / best_ci95 (mean and Student-t 95%
    half-width over seeds; None with one seed: there is no interval), final_values (per seed, for
    P(improvement)), and with ``robust`` final_iqm with its stratified-bootstrap 95% interval
    final_iqm_ci95 = [low, high] (``stats``; None with one seed).
    """
    summary: dict = {}
    finals: list[tuple[dict, np.ndarray]] = []  # (entry, final per-seed values (E,)): the robust statistics
    for method, mc in curves.items():
        summary[method] = {}
        for metric, arr in mc.items():
            arr = np.asarray(arr, dtype=np.float64)  # (n_evals, E)
            spec = METRICS.get(metric)
            higher = spec.higher_is_better if spec else None
            best = arr.max(0) if higher else arr.min(0)  # (E,) best over the run, per seed
            fm, fc = metrics.mean_ci95(arr[-1])
            bm, bc = metrics.mean_ci95(best)
            one = arr.shape[1] < 2
            entry = {
                "final_mean": float(fm),
                "final_ci95": None if one else float(fc),
                "best_mean": float(bm),
                "best_ci95": None if one else float(bc),
                "final_values": arr[-1].tolist(),
            }
            summary[method][metric] = entry
            finals.append((entry, arr[-1]))
    if robust:  # one bootstrap per run length over every (method, metric): the same intervals as one call each
        for n in sorted({len(v) for _, v in finals}):
            rows = [(e, v) for e, v in finals if len(v) == n]
            x = np.stack([v for _, v in rows])  # (k, E)
            for (entry, _), value, ci in zip(rows, stats.iqm_rows(x), stats.iqm_ci_rows(x), strict=True):
                entry["final_iqm"] = None if np.isnan(value) else float(value)
                entry["final_iqm_ci95"] = None if ci is None or n < 2 else list(ci)
    return summary, rank(summary)


def rank(summary: dict) -> dict:
    """The methods of a summary (``summarize``) best first by final mean, per metric that has a direction and
    that every method has. A summary joined from parts' summaries ranks as the whole one does: each method's
    entries depend on its own curves alone."""
    ranking = {}
    for metric, spec in METRICS.items():
        if spec.higher_is_better is None or not all(metric in summary[m] for m in summary):
            continue
        ranking[metric] = sorted(
            summary, key=lambda m: summary[m][metric]["final_mean"], reverse=bool(spec.higher_is_better)
        )
    return ranking


METHOD_SECTIONS = ("curves", "final_occupancy", "final_policy", "explored", "summary", "stats", "methods")  # per method


def to_dict(result, digits: int | None = None) -> dict:
    """A StudyResult as the JSON-ready dict described in the module docstring.

    With ``digits``, every float but those of the summary, ranking and claims (computed from the exact
    values) is rounded to that many significant digits (``rounding``: what a sweep's cell file keeps).
    """
    summary, ranking = summarize(result.curves)

    def lst(a) -> list:
        return as_list(a, digits)

    return {
        "config": round_floats(result.config.to_dict(), digits),
        "versions": versions(),
        "device": result.device,
        "seconds": round_floats(result.seconds, digits),
        "map": map_record(result, lst),
        "fit": {
            "kl": lst(result.fit_kl),
            "steps": lst(result.fit_steps),
            "tol": round_floats(result.config.fit_tol, digits),
            **_fit_scores(result, lst),
        },
        "steps": list(result.steps),
        "curves": {m: {k: lst(v) for k, v in mc.items()} for m, mc in result.curves.items()},
        "final_occupancy": {m: lst(v) for m, v in result.final_occupancy.items()},
        "final_policy": {m: lst(result.final_policy(m).mean(0).cpu().numpy()) for m in result.params},
        "explored": {m: np.asarray(v).astype(int).tolist() for m, v in result.explored.items()},
        "summary": summary,
        "ranking": ranking,
        "claims": check_claims(summary),
        "stats": {m: {k: lst(v) for k, v in st.items()} for m, st in getattr(result, "stats", {}).items()},
        "methods": {m: method_info(m) for m in result.curves},
    }


def join_records(records: list[dict], methods) -> dict:
    """One study's record from the records (``to_dict``) of its method parts, each holding some of
    ``methods`` (a sweep trains a lone group's methods in parts, side by side): the per-method sections
    (METHOD_SECTIONS) joined in ``methods``' order, the ranking and claims formed from the joined summary
    (its entries are exact, and each method's depend on its own curves alone, so they are the whole run's),
    the seconds summed, and everything else (config, map, fit, steps: every part builds the same) from the
    first record, keys in its order. Raises ValueError unless the parts hold each of ``methods`` once."""
    held = [m for r in records for m in r["curves"]]
    if sorted(held) != sorted(methods):
        raise ValueError(f"join_records: the parts hold {held}, the study trains {list(methods)}")
    out = {}
    for key, value in records[0].items():
        if key in METHOD_SECTIONS:
            value = {m: r[key][m] for m in methods for r in records if m in r.get(key, {})}
        elif key == "seconds":
            value = sum(r["seconds"] for r in records)
        out[key] = value
    out["ranking"], out["claims"] = rank(out["summary"]), check_claims(out["summary"])
    return out


def map_record(result, lst=as_list) -> dict:
    """results.json's ``map`` block: the MDP and the study's data (module docstring)."""
    mdp, data = result.data.mdp, result.data
    record = {
        "name": mdp.name,
        "env": data.source,
        "desc": list(mdp.desc) if mdp.desc is not None else None,
        "shape": list(mdp.shape) if mdp.shape is not None else None,
        "chosen": data.chosen.to_dict(),
        "rejected": data.rejected.to_dict(),
        "pi_star": lst(data.pi_star),
        "terminal": mdp.terminal.astype(int).tolist(),
        "goal": mdp.goal.astype(int).tolist(),
        "starts": list(data.starts),
        "v_star": data.v_star,
    }
    if len(data.chosen_all) > 1 or len(data.rejected_all) > 1:
        n = max(len(data.chosen_all), len(data.rejected_all))
        record["pairs"] = [
            {
                "chosen": data.chosen_all[min(i, len(data.chosen_all) - 1)].to_dict(),
                "rejected": data.rejected_all[min(i, len(data.rejected_all) - 1)].to_dict(),
            }
            for i in range(n)
        ]
    for key in ("state_names", "action_names"):
        if getattr(mdp, key) is not None:
            record[key] = list(getattr(mdp, key))
    if mdp.desc is None:  # what the T_pi figure needs; a grid's model follows from its rows
        record["model"] = {"next_states": mdp.next_states.tolist(), "probs": lst(mdp.probs)}
    return record


def _fit_scores(result, lst) -> dict:
    """theta_0's and theta*'s success (MDPs with goals) or normalised return (without)."""
    if getattr(result, "star_value_ratio", None) is not None:
        return {"base_value_ratio": lst(result.base_value_ratio), "star_value_ratio": lst(result.star_value_ratio)}
    return {"base_success": lst(result.base_success), "star_success": lst(result.star_success)}


def method_info(method: str) -> dict:
    """What results.json records of a method's registry entry."""
    try:
        rec = get_method(method)
    except ValueError:
        return {"in_paper": method in paper_method_names(), "table1_row": "", "on_policy": False, "description": ""}
    return {
        "in_paper": rec.in_paper,
        "table1_row": rec.table1_row,
        "on_policy": rec.on_policy,
        "description": rec.description,
    }


def _num(x) -> str:
    return "" if x is None else f"{x:.6g}"


def summary_csv(res: dict) -> str:
    """summary.csv: one row per method and metric, with the metric's label (which matrix, against what)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "method",
            "metric",
            "label",
            "final_mean",
            "final_ci95",
            "best_mean",
            "best_ci95",
            "final_iqm",
            "final_iqm_low",
            "final_iqm_high",
        ]
    )
    rid = _run_id_column(res)
    for method, ms in res["summary"].items():
        for metric, s in ms.items():
            iqm_ci = s.get("final_iqm_ci95") or [None, None]
            label = METRICS[metric].label if metric in METRICS else metric
            w.writerow(
                [
                    method,
                    metric,
                    label,
                    _num(s["final_mean"]),
                    _num(s.get("final_ci95")),
                    _num(s["best_mean"]),
                    _num(s.get("best_ci95")),
                    _num(s.get("final_iqm")),
                    _num(iqm_ci[0]),
                    _num(iqm_ci[1]),
                ]
                + rid
            )
    return _with_run_id_header(buf.getvalue(), res)


def _run_id_column(res: dict) -> list[str]:
    """The CSVs' last cell: the run id (none for results saved without one)."""
    return [res[RUN_ID]] if RUN_ID in res else []


def _with_run_id_header(text: str, res: dict) -> str:
    head, _, rest = text.partition("\n")
    return f"{head},{RUN_ID}\n{rest}" if RUN_ID in res else text


def step_columns(res: dict) -> list[str]:
    """The value columns of steps.csv: every metric (``metrics.METRICS`` order) and loss statistic present."""
    present = {k for mc in res["curves"].values() for k in mc} | {k for st in res.get("stats", {}).values() for k in st}
    return [k for k in METRICS if k in present] + sorted(present - set(METRICS))


def steps_csv(res: dict) -> str:
    """steps.csv (wide): one row per method, seed and evaluation step; a column per metric and statistic.

    Columns: method, member (0..E-1), seed, step, then ``step_columns(res)`` (loss, every metric, and the
    loss's own statistics with TRL's names: logps/chosen, rewards/margins, ...); empty where a
    method has no such value. The last row of each (method, member) holds results.json's final values.
    """
    cols = step_columns(res)
    seed0 = int(res["config"].get("seed", 0))
    rid = _run_id_column(res)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "member", "seed", "step"] + cols)
    for method, mc in res["curves"].items():
        st = res.get("stats", {}).get(method, {})
        series = {k: np.asarray(mc[k] if k in mc else st[k], dtype=np.float64) for k in cols if k in mc or k in st}
        E = next(iter(series.values())).shape[1]
        for e in range(E):
            for i, step in enumerate(res["steps"]):
                w.writerow(
                    [method, e, seed0 + e, step]
                    + [_num(float(series[k][i, e])) if k in series else "" for k in cols]
                    + rid
                )
    return _with_run_id_header(buf.getvalue(), res)


def write_tensorboard(res: dict, log_dir: str | os.PathLike) -> list[Path]:
    """TensorBoard event files of a run: one folder per method under log_dir, scalars = seed means.

    Tags: ``metrics/<metric>`` and ``stats/<statistic>`` (TRL's names), at every evaluation step.
    TensorBoard is optional (the ``tensorboard`` extra): without it this raises ImportError naming it.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ImportError(
            "TensorBoard event files need tensorboard: pip install 'frozenlake_ift[tensorboard]'"
        ) from None
    written = []
    for method, mc in res["curves"].items():
        folder = Path(log_dir) / method
        writer = SummaryWriter(log_dir=str(folder))
        quantities = {
            **{f"metrics/{k}": v for k, v in mc.items()},
            **{f"stats/{k}": v for k, v in res.get("stats", {}).get(method, {}).items()},
        }
        for tag, arr in quantities.items():
            arr = np.asarray(arr, dtype=np.float64)  # (n_evals, E)
            for i, step in enumerate(res["steps"]):
                value = float(np.nanmean(arr[i])) if np.isfinite(arr[i]).any() else float("nan")
                writer.add_scalar(tag, value, global_step=int(step))
        writer.close()
        written.append(folder)
    return written


def to_frame(run_dir: str | os.PathLike):
    """The per-step results of a run as a long ("tidy") pandas DataFrame (pandas is optional: the ``frames`` extra).

    Columns: method, member, seed, step, quantity (a metric or statistic name), value; one row per
    method, member, evaluation step and quantity, read from the run's results.json.
    """
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("results.to_frame needs pandas: pip install 'frozenlake_ift[frames]'") from None
    res = load(run_dir)
    seed0 = int(res["config"].get("seed", 0))
    rows = []
    for method, mc in res["curves"].items():
        quantities = {**mc, **res.get("stats", {}).get(method, {})}
        for name, arr in quantities.items():
            arr = np.asarray(arr, dtype=np.float64)  # (n_evals, E)
            for i, step in enumerate(res["steps"]):
                for e in range(arr.shape[1]):
                    rows.append((method, e, seed0 + e, step, name, arr[i, e]))
    return pd.DataFrame(rows, columns=["method", "member", "seed", "step", "quantity", "value"])


def save(result_or_dict, out_dir: str | os.PathLike) -> dict:
    """Write results.json, summary.csv, steps.csv (and, for a StudyResult, params.pt) into out_dir, each
    atomically, all under one run id (``RUN_ID``: a new one, unless the dict has one); return the dict.

    results.json is strict JSON: a non-finite value (a diverged run's NaN) is written as null, and
    ``notes`` in the file (and in the returned dict) names where (``strict_results``).
    """
    res = result_or_dict if isinstance(result_or_dict, dict) else to_dict(result_or_dict)
    if not isinstance(res.get(RUN_ID), str):  # a loaded run saved again keeps its id
        res[RUN_ID] = new_run_id()
    out = Path(out_dir)
    text = strict_results(res)  # before anything is written: a dict that cannot be JSON fails here
    if not isinstance(result_or_dict, dict) and getattr(result_or_dict, "params", None):
        atomic_write(out / PARAMS_FILE, params_bytes(result_or_dict, res[RUN_ID]))
    atomic_write(out / "summary.csv", summary_csv(res))
    atomic_write(out / "steps.csv", steps_csv(res))
    atomic_write(out / "results.json", text)
    return res


def strict_results(res: dict) -> str:
    """results.json text without NaN / Infinity tokens: each non-finite value becomes null and a line
    of ``res["notes"]`` (added to ``res``) names the lists that held one."""
    from .safety import strict_json

    text, where = strict_json(res, separators=(",", ":"))
    if where:
        notes = [n for n in res.get("notes", []) if not n.startswith("non-finite")]
        res["notes"] = notes + [
            f"non-finite values (NaN or inf, e.g. a diverged run) written as null in: {', '.join(where)}"
        ]
        text, _ = strict_json(res, separators=(",", ":"))
    return text


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
    run_id: str | None = None  # results.json's run_id (None: a file of a version before run ids)

    def params(self, method: str) -> dict:
        """The parameter dict of a method, or of "base" (theta_0) / "star" (theta*)."""
        if method == "base":
            return self.base
        if method == "star":
            return self.star
        if method not in self.methods:
            raise ValueError(
                f"no saved parameters for method {method!r}; saved: {', '.join(list(self.methods) + ['base', 'star'])}"
            )
        return self.methods[method]

    def policy_table(self, method: str):
        """pi_theta(a | s) of every member on every state, float64. Shape: (E, S, A)."""
        from . import policy

        p = {k: v.double() for k, v in self.params(method).items()}
        return policy.policy_table(p, self.n_states, self.activation)


def params_bytes(result, run_id: str | None = None) -> bytes:
    """A StudyResult's trained parameters as the bytes of params.pt (with the run's id, ``RUN_ID``)."""
    import torch

    def cpu(p):
        return {k: v.detach().cpu().clone() for k, v in p.items()}

    cfg = result.config
    payload = {
        "format": PARAMS_FORMAT,
        "activation": cfg.activation,
        "n_states": int(result.data.mdp.n_states),
        "n_actions": int(result.data.mdp.n_actions),
        "seeds": [cfg.seed + i for i in range(cfg.seeds)],
        "methods": {m: cpu(p) for m, p in result.params.items()},
        "base": cpu(result.base),
        "star": cpu(result.star),
    }
    if run_id is not None:
        payload[RUN_ID] = run_id
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def load_params(run_dir: str | os.PathLike, against: dict | None = None) -> SavedParams:
    """Read the params.pt of a run folder (or the path of the file itself).

    A file that is not a frozenlake-ift params.pt (truncated, foreign, or a forged dict of another layout)
    raises ValueError of one line naming it. The parameters must belong to the run of ``against`` (a
    results dict), by default of the results.json beside them when there is one: files of two runs (a
    folder whose last write was interrupted) raise ValueError (``check_same_run``).
    """
    import torch

    from .layouts import check_params_layout

    path = _as_path(run_dir, "run_dir")
    if path.is_dir():
        path = path / PARAMS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no saved parameters at {str(path)!r} (runs save them as {PARAMS_FILE})")
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: one clear line, without torch's advice
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"{str(path)!r} is not a frozenlake-ift {PARAMS_FILE} "
            f"(torch cannot read it as plain tensors: {first[:200]})"
        ) from None
    check_params_layout(d, str(path), PARAMS_FORMAT)
    saved = SavedParams(
        activation=d["activation"],
        n_states=d["n_states"],
        n_actions=d["n_actions"],
        seeds=list(d["seeds"]),
        methods=d["methods"],
        base=d["base"],
        star=d["star"],
        run_id=d.get(RUN_ID),
    )
    beside = path.parent / "results.json"
    if against is not None:
        check_same_run(against, saved, "the results given", str(path))
    elif beside.is_file():
        check_same_run(load(beside), saved, str(beside), str(path))
    return saved


def check_same_run(res: dict, saved: SavedParams, res_path: str, params_path: str) -> None:
    """Refuse (ValueError) a results.json and a params.pt of two different runs: their run ids differ, or
    (files of a version before run ids) their seeds, states or methods do."""
    if res.get(RUN_ID) != saved.run_id:
        raise ValueError(_two_runs(params_path, saved.run_id, res_path, res.get(RUN_ID)))
    cfg = res["config"]
    seeds = [int(cfg.get("seed", 0)) + i for i in range(int(cfg.get("seeds", len(saved.seeds))))]
    S = len(res["map"]["pi_star"])  # pi* has one row a state: any MDP (desc is null off the lake)
    if saved.seeds != seeds or saved.n_states != S or not set(saved.methods) <= set(res["curves"]):
        raise ValueError(
            f"{params_path!r} (seeds {saved.seeds}, {saved.n_states} states, methods {sorted(saved.methods)}) does "
            f"not belong to {res_path!r} (seeds {seeds}, {S} states, methods {sorted(res['curves'])}); "
            "rerun `frozenlake-ift reproduce --out DIR`"
        )


def _as_path(value, name: str) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (a str or os.PathLike), got {type(value).__name__}")
    return Path(value)


def _two_runs(a: str, id_a, b: str, id_b) -> str:
    return (
        f"{a!r} (run {id_a or 'without an id'}) and {b!r} (run {id_b or 'without an id'}) come from two different "
        "runs (a write into the folder was interrupted, or a file was copied in); `frozenlake-ift plot DIR` "
        "finishes an interrupted commit, else rerun `frozenlake-ift reproduce --out DIR`"
    )


def load(path: str | os.PathLike) -> dict:
    """Read a results.json (or the folder holding one); a file that is not one (binary, not JSON,
    another layout, lists whose lengths disagree) raises ValueError naming the file and the problem."""
    from .layouts import check_results_layout, read_json_file

    path = _as_path(path, "path")
    if path.is_dir():
        path = path / "results.json"
    if not path.exists():
        raise FileNotFoundError(f"no results file at {str(path)!r}")
    res = read_json_file(path)
    check_results_layout(res, str(path))
    return res


def _pm(x, digits: int = 2) -> str:
    return "n/a (1 seed)" if x is None else f"{x:.{digits}g}"


def format_table(res: dict) -> str:
    """The summary table the CLI prints: final and best (mean ± 95% CI) per method and metric, and ranks."""
    lines = []
    methods = list(res["summary"])
    width = max([5] + [len(m) for m in methods])
    one_seed = any(s.get("final_ci95") is None for ms in res["summary"].values() for s in ms.values())
    if one_seed:
        lines.append("one seed: no confidence intervals, and the claims are not judged")
    for metric, spec in METRICS.items():
        if not all(metric in res["summary"][m] for m in methods):
            continue
        higher = spec.higher_is_better
        arrow = "" if higher is None else (" (higher is better)" if higher else " (lower is better)")
        lines.append(f"{metric}: {spec.label}{arrow}")
        for m in methods:
            s = res["summary"][m][metric]
            iqm = s.get("final_iqm")
            lines.append(
                f"  {m:<{width}} final {s['final_mean']:>10.4g} ± {_pm(s.get('final_ci95')):<9}"
                f" best {s['best_mean']:>10.4g} ± {_pm(s.get('best_ci95')):<9}"
                + (f" IQM {iqm:.4g}" if iqm is not None else "")
            )
        if metric in res.get("ranking", {}):
            lines.append("  ranking: " + ranking_text(res["summary"], res["ranking"][metric], metric))
    for c in res.get("claims", []):
        verdict = "not judged" if c["holds"] is None else "HOLDS" if c["holds"] else "does NOT hold"
        lines.append(f"claim [{c['metric']}] {c['claim']}: {verdict} ({c['detail']})")
    return "\n".join(lines)
