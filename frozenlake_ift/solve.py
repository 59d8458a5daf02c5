"""Exact planning on a TabularMDP: value iteration, backward induction, policy evaluation.

Bellman optimality (the fixed point value iteration finds):

    Q*(s, a) = R(s, a) + gamma * sum_s' P(s' | s, a) V*(s'),     V*(s) = max_a Q*(s, a).

How value iteration is made fast while staying exact (``method="gauss-seidel"``, the default):

1. *Level ordering.* States are grouped by their number of steps to the nearest reward
   (a breadth-first search backwards from the states with R(s, a) != 0). A sweep updates level 0,
   then level 1, ... in place, so a value crosses the whole map in one sweep instead of one step
   per sweep (Gauss-Seidel). States that cannot reach a reward keep V = 0 exactly and are skipped.
   On a deterministic lake the first sweep already gives V*, the second confirms it.
2. *Anderson acceleration* (memory ``ANDERSON_MEMORY``) of the sweep map, restarted whenever it
   stops helping. Slippery lakes converge geometrically at a rate near 1; this cuts the number
   of sweeps about five-fold. Not for value iteration at gamma = 1: the Bellman equation then has
   many fixed points (zero-reward loops) and only plain sweeps from 0 are sure to find the least
   one, V*. (At gamma = 1 every action that keeps the agent safe ties, so the lowest-index greedy
   policy may stall instead of reaching G; use gamma < 1 or ``finite_horizon`` for a policy.)
3. *Stopping* only on the true Bellman residual ``max_s |(T V)(s) - V(s)| <= tol`` of a full
   synchronous backup T, the same test as textbook value iteration (``method="jacobi"``). The
   returned V is that backup, Q its Q-values, so ``V == Q.max(1)`` and
   ``|V - V*| <= gamma * tol / (1 - gamma)``.

Ties (greedy policies, one-hot optima): every action with Q(s, a) >= max_a Q(s, a) - atol,
atol = ``TIE_ATOL * max(1, |max_a Q(s, a)|)``, counts as optimal; the greedy policy takes the
lowest such action index, ``optimal_action_probs`` splits the mass evenly among them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .mdp import TabularMDP

TIE_ATOL = 1e-9
ANDERSON_MEMORY = 5
DENSE_MAX_STATES = 2500


@dataclass
class Solution:
    """Result of value iteration.

    Attributes:
        V: optimal values, Shape (S,). Q: Q-values, Shape (S, A). policy: greedy actions, Shape (S,),
        int64. iterations: sweeps performed. gamma: the discount. residual: final Bellman residual
        max |T V - V|. converged: residual <= tol (else max_iter was hit).
    """

    V: np.ndarray
    Q: np.ndarray
    policy: np.ndarray
    iterations: int
    gamma: float
    residual: float
    converged: bool = True


@dataclass
class FiniteHorizonSolution:
    """Backward induction for ``horizon`` steps: time t has horizon - t steps left.

    Attributes:
        V: Shape (H + 1, S), V[H] = 0. Q: Shape (H, S, A). policy: Shape (H, S), int64.
    """

    V: np.ndarray
    Q: np.ndarray
    policy: np.ndarray
    horizon: int
    gamma: float


# ------------------------------------------------------------ validation
def _check_gamma(gamma) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float, np.integer, np.floating)) or not 0 < gamma <= 1:
        raise ValueError(f"gamma must be a discount in (0, 1], got {gamma!r}")
    return float(gamma)


def _check_tol(tol) -> float:
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.integer, np.floating)) or not 0 <= tol < np.inf:
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    return float(tol)


def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def as_policy(mdp: TabularMDP, pi) -> np.ndarray:
    """A policy as action probabilities, Shape (S, A): pi of Shape (S, A), or actions of Shape (S,)."""
    pi = np.asarray(pi)
    if pi.ndim == 1:
        if pi.shape != (mdp.n_states,) or not np.issubdtype(pi.dtype, np.integer):
            raise ValueError(f"a deterministic policy must be integer actions of shape ({mdp.n_states},), "
                             f"got dtype {pi.dtype} and shape {tuple(pi.shape)}")
        if pi.min() < 0 or pi.max() >= mdp.n_actions:
            raise ValueError(f"actions must lie in [0, {mdp.n_actions - 1}], got range [{pi.min()}, {pi.max()}]")
        return np.eye(mdp.n_actions)[pi]
    return mdp.check_policy(pi)


# ------------------------------------------------------------ the engine
@dataclass
class _Levels:
    """States that can reach a reward, in level order, with their model relabelled to that order.

    perm: Shape (S',), state of each position. bounds: Shape (L + 1,), level l = perm[bounds[l]:bounds[l+1]].
    ns: Shape (S', A, K) successor positions (S' = a state that cannot reach a reward, V = 0).
    probs: Shape (S', A, K). R: Shape (S', A).
    """

    perm: np.ndarray
    bounds: np.ndarray
    ns: np.ndarray
    probs: np.ndarray
    R: np.ndarray


def _backward_bfs(S: int, src: np.ndarray, dst: np.ndarray, seeds: np.ndarray) -> list[np.ndarray]:
    """Levels of a breadth-first search along reversed edges src -> dst, starting from ``seeds``.

    Shape: src, dst (E,) edges; seeds (n,) -> list of state arrays, level 0 = seeds.
    """
    preds = src[np.argsort(dst, kind="stable")]  # predecessors grouped by state (reverse CSR)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(dst, minlength=S))])
    level = np.full(S, -1)
    frontier = np.unique(seeds)
    level[frontier] = 0
    groups = [frontier] if frontier.size else []
    while frontier.size:
        lo, n = indptr[frontier], indptr[frontier + 1] - indptr[frontier]
        idx = np.repeat(lo - np.cumsum(n) + n, n) + np.arange(int(n.sum()))  # all predecessor slots
        cand = preds[idx]
        frontier = np.unique(cand[level[cand] < 0])
        level[frontier] = len(groups)
        if frontier.size:
            groups.append(frontier)
    return groups


def _edges(mdp: TabularMDP, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges s -> s' (s' != s) with weight[s, a, k] > 0. Shape: weight (S, A, K) -> (E,), (E,)."""
    S, A, K = mdp.next_states.shape
    src = np.repeat(np.arange(S), A * K)
    dst = mdp.next_states.ravel()
    keep = (weight.ravel() > 0) & (src != dst)
    return src[keep], dst[keep]


def _levels(mdp: TabularMDP, R: np.ndarray, key: str) -> _Levels:
    """Level order backwards from the states with a non-zero reward (cached on the MDP under key)."""
    if ("levels", key) in mdp._cache:
        return mdp._cache[("levels", key)]
    S = mdp.n_states
    groups = _backward_bfs(S, *_edges(mdp, mdp.probs), np.flatnonzero((R != 0).any(1)))
    perm = np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)
    pos = np.full(S, perm.size)
    pos[perm] = np.arange(perm.size)
    lv = _Levels(perm, np.concatenate([[0], np.cumsum([g.size for g in groups], dtype=np.int64)]),
                 pos[mdp.next_states[perm]], mdp.probs[perm], R[perm])
    mdp._cache[("levels", key)] = lv
    return lv


