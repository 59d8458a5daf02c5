"""Exact planning on a TabularMDP: value iteration, backward induction, policy evaluation.

Bellman optimality (the fixed point value iteration finds):

    Q*(s, a) = R(s, a) + gamma * sum_s' P(s' | s, a) V*(s'),     V*(s) = max_a Q*(s, a).

Value iteration (``method="gauss-seidel"``, the default; docs/solver.md has the details and timings;
the sweep engine, steps 1 and 2, lives in ``bellman``):

1. *Level ordering.* States are grouped by their number of steps to the nearest reward (a
   breadth-first search backwards from the states with R(s, a) != 0) and relabelled in that order.
   A sweep updates them in place in that order (Gauss-Seidel), so a value crosses the whole map in
   one sweep; states that cannot reach a reward keep V = 0 exactly. A deterministic lake is exact
   after one sweep. The sweep runs compiled per state when numba is installed (``KERNEL``), else
   vectorised per level in numpy; both compute the same map.
2. *Anderson acceleration* (memory ``ANDERSON_MEMORY``) of the sweep map, restarted whenever it
   stops helping; not at gamma = 1 with a max, where only plain sweeps from 0 are sure to find the
   least fixed point V* (zero-reward loops make others). At gamma = 1 every safe action ties, so the
   greedy policy may stall; use gamma < 1 or ``finite_horizon`` for a policy.
3. *Stopping* only on the true Bellman residual ``r = max_s |(T V)(s) - V(s)| <= tol`` of a full
   synchronous backup T (the textbook test, ``method="jacobi"``). The returned V is that backup and
   Q its Q-values, so ``V == Q.max(1)`` and ``|V - V*| <= gamma * r / (1 - gamma)`` (``error_bound``).

Ties (greedy policies, one-hot optima) are decided relative to the values' own scale: action a is
optimal at s when ``Q(s, a) >= max Q(s) - (TIE_RTOL * |max Q(s)| + TIE_ATOL)`` (``optimal_actions``).
The greedy policy takes the lowest such index, ``optimal_action_probs`` splits the mass evenly.

Discounts float64 cannot serve: ``value_iteration`` refuses 1 - ``GAMMA_GAP`` < gamma < 1, where one
step of discount (a relative change of 1 - gamma) falls inside the tie rule and the greedy policy could
stall; gamma = 1 itself is allowed (V is then the best success probability, with the caveat above).
It and ``finite_horizon`` refuse, before solving, a gamma so small that gamma^steps to a reachable
reward is below float64's range (``check_underflow``); after solving, ``value_iteration`` refuses a
greedy policy that never collects a reward from a state of non-zero value (``check_stall``: the
tolerance too loose for a gamma this close to 1). Each refusal is a ValueError naming gamma and what
to use instead.

Size bounds: ``finite_horizon`` stores horizon x S x (A + 2) numbers and refuses more than
``max_bytes``; horizons above ``max_horizon`` steps (one Python-level backup each) are refused too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import bellman
from .bellman import ANDERSON_MEMORY as ANDERSON_MEMORY  # re-exported: the solver's settings
from .bellman import numba_available as numba_available  # re-exported; kernel_name looks it up here
from .mdp import TabularMDP

TIE_RTOL = 1e-9  # relative part of the tie rule: far above float64 rounding, far below real gaps
TIE_ATOL = 1e-300  # absolute part: only matters for |max Q| < 1e-291, below float64's relative precision
DENSE_MAX_STATES = 2500
KERNEL = "auto"  # the sweep kernel: "auto" (numba when importable, on NUMBA_MIN_STATES or more), "numba", "numpy"
NUMBA_MIN_STATES = 16_384
MAX_HORIZON = 1_000_000  # steps of a finite horizon (each a Python-level backup over all states)
FINITE_HORIZON_MAX_BYTES = 4 * 2**30  # memory of finite_horizon's (H, S, A) Q, (H + 1, S) V, (H, S) policy
STALL_FLOOR = 1e10 * TIE_ATOL  # check_stall: values this small may have lost their path to the flush
GAMMA_GAP = (
    1e-8  # value_iteration refuses 1 - GAMMA_GAP < gamma < 1: ten times TIE_RTOL, so one step of discount is no tie
)


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

    @property
    def error_bound(self) -> float:
        """Bound on max |V - V*|: gamma * residual / (1 - gamma) (inf at gamma = 1 unless exact)."""
        if self.residual == 0:
            return 0.0
        return np.inf if self.gamma == 1 else self.gamma * self.residual / (1 - self.gamma)


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
def _check_nonneg(name: str, value) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not 0 <= value < np.inf
    ):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_gamma(gamma) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float, np.integer, np.floating)) or not 0 < gamma <= 1:
        raise ValueError(f"gamma must be a discount in (0, 1], got {gamma!r}")
    return float(gamma)


def check_underflow(mdp: TabularMDP, gamma: float, horizon: int | None = None) -> None:
    """Refuse (ValueError), before solving, a gamma so small that some values must underflow.

    A state L steps from its nearest reward (its level, ``level_order``) has |V(s)| <= gamma^L * max|R| /
    (1 - gamma); where that bound is below ``TIE_ATOL`` (the values the solver stores as 0), the state's
    actions cannot be told apart, and the greedy policy there would be arbitrary although a reward is
    reachable. ``horizon``: only states within horizon - 1 steps count (``finite_horizon``).
    """
    R = mdp.R
    rmax = float(np.abs(R).max()) if R.size else 0.0
    if gamma == 1 or rmax == 0:
        return
    lv = bellman.levels(mdp, R, "R", kernel_name)
    steps = lv.bounds.size - 2  # the highest level
    if horizon is not None:
        steps = min(steps, horizon - 1)
    if steps < 1:
        return
    log_bound = steps * np.log10(gamma) + np.log10(rmax) - np.log10(1 - gamma)
    if log_bound < np.log10(TIE_ATOL):
        need = (TIE_ATOL * 1e10 / rmax) ** (1 / steps)  # with ten decades to spare for the probabilities
        raise ValueError(
            f"gamma {gamma!r} is too small for float64 on this map: a state {steps} steps from the nearest "
            f"reward has a value of at most gamma^{steps} * {rmax:g} / (1 - gamma) = 1e{log_bound:.0f}, below "
            f"the {TIE_ATOL:g} under which values are stored as 0, so its actions could not be told apart; "
            f"use gamma >= {need:.2g}"
        )


def check_stall(mdp: TabularMDP, gamma: float, V: np.ndarray, policy: np.ndarray, tol: float) -> None:
    """Refuse (ValueError) a greedy policy that never collects a reward from a state of value above ``STALL_FLOOR``.

    With rewards of one sign an optimal policy collects one from every such state (else its value would
    be 0), so such a policy stalls: its actions' values differ by less than the solver resolved (gamma too
    close to 1 for ``tol``). Not checked at gamma = 1 (every safe action ties; documented) nor for rewards
    of both signs (a value may cancel to 0 exactly). Shape: V (S,), policy (S,) actions.
    """
    R = mdp.R
    if gamma == 1 or not ((R >= 0).all() or (R <= 0).all()):
        return
    S, A = mdp.n_states, mdp.n_actions
    chosen = np.eye(A, dtype=bool)[policy]  # (S, A)
    src, dst = bellman.transition_edges(mdp, mdp.probs * chosen[:, :, None])
    seeds = np.flatnonzero(R[np.arange(S), policy] != 0)
    live = np.abs(V) > STALL_FLOOR  # below it, flushed successors (TIE_ATOL) may leave values without a path
    stalled = np.flatnonzero(live & ~bellman.reaches(S, src, dst, seeds, kernel_name(S)))
    if stalled.size:
        raise ValueError(
            f"gamma {gamma!r} is too close to 1 for tol {tol!r}: the greedy policy never collects a reward from "
            f"{stalled.size} state(s) of non-zero value (e.g. state {int(stalled[0])}), because the solution did "
            f"not separate their actions' values; use a smaller gamma or a smaller tol"
        )


def _check_mdp(mdp) -> TabularMDP:
    if not isinstance(mdp, TabularMDP):
        raise TypeError(f"mdp must be a TabularMDP (e.g. lakes.make_lake('4x4')), got {type(mdp).__name__}")
    return mdp


def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_horizon(mdp: TabularMDP, horizon, max_horizon, minimum: int) -> int:
    """A horizon, refused above max_horizon (each step is one backup over all S * A * K transitions)."""
    horizon, max_horizon = _check_count("horizon", horizon, minimum), _check_count("max_horizon", max_horizon, 1)
    if horizon > max_horizon:
        work = horizon * mdp.next_states.size
        raise ValueError(
            f"horizon {horizon:,} is above the limit of {max_horizon:,} steps: each step is one backup "
            f"over the {mdp.next_states.size:,} transitions, about {work:.2g} updates in all "
            f"(pass max_horizon=... to raise it)"
        )
    return horizon


def format_bytes(n: float) -> str:
    """A memory size for messages: '1.5 GiB', '12.0 MiB'."""
    return f"{n / 2**30:,.1f} GiB" if n >= 2**27 else f"{n / 2**20:,.1f} MiB"


def _progress_bar(enabled: bool, desc: str, total: int | None, unit: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, leave=False)


def as_policy(mdp: TabularMDP, pi) -> np.ndarray:
    """A policy as action probabilities, Shape (S, A): pi of Shape (S, A), or actions of Shape (S,)."""
    _check_mdp(mdp)
    try:
        pi = np.asarray(pi)
    except ValueError:  # ragged nested lists
        raise ValueError("pi must be an array of actions, Shape (S,), or of probabilities, Shape (S, A)") from None
    if pi.dtype == object or not (np.issubdtype(pi.dtype, np.number) or pi.dtype == bool):
        raise TypeError(f"pi must be an array of numbers (actions or probabilities), got dtype {pi.dtype}")
    if pi.ndim == 1:
        if pi.shape != (mdp.n_states,) or not np.issubdtype(pi.dtype, np.integer):
            raise ValueError(
                f"pi: a deterministic policy must be integer actions of shape ({mdp.n_states},), "
                f"got dtype {pi.dtype} and shape {tuple(pi.shape)}"
            )
        if pi.min() < 0 or pi.max() >= mdp.n_actions:
            raise ValueError(f"pi: actions must lie in [0, {mdp.n_actions - 1}], got range [{pi.min()}, {pi.max()}]")
        return np.eye(mdp.n_actions)[pi]
    return mdp.check_policy(pi)


# ------------------------------------------------------------ the kernel choice and the engine
def level_order(mdp: TabularMDP, R: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The sweep order: states that can reach a non-zero reward of R (default mdp.R), by their number
    of steps to it, then by index. Shape: -> perm (S',), bounds (L + 1,); level l = perm[bounds[l]:bounds[l+1]].
    """
    return bellman.level_order(mdp, R, kernel_name(mdp.n_states))


