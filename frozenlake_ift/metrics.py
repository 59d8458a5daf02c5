"""Exact, batched metrics of policy networks on a small tabular MDP (torch, float64).

Every function takes an ensemble of policy tables pi[e, s, a] (Shape (E, S, A)) and evaluates all
E members at once with dense linear algebra, so it suits the study's small maps (S up to a few
hundred). ``solve.success_probability`` / ``solve.policy_evaluation`` are the reference
implementations on one policy; the tests check that both agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Metric:
    """One metric of the study: its name in files, a label for tables and figures, and how to read it.

    higher_is_better: True / False, or None for quantities that are not ranked (a method's own loss).
    log_scale: plot on a log axis when values span more than two decades. default_panel: drawn by
    ``plots.plot_curves`` unless asked otherwise.
    """

    name: str
    label: str
    higher_is_better: bool | None
    log_scale: bool = False
    default_panel: bool = False


# The one metric table: study (what it records), results (summary, ranking), plots and report read it.
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("param_mse", "parameter MSE to theta*", False, log_scale=True, default_panel=True),
        Metric("policy_mse", "MSE of pi(a|s) (Eq. 1) to pi_theta*", False, log_scale=True, default_panel=True),
        Metric("policy_mse_opt", "MSE of pi(a|s) (Eq. 1) to pi*", False, log_scale=True, default_panel=True),
        Metric(
            "tmatrix_mse",
            "MSE of T_pi(s'|s) (Eq. 2) to pi_theta*",
            False,
            log_scale=True,
            default_panel=True,
        ),
        Metric("tmatrix_mse_opt", "MSE of T_pi(s'|s) (Eq. 2) to pi*", False, log_scale=True),
        Metric(
            "policy_mse_truly",
            "MSE of pi(a|s) to the truly-trained policy",
            False,
            log_scale=True,
            default_panel=True,
        ),
        Metric("kl", "KL(pi* || pi_theta)", False, log_scale=True, default_panel=True),
        Metric("success", "success probability", True, default_panel=True),
        Metric("value", "value from rho0", True),
        Metric("explored", "explored states", True, default_panel=True),
        Metric("explored_alignment", "explored tiles vs pi*'s tiles (Jaccard)", True, default_panel=True),
        Metric("cosine", "cos(theta - theta_0, theta* - theta_0)", True),
        Metric("loss", "training loss (own objective)", None),
    )
}
TRULY_METRIC = "policy_mse_truly"  # recorded only when the ``truly`` method runs (against its final policy)


def dense_transitions(mdp, device="cpu") -> torch.Tensor:
    """P[s, a, s'] of a TabularMDP as a float64 tensor. Shape: (S, A, S)."""
    return torch.as_tensor(mdp.dense_P(), dtype=torch.float64, device=device)


def _state_matrix(P: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
    """T_pi[e, s, s'] = sum_a pi[e, s, a] P[s, a, s'] (paper Eq. 2). Shape: (E, S, S)."""
    return torch.einsum("esa,sat->est", pi, P)


def solve_absorbing(T_nn: torch.Tensor, b: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """x = (I - gamma T_NN)^-1 b on the non-terminal states, per member: values (b: rewards) or
    absorption probabilities (b: the probability of entering the goal, gamma 1).

    A policy that gives an action probability 0 (a softmax underflows after a diverged update) may loop
    forever inside N; then I - T_NN is singular at gamma = 1. Those members get the least solution, as
    the Markov chain defines it: x = 0 on the states that cannot reach a state with b != 0 under T_NN,
    the system solved on the others (a leaking block: invertible). A member whose inputs are not finite
    (a diverged network), or whose leak is below float64's resolution (still singular), gets NaN, which
    results record as null. Shapes: T_nn (E, N, N), b (E, N) -> (E, N).
    """
    eye = torch.eye(T_nn.shape[-1], dtype=T_nn.dtype, device=T_nn.device)
    x, info = torch.linalg.solve_ex(eye - gamma * T_nn, b.unsqueeze(-1))  # (E, N, 1), (E,); never raises
    x = x.squeeze(-1)
    bad = (info != 0) | ~torch.isfinite(x).all(-1)  # (E,): singular (a closed loop inside N) or not finite
    if not bool(bad.any()):
        return x
    finite = torch.isfinite(T_nn).all(-1).all(-1) & torch.isfinite(b).all(-1)  # (E,)
    redo = bad & finite
    if bool(redo.any()):
        T_r, b_r = T_nn[redo], b[redo]  # (B, N, N), (B, N)
        edges = (T_r > 0).to(T_nn.dtype)
        reach = b_r != 0  # (B, N): states that reach a state with b != 0 ...
        for _ in range(T_nn.shape[-1]):  # ... in at most N steps
            more = reach | ((edges @ reach.to(T_nn.dtype).unsqueeze(-1)).squeeze(-1) > 0)
            if bool((more == reach).all()):
                break
            reach = more
        M = torch.where(reach.unsqueeze(-1), eye - gamma * T_r, eye)  # unreachable rows: x = 0
        least, still = torch.linalg.solve_ex(M, torch.where(reach, b_r, 0.0).unsqueeze(-1))
        x[redo] = torch.where((still != 0)[:, None], torch.nan, least.squeeze(-1))  # a leak below float64: NaN
    return torch.where(finite[:, None], x, torch.nan)


def value_and_success(
    P: torch.Tensor,
    R: torch.Tensor,
    terminal: torch.Tensor,
    goal: torch.Tensor,
    rho0: torch.Tensor,
    pi: torch.Tensor,
    gamma: float,
    T: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Discounted value from rho0 and probability of ever reaching a goal state, per member.

    Solves the linear systems on the non-terminal states N (terminal states are absorbing):
        V_N = (I - gamma T_NN)^-1 r_N           success_N = (I - T_NN)^-1 T_N,goal 1
    Shapes: P (S, A, S), R (S, A), terminal/goal/rho0 (S,), pi (E, S, A) -> (E,), (E,). T: the
    policy's state matrix sum_a pi P (E, S, S) in P's dtype, if the caller has it (else computed).
    """
    pi = pi.to(P.dtype)
    T = _state_matrix(P, pi) if T is None else T  # (E, S, S)
    n = ~terminal  # (S,)
    T_n = T[:, n]  # (E, N, S): rows of the non-terminal states
    T_nn = T_n[:, :, n]  # (E, N, N)
    r = (pi * R).sum(-1)[:, n]  # (E, N)
    V = solve_absorbing(T_nn, r, gamma)  # (E, N)
    into_goal = T_n[:, :, goal].sum(-1)  # (E, N)
    # Softmax policies give every action positive probability, so absorption is certain and I - T_NN is
    # invertible; a policy that can loop forever inside N (probabilities underflowed to 0) gets the least solution.
    succ = solve_absorbing(T_nn, into_goal)  # (E, N)
    v_start = V @ rho0[n]  # (E,)
    s_start = succ @ rho0[n] + rho0[goal].sum()  # (E,)
    return v_start, s_start.clamp(0.0, 1.0)


def state_values(
    P: torch.Tensor, R: torch.Tensor, terminal: torch.Tensor, pi: torch.Tensor, gamma: float
) -> torch.Tensor:
    """Exact discounted value of every state under each member's policy, 0 on terminal states.

    Solves V_N = (I - gamma T_NN)^-1 r_N on the non-terminal states N, r = sum_a pi R.
    Shapes: P (S, A, S), R (S, A) or (E, S, A) (a per-member reward), terminal (S,), pi (E, S, A) -> (E, S).
    """
    pi = pi.to(P.dtype)
    T = _state_matrix(P, pi)  # (E, S, S)
    n = ~terminal  # (S,)
    T_nn = T[:, n][:, :, n]  # (E, N, N)
    r = (pi * R.to(P.dtype)).sum(-1)[:, n]  # (E, N)
    V = torch.zeros(pi.shape[:2], dtype=P.dtype, device=P.device)  # (E, S)
    V[:, n] = solve_absorbing(T_nn, r, gamma)
    return V


def discounted_occupancy(P: torch.Tensor, rho0: torch.Tensor, pi: torch.Tensor, gamma: float) -> torch.Tensor:
    """(1 - gamma) * sum_t gamma^t Pr(s_t = s) from rho0: where the agent spends its time.

    Shape: pi (E, S, A) -> (E, S); each row sums to 1.
    """
    T = _state_matrix(P, pi.to(P.dtype))  # (E, S, S)
    eye = torch.eye(T.shape[-1], dtype=P.dtype, device=P.device)
    # d^T (I - gamma T) = (1 - gamma) rho0^T  <=>  (I - gamma T)^T d = (1 - gamma) rho0
    rhs = ((1 - gamma) * rho0).expand(T.shape[0], -1).unsqueeze(-1)  # (E, S, 1)
    return torch.linalg.solve((eye - gamma * T).transpose(1, 2), rhs).squeeze(-1)  # (E, S)


def preferred_tiles(
    P: torch.Tensor, rho0: torch.Tensor, terminal: torch.Tensor, pi_star: torch.Tensor, gamma: float
) -> torch.Tensor:
    """The agent's preferred tiles: the non-terminal states pi* visits from rho0 (positive occupancy).

    Shapes: P (S, A, S), rho0 / terminal (S,), pi_star (S, A) -> (S,) bool.
    """
    occ = discounted_occupancy(P, rho0, pi_star.unsqueeze(0), min(gamma, 0.999))[0]  # (S,)
    return (occ > 1e-12) & ~terminal


def explored_alignment(explored: torch.Tensor, preferred: torch.Tensor) -> torch.Tensor:
    """How closely the explored grid matches the agent's preferred tiles: |X & P| / |X | P| (Jaccard).

    1 when a method trained on exactly the tiles pi* visits, lower when it also trained on tiles pi*
    never visits or missed some of pi*'s; 0 before any gradient. Shapes: explored (E, S) bool,
    preferred (S,) bool -> (E,) float64.
    """
    inter = (explored & preferred).sum(-1).double()
    union = (explored | preferred).sum(-1).double()
    return inter / union.clamp_min(1.0)


def kl_rows(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-300) -> torch.Tensor:
    """KL(p || q) over the last axis with 0 log 0 = 0. Shape: (..., A) -> (...)."""
    p, q = p.to(torch.float64), q.to(torch.float64)
    return torch.where(p > 0, p * (torch.log(p.clamp_min(eps)) - torch.log(q.clamp_min(eps))), 0.0).sum(-1)


def cosine(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity, 0 where a vector is zero. Shape: (E, D), (E, D) -> (E,)."""
    num = (u * v).sum(-1)
    den = u.norm(dim=-1) * v.norm(dim=-1)
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(num))


def mean_ci95(x: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and half-width of a 95% confidence interval (Student t) along ``axis``."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[axis]
    mean = x.mean(axis=axis)
    if n < 2:
        return mean, np.zeros_like(mean)
    sem = x.std(axis=axis, ddof=1) / math.sqrt(n)
    return mean, t_quantile_975(n - 1) * sem


def t_quantile_975(df: int) -> float:
    """0.975 quantile of Student's t with ``df`` degrees of freedom (table for small df, else normal)."""
    table = {
        1: 12.706,
        2: 4.303,
        3: 3.182,
        4: 2.776,
        5: 2.571,
        6: 2.447,
        7: 2.365,
        8: 2.306,
        9: 2.262,
        10: 2.228,
        12: 2.179,
        15: 2.131,
        20: 2.086,
        25: 2.060,
        30: 2.042,
        40: 2.021,
        60: 2.000,
        120: 1.980,
    }
    if df in table:
        return table[df]
    if df > 120:
        return 1.960
    lower = max(k for k in table if k < df)
    upper = min(k for k in table if k > df)
    w = (df - lower) / (upper - lower)  # linear interpolation between tabulated df
    return table[lower] * (1 - w) + table[upper] * w