def _fixed_point(mdp: TabularMDP, R: np.ndarray, gamma: float, tol: float, max_iter: int,
                 pi: np.ndarray | None, key: str) -> tuple[np.ndarray, int, float]:
    """Solve V = max_a (or E_pi) [R + gamma * P V] by accelerated level-ordered Gauss-Seidel.

    Shape: R (S, A), pi (S, A) or None -> (V (S,) in state order, sweeps, residual of the last
    synchronous backup). The returned V is the value *before* that backup.
    """
    lv = _levels(mdp, R, key)
    n = lv.perm.size
    V = np.zeros(n + 1)  # V[n] = 0 stands for every state that cannot reach a reward
    if n == 0:
        return np.zeros(mdp.n_states), 0, 0.0
    pi_l = None if pi is None else pi[lv.perm]
    spans = [(int(a), int(b)) for a, b in zip(lv.bounds[:-1], lv.bounds[1:])]

    def backup(lo: int, hi: int, W: np.ndarray) -> np.ndarray:
        q = lv.R[lo:hi] + gamma * np.einsum("sak,sak->sa", lv.probs[lo:hi], W[lv.ns[lo:hi]])
        return q.max(1) if pi_l is None else np.einsum("sa,sa->s", pi_l[lo:hi], q)

    def sweep(W: np.ndarray) -> np.ndarray:
        W = W.copy()
        for lo, hi in spans:
            W[lo:hi] = backup(lo, hi, W)
        return W

    # gamma = 1 with a max: many fixed points (zero-reward loops); plain sweeps from 0 rise
    # monotonically to the least one, V*, but an extrapolation could overshoot to another.
    memory = 0 if (gamma == 1 and pi is None) else ANDERSON_MEMORY
    Xs: list[np.ndarray] = []
    Fs: list[np.ndarray] = []
    best = np.inf
    residual = np.inf
    for it in range(1, max_iter + 1):
        GV = sweep(V)
        F = GV - V
        r = float(np.abs(F).max())
        if r <= tol:  # candidate: confirm with a synchronous backup (the textbook test)
            residual = float(np.abs(backup(0, n, GV) - GV[:n]).max())
            if residual <= tol:
                V = GV
                break
        if r > 2 * best:  # acceleration went astray: restart from the plain sweep
            Xs, Fs = [], []
        best = min(best, r)
        Xs.append(GV)
        Fs.append(F)
        if len(Fs) > memory + 1:
            Xs.pop(0)
            Fs.pop(0)
        V = GV
        if len(Fs) > 1:  # Anderson: V = GV - dX @ c with c = argmin |F - dF c|
            dF, dX = np.diff(np.stack(Fs), axis=0), np.diff(np.stack(Xs), axis=0)
            G = dF @ dF.T
            try:
                c = np.linalg.solve(G + 1e-14 * np.trace(G) * np.eye(len(G)), dF @ F)
                V = GV - c @ dX
            except np.linalg.LinAlgError:
                Xs, Fs = [], []
        V[n] = 0.0
    out = np.zeros(mdp.n_states)
    out[lv.perm] = V[:n]
    return out, it, residual