def kernel_name(n_states: int = NUMBA_MIN_STATES) -> str:
    """The sweep kernel for an MDP of n_states: "numba" (compiled, per state) or "numpy" (per level).

    ``KERNEL`` chooses: "numba", "numpy", or "auto": numba when it is importable and n_states >=
    ``NUMBA_MIN_STATES`` (below that numpy is fast and numba's first call, ~1 s to load, is not).
    """
    if KERNEL not in ("auto", "numba", "numpy"):
        raise ValueError(f"solve.KERNEL must be 'auto', 'numba' or 'numpy', got {KERNEL!r}")
    if KERNEL == "numpy" or (KERNEL == "auto" and n_states < NUMBA_MIN_STATES):
        return "numpy"
    if numba_available():
        return "numba"
    if KERNEL == "numba":
        raise ValueError("solve.KERNEL is 'numba' but numba is not installed (pip install 'frozenlake_ift[fast]')")
    return "numpy"


def _fixed_point(
    mdp: TabularMDP,
    R: np.ndarray,
    gamma: float,
    tol: float,
    max_iter: int,
    pi: np.ndarray | None,
    key: str,
    progress: bool = False,
) -> bellman.FixedPoint:
    """``bellman.fixed_point`` on the model in level order (cached on the MDP under key), with the kernel
    that ``KERNEL`` chooses, subnormal values flushed below ``TIE_ATOL`` and an optional progress bar."""
    lv = bellman.levels(mdp, R, key, kernel_name)
    if lv.perm.size == 0:  # no state can reach a reward: V = 0, no sweep
        return bellman.fixed_point(mdp, lv, gamma, tol, max_iter, pi, kernel="numpy", tiny=TIE_ATOL)
    kernel = kernel_name(lv.perm.size)
    bar = _progress_bar(progress, "value iteration", None, "sweep")

    def on_sweep(change: float) -> None:
        bar.update(1)
        if progress:
            bar.set_postfix(change=f"{change:.2e}", refresh=False)

    try:
        return bellman.fixed_point(mdp, lv, gamma, tol, max_iter, pi, kernel=kernel, tiny=TIE_ATOL, on_sweep=on_sweep)
    finally:
        bar.close()


