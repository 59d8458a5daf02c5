"""The sweep engine of ``solve``: level ordering, the numba / numpy sweep kernels, the accelerated fixed point.

``solve`` owns the public API and the settings (``solve.KERNEL``, the tie rule, the size bounds); this
module computes, for a TabularMDP, the least fixed point of V = max_a (or E_pi) [R + gamma * P V]:

1. *Level ordering* (``level_order``, ``levels``): the states that can reach a non-zero reward, by their
   number of steps to it (a breadth-first search backwards), the model relabelled in that order.
2. *Gauss-Seidel sweeps* in that order, in place: compiled per state with numba when installed
   (``compiled_kernels``), else vectorised per level in numpy; both compute the same map. Which one runs
   is the caller's choice (``solve.kernel_name``), passed in as ``"numba"`` or ``"numpy"``.
3. *Anderson acceleration* (``Anderson``, memory ``ANDERSON_MEMORY``) of the sweep map, restarted when it
   stops helping; none at gamma = 1 with a max. ``fixed_point`` stops on the true Bellman residual of a
   synchronous backup. docs/solver.md has the details and timings.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .mdp import TabularMDP

ANDERSON_MEMORY = 5
KernelChoice = Callable[[int], str]  # number of states -> "numba" or "numpy"


@dataclass
class Levels:
    """States that can reach a reward, in level order, with their model relabelled to that order.

    perm: Shape (S',), state of each position. bounds: Shape (L + 1,), level l = perm[bounds[l]:bounds[l+1]].
    ns: Shape (S', A, K) successor positions (S' = a state that cannot reach a reward, V = 0).
    probs: Shape (S', A, K). R: Shape (S', A). All C-contiguous (the compiled kernel reads them in order).
    """

    perm: np.ndarray
    bounds: np.ndarray
    ns: np.ndarray
    probs: np.ndarray
    R: np.ndarray


@dataclass
class FixedPoint:
    """Result of ``fixed_point``.

    Attributes:
        V: Shape (S,), in state order: the value *before* the last synchronous backup.
        sweeps: sweeps performed. residual: max |T V - V| of the last synchronous backup (inf if none ran).
    """

    V: np.ndarray
    sweeps: int
    residual: float


def backward_bfs(S: int, src: np.ndarray, dst: np.ndarray, seeds: np.ndarray) -> list[np.ndarray]:
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


def transition_edges(mdp: TabularMDP, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges s -> s' (s' != s) with weight[s, a, k] > 0. Shape: weight (S, A, K) -> (E,), (E,)."""
    S, A, K = mdp.next_states.shape
    src = np.repeat(np.arange(S), A * K)
    dst = mdp.next_states.ravel()
    keep = (weight.ravel() > 0) & (src != dst)
    return src[keep], dst[keep]


def _level_order_kernel(S, src, dst, seeds):  # pragma: no cover (runs compiled by numba)
    """``backward_bfs`` as one pass: (perm, counts), perm the reached states by level then state,
    counts the size of each level. Shape: src, dst (E,), seeds (n,) -> (S',), (L,)."""
    start = np.zeros(S + 1, np.int64)  # reverse CSR by counting sort
    for e in range(dst.size):
        start[dst[e] + 1] += 1
    for s in range(S):
        start[s + 1] += start[s]
    fill, preds = start[:-1].copy(), np.empty(src.size, np.int64)
    for e in range(dst.size):
        preds[fill[dst[e]]] = src[e]
        fill[dst[e]] += 1
    level, queue, n, head = np.full(S, -1, np.int64), np.empty(S, np.int64), 0, 0
    for s in seeds:
        if level[s] < 0:
            level[s], queue[n], n = 0, s, n + 1
    while head < n:
        u, head = queue[head], head + 1
        for j in range(start[u], start[u + 1]):
            if level[preds[j]] < 0:
                level[preds[j]], queue[n], n = level[u] + 1, preds[j], n + 1
    counts = np.zeros(level[queue[n - 1]] + 1 if n else 0, np.int64)
    for s in range(S):
        if level[s] >= 0:
            counts[level[s]] += 1
    offset, perm = np.zeros(counts.size + 1, np.int64), np.empty(n, np.int64)
    offset[1:] = np.cumsum(counts)
    for s in range(S):  # states in increasing order within each level, as np.unique gives them
        if level[s] >= 0:
            perm[offset[level[s]]], offset[level[s]] = s, offset[level[s]] + 1
    return perm, counts


def _backup_kernel(V, ns, probs, R, pi, gamma, tiny, write):  # pragma: no cover (runs compiled by numba)
    """In order i = 0..n-1: new = max_a (or E_pi, when pi has rows) [R + gamma * sum_k probs V[ns]],
    0 where |new| < tiny; write: V[i] = new in place (a Gauss-Seidel sweep). Returns max_i |new - old|.
    Shape: V (n + 1,), ns and probs (n, A, K), R (n, A), pi (n, A) or (0, A)."""
    n, A, K = ns.shape
    mean = pi.shape[0] > 0
    worst = 0.0
    for i in range(n):
        best = -np.inf
        total = 0.0
        for a in range(A):
            acc = 0.0
            for k in range(K):
                acc += probs[i, a, k] * V[ns[i, a, k]]
            q = R[i, a] + gamma * acc
            total += pi[i, a] * q if mean else 0.0
            best = max(best, q)
        new = total if mean else best
        new = 0.0 if abs(new) < tiny else new
        worst = max(worst, abs(new - V[i]))
        if write:
            V[i] = new
    return worst


@dataclass(frozen=True)
class CompiledKernels:
    """The numba-compiled kernels: ``backup`` (one sweep or residual) and ``order`` (the level order)."""

    backup: Callable[..., Any]  # _backup_kernel
    order: Callable[..., Any]  # _level_order_kernel


@functools.cache
def compiled_kernels() -> CompiledKernels | None:
    """The numba-compiled kernels (compiled on first call, cached on disk), or None without numba."""
    try:
        import numba
    except ImportError:
        return None
    jit = numba.njit(cache=True, nogil=True)
    return CompiledKernels(jit(_backup_kernel), jit(_level_order_kernel))


def numba_available() -> bool:
    """Whether the compiled kernels can be used (numba importable: the ``fast`` extra)."""
    return compiled_kernels() is not None


def _numba() -> CompiledKernels:
    kernels = compiled_kernels()
    if kernels is None:  # only reached when the caller chose "numba" without checking numba_available()
        raise ValueError("the numba kernel was chosen but numba is not installed (pip install 'frozenlake_ift[fast]')")
    return kernels


def reaches(S: int, src: np.ndarray, dst: np.ndarray, seeds: np.ndarray, kernel: str) -> np.ndarray:
    """Which states reach one of ``seeds`` along edges src -> dst (a breadth-first search backwards).

    Shape: src, dst (E,), seeds (n,) -> (S,) bool. kernel: "numba" or "numpy", as ``level_order``.
    """
    if kernel == "numba":
        perm, _ = _numba().order(S, src, dst, seeds)
    else:
        groups = backward_bfs(S, src, dst, seeds)
        perm = np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)
    out = np.zeros(S, dtype=bool)
    out[perm] = True
    return out