# ------------------------------------------------------------ public API
def q_values(mdp: TabularMDP, V: np.ndarray, gamma: float) -> np.ndarray:
    """Q[s, a] = R[s, a] + gamma * sum_s' P(s' | s, a) V[s'].  Shape: V (S,) -> (S, A)."""
    V = np.asarray(V, dtype=np.float64)
    if V.shape != (mdp.n_states,):
        raise ValueError(f"V must have shape ({mdp.n_states},), got {tuple(V.shape)}")
    return mdp.q_from_v(V, _check_gamma(gamma))


def _tied(Q: np.ndarray, atol: float) -> np.ndarray:
    Q = np.asarray(Q, dtype=np.float64)
    if Q.ndim != 2 or Q.shape[1] == 0:
        raise ValueError(f"Q must have shape (S, A) with A >= 1, got {tuple(Q.shape)}")
    top = Q.max(1, keepdims=True)
    return Q >= top - atol * np.maximum(1.0, np.abs(top))


def greedy_policy(Q: np.ndarray, atol: float = TIE_ATOL) -> np.ndarray:
    """Greedy actions, Shape (S,) int64, from Q of Shape (S, A); ties -> lowest action index."""
    return _tied(Q, atol).argmax(1).astype(np.int64)


def optimal_action_probs(Q: np.ndarray, temperature: float = 0.0, atol: float = TIE_ATOL) -> np.ndarray:
    """pi*(a | s) = softmax(Q[s] / temperature), Shape (S, A) from Q of Shape (S, A).

    temperature 0: one-hot on the argmax, the mass split evenly among tied actions.
    """
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.integer, np.floating)) \
            or not 0 <= temperature < np.inf:
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
    if temperature == 0:
        tied = _tied(Q, atol).astype(np.float64)
        return tied / tied.sum(1, keepdims=True)
    Q = np.asarray(Q, dtype=np.float64)
    _tied(Q, atol)  # shape check
    z = np.exp((Q - Q.max(1, keepdims=True)) / temperature)
    return z / z.sum(1, keepdims=True)


def value_iteration(mdp: TabularMDP, gamma: float, tol: float = 1e-10, max_iter: int = 1_000_000,
                    method: str = "gauss-seidel") -> Solution:
    """Optimal V*, Q* and greedy policy by value iteration (see the module docstring).

    Args:
        gamma: discount in (0, 1]. tol: stop when the Bellman residual max |T V - V| <= tol.
        max_iter: most sweeps. method: "gauss-seidel" (accelerated, default) or "jacobi" (textbook).
    Returns: Solution with V Shape (S,), Q Shape (S, A), policy Shape (S,).
    """
    gamma, tol = _check_gamma(gamma), _check_tol(tol)
    max_iter = _check_count("max_iter", max_iter, 1)
    if method == "jacobi":
        V = np.zeros(mdp.n_states)
        for it in range(1, max_iter + 1):
            V_new = mdp.q_from_v(V, gamma).max(1)
            residual, V = float(np.abs(V_new - V).max()), V_new
            if residual <= tol:
                break
    elif method == "gauss-seidel":
        V, it, residual = _fixed_point(mdp, mdp.R, gamma, tol, max_iter, None, "R")
    else:
        raise ValueError(f"method must be 'gauss-seidel' or 'jacobi', got {method!r}")
    Q = mdp.q_from_v(V, gamma)
    V_out = Q.max(1)
    residual = float(np.abs(V_out - V).max())
    return Solution(V_out, Q, greedy_policy(Q), it, gamma, residual, residual <= tol)