# ------------------------------------------------------------ public API
def q_values(mdp: TabularMDP, V: np.ndarray, gamma: float) -> np.ndarray:
    """Q[s, a] = R[s, a] + gamma * sum_s' P(s' | s, a) V[s'].  Shape: V (S,) -> (S, A)."""
    V = np.asarray(V, dtype=np.float64)
    if V.shape != (mdp.n_states,):
        raise ValueError(f"V must have shape ({mdp.n_states},), got {tuple(V.shape)}")
    return mdp.q_from_v(V, _check_gamma(gamma))


def optimal_actions(Q: np.ndarray, atol: float = TIE_ATOL, *, rtol: float = TIE_RTOL) -> np.ndarray:
    """Which actions count as optimal (the tie rule), Shape (S, A) bool, from Q of Shape (S, A):

    Q[s, a] >= max_a Q[s] - (rtol * |max_a Q[s]| + atol). Relative, so values of any scale (1e-20 on a
    long map at a small discount) keep their real differences while exact ties stay ties.
    """
    Q = np.asarray(Q, dtype=np.float64)
    if Q.ndim != 2 or Q.shape[1] == 0:
        raise ValueError(f"Q must have shape (S, A) with A >= 1, got {tuple(Q.shape)}")
    atol, rtol = _check_nonneg("atol", atol), _check_nonneg("rtol", rtol)
    top = Q.max(1, keepdims=True)  # (S, 1)
    return Q >= top - (rtol * np.abs(top) + atol)


