"""Routes on Frozen Lake maps and the study's (chosen, rejected) trajectory pair.

A *route* is a simple path S -> G along the intended moves of its actions (``lakes.intended_next``:
no wall bumps, no holes, G only at the end). For the study (Sec. 5.3 / App. B.2)
``chosen_and_rejected`` returns the optimal policy's most likely path and a route that makes a
sub-optimal move. ``render_policy`` / ``render_path`` draw a policy or a path on the map as arrows.
Imports ``lakes`` (never the reverse); ``solve`` only inside ``chosen_and_rejected``.
"""

from __future__ import annotations

import itertools
from collections import deque

import numpy as np

from .lakes import ACTION_ARROWS, intended_next
from .mdp import TabularMDP
from .trajectories import Trajectory, most_likely_path, single_start


# ------------------------------------------------------------------ routes
def _start(mdp: TabularMDP) -> int:
    return single_start(mdp)


def _graph(mdp: TabularMDP) -> tuple[list[list[int]], list[list[int]], list[bool]]:
    """Intended-move graph between tiles: (successors, predecessors, passable) as Python lists.

    Edges leave non-terminal tiles only, skip wall bumps and holes; passable = non-terminal.
    """
    nxt, S = intended_next(mdp), mdp.n_states
    succ: list[list[int]] = [[] for _ in range(S)]
    pred: list[list[int]] = [[] for _ in range(S)]
    blocked = (mdp.terminal & ~mdp.goal).tolist()
    for u, t in zip(*np.nonzero(~mdp.terminal[:, None] & (nxt != np.arange(S)[:, None])), strict=True):
        t = int(nxt[u, t])
        if not blocked[t]:
            succ[int(u)].append(t)
            pred[t].append(int(u))
    return succ, pred, (~mdp.terminal).tolist()


def _bfs(adj: list[list[int]], sources, ok, stop=None) -> tuple[dict[int, int], list[int] | None]:
    """Breadth-first search from ``sources`` along ``adj`` (neighbours in action order; first
    discovery wins) into states with ok[s] or stop(s). Returns (distances, the path to the first
    state with stop(s), or None)."""
    parent: dict[int, int] = {}
    dist, todo = dict.fromkeys(sources, 0), deque(sources)
    while todo:
        u = todo.popleft()
        if stop is not None and stop(u):
            path = [u]
            while path[-1] in parent:
                path.append(parent[path[-1]])
            return dist, path[::-1]
        for t in adj[u] if (ok[u] or u in sources) else ():
            if t not in dist and (ok[t] or (stop is not None and stop(t))):
                dist[t], parent[t] = dist[u] + 1, u
                todo.append(t)
    return dist, None


def routes(mdp: TabularMDP, max_routes: int = 10_000) -> list[Trajectory]:
    """All simple routes S -> G along intended moves, sorted by length, then states (lexicographic).

    Raises ValueError if there are more than ``max_routes``, or if the depth-first search exceeds
    ``max(10**6, 1000 * max_routes)`` steps (maps with very many simple paths).
    """
    succ, pred, ok = _graph(mdp)
    start, goal = _start(mdp), mdp.goal.tolist()
    useful = _bfs(pred, [int(g) for g in np.flatnonzero(mdp.goal)], ok)[0]  # can still reach G
    found: list[list[int]] = []  # the routes' states
    path, on_path, stack, budget = [start], {start}, [0], max(10**6, 1000 * max_routes)
    while stack:
        budget -= 1
        if budget < 0:
            raise ValueError(
                f"route search exceeded {max(10**6, 1000 * max_routes)} steps; "
                f"map {mdp.name!r} has too many simple paths to list"
            )
        s, k = path[-1], stack[-1]
        if goal[s] or k == len(succ[s]):
            if goal[s]:
                found.append(list(path))
                if len(found) > max_routes:
                    raise ValueError(f"map {mdp.name!r} has more than max_routes={max_routes} simple routes")
            stack.pop()
            on_path.discard(path.pop())
            continue
        stack[-1] += 1
        t = succ[s][k]
        if t not in on_path and t in useful:
            path.append(t)
            on_path.add(t)
            stack.append(0)
    return sorted((_route(mdp, p) for p in found), key=lambda tr: (len(tr), tr.states))


def _route(mdp: TabularMDP, states: list[int]) -> Trajectory:
    """The trajectory of intended moves through ``states`` (lowest action on a tie)."""
    nxt = intended_next(mdp)
    return Trajectory(tuple(states), tuple(int(np.flatnonzero(nxt[s] == t)[0]) for s, t in itertools.pairwise(states)))


def has_two_routes(mdp: TabularMDP) -> bool:
    """True iff the map has exactly two simple routes S -> G and their lengths differ."""
    try:
        found = routes(mdp, max_routes=2)
    except ValueError:
        return False
    return len(found) == 2 and len(found[0]) != len(found[1])


