"""The Frozen-Lake experiment of IFT (paper Sec. 5.3, App. B.2), straight through.

    map -> MDP -> value iteration -> pi* -> chosen / rejected trajectories
    theta_0 (base, "pre-trained") -> theta* (fitted to pi*)  -> fine-tune a copy of theta_0 with
    each method -> metrics every ``eval_every`` steps, for E seeds at once.

All loss math comes from ``losses.py``; this module only turns the policy network's output into
per-step log-probs and masks (``METHODS`` maps a method name to that small function).
``run_study(StudyConfig(...)) -> StudyResult``; no global state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from . import lakes, losses, metrics, policy, routes, solve
from .config import METHOD_NAMES, StudyConfig, coerce_field  # noqa: F401  (re-exported)

OPTIMIZERS = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop, "sgd": torch.optim.SGD}
DTYPES = {"float32": torch.float32, "float64": torch.float64}
METRIC_NAMES = ("param_mse", "policy_mse", "policy_mse_opt", "kl", "success", "value", "explored", "cosine", "loss")


@dataclass
class GridData:
    """Everything the methods train on, as tensors on the study's device."""

    mdp: object
    pi_star: np.ndarray  # (S, A)
    chosen: object  # routes.Trajectory
    rejected: object
    P: torch.Tensor  # (S, A, S) transition tensor, for IFT's predicted next state
    pair_states: torch.Tensor  # (2, T) int64: row 0 chosen, row 1 rejected, padded with s_0
    pair_actions: torch.Tensor  # (2, T) int64
    pair_mask: torch.Tensor  # (2, T) bool
    eye: torch.Tensor  # (S, S) one-hot state table


@dataclass
class StudyResult:
    """Per-step metrics of every method and seed, the theta* fit, and the data they came from."""

    config: StudyConfig
    steps: list[int]  # evaluation steps
    curves: dict[str, dict[str, np.ndarray]]  # method -> metric -> (n_evals, E)
    final_occupancy: dict[str, np.ndarray]  # method -> (E, S)
    explored: dict[str, np.ndarray]  # method -> (E, S) bool: first-layer rows that got gradient
    fit_kl: np.ndarray  # (E,) final mean KL(pi* || pi_theta*)
    fit_steps: np.ndarray  # (E,) Adam steps each member's theta* fit used
    base_success: np.ndarray  # (E,) success probability of theta_0
    star_success: np.ndarray  # (E,) success probability of theta*
    data: GridData = field(repr=False)
    seconds: float = 0.0
    device: str = "cpu"


