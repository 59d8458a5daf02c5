"""Many StudyConfigs in one batched run: hyper-parameters on the ensemble axis (the sweep's batched engine).

A study already trains its E seeds as one ensemble. Cells of a sweep that differ only in per-member
fields train as one bigger ensemble whose members carry their own hyper-parameters:

    GROUP fields    must agree within a group: map, slippery, gamma, hidden, steps, optimizer, methods,
                    prop_gamma, the pair and on-policy fields, dtype, device, ... (``GROUP_FIELDS``)
    START fields    theta_0 and theta* of a cell (``START_FIELDS``: base, seed, seeds, the fit): built
                    once per distinct start with the study's own ``base_params`` / ``fit_to``
    MEMBER fields   one value per member, a Tensor of Shape (E,) in the config view the methods read
                    (``MEMBER_FIELDS``: lr, lam, the betas, simpo_margin)

For each method, cells whose start and whose member fields *that the method reads* (``Method.fields``,
plus lr) agree give the same run, so it is trained once (SFT does not read lam: a grid over lam
trains SFT once per base and lr). The distinct runs' members are concatenated into one ensemble,
trained by the study's loop with one optimiser block per run (``optim.make_optimizer``: each run's
members are updated as a tensor of their own, shaped as the per-cell study's ensemble, so torch's
fused kernels round them as they do per cell; runs are ordered by lr, so that blocks of one lr can
share a kernel call where that keeps their bits), and the curves are split back per cell into the
same ``StudyResult`` that ``study.run_study`` returns.

Same numbers: members are independent (the loss is a sum over members), per-member factors are
formed in float64 and cast as a Python float is, so on CPU the offline methods' batched results
equal the per-cell ones (tested within 1e-9 relative in float64, 1e-5 in float32; in practice bit
for bit). Methods that draw samples (on-policy methods, ``chosen="sampled"``, ``negatives`` other
that sample: "policy", "base"; or a custom batch builder) draw from a generator over the whole ensemble, whose
draws would differ from the per-cell ones: the engine trains those per cell (still once per
distinct run), so their results equal the per-cell engine's exactly as well.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time

import numpy as np
import torch

from . import data_rules, metrics, policy
from .config import StudyConfig
from .methods import get_method
from .methods.registry import ROUTE_PAIR_BATCH
from .study import (
    Evaluation,
    Job,
    MethodRun,
    Reference,
    StudyResult,
    base_params,
    build_data,
    check_config,
    evaluate,
    fit_to,
    reference,
    train_methods,
)

MEMBER_FIELDS = ("lr", "lam", "dpo_beta", "orpo_beta", "ipo_beta", "simpo_beta", "simpo_margin")
START_FIELDS = ("base", "seed", "seeds", "fit_steps", "fit_lr", "fit_tol")
GROUP_FIELDS = tuple(f for f in StudyConfig.field_names() if f not in MEMBER_FIELDS + START_FIELDS)
CHOSEN_BATCH = "frozenlake_ift.methods.batches:chosen_batch"
TRULY = "truly"


def group_key(config: StudyConfig) -> str:
    """Cells with equal group keys train together (their GROUP_FIELDS agree)."""
    d = config.to_dict()
    return json.dumps({f: d[f] for f in GROUP_FIELDS}, sort_keys=True)


def group_configs(configs) -> list[list[int]]:
    """Indices of ``configs`` grouped by ``group_key``, groups in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(configs):
        groups.setdefault(group_key(c), []).append(i)
    return list(groups.values())


class MemberConfig:
    """A StudyConfig whose MEMBER_FIELDS read as float64 Tensors of Shape (E,), one value per member.

    Every other attribute is the shared config's. This is the ``ctx.config`` a batched method sees.
    """

    def __init__(self, config: StudyConfig, members: dict[str, torch.Tensor]) -> None:
        self._config, self._members = config, members

    def __getattr__(self, name: str):
        members = self.__dict__.get("_members", {})
        if name in members:
            return members[name]
        return getattr(self.__dict__["_config"], name)


def draws_samples(method: str, config: StudyConfig) -> bool:
    """Whether a method's batch draws from its generator under this config (then it trains per cell)."""
    rec = get_method(method)
    if rec.on_policy or config.chosen == "sampled":
        return True
    if rec.batch == CHOSEN_BATCH:
        return False
    return rec.batch != ROUTE_PAIR_BATCH or data_rules.sampled_from(config.negatives) != ""


@dataclasses.dataclass
class Start:
    """theta_0 and theta* of one distinct start, its Reference and fit statistics (per member: (E,))."""

    base: dict
    star: dict
    ref: Reference
    initial: Evaluation  # theta_0's metrics against this start's Reference: every run's step 0
    fit_kl: np.ndarray
    fit_steps: np.ndarray
    base_success: np.ndarray
    star_success: np.ndarray
    base_value_ratio: np.ndarray | None = None
    star_value_ratio: np.ndarray | None = None