# ------------------------------------------------------ study trajectories
def chosen_and_rejected(mdp: TabularMDP, gamma: float = 0.99) -> tuple[Trajectory, Trajectory]:
    """The study's (chosen, rejected) pair on any lake (Sec. 5.3: optimal vs sub-optimal trajectory).

    chosen: ``most_likely_path`` of the greedy policy on Q* (value iteration, tol 1e-12).
    rejected: ``second_route`` (the rule is there). ValueError if there is none.
    """
    from .solve import greedy_policy, value_iteration

    Q = value_iteration(mdp, gamma, tol=1e-12).Q
    chosen = most_likely_path(mdp, greedy_policy(Q))
    return chosen, second_route(mdp, Q, chosen)


def second_route(mdp: TabularMDP, Q: np.ndarray, chosen: Trajectory) -> Trajectory:
    """The rejected route of a lake: the shortest route S -> G along intended moves that makes a
    *sub-optimal move* and walks other tiles than ``chosen``.

    A sub-optimal move u -> v is an action a with Q*(u, a) below max_a Q*(u, .) by more than the tie
    tolerance, into a non-hole tile. The route is built as P1 + (u -> v) + P2 with P1 a shortest path
    S -> u and P2 a shortest path v -> G avoiding P1 (or P2 first, P1 avoiding it; the shorter wins).
    Moves are tried in order of the bound d(S, u) + 1 + d(v, G), then u, then a, until the bound
    reaches the best length; paths are breadth-first in action order: deterministic.
    On a deterministic map every route with a sub-optimal move is longer than chosen, so rejected
    is strictly worse (on the two-route map: the long route). On a slippery map the optimal policy
    may walk a route with other actions than its intended moves (UP along a top wall, sliding
    right); a route over the same tiles is then skipped, so rejected is a second route of its own
    tiles (on the slippery two-route map: the long route again). Q: Q* of Shape (S, A).
    """
    from .solve import optimal_actions

    suboptimal = ~optimal_actions(Q)  # (S, A): ties decided at the values' own scale (solve's one rule)
    succ, pred, ok = _graph(mdp)
    nxt, start, at_goal = intended_next(mdp), _start(mdp), mdp.goal.tolist().__getitem__
    d_start = _bfs(succ, [start], ok)[0]
    d_goal = _bfs(pred, np.flatnonzero(mdp.goal).tolist(), ok)[0]
    moves = []
    for u, a in zip(*np.nonzero(suboptimal & ~mdp.terminal[:, None]), strict=True):
        u, v = int(u), int(nxt[u, a])
        if v in succ[u] and u in d_start and v in d_goal:
            moves.append((d_start[u] + 1 + d_goal[v], u, int(a), v))

    def shortest(src: int, stop, avoid: set[int]) -> list[int]:
        return _bfs(succ, [src], [x and i not in avoid for i, x in enumerate(ok)], stop)[1] or []

    best: list[int] = []
    same = list(chosen.states)
    for bound, u, _a, v in sorted(moves):
        if best and bound >= len(best) - 1:
            break
        at_u = u.__eq__
        p1 = shortest(start, at_u, {v})
        p2 = shortest(v, at_goal, set(p1)) if p1 else []
        q2 = shortest(v, at_goal, {u})
        q1 = shortest(start, at_u, set(q2)) if q2 else []
        for path in (p1 + p2 if p2 else [], q1 + q2 if q1 else []):
            if path == same:
                continue  # the chosen path's own tiles: not a second route
            if path and len(set(path)) == len(path) and (not best or len(path) < len(best)):
                best = path
    if not best:
        raise ValueError(
            f"map {mdp.name!r} has no route to G that makes a sub-optimal move (the study needs a second, worse route)"
        )
    return _route(mdp, best)


# ---------------------------------------------------------------- rendering
def _render(mdp: TabularMDP, arrows: dict[int, int]) -> str:
    if mdp.shape is None or mdp.desc is None:
        raise ValueError(f"MDP {mdp.name!r} is not a lake map")
    ncol = mdp.shape[1]
    return "\n".join(
        " ".join(
            tile if tile in "HG" else ACTION_ARROWS[arrows[r * ncol + c]] if r * ncol + c in arrows else "·"
            for c, tile in enumerate(row)
        )
        for r, row in enumerate(mdp.desc)
    )


def render_policy(mdp: TabularMDP, policy) -> str:
    """The map with the arrow of policy[s] (Shape (S,) actions) on every frozen tile; H and G as letters."""
    policy = np.asarray(policy)
    if policy.shape != (mdp.n_states,):
        raise ValueError(f"policy must have shape ({mdp.n_states},), got {tuple(policy.shape)}")
    return _render(mdp, {s: int(a) for s, a in enumerate(policy.tolist()) if not mdp.terminal[s]})


def render_path(mdp: TabularMDP, path: Trajectory) -> str:
    """The map with the trajectory's actions as arrows on its states, '·' on other frozen tiles."""
    return _render(mdp, dict(zip(path.states[:-1], path.actions, strict=True)))