# ------------------------------------------------------------------------------------- data
def _blocked_map(desc: tuple[str, ...], chosen, rejected) -> list[str]:
    """The map with the chosen route's own tiles (on the chosen route only, not S or G) turned into holes."""
    rows = [list(r) for r in desc]
    ncol = len(rows[0])
    for s in set(chosen.states[1:-1]) - set(rejected.states):
        rows[s // ncol][s % ncol] = "H"
    return ["".join(r) for r in rows]


def build_data(config: StudyConfig, device: torch.device | str = "cpu") -> GridData:
    """Solve the map, derive pi*, pick the chosen (optimal) and rejected (sub-optimal) trajectories."""
    mdp = lakes.make_lake(config.map if isinstance(config.map, str) else list(config.map), slippery=config.slippery)
    if config.route_pair == "two-route" and not routes.has_two_routes(mdp):
        raise ValueError(f"route_pair='two-route' needs a map whose frozen tiles form exactly two S->G routes of "
                         f"different lengths; map {config.map!r} does not (use route_pair='auto')")
    sol = solve.value_iteration(mdp, gamma=config.gamma)
    pi_star = solve.optimal_action_probs(sol.Q, temperature=config.temperature)  # (S, A)
    chosen, rejected = routes.chosen_and_rejected(mdp, gamma=config.gamma)
    T = max(len(chosen), len(rejected))
    states = torch.full((2, T), chosen.states[0], dtype=torch.long)
    actions = torch.zeros((2, T), dtype=torch.long)
    mask = torch.zeros((2, T), dtype=torch.bool)
    for row, traj in enumerate((chosen, rejected)):
        n = len(traj)
        states[row, :n] = torch.tensor(traj.states[:n])
        actions[row, :n] = torch.tensor(traj.actions)
        mask[row, :n] = True
    dtype = DTYPES[config.dtype]
    return GridData(mdp=mdp, pi_star=pi_star, chosen=chosen, rejected=rejected,
                    P=torch.as_tensor(mdp.dense_P(), dtype=dtype, device=device),
                    pair_states=states.to(device), pair_actions=actions.to(device), pair_mask=mask.to(device),
                    eye=torch.eye(mdp.n_states, dtype=dtype, device=device))


# ---------------------------------------------------------------------------------- methods
def pair_step_logps(params, data: GridData, activation: str, lam: float = 0.0) -> torch.Tensor:
    """log pi_theta(a*_i | x_i) along the chosen (row 0) and rejected (row 1) trajectories.

    With lam > 0 the input is IFT's temporal residual (Eq. 17), grid form:
        x_i = (1 - lam) onehot(s*_i) + lam P(. | s*_{i-1}, argmax_a pi_theta(a | s*_{i-1}))   (i >= 1)
    the argmax taken in a no-grad pass; x_0 = onehot(s*_0) (rho0).
    Shape: -> (E, 2, T).
    """
    E = params["W1"].shape[0]
    x = data.eye[data.pair_states].expand(E, -1, -1, -1)  # (E, 2, T, S)
    acts = data.pair_actions.expand(E, -1, -1)  # (E, 2, T)
    if lam > 0:
        with torch.no_grad():
            a_hat = policy.log_probs(params, x[:, :, :-1], activation).argmax(-1)  # (E, 2, T-1)
            predicted = data.P[data.pair_states[:, :-1], a_hat]  # (E, 2, T-1, S)
        x = torch.cat([x[:, :, :1], losses.mix_inputs(x[:, :, 1:], predicted, lam)], dim=2)  # (E, 2, T, S)
    return policy.step_logps(params, x, acts, activation)  # (E, 2, T)


def _sft(params, ref_logps, data, cfg):
    lp = pair_step_logps(params, data, cfg.activation)[:, 0]  # (E, T)
    return losses.sft_loss(lp, data.pair_mask[0].expand_as(lp), reduction="none")  # (E,)


def _ift(params, ref_logps, data, cfg):
    lp = pair_step_logps(params, data, cfg.activation, lam=cfg.lam)[:, 0]  # (E, T)
    return losses.ift_loss(lp, data.pair_mask[0].expand_as(lp), gamma=cfg.prop_gamma, reduction="none")  # (E,)


def _dpo(params, ref_logps, data, cfg):
    lp = pair_step_logps(params, data, cfg.activation)  # (E, 2, T)
    mask = data.pair_mask.expand_as(lp)
    seq = losses.sequence_logps(lp.flatten(0, 1), mask.flatten(0, 1)).view(-1, 2)  # (E, 2) summed
    ref = losses.sequence_logps(ref_logps.flatten(0, 1), mask.flatten(0, 1)).view(-1, 2)  # (E, 2)
    return losses.dpo_loss(seq[:, 0], seq[:, 1], ref[:, 0], ref[:, 1], beta=cfg.dpo_beta)[0]  # (E,)


def _orpo(params, ref_logps, data, cfg):
    lp = pair_step_logps(params, data, cfg.activation)  # (E, 2, T)
    mask = data.pair_mask.expand_as(lp)
    avg = losses.sequence_logps(lp.flatten(0, 1), mask.flatten(0, 1), average=True).view(-1, 2)  # (E, 2)
    return losses.orpo_loss(avg[:, 0], avg[:, 1], -avg[:, 0], beta=cfg.orpo_beta)[0]  # (E,)


# method name -> per-member loss (E,) from (params, reference log-probs (E, 2, T), data, config)
METHODS: dict[str, Callable] = {"sft": _sft, "ift": _ift, "dpo": _dpo, "orpo": _orpo}


# ------------------------------------------------------------------------------ fit and train
def policy_probs(params, data: GridData, activation: str) -> torch.Tensor:
    """pi_theta(a | s) on every one-hot state, in float64. Shape: (E, S, A)."""
    E, S = params["W1"].shape[0], data.eye.shape[0]
    lg = policy.logits(params, data.eye.expand(E, S, S), activation)  # (E, S, A)
    return torch.softmax(lg.double(), dim=-1)


def fit_to(params, target: torch.Tensor, states: torch.Tensor, activation: str, steps: int, lr: float,
           tol: float) -> tuple[dict, np.ndarray, np.ndarray]:
    """Fit a copy of params to target[s, a] on ``states`` by Adam on mean KL(target || pi_theta).

    Each member stops on its own once its KL <= tol (its parameters are then frozen), so a member's
    fit does not depend on the others. Shape: target (S, A), states (n,) int64.
    Returns (params, final KL per member (E,), steps used per member (E,)).
    """
    p = policy.clone_params(params)
    opt = torch.optim.Adam(p.values(), lr=lr)
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


def base_params(config: StudyConfig, data: GridData, device) -> dict:
    """theta_0, the "pre-trained" policy every method fine-tunes (see StudyConfig.base)."""
    S, A = data.mdp.n_states, data.mdp.n_actions
    seeds = [config.seed + i for i in range(config.seeds)]
    params = policy.init_params(S, A, config.hidden, seeds, device=device, dtype=DTYPES[config.dtype])
    if config.base == "uniform":
        with torch.no_grad():
            params["W2"].zero_()
            params["b2"].zero_()
    elif config.base == "suboptimal":
        desc = _blocked_map(data.mdp.desc, data.chosen, data.rejected)
        try:
            blocked = lakes.make_lake(desc, slippery=config.slippery)
        except ValueError as exc:
            raise ValueError(f"base='suboptimal' blocks the chosen route's own tiles, which leaves map "
                             f"{config.map!r} without a route to G ({exc}); use base='random' or 'uniform'") from None
        q = solve.value_iteration(blocked, gamma=config.gamma).Q
        target = torch.as_tensor(solve.optimal_action_probs(q, temperature=max(config.temperature, 0.05)))
        states = torch.as_tensor(np.flatnonzero(~blocked.terminal), device=device)
        params, _, _ = fit_to(params, target.to(device), states, config.activation, config.fit_steps,
                              config.fit_lr, tol=10 * config.fit_tol)
    return params


def evaluate(params, data: GridData, cfg: StudyConfig, ref: dict) -> dict[str, torch.Tensor]:
    """All per-member metrics of one ensemble. ``ref`` holds theta_0, theta* and their policies."""
    mdp = data.mdp
    nt = torch.as_tensor(~mdp.terminal, device=data.P.device)
    with torch.no_grad():
        pi = policy_probs(params, data, cfg.activation)  # (E, S, A)
        flat = policy.flatten_params(params).double()  # (E, D)
        value, success = metrics.value_and_success(ref["P64"], ref["R"], ref["terminal"], ref["goal"], ref["rho0"],
                                                   pi, cfg.gamma)
        return {
            "param_mse": ((flat - ref["star_flat"]) ** 2).mean(-1),
            "policy_mse": ((pi - ref["star_pi"]) ** 2)[:, nt].mean((-1, -2)),
            "policy_mse_opt": ((pi - ref["pi_star"]) ** 2)[:, nt].mean((-1, -2)),
            "kl": metrics.kl_rows(ref["pi_star"].expand_as(pi), pi)[:, nt].mean(-1),
            "success": success,
            "value": value,
            "cosine": metrics.cosine(flat - ref["base_flat"], ref["star_flat"] - ref["base_flat"]),
            "pi": pi,
        }


def train_method(method: str, base: dict, data: GridData, cfg: StudyConfig, ref: dict, progress=None):
    """Fine-tune a copy of theta_0 with one method; metrics at step 0 and every eval_every steps."""
    params = policy.clone_params(base)
    opt_cls = OPTIMIZERS[cfg.optimizer]
    opt = opt_cls(params.values(), lr=cfg.lr)
    loss_fn = METHODS[method]
    E, S = params["W1"].shape[:2]
    explored = torch.zeros(E, S, dtype=torch.bool, device=params["W1"].device)
    rows: dict[str, list] = {k: [] for k in METRIC_NAMES}
    steps = []

    def record(step, loss_value):
        m = evaluate(params, data, cfg, ref)
        for k in METRIC_NAMES:
            if k == "explored":
                rows[k].append(explored.sum(-1).double().cpu().numpy())
            elif k == "loss":
                rows[k].append(loss_value)
            else:
                rows[k].append(m[k].cpu().numpy())
        steps.append(step)
        return m

    for step in range(cfg.steps + 1):
        loss = loss_fn(params, ref["base_logps"], data, cfg)  # (E,)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            last = record(step, loss.detach().double().cpu().numpy())
        if step == cfg.steps:
            break
        opt.zero_grad()
        loss.sum().backward()  # members are independent: d(sum)/d(theta_e) = d(loss_e)/d(theta_e)
        explored |= params["W1"].grad.abs().sum(-1) > 0  # (E, S)
        opt.step()
        if progress is not None:
            progress.update(1)
    occupancy = metrics.discounted_occupancy(ref["P64"], ref["rho0"], last["pi"], min(cfg.gamma, 0.999))
    curves = {k: np.stack(v) for k, v in rows.items()}  # (n_evals, E)
    return steps, curves, occupancy.cpu().numpy(), explored.cpu().numpy(), params


def reference(config: StudyConfig, data: GridData, base: dict, star: dict) -> dict:
    """What every method is measured against: the MDP as float64 tensors, pi*, theta_0, theta*,
    and theta_0's log-probs along the route pair (DPO's frozen reference, Shape (E, 2, T))."""
    mdp, device = data.mdp, data.P.device
    with torch.no_grad():
        return {
            "P64": metrics.dense_transitions(mdp, device),
            "R": torch.as_tensor(mdp.R, device=device), "terminal": torch.as_tensor(mdp.terminal, device=device),
            "goal": torch.as_tensor(mdp.goal, device=device), "rho0": torch.as_tensor(mdp.rho0, device=device),
            "pi_star": torch.as_tensor(data.pi_star, dtype=torch.float64, device=device),
            "star_pi": policy_probs(star, data, config.activation),
            "star_flat": policy.flatten_params(star).double(), "base_flat": policy.flatten_params(base).double(),
            "base_logps": pair_step_logps(base, data, config.activation),
        }


def run_study(config: StudyConfig, progress: bool = False) -> StudyResult:
    """Run the whole experiment for one config: all methods, all seeds batched."""
    t0 = time.perf_counter()
    device = policy.resolve_device(config.device)
    torch.manual_seed(config.seed)
    data = build_data(config, device)
    mdp = data.mdp
    base = base_params(config, data, device)
    nonterminal = torch.as_tensor(np.flatnonzero(~mdp.terminal), device=device)
    pi_star_t = torch.as_tensor(data.pi_star, dtype=torch.float64, device=device)
    star, fit_kl, fit_used = fit_to(base, pi_star_t, nonterminal, config.activation, config.fit_steps,
                                    config.fit_lr, config.fit_tol)
    ref = reference(config, data, base, star)
    base_success = evaluate(base, data, config, ref)["success"].cpu().numpy()
    star_success = evaluate(star, data, config, ref)["success"].cpu().numpy()
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=config.steps * len(config.methods), desc="fine-tuning", unit="step")
    curves, occupancy, explored, steps = {}, {}, {}, []
    for method in config.methods:
        if bar is not None:
            bar.set_postfix_str(method)
        steps, curves[method], occupancy[method], explored[method], _ = train_method(method, base, data, config,
                                                                                    ref, bar)
    if bar is not None:
        bar.close()
    return StudyResult(config=config, steps=steps, curves=curves, final_occupancy=occupancy, explored=explored,
                       fit_kl=fit_kl, fit_steps=fit_used, base_success=base_success, star_success=star_success,
                       data=data, seconds=time.perf_counter() - t0, device=str(device))

