"""Trajectories on any finite MDP: the ``Trajectory`` record, the most likely path of a policy, start states.

    Trajectory(states, actions)                     s_0 .. s_N with a_0 .. a_{N-1}; ``len`` is N
    most_likely_path(mdp, policy, start=None)       the most probable path of a deterministic policy (Eq. 19)
    start_states(mdp, limit, seed)                  rho0's support, or a seeded subset of ``limit`` of it

Nothing here knows grids: the lake's routes (intended moves, the second route) live in ``routes.py``.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

from .mdp import TabularMDP


@dataclass(frozen=True)
class Trajectory:
    """A path s_0 .. s_N with its actions a_0 .. a_{N-1}; ``len`` is N (usually s_N is terminal)."""

    states: tuple[int, ...]
    actions: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "states", tuple(int(s) for s in self.states))
        object.__setattr__(self, "actions", tuple(int(a) for a in self.actions))
        if len(self.states) != len(self.actions) + 1:
            raise ValueError(
                f"a trajectory of {len(self.actions)} actions needs {len(self.actions) + 1} states, "
                f"got {len(self.states)}"
            )

    def __len__(self) -> int:
        return len(self.actions)

    def to_dict(self) -> dict:
        """{"states": [...], "actions": [...]}: the form results.json and trajectory files use."""
        return {"states": list(self.states), "actions": list(self.actions)}


def single_start(mdp: TabularMDP) -> int:
    """The start state of an MDP whose rho0 is one state; ValueError otherwise."""
    support = np.flatnonzero(mdp.rho0 > 0)
    if support.size != 1:
        raise ValueError(f"routes need a single start state, rho0 has {support.size} states with positive probability")
    return int(support[0])


def start_states(mdp: TabularMDP, limit: int | None = None, seed: int = 0) -> tuple[int, ...]:
    """The start states a study draws its trajectories from, in increasing order.

    All of rho0's support when it has at most ``limit`` states (or ``limit`` is None); otherwise
    ``limit`` of them drawn without replacement with probabilities rho0, by
    ``numpy.random.default_rng(seed)``: a seeded, documented subset.
    """
    support = np.flatnonzero(mdp.rho0 > 0)
    if limit is None or support.size <= limit:
        return tuple(int(s) for s in support)
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    p = mdp.rho0[support] / mdp.rho0[support].sum()
    picked = np.random.default_rng(seed).choice(support, size=limit, replace=False, p=p)
    return tuple(int(s) for s in np.sort(picked))


def most_likely_path(mdp: TabularMDP, policy, start: int | None = None, horizon: int | None = None) -> Trajectory:
    """The most probable path of a deterministic policy (Shape (S,) actions) from ``start``, paper Eq. 19.

    The path ends in a goal state, or in any terminal state where no goal can be reached from
    ``start`` at all (a token MDP after a token off the target): it maximises
    prod_i P(s_{i+1} | s_i, policy[s_i]) over such paths (Dijkstra on -log P; such a path is simple).
    Ties (1e-12 in log-probability): fewer steps, then exploration order, so the answer is
    deterministic. On a deterministic MDP it is the path the policy walks. (Greedily following the
    most likely next state can loop: on the slippery 4x4 lake the optimal 'left' at S stays put with
    probability 2/3.) An MDP without terminal states (or none reachable) with ``horizon``: the path
    that follows the most likely successor for ``horizon`` steps. ``start`` defaults to rho0's one state.
    """
    policy = np.asarray(policy)
    if policy.shape != (mdp.n_states,) or not np.issubdtype(policy.dtype, np.integer):
        raise ValueError(
            f"policy must be integer actions of shape ({mdp.n_states},), got {policy.dtype} {policy.shape}"
        )
    start = single_start(mdp) if start is None else int(start)
    target = mdp.goal if mdp.goal.any() and _can_reach(mdp, start, mdp.goal) else mdp.terminal
    found = _dijkstra(mdp, policy, start, target)
    if found is not None:
        return found
    if horizon is not None and not mdp.terminal.any():
        states, actions = [start], []
        for _ in range(horizon):
            s = states[-1]
            a = int(policy[s])
            states.append(int(mdp.next_states[s, a, int(mdp.probs[s, a].argmax())]))
            actions.append(a)
        return Trajectory(tuple(states), tuple(actions))
    what = "a goal" if mdp.goal.any() else "a terminal state"
    raise ValueError(f"the policy never reaches {what} from state {start} on {mdp.name or 'the MDP'!r}")


def _can_reach(mdp: TabularMDP, start: int, target: np.ndarray) -> bool:
    """Whether some sequence of actions reaches a ``target`` state from ``start`` with positive probability."""
    seen, todo = {start}, [start]
    while todo:
        s = todo.pop()
        if target[s]:
            return True
        if mdp.terminal[s]:
            continue
        for t in np.unique(mdp.next_states[s][mdp.probs[s] > 0]).tolist():
            if t not in seen:
                seen.add(t)
                todo.append(t)
    return False


def _dijkstra(mdp: TabularMDP, policy: np.ndarray, start: int, target: np.ndarray) -> Trajectory | None:
    """The most probable path from ``start`` into a ``target`` state under the policy, or None."""
    prev: dict[int, int] = {}
    best, heap, done = {start: (0.0, 0)}, [(0.0, 0, start)], set()
    while heap:
        cost, n, s = heapq.heappop(heap)
        if s in done:
            continue
        done.add(s)
        if target[s]:
            states = [s]
            while states[-1] != start:
                states.append(prev[states[-1]])
            return Trajectory(tuple(states[::-1]), tuple(int(policy[u]) for u in states[:0:-1]))
        if mdp.terminal[s]:
            continue
        for t, p in zip(mdp.next_states[s, policy[s]].tolist(), mdp.probs[s, policy[s]].tolist(), strict=True):
            if p <= 0 or t == s or t in done:
                continue
            key, old = (cost - math.log(p), n + 1), best.get(t, (np.inf, 0))
            if key[0] < old[0] - 1e-12 or (abs(key[0] - old[0]) <= 1e-12 and key[1] < old[1]):
                best[t], prev[t] = key, s
                heapq.heappush(heap, (*key, t))
    return None