def make_start(config: StudyConfig, data, device) -> Start:
    """What ``run_study`` builds before fine-tuning, with the study's own functions."""
    base = base_params(config, data, device)
    nonterminal = torch.as_tensor(np.flatnonzero(~data.mdp.terminal), device=device)
    pi_star = torch.as_tensor(data.pi_star, dtype=torch.float64, device=device)
    star, fit_kl, fit_used = fit_to(
        base, pi_star, nonterminal, config.activation, config.fit_steps, config.fit_lr, config.fit_tol
    )
    ref = reference(config, data, base, star)
    initial = evaluate(base, data, config, ref)
    (base_success, base_ratio), (star_success, star_ratio) = (
        initial.scores(),
        evaluate(star, data, config, ref).scores(),
    )
    return Start(base, star, ref, initial, fit_kl, fit_used, base_success, star_success, base_ratio, star_ratio)


def check_methods_part(methods: tuple[str, ...], part: tuple[str, ...] | None) -> tuple[str, ...]:
    """The methods to train: ``part`` (in the configs' order), checked to be a non-empty subset of
    ``methods`` that keeps "truly" where ``methods`` has it; None: all of ``methods``."""
    if part is None:
        return tuple(methods)
    unknown = [m for m in part if m not in methods]
    if not part or unknown:
        raise ValueError(f"methods {list(part)!r} must be a non-empty subset of the configs' {list(methods)!r}")
    if TRULY in methods and TRULY not in part:
        raise ValueError(f"methods {list(part)!r} must include {TRULY!r}: the other curves are measured against it")
    return tuple(m for m in methods if m in part)


def _slice_run(run: MethodRun, lo: int, hi: int) -> MethodRun:
    """Members lo:hi of an ensemble's run."""
    return MethodRun(
        run.steps,
        {k: v[:, lo:hi] for k, v in run.curves.items()},
        {k: v[:, lo:hi] for k, v in run.stats.items()},
        run.occupancy[lo:hi],
        run.explored[lo:hi],
        {k: v[lo:hi] for k, v in run.params.items()},
        None if run.policies is None else run.policies[:, lo:hi],
    )


def _cat(dicts: list[dict]) -> dict:
    return {k: torch.cat([d[k] for d in dicts]) for k in dicts[0]}


def start_key(config: StudyConfig) -> tuple:
    """Cells with equal start keys share theta_0 and theta* (their START_FIELDS agree)."""
    return tuple(getattr(config, f) for f in START_FIELDS)


def run_key(method: str, config: StudyConfig) -> tuple:
    """Cells with equal run keys train the same run of ``method``: the start and the fields it reads."""
    read = set(get_method(method).fields) | {"lr"}
    return start_key(config) + tuple((f, getattr(config, f)) for f in MEMBER_FIELDS if f in read)


def _member_job(method, cells, sts, firsts, cfg0, data, keep: bool) -> Job:
    """One job for the runs of ``cells`` (in that order) side by side: a per-member config view, the starts'
    theta_0 and Reference concatenated, one optimiser block per run, the starts' own step-0 metrics."""
    device = data.P.device
    members = {
        f: torch.tensor(
            [float(getattr(c, f)) for c in cells for _ in range(c.seeds)], dtype=torch.float64, device=device
        )
        for f in MEMBER_FIELDS
    }
    base, star = _cat([s.base for s in sts]), _cat([s.star for s in sts])
    ref = reference(cfg0, data, base, star)
    initial = None  # the starts' own step-0 metrics, unless they lack truly's (it trains first)
    if all(t is not None for t in firsts):
        ref.truly_pi = torch.cat([t for t in firsts if t is not None])
    else:
        initial = Evaluation(
            {k: torch.cat([s.initial.values[k] for s in sts]) for k in sts[0].initial.values},
            torch.cat([s.initial.pi for s in sts]),
        )
    bounds = np.cumsum([0] + [c.seeds for c in cells]).tolist()
    blocks = list(itertools.pairwise(bounds))  # one optimiser block per run
    view = MemberConfig(cfg0, members)
    return Job(method, base, view, ref, blocks, initial, keep)  # type: ignore[arg-type]


