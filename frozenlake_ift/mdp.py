"""A finite MDP (S, A, T, r, rho0) with exact, sparse-friendly transitions.

The paper (Sec. 3) writes alignment as an MDP whose states are prefixes and whose actions are
tokens; on a Frozen-Lake grid the states are tiles and the actions are moves. Both fit here.

Storage. Each (s, a) pair has at most K successors, so the model is kept as two padded arrays

    next_states[s, a, k]  int64    successor k of (s, a)           Shape (S, A, K)
    probs[s, a, k]        float64  its probability (0 on padding)  Shape (S, A, K)

Memory and time grow with S * A * K (the number of non-zero transitions), never with S^2:
a 1024x1024 lake (10^6 states, K = 1 or 3) fits in a few hundred MB.

Arrays and names follow the house convention: P[s, a, s'], R[s, a], V[s], Q[s, a], pi[s, a],
``d`` a distribution over states, Shape (S,).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

ROW_SUM_TOL = 1e-9
Indices = Sequence[int] | np.ndarray  # states or actions along a path: ints or an int array, Shape (N,)


def _check_shape(name: str, array: np.ndarray, expected: tuple[int, ...]) -> None:
    if tuple(array.shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}, got {tuple(array.shape)}")


@dataclass(frozen=True, eq=False)
class TabularMDP:
    """Finite MDP with padded sparse transitions.

    Attributes:
        next_states: successor states, Shape (S, A, K), int64.
        probs: successor probabilities, Shape (S, A, K); each (s, a) row sums to 1.
        R: expected immediate reward r(s, a), Shape (S, A).
        terminal: absorbing states (holes, goal), Shape (S,), bool. A terminal state moves to
            itself with probability 1 under every action and earns no reward.
        rho0: initial state distribution, Shape (S,).
        goal: terminal states that count as success (the lake's G), Shape (S,), bool; default none.
        shape: (nrow, ncol) when the states form a grid, else None.
        desc: the map's rows (e.g. ``("SFFF", "FHFH", ...)``) when built from a lake, else None.
        name: a human-readable label.
        rewards: the reward of each successor, r(s, a, s'_k), Shape (S, A, K), when it depends on the
            successor (a lake pays on entering G); default None: every successor earns R[s, a]. When
            given, R must be its expectation, R[s, a] = sum_k probs[s, a, k] rewards[s, a, k].
        state_names, action_names: labels for tables and figures (e.g. a token prefix, "arm 2"), or None.
    """

    next_states: np.ndarray
    probs: np.ndarray
    R: np.ndarray
    terminal: np.ndarray
    rho0: np.ndarray
    goal: np.ndarray = None  # type: ignore[assignment]  # None = no goal; __post_init__ stores a bool array
    shape: tuple[int, int] | None = None
    desc: tuple[str, ...] | None = None
    name: str = ""
    rewards: np.ndarray | None = None
    state_names: tuple[str, ...] | None = None
    action_names: tuple[str, ...] | None = None
    _cache: dict = field(default_factory=dict, repr=False, compare=False, init=False)  # not shared by replace()

    def __post_init__(self) -> None:
        ns = np.asarray(self.next_states)
        pr = np.asarray(self.probs, dtype=np.float64)
        if ns.ndim != 3:
            raise ValueError(f"next_states must have shape (S, A, K), got {tuple(ns.shape)}")
        S, A, K = ns.shape
        _check_shape("probs", pr, (S, A, K))
        R = np.asarray(self.R, dtype=np.float64)
        _check_shape("R", R, (S, A))
        terminal = np.asarray(self.terminal, dtype=bool)
        _check_shape("terminal", terminal, (S,))
        rho0 = np.asarray(self.rho0, dtype=np.float64)
        _check_shape("rho0", rho0, (S,))
        if not np.issubdtype(ns.dtype, np.integer):
            raise ValueError(f"next_states must be integers, got dtype {ns.dtype}")
        if S == 0 or A == 0 or K == 0:
            raise ValueError(f"an MDP needs at least one state, action and successor, got (S, A, K) = {(S, A, K)}")
        for label, arr in (("probs", pr), ("R", R), ("rho0", rho0)):
            if not np.isfinite(arr).all():
                raise ValueError(f"{label} must be finite, got NaN or inf")
        if ns.min() < 0 or ns.max() >= S:
            raise ValueError(f"next_states must lie in [0, {S - 1}], got range [{ns.min()}, {ns.max()}]")
        if pr.min() < 0:
            raise ValueError(f"probs must be non-negative, got minimum {float(pr.min())}")
        row_err = np.abs(pr.sum(-1) - 1.0)
        if row_err.max() > ROW_SUM_TOL:
            s, a = np.unravel_index(int(row_err.argmax()), row_err.shape)
            raise ValueError(
                f"transition probabilities of (s={s}, a={a}) sum to {float(pr[s, a].sum())!r}, "
                f"must sum to 1 within {ROW_SUM_TOL}"
            )
        if abs(rho0.sum() - 1.0) > ROW_SUM_TOL or rho0.min() < 0:
            raise ValueError(f"rho0 must be a distribution (non-negative, sums to 1), got sum {float(rho0.sum())!r}")
        term_idx = np.flatnonzero(terminal)
        if term_idx.size:
            stay = np.where(ns[term_idx] == term_idx[:, None, None], pr[term_idx], 0.0).sum(-1)  # (Sterm, A)
            if np.abs(stay - 1.0).max() > ROW_SUM_TOL:
                bad = int(term_idx[np.abs(stay - 1.0).max(-1).argmax()])
                raise ValueError(f"terminal state {bad} is not absorbing: it must move to itself with probability 1")
            if np.abs(R[term_idx]).max() > 0:
                bad = int(term_idx[np.abs(R[term_idx]).max(-1).argmax()])
                raise ValueError(f"terminal state {bad} must earn reward 0, got {R[bad].tolist()}")
        object.__setattr__(self, "next_states", ns.astype(np.int64, copy=False))
        object.__setattr__(self, "probs", pr)
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "terminal", terminal)
        object.__setattr__(self, "rho0", rho0)
        goal = np.zeros(S, dtype=bool) if self.goal is None else np.asarray(self.goal, dtype=bool)
        _check_shape("goal", goal, (S,))
        if (goal & ~terminal).any():
            raise ValueError(
                f"goal states must be terminal, got non-terminal goal {int(np.flatnonzero(goal & ~terminal)[0])}"
            )
        object.__setattr__(self, "goal", goal)
        if self.desc is not None:
            object.__setattr__(self, "desc", tuple(self.desc))
        if self.rewards is not None:
            rw = np.asarray(self.rewards, dtype=np.float64)
            _check_shape("rewards", rw, (S, A, K))
            if not np.isfinite(rw).all():
                raise ValueError("rewards must be finite, got NaN or inf")
            gap = np.abs((pr * rw).sum(-1) - R)
            if gap.max() > ROW_SUM_TOL * max(1.0, float(np.abs(R).max())):
                s, a = np.unravel_index(int(gap.argmax()), gap.shape)
                raise ValueError(
                    f"R[{s}, {a}] = {R[s, a]!r} is not the expected successor reward "
                    f"{float((pr[s, a] * rw[s, a]).sum())!r}: R must be sum_k probs * rewards"
                )
            object.__setattr__(self, "rewards", rw)
        for label, names, n in (("state_names", self.state_names, S), ("action_names", self.action_names, A)):
            if names is not None:
                names = tuple(str(x) for x in names)
                if len(names) != n:
                    raise ValueError(f"{label} must hold {n} names, got {len(names)}")
                object.__setattr__(self, label, names)

    # ------------------------------------------------------------------ sizes
    @property
    def n_states(self) -> int:
        return int(self.next_states.shape[0])

    @property
    def n_actions(self) -> int:
        return int(self.next_states.shape[1])

    @property
    def nnz(self) -> int:
        """Number of stored (non-padding) transitions."""
        return int(np.count_nonzero(self.probs))

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_dense(cls, P: np.ndarray, R: np.ndarray, terminal: np.ndarray, rho0: np.ndarray, **kw) -> TabularMDP:
        """Build from a dense P[s, a, s'] (Shape (S, A, S)); for small MDPs and tests."""
        P = np.asarray(P, dtype=np.float64)
        if P.ndim != 3 or P.shape[0] != P.shape[2]:
            raise ValueError(f"P must have shape (S, A, S), got {tuple(P.shape)}")
        if not np.isfinite(P).all() or P.min() < 0:  # (P > 0) below would silently drop NaN / negatives
            raise ValueError("P must hold finite, non-negative probabilities")
        K = max(int((P > 0).sum(-1).max()), 1)
        order = np.argsort(~(P > 0), axis=-1, kind="stable")[..., :K]  # (S, A, K) non-zeros first
        probs = np.take_along_axis(P, order, axis=-1)  # (S, A, K)
        order = np.where(probs > 0, order, np.arange(P.shape[0])[:, None, None])  # pad with self-loops
        return cls(order, probs, R, terminal, rho0, **kw)

    def dense_P(self) -> np.ndarray:
        """P[s, a, s'] as a dense array, Shape (S, A, S). Costs S^2 * A memory: small MDPs only."""
        S, A, _ = self.next_states.shape
        P = np.zeros((S, A, S))
        s_idx, a_idx = np.meshgrid(np.arange(S), np.arange(A), indexing="ij")
        np.add.at(P, (s_idx[..., None], a_idx[..., None], self.next_states), self.probs)
        return P

    def dense_rewards(self) -> np.ndarray:
        """r(s, a, s') as a dense array, Shape (S, A, S): the reward of each transition (0 where P is 0).

        Without per-successor ``rewards`` every successor of (s, a) earns R[s, a]. Small MDPs only.
        """
        S, A, _ = self.next_states.shape
        per = np.broadcast_to(self.R[..., None], self.probs.shape) if self.rewards is None else self.rewards
        out = np.zeros((S, A, S))
        s_idx, a_idx = np.meshgrid(np.arange(S), np.arange(A), indexing="ij")
        keep = self.probs > 0  # (S, A, K): successors are unique per (s, a), padding has probability 0
        s3, a3 = np.broadcast_to(s_idx[..., None], keep.shape), np.broadcast_to(a_idx[..., None], keep.shape)
        out[s3[keep], a3[keep], self.next_states[keep]] = per[keep]
        return out

    def with_absorbing(self, states, name: str | None = None) -> TabularMDP:
        """The same MDP with ``states`` made terminal: absorbing, reward 0, and not goals.

        What entering them pays is unchanged (on a lake: the tiles turned into holes). Shape: states (n,) ints.
        """
        idx = np.unique(np.asarray(states, dtype=np.int64))
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_states):
            raise ValueError(f"states must lie in [0, {self.n_states - 1}], got {idx.tolist()}")
        ns, pr, R = self.next_states.copy(), self.probs.copy(), self.R.copy()
        ns[idx] = idx[:, None, None]
        pr[idx] = 0.0
        pr[idx, :, 0] = 1.0
        R[idx] = 0.0
        rewards = None
        if self.rewards is not None:
            rewards = self.rewards.copy()
            rewards[idx] = 0.0
        terminal, goal = self.terminal.copy(), self.goal.copy()
        terminal[idx], goal[idx] = True, False
        return TabularMDP(
            ns,
            pr,
            R,
            terminal,
            self.rho0,
            goal=goal,
            shape=self.shape,
            name=self.name if name is None else name,
            rewards=rewards,
            state_names=self.state_names,
            action_names=self.action_names,
        )

    # ------------------------------------------------------------- operations
    def check_policy(self, pi: np.ndarray, name: str = "pi") -> np.ndarray:
        """Validate a stochastic policy pi[s, a] (Shape (S, A), rows sum to 1) and return it as float64."""
        pi = np.asarray(pi, dtype=np.float64)
        _check_shape(name, pi, (self.n_states, self.n_actions))
        if not np.isfinite(pi).all() or pi.min() < -1e-12 or np.abs(pi.sum(-1) - 1.0).max() > 1e-6:
            raise ValueError(f"{name} must hold a distribution over actions in every row (non-negative, sums to 1)")
        return pi

    def expect(self, V: np.ndarray) -> np.ndarray:
        """Expected next-state value E[V(s') | s, a], Shape (S, A), for V of Shape (S,) or (S, B) -> (S, A, B)."""
        return np.einsum("sak,sak...->sa...", self.probs, V[self.next_states])

    def q_from_v(self, V: np.ndarray, gamma: float) -> np.ndarray:
        """One Bellman backup Q[s, a] = R[s, a] + gamma * E[V(s')], Shape (S, A)."""
        return self.R + gamma * self.expect(V)

    def push(self, d: np.ndarray, pi: np.ndarray) -> np.ndarray:
        """One step of the state distribution: d'[s'] = sum_{s,a} d[s] pi[s, a] P[s, a, s'].

        Shape: d (S,), pi (S, A) -> (S,). This is d @ T_pi without forming T_pi (paper Eq. 2).
        """
        w = d[:, None, None] * pi[:, :, None] * self.probs  # (S, A, K)
        return np.bincount(self.next_states.ravel(), weights=w.ravel(), minlength=self.n_states)

    def state_transition(self, pi: np.ndarray) -> np.ndarray:
        """The state-state matrix T_pi[s, s'] = sum_a pi(a | s) P(s' | s, a) (paper Eq. 2).

        Shape: pi (S, A) -> (S, S), dense; each row sums to 1. For large S use ``push``.
        """
        pi = self.check_policy(pi)
        S = self.n_states
        T = np.zeros((S, S))
        w = pi[:, :, None] * self.probs  # (S, A, K)
        rows = np.broadcast_to(np.arange(S)[:, None, None], w.shape)
        np.add.at(T, (rows, self.next_states), w)
        return T

    def preference(self, pi: np.ndarray, n_steps: int, d0: np.ndarray | None = None) -> np.ndarray:
        """The preference of pi from rho0: the distribution over states at steps 0..n (paper Eq. 3-6).

        Row i is rho0 @ T_pi^i, the probability that pi has reached each state after i transitions.
        Shape: pi (S, A) -> (n_steps + 1, S); every row sums to 1.
        """
        if n_steps < 0:
            raise ValueError(f"n_steps must be >= 0, got {n_steps}")
        pi = self.check_policy(pi)
        d = self.rho0 if d0 is None else np.asarray(d0, dtype=np.float64)
        out = np.empty((n_steps + 1, self.n_states))
        out[0] = d
        for i in range(n_steps):
            out[i + 1] = self.push(out[i], pi)
        return out

    def occupancy(
        self,
        pi: np.ndarray,
        gamma: float | None = None,
        horizon: int | None = None,
        tol: float = 1e-12,
        max_iter: int = 1_000_000,
    ) -> np.ndarray:
        """State occupancy of pi from rho0, Shape (S,).

        Finite horizon H: sum_{t<H} Pr(s_t = s) (expected visits in H steps).
        Discounted: (1 - gamma) * sum_t gamma^t Pr(s_t = s), a distribution; needs gamma < 1.
        """
        pi = self.check_policy(pi)
        if horizon is not None:
            if horizon < 0:
                raise ValueError(f"horizon must be >= 0, got {horizon}")
            return self.preference(pi, max(horizon - 1, 0))[:horizon].sum(0)
        if gamma is None or not 0 < gamma < 1:
            raise ValueError(f"the discounted occupancy needs gamma in (0, 1), got {gamma}")
        d, total, weight = self.rho0.copy(), np.zeros(self.n_states), 1.0
        for _ in range(max_iter):
            total += weight * d
            weight *= gamma
            if weight < tol:
                break
            d = self.push(d, pi)
        return (1 - gamma) * total

    def path_probability(self, states: Indices, pi: np.ndarray, actions: Indices | None = None) -> float:
        """Probability that pi, started from rho0, walks exactly this path (paper Eq. 19).

        Without actions: rho0[s_0] * prod_i T_pi[s_{i-1}, s_i].
        With actions (len = len(states) - 1): rho0[s_0] * prod_i pi[s_{i-1}, a_i] P[s_{i-1}, a_i, s_i].
        """
        pi = self.check_policy(pi)
        states = [int(s) for s in states]
        if not states:
            raise ValueError("a path needs at least one state")
        p = float(self.rho0[states[0]])
        if actions is not None and len(actions) != len(states) - 1:
            raise ValueError(f"a path of {len(states)} states needs {len(states) - 1} actions, got {len(actions)}")
        for i in range(1, len(states)):
            s, s_next = states[i - 1], states[i]
            hit = self.next_states[s] == s_next  # (A, K)
            step = np.where(hit, self.probs[s], 0.0).sum(-1)  # (A,) P(s_next | s, a)
            p *= float(pi[s, actions[i - 1]] * step[actions[i - 1]]) if actions is not None else float(pi[s] @ step)
        return p

    def transition_prob(self, s: int, a: int, s_next: int) -> float:
        """P(s_next | s, a)."""
        return float(np.where(self.next_states[s, a] == s_next, self.probs[s, a], 0.0).sum())

    def next_state_distribution(self, s: np.ndarray, a: np.ndarray) -> np.ndarray:
        """Distribution of the next state for each pair (s_b, a_b): Shape s (B,), a (B,) -> (B, S)."""
        s, a = np.asarray(s, dtype=np.int64), np.asarray(a, dtype=np.int64)
        if s.ndim != 1 or s.shape != a.shape:
            raise ValueError(f"s and a must both have shape (B,), got {tuple(s.shape)} and {tuple(a.shape)}")
        out = np.zeros((s.size, self.n_states))
        np.add.at(out, (np.arange(s.size)[:, None], self.next_states[s, a]), self.probs[s, a])
        return out