def greedy_policy(Q: np.ndarray, atol: float = TIE_ATOL, *, rtol: float = TIE_RTOL) -> np.ndarray:
    """Greedy actions, Shape (S,) int64, from Q of Shape (S, A); ties (``optimal_actions``) -> lowest index."""
    return optimal_actions(Q, atol, rtol=rtol).argmax(1).astype(np.int64)


def optimal_action_probs(
    Q: np.ndarray, temperature: float = 0.0, atol: float = TIE_ATOL, *, rtol: float = TIE_RTOL
) -> np.ndarray:
    """pi*(a | s) = softmax(Q[s] / temperature), Shape (S, A) from Q of Shape (S, A).

    temperature 0: one-hot on the argmax, the mass split evenly among tied actions (``optimal_actions``).
    """
    temperature = _check_nonneg("temperature", temperature)
    tied = optimal_actions(Q, atol, rtol=rtol)  # (S, A); also checks the shape
    if temperature == 0:
        return tied / tied.sum(1, keepdims=True)
    Q = np.asarray(Q, dtype=np.float64)
    z = np.exp((Q - Q.max(1, keepdims=True)) / temperature)
    return z / z.sum(1, keepdims=True)


def value_iteration(
    mdp: TabularMDP,
    gamma: float,
    tol: float = 1e-10,
    max_iter: int = 1_000_000,
    method: str = "gauss-seidel",
    *,
    progress: bool = False,
) -> Solution:
    """Optimal V*, Q* and greedy policy by value iteration (see the module docstring).

    Args:
        gamma: discount in (0, 1], not in (1 - GAMMA_GAP, 1); ValueError also where values must
            underflow (``check_underflow``) or the greedy policy stalls (``check_stall``).
        tol: stop when the Bellman residual max |T V - V| <= tol.
        max_iter: most sweeps. method: "gauss-seidel" (accelerated, default) or "jacobi" (textbook).
        progress: show a tqdm bar of the sweeps.
    Returns: Solution with V Shape (S,), Q Shape (S, A), policy Shape (S,).
    """
    _check_mdp(mdp)
    gamma, tol = _check_gamma(gamma), _check_nonneg("tol", tol)
    max_iter = _check_count("max_iter", max_iter, 1)
    if not isinstance(method, str) or method not in ("gauss-seidel", "jacobi"):
        raise ValueError(f"method must be 'gauss-seidel' or 'jacobi', got {method!r}")
    if 1 - GAMMA_GAP < gamma < 1:
        raise ValueError(
            f"gamma {gamma!r} is too close to 1 for float64: one step of discount (1 - gamma = {1 - gamma:.2g}) "
            f"is within the tie rule's {TIE_RTOL:g}, so the greedy policy could stall; use gamma <= "
            f"{1 - GAMMA_GAP!r}, or gamma = 1 (V(start) is then the best success probability)"
        )
    check_underflow(mdp, gamma)
    if method == "jacobi":
        V = np.zeros(mdp.n_states)
        bar = _progress_bar(progress, "value iteration (jacobi)", None, "sweep")
        for it in range(1, max_iter + 1):  # noqa: B007  (it is the sweep count after the loop)
            V_new = mdp.q_from_v(V, gamma).max(1)
            residual, V = float(np.abs(V_new - V).max()), V_new
            bar.update(1)
            if residual <= tol:
                break
        bar.close()
    elif method == "gauss-seidel":
        fp = _fixed_point(mdp, mdp.R, gamma, tol, max_iter, None, "R", progress)
        V, it, residual = fp.V, fp.sweeps, fp.residual
    else:
        raise ValueError(f"method must be 'gauss-seidel' or 'jacobi', got {method!r}")
    Q = mdp.q_from_v(V, gamma)
    V_out = Q.max(1)
    residual = float(np.abs(V_out - V).max())
    policy = greedy_policy(Q)
    if residual <= tol:  # an unfinished solution is reported as such (converged=False), not judged
        check_stall(mdp, gamma, V_out, policy, tol)
    return Solution(V_out, Q, policy, it, gamma, residual, residual <= tol)