def run_group(configs: list[StudyConfig], methods: tuple[str, ...] | None = None) -> list[StudyResult]:
    """Run cells that share GROUP_FIELDS in one batched pass; one StudyResult per config, as ``run_study``'s.

    ``methods`` (a subset of the configs' methods, None: all) trains only those: each result then holds
    those methods alone (a part: a sweep trains the parts of a lone group in different workers and joins
    their records, ``sweep.join_parts``). Each method's numbers are those of the
    whole run: methods share no parameter, batch or generator. A subset must keep "truly" if the configs
    train it, since every other method's curves are measured against its policy."""
    t0 = time.perf_counter()
    configs = [check_config(c, "configs[i]") for c in configs]
    if not configs:
        return []
    keys = {group_key(c) for c in configs}
    if len(keys) != 1:
        raise ValueError(f"run_group needs configs that agree on {', '.join(GROUP_FIELDS)}; got {len(keys)} groups")
    cfg0 = configs[0]
    wanted = check_methods_part(cfg0.methods, methods)
    device = policy.resolve_device(cfg0.device)
    torch.manual_seed(cfg0.seed)
    data = build_data(cfg0, device)
    start_of = [start_key(c) for c in configs]
    starts: dict[tuple, Start] = {}
    for i, k in enumerate(start_of):
        if k not in starts:
            starts[k] = make_start(configs[i], data, device)
    n = len(configs)
    runs: dict[str, list[MethodRun]] = {}
    truly_pi: list[torch.Tensor | None] = [None] * n
    phases = [[m for m in wanted if m == TRULY], [m for m in wanted if m != TRULY]]  # truly first
    for phase in phases:
        jobs: list[Job] = []
        places: list[tuple[str, dict[int, tuple[int, int, int]]]] = []  # method -> {run's cell: (job, lo, hi)}
        for method in phase:
            keep = method == TRULY
            reps: dict[tuple, int] = {}
            for i, c in enumerate(configs):
                reps.setdefault(run_key(method, c), i)
            where: dict[int, tuple[int, int, int]] = {}
            if draws_samples(method, cfg0):  # its own job per run: the run's own generator, as per cell
                for r in reps.values():
                    st = starts[start_of[r]]
                    ref = dataclasses.replace(st.ref, truly_pi=truly_pi[r])  # the truly policy of that cell
                    where[r] = (len(jobs), 0, configs[r].seeds)
                    jobs.append(Job(method, st.base, configs[r], ref, keep_policies=keep))
            else:
                order = sorted(reps.values(), key=lambda r: configs[r].lr)  # equal lr side by side: fewer spans
                jobs.append(
                    _member_job(
                        method,
                        [configs[r] for r in order],
                        [starts[start_of[r]] for r in order],
                        [truly_pi[r] for r in order],
                        cfg0,
                        data,
                        keep,
                    )
                )
                bounds = np.cumsum([0] + [configs[r].seeds for r in order])
                where = {r: (len(jobs) - 1, int(bounds[j]), int(bounds[j + 1])) for j, r in enumerate(order)}
            places.append((method, {i: where[reps[run_key(method, c)]] for i, c in enumerate(configs)}))
        if not jobs:
            continue
        done = train_methods(jobs, data)
        for method, at in places:
            runs[method] = [_slice_run(done[j], lo, hi) for j, lo, hi in (at[i] for i in range(n))]
            if method == TRULY:
                truly_pi = [None if run.policies is None else run.policies[-1] for run in runs[method]]
    seconds = (time.perf_counter() - t0) / n
    out = []
    nt = torch.as_tensor(~data.mdp.terminal, device=device)
    for i, c in enumerate(configs):
        cell_runs = {m: dataclasses.replace(runs[m][i]) for m in wanted}
        if TRULY in cell_runs:  # its own curve against its final policy, as run_study measures it
            tr = cell_runs[TRULY]
            final = truly_pi[i]
            assert tr.policies is not None and final is not None, "truly keeps its policies"
            own = ((tr.policies - final) ** 2)[:, :, nt].mean((-1, -2))  # (n_evals, E)
            curves = {**tr.curves, metrics.TRULY_METRIC: own.cpu().numpy()}
            cell_runs[TRULY] = dataclasses.replace(
                tr, curves={k: curves[k] for k in metrics.METRICS if k in curves}, policies=None
            )
        st = starts[start_of[i]]
        out.append(
            StudyResult(
                config=c,
                steps=cell_runs[wanted[0]].steps,
                curves={m: r.curves for m, r in cell_runs.items()},
                final_occupancy={m: r.occupancy for m, r in cell_runs.items()},
                explored={m: r.explored for m, r in cell_runs.items()},
                fit_kl=st.fit_kl,
                fit_steps=st.fit_steps,
                base_success=st.base_success,
                star_success=st.star_success,
                base_value_ratio=st.base_value_ratio,
                star_value_ratio=st.star_value_ratio,
                data=data,
                stats={m: r.stats for m, r in cell_runs.items()},
                params={m: r.params for m, r in cell_runs.items()},
                base=policy.clone_params(st.base, requires_grad=False),
                star=policy.clone_params(st.star, requires_grad=False),
                seconds=seconds,
                device=str(device),
            )
        )
    return out