def level_order(mdp: TabularMDP, R: np.ndarray | None, kernel: str) -> tuple[np.ndarray, np.ndarray]:
    """The sweep order: states that can reach a non-zero reward of R (default mdp.R), by their number
    of steps to it, then by index, computed by ``kernel`` ("numba" or "numpy").
    Shape: -> perm (S',), bounds (L + 1,); level l = perm[bounds[l]:bounds[l+1]].
    """
    S, R = mdp.n_states, mdp.R if R is None else R
    src, dst = transition_edges(mdp, mdp.probs)
    seeds = np.flatnonzero((R != 0).any(1))
    if kernel == "numba":
        perm, counts = _numba().order(S, src, dst, seeds)
    else:
        groups = backward_bfs(S, src, dst, seeds)
        perm = np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)
        counts = np.array([g.size for g in groups], dtype=np.int64)
    return perm, np.concatenate([[0], np.cumsum(counts)])


def levels(mdp: TabularMDP, R: np.ndarray, key: str, choose_kernel: KernelChoice) -> Levels:
    """The model relabelled in ``level_order`` (cached on the MDP under key)."""
    if ("levels", key) in mdp._cache:
        cached: Levels = mdp._cache[("levels", key)]
        return cached
    perm, bounds = level_order(mdp, R, choose_kernel(mdp.n_states))
    pos = np.full(mdp.n_states, perm.size)
    pos[perm] = np.arange(perm.size)
    lv = Levels(perm, bounds, pos[mdp.next_states[perm]], mdp.probs[perm], R[perm])
    mdp._cache[("levels", key)] = lv
    return lv