def finite_horizon(
    mdp: TabularMDP,
    horizon: int,
    gamma: float = 1.0,
    *,
    max_horizon: int = MAX_HORIZON,
    max_bytes: int = FINITE_HORIZON_MAX_BYTES,
    progress: bool = False,
) -> FiniteHorizonSolution:
    """Non-stationary optimum for ``horizon`` steps by backward induction.

    V[H] = 0; Q[t] = R + gamma * E[V[t + 1]]; V[t] = max_a Q[t]; policy[t] = greedy(Q[t]).
    Memory: H * S * (A + 2) float64 / int64 numbers; refused (ValueError) above ``max_bytes``, and
    horizons above ``max_horizon``. progress: show a tqdm bar of the steps.
    """
    _check_mdp(mdp)
    horizon, gamma = _check_horizon(mdp, horizon, max_horizon, 1), _check_gamma(gamma)
    check_underflow(mdp, gamma, horizon)
    S, A = mdp.n_states, mdp.n_actions
    need, max_bytes = (horizon * (A + 2) + 1) * S * 8, _check_count("max_bytes", max_bytes, 1)
    if need > max_bytes:
        raise ValueError(
            f"finite_horizon with horizon {horizon:,} on {S:,} states x {A} actions needs about "
            f"{format_bytes(need)} (Q, V and the policy: H x S x (A + 2) numbers of 8 bytes); the "
            f"limit is {format_bytes(max_bytes)} (pass max_bytes=... to raise it)"
        )
    V, Q = np.zeros((horizon + 1, S)), np.empty((horizon, S, A))
    bar = _progress_bar(progress, "backward induction", horizon, "step")
    for t in range(horizon - 1, -1, -1):
        Q[t] = mdp.q_from_v(V[t + 1], gamma)
        V[t] = Q[t].max(1)
        bar.update(1)
    bar.close()
    policy = greedy_policy(Q.reshape(horizon * S, A)).reshape(horizon, S)
    return FiniteHorizonSolution(V, Q, policy, horizon, gamma)