def finite_horizon(mdp: TabularMDP, horizon: int, gamma: float = 1.0) -> FiniteHorizonSolution:
    """Non-stationary optimum for ``horizon`` steps by backward induction.

    V[H] = 0; Q[t] = R + gamma * E[V[t + 1]]; V[t] = max_a Q[t]; policy[t] = greedy(Q[t]).
    Memory: H * S * A floats for Q.
    """
    horizon, gamma = _check_count("horizon", horizon, 1), _check_gamma(gamma)
    S, A = mdp.n_states, mdp.n_actions
    V, Q = np.zeros((horizon + 1, S)), np.empty((horizon, S, A))
    for t in range(horizon - 1, -1, -1):
        Q[t] = mdp.q_from_v(V[t + 1], gamma)
        V[t] = Q[t].max(1)
    policy = np.stack([greedy_policy(q) for q in Q])
    return FiniteHorizonSolution(V, Q, policy, horizon, gamma)


def policy_evaluation(mdp: TabularMDP, pi, gamma: float, horizon: int | None = None, tol: float = 1e-10,
                      max_iter: int = 1_000_000) -> np.ndarray:
    """V_pi, Shape (S,), for pi of Shape (S, A) (probabilities) or (S,) (actions).

    Infinite horizon: the fixed point of V = E_pi[R + gamma * P V]; a direct linear solve for
    gamma < 1 and S <= DENSE_MAX_STATES, else the accelerated sweeps to Bellman residual tol.
    horizon H: the expected sum of the first H discounted rewards.
    """
    pi, gamma, tol = as_policy(mdp, pi), _check_gamma(gamma), _check_tol(tol)
    if horizon is not None:
        horizon = _check_count("horizon", horizon, 0)
        V = np.zeros(mdp.n_states)
        for _ in range(horizon):
            V = (pi * mdp.q_from_v(V, gamma)).sum(1)
        return V
    if gamma < 1 and mdp.n_states <= DENSE_MAX_STATES:  # exact: (I - gamma T_pi) V = r_pi (Eq. 2)
        return np.linalg.solve(np.eye(mdp.n_states) - gamma * mdp.state_transition(pi), (pi * mdp.R).sum(1))
    V, _, _ = _fixed_point(mdp, mdp.R, gamma, tol, _check_count("max_iter", max_iter, 1), pi, "R")
    return (pi * mdp.q_from_v(V, gamma)).sum(1)


def success_probability(mdp: TabularMDP, pi, horizon: int | None = None) -> float:
    """Probability that pi, started from rho0, reaches a goal state (within ``horizon`` steps).

    pi: Shape (S, A) probabilities or (S,) actions; or non-stationary, one policy per step:
    Shape (H, S) actions or (H, S, A) probabilities (then the horizon is H). Goal states are
    absorbing, so this is the goal mass of rho0 @ T_pi^H (paper Eq. 2). Without a horizon it is
    the absorption probability: a direct linear solve for S <= DENSE_MAX_STATES, else the
    accelerated sweeps to residual 1e-13.
    """
    arr = np.asarray(pi)
    if arr.ndim == 3 or (arr.ndim == 2 and np.issubdtype(arr.dtype, np.integer)):
        if horizon is not None and horizon != len(arr):
            raise ValueError(f"a non-stationary policy of {len(arr)} steps needs horizon {len(arr)} or None, got {horizon}")
        d = mdp.rho0
        for step in arr:
            d = mdp.push(d, as_policy(mdp, step))
        return float(min(1.0, d[mdp.goal].sum()))
    pi = as_policy(mdp, arr)
    if not mdp.goal.any():
        return 0.0
    if horizon is not None:
        d = mdp.rho0
        for _ in range(_check_count("horizon", horizon, 0)):
            d = mdp.push(d, pi)
        return float(min(1.0, d[mdp.goal].sum()))
    hit = (mdp.probs * mdp.goal[mdp.next_states]).sum(-1) * ~mdp.terminal[:, None]  # (S, A) P(enter goal)
    if mdp.n_states <= DENSE_MAX_STATES:
        # x = T_pi x on the live states that can reach the goal under pi; x = 0 on the others
        # (the minimal solution), which makes I - T restricted to them invertible.
        w = pi[:, :, None] * mdp.probs * ~mdp.terminal[:, None, None]
        live = np.concatenate(_backward_bfs(mdp.n_states, *_edges(mdp, w), np.flatnonzero(mdp.goal)))
        live = live[~mdp.terminal[live]]
        x = mdp.goal.astype(np.float64)
        if live.size:
            T = mdp.state_transition(pi)[np.ix_(live, live)]
            x[live] = np.linalg.solve(np.eye(live.size) - T, (pi * hit)[live].sum(1))
        return float(np.clip(mdp.rho0 @ x, 0.0, 1.0))
    V, _, _ = _fixed_point(mdp, hit, 1.0, 1e-13, 1_000_000, pi, "success")
    x = (pi * (hit + mdp.expect(V))).sum(1)
    x[mdp.terminal] = mdp.goal[mdp.terminal]
    return float(np.clip(mdp.rho0 @ x, 0.0, 1.0))
