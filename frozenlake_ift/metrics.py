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

from . import policy
from .metric_table import METRICS, TRULY_METRIC, Metric  # noqa: F401  (re-exported: metrics.METRICS is the stable name)


def dense_transitions(mdp, device="cpu") -> torch.Tensor:
    """P[s, a, s'] of a TabularMDP as a float64 tensor. Shape: (S, A, S)."""
    return torch.as_tensor(mdp.dense_P(), dtype=torch.float64, device=device)


def state_matrix(P: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
    """T_pi[e, s, s'] = sum_a pi[e, s, a] P[s, a, s'] (paper Eq. 2).

    Shape: P (S, A, S'), pi (..., S, A) -> (..., S, S').

    Summed action by action, elementwise: each member's T is the same, bit for bit, however many members
    are evaluated with it (a batched matmul's rounding depends on the batch's size), so a study's metrics
    do not depend on what else is evaluated beside it (its methods side by side, a batched sweep's cells).
    """
    T = pi[..., 0, None] * P[:, 0]  # (..., S, S')
    for a in range(1, P.shape[1]):
        T = T + pi[..., a, None] * P[:, a]
    return T


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
    states: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Discounted value from rho0 and probability of ever reaching a goal state, per member.

    Solves the linear systems on the non-terminal states N (terminal states are absorbing):
        V_N = (I - gamma T_NN)^-1 r_N           success_N = (I - T_NN)^-1 T_N,goal 1
    Shapes: P (S, A, S), R (S, A), terminal/goal/rho0 (S,), pi (E, S, A) -> (E,), (E,). T: the
    policy's state matrix sum_a pi P (E, S, S) in P's dtype, if the caller has it (else computed).
    states: (S,) bool, the non-terminal states to solve on (default all): those reachable from rho0
    (``data.reachable``) give the same values, since no other state enters the start's equations.
    """
    pi = pi.to(P.dtype)
    T = state_matrix(P, pi) if T is None else T  # (E, S, S)
    n = ~terminal if states is None else states  # (S,)
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


@dataclass(frozen=True)
class SolveModel:
    """The MDP cut to the states its values are solved on (``value_and_success``'s systems, formed once).

    states (S,) bool, or the (N,) indices of the solve states; P_nn (N, A, N): P among them; P_goal (N, A):
    the probability of entering a goal; R_n (N, A); rho0_n (N,); rho0_goal: rho0's mass on goal states; P_nz:
    P_nn's nonzero entries, per action a (flat indices s * N + s', rows s, probabilities), for
    ``sparse_state_matrix``; parts: where the solve states fall into several closed blocks (no transition
    between two: ``closed_blocks``), one model per block (rho0_goal 0 in each), whose systems are solved
    apart: k blocks of N / k states cost about 1 / k^2 of the whole LU (Taxi: 4 destinations, 16x less).
    Built by ``solve_model``.
    """

    states: torch.Tensor
    P_nn: torch.Tensor
    P_goal: torch.Tensor
    R_n: torch.Tensor
    rho0_n: torch.Tensor
    rho0_goal: float
    P_nz: tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], ...]
    parts: tuple[SolveModel, ...] = ()


def closed_blocks(P_nn: torch.Tensor) -> list[np.ndarray]:
    """The weakly connected components of P_nn's support: sets of states with no transition between two sets,
    each as its sorted indices, in order of their first state. Shape: P_nn (N, A, N) -> arrays of (n_k,)."""
    rows, _, cols = np.nonzero(P_nn.detach().cpu().numpy())
    label = np.arange(P_nn.shape[0])
    while True:  # each state takes the least label among its neighbours', then jumps to its label's label
        new = label.copy()
        np.minimum.at(new, rows, label[cols])
        np.minimum.at(new, cols, label[rows])
        new = new[new]
        if np.array_equal(new, label):
            break
        label = new
    return [np.flatnonzero(label == k) for k in np.unique(label)]


def nonzero_by_action(P: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], ...]:
    """P's nonzero entries action by action: for each a, (flat indices s * S' + s', rows s, P[s, a, s']).

    Shape: P (S, A, S') -> A triples of (nnz_a,) tensors."""
    out = []
    for a in range(P.shape[1]):
        rows, cols = torch.nonzero(P[:, a], as_tuple=True)  # (nnz_a,), (nnz_a,)
        out.append((rows * P.shape[2] + cols, rows, P[rows, a, cols]))
    return tuple(out)


def sparse_state_matrix(P_nz, pi: torch.Tensor, n_next: int) -> torch.Tensor:
    """``state_matrix`` from P's nonzero entries (``nonzero_by_action``): T[e, s, s'] = sum_a pi[e, s, a] P[s, a, s'].

    Adds the same products in the same order (action by action), so T is the same, bit for bit, wherever
    pi is finite, without forming A dense (E, S, S') products. Shape: pi (E, S, A) -> (E, S, S')."""
    E, S = pi.shape[0], pi.shape[1]
    T = pi.new_zeros(E, S * n_next)  # (E, S * S')
    for a, (flat, rows, probs) in enumerate(P_nz):
        T.index_add_(1, flat, pi[:, rows, a] * probs)  # each (s, s') once per action
    return T.view(E, S, n_next)


def solve_model(
    P: torch.Tensor, R: torch.Tensor, goal: torch.Tensor, rho0: torch.Tensor, states: torch.Tensor
) -> SolveModel:
    """``SolveModel`` of P (S, A, S), R (S, A), goal / rho0 (S,) on the non-terminal ``states`` (S,) bool."""
    P_n = P[states]  # (N, A, S)
    P_nn = P_n[:, :, states]  # (N, A, N)
    P_goal, R_n, rho0_n = P_n[:, :, goal].sum(-1), R[states], rho0[states]  # (N, A), (N, A), (N,)
    blocks = closed_blocks(P_nn)
    parts: tuple[SolveModel, ...] = ()
    if len(blocks) > 1:
        where = torch.nonzero(states).flatten()  # (N,) the solve states' indices in S
        cut = [torch.as_tensor(b, device=P.device) for b in blocks]
        parts = tuple(
            SolveModel(
                where[b], P_nn[b][:, :, b], P_goal[b], R_n[b], rho0_n[b], 0.0, nonzero_by_action(P_nn[b][:, :, b])
            )
            for b in cut
        )
    return SolveModel(states, P_nn, P_goal, R_n, rho0_n, float(rho0[goal].sum()), nonzero_by_action(P_nn), parts)


def model_value_and_success(
    model: SolveModel, pi: torch.Tensor, gamma: float, clamp: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """``value_and_success`` from a ``SolveModel``: the same two linear systems, formed from the cut model
    without the (E, S, S) state matrix (large MDPs), block by block where the model has ``parts``.
    Shape: pi (E, S, A) -> (E,), (E,)."""
    if model.parts:
        value, success = model_value_and_success(model.parts[0], pi, gamma, clamp=False)
        for part in model.parts[1:]:
            v, s = model_value_and_success(part, pi, gamma, clamp=False)
            value, success = value + v, success + s
        return value, (success + model.rho0_goal).clamp(0.0, 1.0)
    pi_n = pi[:, model.states].to(model.P_nn.dtype)  # (E, N, A)
    N = model.P_nn.shape[0]
    T_nn = sparse_state_matrix(model.P_nz, pi_n, N)  # (E, N, N)
    r = (pi_n * model.R_n).sum(-1)  # (E, N)
    V = solve_absorbing(T_nn, r, gamma)  # (E, N)
    into_goal = (pi_n * model.P_goal).sum(-1)  # (E, N)
    succ = solve_absorbing(T_nn, into_goal)  # (E, N)
    success = succ @ model.rho0_n + model.rho0_goal  # (E,)
    return V @ model.rho0_n, success.clamp(0.0, 1.0) if clamp else success


def state_values(
    P: torch.Tensor, R: torch.Tensor, terminal: torch.Tensor, pi: torch.Tensor, gamma: float
) -> torch.Tensor:
    """Exact discounted value of every state under each member's policy, 0 on terminal states.

    Solves V_N = (I - gamma T_NN)^-1 r_N on the non-terminal states N, r = sum_a pi R.
    Shapes: P (S, A, S), R (S, A) or (E, S, A) (a per-member reward), terminal (S,), pi (E, S, A) -> (E, S).
    """
    pi = pi.to(P.dtype)
    T = state_matrix(P, pi)  # (E, S, S)
    n = ~terminal  # (S,)
    T_nn = T[:, n][:, :, n]  # (E, N, N)
    r = (pi * R.to(P.dtype)).sum(-1)[:, n]  # (E, N)
    V = torch.zeros(pi.shape[:2], dtype=P.dtype, device=P.device)  # (E, S)
    V[:, n] = solve_absorbing(T_nn, r, gamma)
    return V


def discounted_occupancy(P: torch.Tensor, rho0: torch.Tensor, pi: torch.Tensor, gamma: float) -> torch.Tensor:
    """(1 - gamma) * sum_t gamma^t Pr(s_t = s) from rho0: where the agent spends its time.

    Shape: pi (E, S, A) -> (E, S); each row sums to 1. Above ``policy.SPARSE_STATES`` states, where P falls
    into closed blocks (``closed_blocks``), each block's system is formed and solved apart (the same values up
    to rounding; Taxi: 4 blocks of 125 states, 16x less LU than one of 500).
    """
    if P.shape[0] > policy.SPARSE_STATES:
        blocks = closed_blocks(P)
        if len(blocks) > 1:
            out = pi.new_zeros(pi.shape[:2], dtype=P.dtype)  # (E, S)
            for b in (torch.as_tensor(b, device=P.device) for b in blocks):
                out[:, b] = discounted_occupancy(P[b][:, :, b], rho0[b], pi[:, b], gamma)
            return out
    T = state_matrix(P, pi.to(P.dtype))  # (E, S, S)
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


def tmatrix_gram(P: torch.Tensor) -> torch.Tensor:
    """G[s] = P[s] P[s]^T, the A x A Gram matrix of each state's transition rows. Shape: (S, A, S) -> (S, A, A)."""
    return torch.einsum("sat,sbt->sab", P, P)


def tmatrix_mse(pi: torch.Tensor, ref_pi: torch.Tensor, gram: torch.Tensor, n_states: int) -> torch.Tensor:
    """mean_{s, s'} (T_pi(s'|s) - T_ref(s'|s))^2 without forming T (Eq. 2): T_pi[s] - T_ref[s] = d_s^T P[s]
    with d_s = pi(.|s) - ref(.|s), so its squared norm is d_s^T G[s] d_s (``tmatrix_gram``). The mean
    runs over the N rows given and the ``n_states`` columns of T. Equal to the dense form up to rounding.

    Shape: pi (E, N, A), ref_pi (E, N, A) or (N, A), gram (N, A, A) of the same N rows -> (E,).
    """
    d = (pi - ref_pi).to(gram.dtype)  # (E, N, A)
    quad = (d * (gram * d[..., None, :]).sum(-1)).sum(-1)  # (E, N): ||T_pi[s] - T_ref[s]||^2, member by member
    return quad.sum(-1) / (quad.shape[-1] * n_states)


def value_ratio(value: torch.Tensor, v_star: float) -> torch.Tensor:
    """The normalised return at the start, 1 for an optimal policy: V_pi / V* when V* > 0, and V* / V_pi
    when V* < 0 (costs: a policy that pays twice the optimum's cost scores 0.5); NaN when V* = 0.

    Shape: value (E,) -> (E,). Higher is better in both cases.
    """
    if v_star > 0:
        return value / v_star
    if v_star < 0:
        return torch.where(value < 0, v_star / value.clamp(max=-1e-300), torch.full_like(value, math.inf))
    return torch.full_like(value, math.nan)


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