def policy_evaluation(
    mdp: TabularMDP,
    pi,
    gamma: float,
    horizon: int | None = None,
    tol: float = 1e-10,
    max_iter: int = 1_000_000,
    *,
    max_horizon: int = MAX_HORIZON,
) -> np.ndarray:
    """V_pi, Shape (S,), for pi of Shape (S, A) (probabilities) or (S,) (actions).

    Infinite horizon: the fixed point of V = E_pi[R + gamma * P V]; a direct linear solve for
    gamma < 1 and S <= DENSE_MAX_STATES, else the accelerated sweeps to Bellman residual tol.
    horizon H: the expected sum of the first H discounted rewards (H <= max_horizon).
    """
    pi, gamma, tol = as_policy(mdp, pi), _check_gamma(gamma), _check_nonneg("tol", tol)
    if horizon is not None:
        horizon = _check_horizon(mdp, horizon, max_horizon, 0)
        V = np.zeros(mdp.n_states)
        for _ in range(horizon):
            V_new = (pi * mdp.q_from_v(V, gamma)).sum(1)
            if np.array_equal(V_new, V):  # a fixed point in floating point: every later step is the same
                break
            V = V_new
        return V
    if gamma < 1 and mdp.n_states <= DENSE_MAX_STATES:  # exact: (I - gamma T_pi) V = r_pi (Eq. 2)
        return np.linalg.solve(np.eye(mdp.n_states) - gamma * mdp.state_transition(pi), (pi * mdp.R).sum(1))
    V = _fixed_point(mdp, mdp.R, gamma, tol, _check_count("max_iter", max_iter, 1), pi, "R").V
    return (pi * mdp.q_from_v(V, gamma)).sum(1)


def success_probability(mdp: TabularMDP, pi, horizon: int | None = None, *, max_horizon: int = MAX_HORIZON) -> float:
    """Probability that pi, started from rho0, reaches a goal state (within ``horizon`` steps).

    pi: Shape (S, A) probabilities or (S,) actions; or non-stationary, one policy per step:
    Shape (H, S) actions or (H, S, A) probabilities (then the horizon is H). Goal states are
    absorbing, so this is the goal mass of rho0 @ T_pi^H (paper Eq. 2). Without a horizon it is
    the absorption probability: a direct linear solve for S <= DENSE_MAX_STATES, else the
    accelerated sweeps to residual 1e-13. A stationary pi's horizon is refused above max_horizon.
    """
    _check_mdp(mdp)
    arr = as_policy(mdp, pi) if np.ndim(pi) < 2 or isinstance(pi, str) else np.asarray(pi)
    if arr.ndim == 3 or (arr.ndim == 2 and np.issubdtype(arr.dtype, np.integer)):
        if horizon is not None and horizon != len(arr):
            raise ValueError(
                f"a non-stationary policy of {len(arr)} steps needs horizon {len(arr)} or None, got {horizon}"
            )
        d = mdp.rho0
        for step in arr:
            d = mdp.push(d, as_policy(mdp, step))
        return float(min(1.0, d[mdp.goal].sum()))
    pi = as_policy(mdp, arr)
    if not mdp.goal.any():
        return 0.0
    if horizon is not None:
        d = mdp.rho0
        for _ in range(_check_horizon(mdp, horizon, max_horizon, 0)):
            d_new = mdp.push(d, pi)
            if np.array_equal(d_new, d):  # a fixed point in floating point: every later step is the same
                break
            d = d_new
        return float(min(1.0, d[mdp.goal].sum()))
    hit = (mdp.probs * mdp.goal[mdp.next_states]).sum(-1) * ~mdp.terminal[:, None]  # (S, A) P(enter goal)
    if mdp.n_states <= DENSE_MAX_STATES:
        # x = T_pi x on the live states that can reach the goal under pi; x = 0 on the others
        # (the minimal solution), which makes I - T restricted to them invertible.
        w = pi[:, :, None] * mdp.probs * ~mdp.terminal[:, None, None]
        live = np.concatenate(
            bellman.backward_bfs(mdp.n_states, *bellman.transition_edges(mdp, w), np.flatnonzero(mdp.goal))
        )
        live = live[~mdp.terminal[live]]
        x = mdp.goal.astype(np.float64)
        if live.size:
            T = mdp.state_transition(pi)[np.ix_(live, live)]
            x[live] = np.linalg.solve(np.eye(live.size) - T, (pi * hit)[live].sum(1))
        return float(np.clip(mdp.rho0 @ x, 0.0, 1.0))
    V = _fixed_point(mdp, hit, 1.0, 1e-13, 1_000_000, pi, "success").V
    x = (pi * (hit + mdp.expect(V))).sum(1)
    x[mdp.terminal] = mdp.goal[mdp.terminal]
    return float(np.clip(mdp.rho0 @ x, 0.0, 1.0))