class Anderson:
    """Anderson mixing (type II) over the last ``memory`` differences, kept in ring buffers.

    step(GV, F), F = GV - V: returns GV - dX @ c, c = argmin |F - dF c|; Shape (n,).
    """

    def __init__(self, n: int, memory: int):
        self.dX, self.dF = np.empty((memory, n)), np.empty((memory, n))
        self.gram, self.memory = np.empty((memory, memory)), memory
        self.k, self.slot = 0, 0
        self.prev: tuple[np.ndarray, np.ndarray] | None = None

    def reset(self) -> None:
        self.k, self.slot, self.prev = 0, 0, None

    def step(self, GV: np.ndarray, F: np.ndarray) -> np.ndarray:
        if self.memory == 0:
            return GV
        if self.prev is not None:
            s = self.slot
            np.subtract(GV, self.prev[0], out=self.dX[s])
            np.subtract(F, self.prev[1], out=self.dF[s])
            self.k, self.slot = min(self.k + 1, self.memory), (s + 1) % self.memory
            row = self.dF[: self.k] @ self.dF[s]  # (k,)
            self.gram[s, : self.k] = self.gram[: self.k, s] = row
        self.prev = (GV, F)
        if self.k == 0:
            return GV
        G = self.gram[: self.k, : self.k]
        try:
            c = np.linalg.solve(G + 1e-14 * np.trace(G) * np.eye(self.k), self.dF[: self.k] @ F)  # (k,)
        except np.linalg.LinAlgError:
            self.reset()
            return GV
        return GV - c @ self.dX[: self.k]


def fixed_point(
    mdp: TabularMDP,
    lv: Levels,
    gamma: float,
    tol: float,
    max_iter: int,
    pi: np.ndarray | None,
    *,
    kernel: str,
    tiny: float,
    on_sweep: Callable[[float], None] | None = None,
) -> FixedPoint:
    """Solve V = max_a (or E_pi) [R + gamma * P V] by accelerated level-ordered Gauss-Seidel.

    lv: the model in level order (``levels``), R included. pi: Shape (S, A), or None for the max.
    kernel: "numba" (compiled, per state; needs ``numba_available()``) or "numpy" (vectorised per level).
    tiny: values of magnitude below it are stored as 0 (no subnormal floats, ~100x slower arithmetic).
    on_sweep: called after each sweep with its largest change (a progress bar).
    Returns V Shape (S,) in state order, the sweeps, the residual of the last synchronous backup.
    """
    n = lv.perm.size
    if n == 0:
        return FixedPoint(np.zeros(mdp.n_states), 0, 0.0)
    V = np.zeros(n + 1)  # V[n] = 0 stands for every state that cannot reach a reward
    pi_l = np.zeros((0, mdp.n_actions)) if pi is None else np.ascontiguousarray(pi[lv.perm])
    compiled = _numba().backup if kernel == "numba" else None
    spans = [(int(a), int(b)) for a, b in zip(lv.bounds[:-1], lv.bounds[1:], strict=True)]

    def backup(lo: int, hi: int, W: np.ndarray) -> np.ndarray:  # the numpy kernel, one level
        q = lv.R[lo:hi] + gamma * np.einsum("sak,sak->sa", lv.probs[lo:hi], W[lv.ns[lo:hi]])  # (hi - lo, A)
        v = q.max(1) if pi is None else np.einsum("sa,sa->s", pi_l[lo:hi], q)  # (hi - lo,)
        return np.where(np.abs(v) < tiny, 0.0, v)

    def sweep(W: np.ndarray) -> np.ndarray:
        W = W.copy()
        if compiled is not None:
            compiled(W, lv.ns, lv.probs, lv.R, pi_l, gamma, tiny, True)
        else:
            for lo, hi in spans:
                W[lo:hi] = backup(lo, hi, W)
        return W

    def residual(W: np.ndarray) -> float:  # max |T W - W| of a synchronous backup
        if compiled is not None:
            return float(compiled(W, lv.ns, lv.probs, lv.R, pi_l, gamma, tiny, False))
        return float(np.abs(backup(0, n, W) - W[:n]).max())

    # gamma = 1 with a max: many fixed points (zero-reward loops); plain sweeps from 0 rise
    # monotonically to the least one, V*, but an extrapolation could overshoot to another.
    accel = Anderson(n + 1, 0 if (gamma == 1 and pi is None) else ANDERSON_MEMORY)
    best = res = np.inf
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007  (it is the sweep count after the loop)
        GV = sweep(V)
        F = GV - V
        r = float(np.abs(F).max())
        if on_sweep is not None:
            on_sweep(r)
        if r <= tol:  # candidate: confirm with a synchronous backup (the textbook test)
            res = residual(GV)
            if res <= tol:
                V = GV
                break
        if r > 2 * best:  # acceleration went astray: restart from the plain sweep
            accel.reset()
        best = min(best, r)
        V = accel.step(GV, F)
        V[np.abs(V) < tiny] = 0.0  # no subnormal floats (~100x slower arithmetic)
        V[n] = 0.0
    out = np.zeros(mdp.n_states)
    out[lv.perm] = V[:n]
    return FixedPoint(out, it, float(res))
