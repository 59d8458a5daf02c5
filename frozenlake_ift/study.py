"""The Frozen-Lake experiment of IFT (paper Sec. 5.3, App. B.2), straight through, on any finite MDP.

    env -> MDP -> value iteration -> pi* -> chosen / rejected trajectories      (data.build_data)
    theta_0 (base, "pre-trained") -> theta* (fitted to pi*)                    (base_params, fit_to)
    for each method (the registry, ``methods``): fine-tune a copy of theta_0   (train_method)
        each step: batch = method.batch(params, ctx, step); loss = method.loss(params, batch, ctx)
        metrics every ``eval_every`` steps, for E seeds at once                (evaluate)

All loss math comes from ``losses.py`` and each method's functions from its registry record; this
module only runs the loop. ``run_study(StudyConfig(...)) -> StudyResult``; no global state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import zlib
from dataclasses import dataclass, field

import numpy as np
import torch

from . import losses, metrics, policy, solve
from .config import StudyConfig, coerce_field  # noqa: F401  (re-exported: the stable API)
from .data import (  # noqa: F401  (Paths, GridData re-exported: the stable API)
    DTYPES,
    GridData,
    Paths,
    Reference,
    StudyData,
    blocked_mdp,
    build_data,
    make_reference,
    policy_probs,
)
from .mdp import TabularMDP
from .methods import LossOutput, StepContext, get_method
from .methods.batches import path_logps
from .optim import OPTIMIZERS, make_optimizer  # noqa: F401  (OPTIMIZERS re-exported: the stable API)

TRULY = "truly"


@dataclass
class MethodRun:
    """One method's fine-tuning: evaluation steps, metric curves {metric: (n_evals, E)}, the loss's own
    statistics {name: (n_evals, E)} (TRL's names where they exist), final occupancy (E, S), explored
    tiles (E, S) bool, and the final parameters (a policy-network dict, E members)."""

    steps: list[int]
    curves: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]
    occupancy: np.ndarray
    explored: np.ndarray
    params: dict[str, torch.Tensor]
    policies: torch.Tensor | None = None  # (n_evals, E, S, A) when asked for (keep_policies)


@dataclass
class StudyResult:
    """Per-step metrics of every method and seed, the trained parameters, the theta* fit, and the data."""

    config: StudyConfig
    steps: list[int]  # evaluation steps
    curves: dict[str, dict[str, np.ndarray]]  # method -> metric -> (n_evals, E)
    final_occupancy: dict[str, np.ndarray]  # method -> (E, S)
    explored: dict[str, np.ndarray]  # method -> (E, S) bool: first-layer rows that got gradient
    fit_kl: np.ndarray  # (E,) final mean KL(pi* || pi_theta*)
    fit_steps: np.ndarray  # (E,) Adam steps each member's theta* fit used
    base_success: np.ndarray  # (E,) success probability of theta_0 (NaN on an MDP without goal states)
    star_success: np.ndarray  # (E,) success probability of theta* (NaN on an MDP without goal states)
    data: GridData = field(repr=False)
    stats: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # method -> statistic -> (n_evals, E)
    params: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)  # method -> final params
    base: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)  # theta_0
    star: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)  # theta*
    seconds: float = 0.0
    device: str = "cpu"
    base_value_ratio: np.ndarray | None = None  # (E,) theta_0's normalised return, on an MDP without goals
    star_value_ratio: np.ndarray | None = None  # (E,) theta*'s

    def final_policy(self, method: str) -> torch.Tensor:
        """pi_theta(a | s) of a method's final parameters, every member and state, float64. Shape: (E, S, A).

        ``method`` may also be "base" (theta_0) or "star" (theta*).
        """
        params = {"base": self.base, "star": self.star}.get(method) or self.params.get(method)
        if params is None:
            raise ValueError(f"no final parameters for {method!r}; known: {', '.join([*self.params, 'base', 'star'])}")
        with torch.no_grad():
            return policy_probs(params, self.data, self.config.activation)


def pair_step_logps(params, data: StudyData, activation: str, lam: float = 0.0) -> torch.Tensor:
    """log pi_theta(a*_i | x_i) along the chosen (first rows) and rejected (last rows) trajectories.
    Shape: -> (E, Nc + Nr, T).

    ``methods.batches.path_logps`` on the route pair; lam > 0 gives IFT's temporal residual input (Eq. 17).
    """
    return path_logps(params, data.route_pair, data, activation, lam)


# ------------------------------------------------------------------------------ fit and train
def fit_to(
    params, target: torch.Tensor, states: torch.Tensor, activation: str, steps: int, lr: float, tol: float
) -> tuple[dict, np.ndarray, np.ndarray]:
    """Fit a copy of params to target[s, a] on ``states`` by Adam on mean KL(target || pi_theta).

    Each member stops on its own once its KL <= tol (its parameters are then frozen), so a member's
    fit does not depend on the others. Shape: target (S, A), states (n,) int64.
    Returns (params, final KL per member (E,), steps used per member (E,)).
    """
    p = policy.clone_params(params)
    opt = make_optimizer("adam", p, lr)
    E = p["W1"].shape[0]
    x = torch.eye(target.shape[0], dtype=p["W1"].dtype, device=p["W1"].device)[states].expand(E, -1, -1)  # (E, n, S)
    tgt = target[states].to(p["W1"])  # (n, A)

    def kl():
        lp = policy.log_probs(p, x, activation)  # (E, n, A)
        return torch.where(tgt > 0, tgt * (torch.log(tgt.clamp_min(1e-30)) - lp), 0.0).sum(-1).mean(-1)  # (E,)

    done = torch.zeros(E, dtype=torch.bool, device=x.device)
    used = torch.zeros(E, dtype=torch.long)
    for _ in range(steps):
        value = kl()
        done |= value.detach() <= tol
        if bool(done.all()):
            break
        opt.zero_grad()
        value.sum().backward()
        before = {k: v.detach().clone() for k, v in p.items()}
        opt.step()
        with torch.no_grad():
            for k, v in p.items():
                v[done] = before[k][done]  # converged members stay where they are
        used += (~done).long().cpu()
    with torch.no_grad():
        final = kl().double().cpu().numpy()
    return policy.clone_params(p), final, used.numpy()


def base_params(config: StudyConfig, data: StudyData, device) -> dict:
    """theta_0, the "pre-trained" policy every method fine-tunes (see StudyConfig.base)."""
    S, A = data.mdp.n_states, data.mdp.n_actions
    seeds = [config.seed + i for i in range(config.seeds)]
    params = policy.init_params(S, A, config.hidden, seeds, device=device, dtype=DTYPES[config.dtype])
    if config.base == "uniform":
        with torch.no_grad():
            params["W2"].zero_()
            params["b2"].zero_()
    elif config.base == "suboptimal":
        blocked = blocked_mdp(data)  # on a lake: the chosen route's own tiles made holes
        q = solve.value_iteration(blocked, gamma=config.gamma).Q
        target = torch.as_tensor(solve.optimal_action_probs(q, temperature=max(config.temperature, 0.05)))
        states = torch.as_tensor(np.flatnonzero(~blocked.terminal), device=device)
        params, _, _ = fit_to(
            params,
            target.to(device),
            states,
            config.activation,
            config.fit_steps,
            config.fit_lr,
            tol=10 * config.fit_tol,
        )
    return params


@dataclass
class Evaluation:
    """Every metric of one ensemble {name: Tensor (E,)} (the names of ``metrics.METRICS``) and its policy (E, S, A)."""

    values: dict[str, torch.Tensor]
    pi: torch.Tensor

    def scores(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(success (E,), value_ratio (E,) or None): success is NaN where the MDP has no goal (value_ratio then)."""
        ratio = self.values.get("value_ratio")
        success = self.values.get("success")
        E = self.pi.shape[0]
        return (
            np.full(E, np.nan) if success is None else success.cpu().numpy(),
            None if ratio is None else ratio.cpu().numpy(),
        )


def evaluate(params, data: StudyData, cfg: StudyConfig, ref: Reference) -> Evaluation:
    """All per-member metrics of one ensemble against the Reference (theta_0, theta*, pi*, truly).

    ``success`` where the MDP has goal states; elsewhere ``value_ratio``, the normalised return at the start.
    """
    mdp = data.mdp
    nt = torch.as_tensor(~mdp.terminal, device=data.P.device)
    with torch.no_grad():
        pi = policy_probs(params, data, cfg.activation)  # (E, S, A)
        flat = policy.flatten_params(params).double()  # (E, D)
        if ref.gram is None or ref.solve_model is None:  # the paper's maps: dense (E, S, S) state matrices
            T = metrics.state_matrix(ref.P, pi.to(ref.P.dtype))  # (E, S, S): T_pi(s'|s), Eq. 2
            value, success = metrics.value_and_success(
                ref.P, ref.R, ref.terminal, ref.goal, ref.rho0, pi, cfg.gamma, T=T, states=ref.solve_states
            )
            T_n = T[:, nt]  # (E, N, S): the non-terminal rows the T-matrix metrics average over
            t_mse, t_mse_opt = ((T_n - ref.star_T) ** 2).mean((-1, -2)), ((T_n - ref.opt_T) ** 2).mean((-1, -2))
        else:  # large MDPs (policy.SPARSE_STATES): the same values from the cut model and Gram matrices
            value, success = metrics.model_value_and_success(ref.solve_model, pi, cfg.gamma)
            S = mdp.n_states
            t_mse = metrics.tmatrix_mse(pi[:, nt], ref.star_pi[:, nt], ref.gram, S)
            t_mse_opt = metrics.tmatrix_mse(pi[:, nt], ref.pi_star[nt], ref.gram, S)
        values = {
            "param_mse": ((flat - ref.star_flat) ** 2).mean(-1),
            "policy_mse": ((pi - ref.star_pi) ** 2)[:, nt].mean((-1, -2)),
            "policy_mse_opt": ((pi - ref.pi_star) ** 2)[:, nt].mean((-1, -2)),
            "tmatrix_mse": t_mse,
            "tmatrix_mse_opt": t_mse_opt,
            "kl": metrics.kl_rows(ref.pi_star.expand_as(pi), pi)[:, nt].mean(-1),
            "success": success,
            "value": value,
            "cosine": metrics.cosine(flat - ref.base_flat, ref.star_flat - ref.base_flat),
        }
        if not bool(ref.goal.any()):  # no success to measure: the return, normalised by the optimum's
            del values["success"]
            values["value_ratio"] = metrics.value_ratio(value, ref.v_star)
        if ref.truly_pi is not None:
            values[metrics.TRULY_METRIC] = ((pi - ref.truly_pi) ** 2)[:, nt].mean((-1, -2))
    return Evaluation(values, pi)


def lr_factor(step: int, steps: int, scheduler: str = "constant", warmup_ratio: float = 0.0) -> float:
    """The learning-rate multiplier at optimiser step ``step`` of ``steps`` (Hugging Face's schedules).

    Linear warmup over ceil(warmup_ratio * steps) steps from 0, then 1 (constant) or a half cosine to 0
    (cosine), as transformers' get_constant_schedule_with_warmup / get_cosine_schedule_with_warmup.
    """
    warmup = math.ceil(warmup_ratio * steps)
    if step < warmup:
        return step / max(1, warmup)
    if scheduler == "constant":
        return 1.0
    progress = (step - warmup) / max(1, steps - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def method_generator(config: StudyConfig, method: str, device) -> torch.Generator:
    """The method's own seeded generator: every sample a method draws comes from it (bit-reproducible on CPU)."""
    seed = (config.seed * 1_000_003 + zlib.crc32(method.encode())) % (2**63)
    return torch.Generator(device=device).manual_seed(seed)


@dataclass
class Job:
    """One method's run in a training loop (``train_methods``): the method, theta_0 (E members), the config
    it reads (a StudyConfig, or a batched sweep's per-member view), its Reference, its optimiser blocks
    (None: one block) and step-0 metrics (``evaluate(base, ...)`` when the caller has them)."""

    method: str
    base: dict
    cfg: StudyConfig
    ref: Reference
    blocks: list | None = None
    initial: Evaluation | None = None
    keep_policies: bool = False


def train_method(
    method: str,
    base: dict,
    data: StudyData,
    cfg: StudyConfig,
    ref: Reference,
    progress=None,
    keep_policies: bool = False,
    blocks=None,
    initial: Evaluation | None = None,
) -> MethodRun:
    """Fine-tune a copy of theta_0 with one registered method; metrics at step 0 and every eval_every steps.

    keep_policies: also return the policy table at every evaluation step (``MethodRun.policies``).
    blocks: member ranges [(lo, hi), ...] the optimiser updates as separate tensors (``optim``): the
    batched sweep's runs, each shaped as a per-cell ensemble; None: the whole ensemble as one.
    initial: ``evaluate(base, data, cfg, ref)`` when the caller has it (the step-0 metrics; not recomputed).
    """
    return train_methods([Job(method, base, cfg, ref, blocks, initial, keep_policies)], data, progress)[0]


def _joint(refs: list[Reference]) -> Reference:
    """The Reference of several runs' members side by side (their per-member fields concatenated)."""
    if len(refs) == 1:
        return refs[0]
    cat = torch.cat
    truly = [r.truly_pi for r in refs]
    return dataclasses.replace(
        refs[0],
        base={k: cat([r.base[k] for r in refs]) for k in refs[0].base},
        star={k: cat([r.star[k] for r in refs]) for k in refs[0].star},
        star_pi=cat([r.star_pi for r in refs]),
        star_flat=cat([r.star_flat for r in refs]),
        base_flat=cat([r.base_flat for r in refs]),
        star_T=cat([r.star_T for r in refs]),
        truly_pi=None if any(t is None for t in truly) else cat(truly),  # type: ignore[arg-type]
    )


def train_methods(jobs: list[Job], data: StudyData, progress=None) -> list[MethodRun]:
    """Train several runs side by side, one step of each per loop step, each exactly as ``train_method``
    trains it alone: the same batches (each run has its own context and generator), its own loss, one
    backward pass over the summed losses (runs share no parameter), one optimiser whose blocks keep each
    run's tensors apart (``optim``), and the metrics of every run's members from one ``evaluate`` call.

    The jobs must agree on the loop's fields (steps, eval_every, the optimiser and its schedule) and the
    metrics' (gamma, activation). Returns one MethodRun per job, in order.
    """
    cfg = jobs[0].cfg
    loop = ("steps", "eval_every", "optimizer", "scheduler", "warmup_ratio", "gamma", "activation")
    for job in jobs[1:]:
        differ = [f for f in loop if getattr(job.cfg, f) != getattr(cfg, f)]
        if differ:
            raise ValueError(f"train_methods: the jobs must agree on {', '.join(differ)}")
    records = [get_method(job.method) for job in jobs]
    params = [policy.clone_params(job.base) for job in jobs]
    opt = make_optimizer(cfg.optimizer, params[0], jobs[0].cfg.lr, jobs[0].blocks)  # lr: a float, or (E,) per member
    for job, p in zip(jobs[1:], params[1:], strict=True):
        opt.add(p, job.cfg.lr, job.blocks)
    scheduled = cfg.scheduler != "constant" or cfg.warmup_ratio > 0
    device = params[0]["W1"].device
    sizes = [p["W1"].shape[0] for p in params]
    bounds = np.cumsum([0] + sizes).tolist()
    S = params[0]["W1"].shape[1]
    ctxs = [
        StepContext(job.cfg, data, job.ref, method_generator(job.cfg, job.method, device), rec)
        for job, rec in zip(jobs, records, strict=True)
    ]
    ref = _joint([job.ref for job in jobs])
    initial = None
    if all(job.initial is not None for job in jobs):
        firsts = [job.initial for job in jobs]
        initial = Evaluation(
            {k: torch.cat([f.values[k] for f in firsts]) for k in firsts[0].values},  # type: ignore[union-attr]
            torch.cat([f.pi for f in firsts]),  # type: ignore[union-attr]
        )
    explored = [torch.zeros(E, S, dtype=torch.bool, device=device) for E in sizes]
    curves: list[dict[str, list]] = [{} for _ in jobs]
    stats: list[dict[str, list]] = [{} for _ in jobs]
    steps: list[int] = []
    policies: list[list[torch.Tensor]] = [[] for _ in jobs]
    last = None
    with contextlib.ExitStack() as trust:
        for step in range(cfg.steps + 1):
            if step == 1:  # step 0 ran every value check of the losses; later steps feed them the same kind of inputs
                trust.enter_context(losses.trusted_values())
            logging = step % cfg.eval_every == 0 or step == cfg.steps
            outs = []
            for job, rec, ctx, p in zip(jobs, records, ctxs, params, strict=True):
                ctx.logging = logging
                with torch.no_grad():
                    batch = rec.batch_fn(p, ctx, step)
                out = rec.loss_fn(p, batch, ctx)
                out = out if isinstance(out, LossOutput) else LossOutput(out)
                E = p["W1"].shape[0]
                if not isinstance(out.loss, torch.Tensor) or tuple(out.loss.shape) != (E,):
                    raise ValueError(
                        f"method {job.method!r}: loss must return a Tensor of Shape (E,) = ({E},), one loss per "
                        f"member, got {getattr(out.loss, 'shape', type(out.loss).__name__)}"
                    )
                if logging:
                    clash = sorted(set(out.stats) & set(metrics.METRICS))
                    if clash:
                        raise ValueError(
                            f"method {job.method!r} logs statistics named {clash}, which are metric names: its values "
                            f"would overwrite the metrics; rename them"
                        )
                outs.append(out)
            if logging:
                whole = {k: torch.cat([p[k] for p in params]) for k in params[0]} if len(params) > 1 else params[0]
                last = initial if step == 0 and initial is not None else evaluate(whole, data, cfg, ref)
                steps.append(step)
                for j, (job, out) in enumerate(zip(jobs, outs, strict=True)):
                    lo, hi = bounds[j], bounds[j + 1]
                    values = {
                        **{k: v[lo:hi] for k, v in last.values.items()},
                        "explored": explored[j].sum(-1).double(),
                        "loss": out.loss.detach().double(),
                        "explored_alignment": metrics.explored_alignment(explored[j], ref.preferred),
                    }
                    for name in metrics.METRICS:
                        if name in values:
                            curves[j].setdefault(name, []).append(values[name].cpu().numpy())
                    for name, v in out.stats.items():
                        stats[j].setdefault(name, []).append(torch.as_tensor(v).detach().double().cpu().numpy())
                    if job.keep_policies:
                        policies[j].append(last.pi[lo:hi])
            if step == cfg.steps:
                break
            opt.zero_grad()
            torch.autograd.backward([out.loss.sum() for out in outs])  # d(sum)/d(theta_e) = d(loss_e)/d(theta_e)
            for j, p in enumerate(params):
                grad = p["W1"].grad
                assert grad is not None, "loss.backward() fills the gradient of W1"
                explored[j] |= grad.abs().sum(-1) > 0  # (E, S)
            opt.step(lr_factor(step, cfg.steps, cfg.scheduler, cfg.warmup_ratio) if scheduled else 1.0)
            if progress is not None:
                progress.update(len(jobs))
    assert last is not None, "step 0 always evaluates"
    occupancy = metrics.discounted_occupancy(ref.P, ref.rho0, last.pi, min(cfg.gamma, 0.999)).cpu().numpy()
    return [
        MethodRun(
            steps,
            {k: np.stack(v) for k, v in curves[j].items()},
            {k: np.stack(v) for k, v in stats[j].items()},
            occupancy[bounds[j] : bounds[j + 1]],
            explored[j].cpu().numpy(),
            policy.clone_params(params[j], requires_grad=False),
            torch.stack(policies[j]) if job.keep_policies else None,
        )
        for j, job in enumerate(jobs)
    ]


def method_loss(method: str, params: dict, data: StudyData, cfg: StudyConfig, base: dict, step: int = 0) -> LossOutput:
    """One method's loss at one step, with ``base`` as theta_0 (and theta*): the loss ``train_method`` minimises.

    Shape: -> LossOutput with loss (E,). For checks from outside the loop (e.g. the LLM path's equivalence test).
    """
    rec = get_method(method)
    ctx = StepContext(
        config=cfg,
        data=data,
        reference=reference(cfg, data, base, base),
        method=rec,
        generator=method_generator(cfg, method, data.P.device),
    )
    with torch.no_grad():
        batch = rec.batch_fn(params, ctx, step)
    out = rec.loss_fn(params, batch, ctx)
    return out if isinstance(out, LossOutput) else LossOutput(out)


def reference(config: StudyConfig, data: StudyData, base: dict, star: dict) -> Reference:
    """What every method is measured against (``data.make_reference``)."""
    return make_reference(config, data, base, star)


def check_config(config, name: str = "config") -> StudyConfig:
    """``config`` if it is a StudyConfig, else TypeError naming ``name`` (a dict is not one: StudyConfig(**d))."""
    if not isinstance(config, StudyConfig):
        raise TypeError(
            f"{name} must be a StudyConfig, e.g. StudyConfig(seeds=4) (for a dict d: StudyConfig(**d)), "
            f"got {type(config).__name__}"
        )
    return config


def run_study(config: StudyConfig, progress: bool = False, mdp: TabularMDP | None = None) -> StudyResult:
    """Run the whole experiment for one config: all methods, all seeds batched.

    ``truly`` (when asked for) trains first, so that every method is also measured against its
    final policy (metric ``policy_mse_truly``); results keep the config's method order.
    ``mdp``: a TabularMDP of your own instead of the config's ``env`` (``data.build_data``).
    """
    t0 = time.perf_counter()
    check_config(config)
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be True or False, got {type(progress).__name__}")
    device = policy.resolve_device(config.device)
    torch.manual_seed(config.seed)
    data = build_data(config, device, mdp=mdp)
    mdp = data.mdp
    base = base_params(config, data, device)
    nonterminal = torch.as_tensor(np.flatnonzero(~mdp.terminal), device=device)
    pi_star_t = torch.as_tensor(data.pi_star, dtype=torch.float64, device=device)
    star, fit_kl, fit_used = fit_to(
        base, pi_star_t, nonterminal, config.activation, config.fit_steps, config.fit_lr, config.fit_tol
    )
    ref = reference(config, data, base, star)
    first = evaluate(base, data, config, ref)  # theta_0's metrics: every method's step 0 (unless truly runs)
    base_success, base_ratio = first.scores()
    star_success, star_ratio = evaluate(star, data, config, ref).scores()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps * len(config.methods), desc="fine-tuning", unit="step")
    runs: dict[str, MethodRun] = {}
    if TRULY in config.methods:  # truly first: every other method is measured against its final policy
        if bar is not None:
            bar.set_postfix_str(TRULY)
        runs[TRULY] = train_method(TRULY, base, data, config, ref, bar, keep_policies=True)
        truly_policies = runs[TRULY].policies
        assert truly_policies is not None, "keep_policies=True"
        ref.truly_pi = truly_policies[-1]  # (E, S, A): its final policy
    others = [m for m in config.methods if m != TRULY]
    if others:  # the other methods side by side, each as it trains alone (train_methods)
        if bar is not None:
            bar.set_postfix_str(",".join(others))
        jobs = [Job(m, base, config, ref, initial=None if TRULY in runs else first) for m in others]
        runs.update(zip(others, train_methods(jobs, data, bar), strict=True))
    if bar is not None:
        bar.close()
    if TRULY in runs:  # truly trained before its final policy existed: measure its own curve now
        nt = torch.as_tensor(~mdp.terminal, device=device)
        truly_policies, truly_pi = runs[TRULY].policies, ref.truly_pi
        assert truly_policies is not None and truly_pi is not None, "set when truly trained"
        own = ((truly_policies - truly_pi) ** 2)[:, :, nt].mean((-1, -2))  # (n_evals, E)
        curves = {**runs[TRULY].curves, metrics.TRULY_METRIC: own.cpu().numpy()}
        runs[TRULY].curves = {k: curves[k] for k in metrics.METRICS if k in curves}
        runs[TRULY].policies = None
    runs = {m: runs[m] for m in config.methods}
    return StudyResult(
        config=config,
        steps=runs[config.methods[0]].steps,
        curves={m: r.curves for m, r in runs.items()},
        final_occupancy={m: r.occupancy for m, r in runs.items()},
        explored={m: r.explored for m, r in runs.items()},
        fit_kl=fit_kl,
        fit_steps=fit_used,
        base_success=base_success,
        star_success=star_success,
        base_value_ratio=base_ratio,
        star_value_ratio=star_ratio,
        data=data,
        stats={m: r.stats for m, r in runs.items()},
        params={m: r.params for m, r in runs.items()},
        base=policy.clone_params(base, requires_grad=False),
        star=policy.clone_params(star, requires_grad=False),
        seconds=time.perf_counter() - t0,
        device=str(device),
    )
