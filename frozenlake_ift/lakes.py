"""Frozen Lake maps as exact tabular MDPs, the two-route study map, routes, the study's pair.

The only module that reads gymnasium (imported inside functions). A map is a tuple of rows over
S (start), F (frozen), H (hole), G (goal); state = row * ncol + col; actions 0 = left, 1 = down,
2 = right, 3 = up (gymnasium's order). ``make_lake`` reads gymnasium's ``env.unwrapped.P`` up to
``GYM_BUILD_MAX_STATES`` states, above that an equivalent vectorised numpy builder (tested equal).

A *route* is a simple path S -> G along the intended moves of its actions (no wall bumps, no
holes, G only at the end). For the study (Sec. 5.3 / App. B.2) ``chosen_and_rejected`` returns
the optimal policy's most likely path and a route that makes a sub-optimal move.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .mdp import TabularMDP

ACTION_NAMES = ("left", "down", "right", "up")
ACTION_ARROWS = ("←", "↓", "→", "↑")
TILES = {"S": "start", "F": "frozen", "H": "hole", "G": "goal"}
MAP_NAMES = ("4x4", "8x8", "two-route", "random:SIZE:SEED")
GYM_BUILD_MAX_STATES = 4096
_DELTAS = ((0, -1), (1, 0), (0, 1), (-1, 0))  # (drow, dcol) of left, down, right, up

# The study map: deterministic; its frozen tiles are the border ring of a 5x5 grid, an induced
# cycle through S and G, so there are exactly two simple routes S -> G:
#   chosen   (clockwise):         R R R R D D          -> 6 moves
#   rejected (counter-clockwise): D D D D R R R R U U  -> 10 moves
TWO_ROUTE_MAP: tuple[str, ...] = (
    "SFFFF",
    "FHHHF",
    "FHHHG",
    "FHHHF",
    "FFFFF",
)


# ------------------------------------------------------------------ maps
def validate_desc(desc: Sequence[str]) -> tuple[str, ...]:
    """Check a map and return it as a tuple of row strings.

    Raises ValueError naming the problem for: no rows, rows of unequal length, unknown letters,
    no S or several S, no G, and a G that cannot be reached from S without crossing a hole.
    """
    if isinstance(desc, str) or not isinstance(desc, Sequence):
        raise ValueError(f"a map must be a sequence of row strings such as ['SF', 'FG'], got {desc!r}")
    rows = tuple(str(r) for r in desc)
    if not rows or not rows[0]:
        raise ValueError("a map must have at least one row of at least one tile")
    lengths = [len(r) for r in rows]
    if len(set(lengths)) != 1:
        bad = next(i for i, n in enumerate(lengths) if n != lengths[0])
        raise ValueError(f"map rows must all have the same length, got lengths {lengths} "
                         f"(row {bad} has {lengths[bad]} tiles, row 0 has {lengths[0]})")
    for i, row in enumerate(rows):
        for j, ch in enumerate(row):
            if ch not in TILES:
                allowed = ", ".join(f"{k} ({v})" for k, v in TILES.items())
                raise ValueError(f"unknown tile letter {ch!r} at row {i}, column {j}; allowed letters are {allowed}")
    starts = [(i, j) for i, row in enumerate(rows) for j, ch in enumerate(row) if ch == "S"]
    if len(starts) != 1:
        found = "none" if not starts else f"{len(starts)} at {starts}"
        raise ValueError(f"a map must contain exactly one start tile 'S', found {found}")
    if not any("G" in row for row in rows):
        raise ValueError("a map must contain at least one goal tile 'G', found none")
    flat, start = "".join(rows), "".join(rows).index("S")
    nxt, seen, todo = _moves(len(rows), len(rows[0])).tolist(), {start}, [start]
    while todo:  # depth-first flood fill from S through non-hole tiles
        u = todo.pop()
        if flat[u] == "G":
            return rows
        for t in nxt[u]:
            if t not in seen and flat[t] != "H":
                seen.add(t)
                todo.append(t)
    raise ValueError("the goal 'G' is unreachable from the start 'S': every path is blocked by holes 'H'")


def _parse_map(spec) -> tuple[tuple[str, ...], str]:
    """Map name or rows -> (validated rows, name)."""
    if not isinstance(spec, str):
        desc = validate_desc(spec)
        return desc, f"custom-{len(desc)}x{len(desc[0])}"
    if spec in ("4x4", "8x8"):
        from gymnasium.envs.toy_text.frozen_lake import MAPS
        return validate_desc(MAPS[spec]), spec
    if spec == "two-route":
        return TWO_ROUTE_MAP, spec
    if spec.startswith("random:"):
        parts = spec.split(":")
        try:
            size, seed, p = int(parts[1]), int(parts[2]), float(parts[3]) if len(parts) == 4 else 0.8
            ok = len(parts) in (3, 4) and size >= 2 and seed >= 0 and 0 < p <= 1
        except (ValueError, IndexError):
            ok = False
        if not ok:
            raise ValueError(f"random maps are written 'random:SIZE:SEED' or 'random:SIZE:SEED:P' with integers "
                             f"SIZE >= 2, SEED >= 0 and a frozen-tile probability P in (0, 1], got {spec!r}")
        from gymnasium.envs.toy_text.frozen_lake import generate_random_map
        return validate_desc(generate_random_map(size=size, p=p, seed=seed)), spec
    if "," in spec or (spec and set(spec) <= set(TILES)):  # rows, e.g. "SFF,FHF,FFG" or one row "SFG"
        desc = validate_desc(spec.split(","))
        return desc, f"custom-{len(desc)}x{len(desc[0])}"
    raise ValueError(f"unknown map {spec!r}; allowed: '4x4', '8x8', 'two-route', 'random:SIZE:SEED[:P]', "
                     f"or comma-separated rows such as 'SFF,FHF,FFG'")


def make_lake(map_name_or_desc, slippery: bool = False, success_rate: float | None = None, *,
              builder: str = "auto") -> TabularMDP:
    """Build the exact MDP of a Frozen Lake map.

    Args:
        map_name_or_desc: "4x4", "8x8", "two-route", "random:SIZE:SEED" (gymnasium's
            ``generate_random_map(SIZE, p=0.8, seed=SEED)``; "random:SIZE:SEED:P" sets p),
            rows "SFF,FHF,FFG" (or one row "SFG"), or a list of row strings.
        slippery: gymnasium's ``is_slippery``: the move goes to a-1, a, a+1 (mod 4).
        success_rate: probability of the intended move when slippery (default 1/3, the slips
            share the rest); ignored when not slippery, as in gymnasium.
        builder: "gym", "numpy" or "auto" (gym up to ``GYM_BUILD_MAX_STATES`` states).
    Reward 1 for entering G, else 0; G and H are absorbing; rho0 is the S tile.
    """
    desc, name = _parse_map(map_name_or_desc)
    if success_rate is not None and not (isinstance(success_rate, (int, float)) and 0 <= success_rate <= 1):
        raise ValueError(f"success_rate must be a probability in [0, 1], got {success_rate!r}")
    if builder not in ("auto", "gym", "numpy"):
        raise ValueError(f"builder must be 'auto', 'gym' or 'numpy', got {builder!r}")
    rate = 1.0 / 3.0 if success_rate is None else float(success_rate)
    use_gym = builder == "gym" or (builder == "auto" and len(desc) * len(desc[0]) <= GYM_BUILD_MAX_STATES)
    ns, pr, R = (_gym_model if use_gym else _numpy_model)(desc, bool(slippery), rate)
    tiles = np.frombuffer("".join(desc).encode("ascii"), dtype="S1")
    if slippery:
        name += "-slippery" if success_rate is None else f"-slippery({success_rate:g})"
    return TabularMDP(ns, pr, R, terminal=np.isin(tiles, [b"G", b"H"]), rho0=(tiles == b"S").astype(np.float64),
                      goal=tiles == b"G", shape=(len(desc), len(desc[0])), desc=desc, name=name)


def _moves(nrow: int, ncol: int) -> np.ndarray:
    """Tile reached by each intended move (a wall keeps the tile), Shape (nrow * ncol, 4)."""
    r, c = np.divmod(np.arange(nrow * ncol, dtype=np.int64), ncol)
    return np.stack([np.clip(r + dr, 0, nrow - 1) * ncol + np.clip(c + dc, 0, ncol - 1) for dr, dc in _DELTAS], 1)


def _gym_model(desc, slippery, rate):
    """(next_states, probs, R) from gymnasium's ``env.unwrapped.P``; duplicates at walls summed.

    Successors keep their order of first appearance; zero-probability entries are dropped;
    padding repeats the state itself with probability 0.
    """
    import gymnasium as gym
    # rows as lists of letters: gymnasium's np.asarray(desc, "c") drops the column axis of 1-wide maps
    env = gym.make("FrozenLake-v1", desc=[list(row) for row in desc], is_slippery=slippery, success_rate=rate)
    P = env.unwrapped.P
    S, A = len(P), len(P[0])
    rows, R = [], np.zeros((S, A))
    for s in range(S):
        for a in range(A):
            acc: dict[int, float] = {}
            for p, t, r, _done in P[s][a]:
                acc[int(t)] = acc.get(int(t), 0.0) + float(p)
                R[s, a] += float(p) * float(r)
            rows.append([(t, p) for t, p in acc.items() if p > 0])
    env.close()
    K = max(len(r) for r in rows)
    ns, pr = np.repeat(np.arange(S, dtype=np.int64), A * K).reshape(S, A, K), np.zeros((S, A, K))
    for i, row in enumerate(rows):
        for k, (t, p) in enumerate(row):
            ns[i // A, i % A, k], pr[i // A, i % A, k] = t, p
    return ns, pr, R


def _numpy_model(desc, slippery, rate):
    """Vectorised equivalent of ``_gym_model``: same arrays, O(S) numpy work."""
    S, step = len(desc) * len(desc[0]), _moves(len(desc), len(desc[0]))  # (S, 4)
    tiles = np.frombuffer("".join(desc).encode("ascii"), dtype="S1")
    if slippery:
        dirs, p = (np.arange(4)[:, None] + np.array([-1, 0, 1])) % 4, [(1 - rate) / 2, rate, (1 - rate) / 2]
    else:
        dirs, p = np.arange(4)[:, None], [1.0]
    ns = step[:, dirs]  # (S, A, K)
    pr = np.broadcast_to(np.array(p), ns.shape).copy()
    term = np.isin(tiles, [b"G", b"H"])
    ns[term] = np.flatnonzero(term)[:, None, None]
    pr[term] = 0.0
    pr[term, :, 0] = 1.0
    for k in range(1, ns.shape[2]):  # sum duplicates into their first appearance
        for j in range(k):
            dup = ns[..., k] == ns[..., j]
            if j > 0:  # already summed into an earlier equal entry
                dup &= ns[..., k] != ns[..., 0]
            pr[..., j] += np.where(dup, pr[..., k], 0.0)
            pr[..., k] = np.where(dup, 0.0, pr[..., k])
    order = np.argsort(pr <= 0, axis=-1, kind="stable")  # non-zeros first, in order of appearance
    ns, pr = np.take_along_axis(ns, order, -1), np.take_along_axis(pr, order, -1)
    K = max(int((pr > 0).sum(-1).max()), 1)
    ns, pr = ns[..., :K], np.ascontiguousarray(pr[..., :K])
    ns = np.where(pr > 0, ns, np.arange(S)[:, None, None])
    R = np.where(term[:, None], 0.0, (pr * (tiles == b"G")[ns]).sum(-1))
    return ns, pr, R


# ------------------------------------------------------------- geometry
@dataclass(frozen=True)
class Trajectory:
    """A path s_0 .. s_N (s_N terminal) with its actions a_0 .. a_{N-1}; ``len`` is N."""

    states: tuple[int, ...]
    actions: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "states", tuple(int(s) for s in self.states))
        object.__setattr__(self, "actions", tuple(int(a) for a in self.actions))
        if len(self.states) != len(self.actions) + 1:
            raise ValueError(f"a trajectory of {len(self.actions)} actions needs {len(self.actions) + 1} states, "
                             f"got {len(self.states)}")

    def __len__(self) -> int:
        return len(self.actions)


def state_to_rc(mdp: TabularMDP, s: int) -> tuple[int, int]:
    """(row, col) of state s on a grid MDP."""
    if mdp.shape is None:
        raise ValueError(f"MDP {mdp.name!r} has no grid shape")
    if not 0 <= int(s) < mdp.n_states:
        raise ValueError(f"state must lie in [0, {mdp.n_states - 1}], got {s}")
    return divmod(int(s), mdp.shape[1])


def intended_next(mdp: TabularMDP) -> np.ndarray:
    """Successor of each action's intended move, Shape (S, A); terminal states map to themselves.

    On a grid MDP this is the move's geometry (a wall keeps the state); otherwise the most likely
    successor (the first listed on ties).
    """
    S = mdp.n_states
    if mdp.shape is not None and mdp.n_actions == 4 and mdp.shape[0] * mdp.shape[1] == S:
        nxt = _moves(*mdp.shape)
    else:
        nxt = np.take_along_axis(mdp.next_states, mdp.probs.argmax(-1)[..., None], -1)[..., 0]
    return np.where(mdp.terminal[:, None], np.arange(S)[:, None], nxt)


def _start(mdp: TabularMDP) -> int:
    support = np.flatnonzero(mdp.rho0 > 0)
    if support.size != 1:
        raise ValueError(f"routes need a single start state, rho0 has {support.size} states with positive probability")
    return int(support[0])


def _graph(mdp: TabularMDP) -> tuple[list[list[int]], list[list[int]], list[bool]]:
    """Intended-move graph between tiles: (successors, predecessors, passable) as Python lists.

    Edges leave non-terminal tiles only, skip wall bumps and holes; passable = non-terminal.
    """
    nxt, S = intended_next(mdp), mdp.n_states
    succ: list[list[int]] = [[] for _ in range(S)]
    pred: list[list[int]] = [[] for _ in range(S)]
    blocked = (mdp.terminal & ~mdp.goal).tolist()
    for u, t in zip(*np.nonzero(~mdp.terminal[:, None] & (nxt != np.arange(S)[:, None]))):
        t = int(nxt[u, t])
        if not blocked[t]:
            succ[int(u)].append(t)
            pred[t].append(int(u))
    return succ, pred, (~mdp.terminal).tolist()


def _bfs(adj: list[list[int]], sources, ok, stop=None) -> tuple[dict[int, int], list[int] | None]:
    """Breadth-first search from ``sources`` along ``adj`` (neighbours in action order; first
    discovery wins) into states with ok[s] or stop(s). Returns (distances, the path to the first
    state with stop(s), or None)."""
    dist, parent, todo = {s: 0 for s in sources}, {}, deque(sources)
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
    found: list[Trajectory] = []
    path, on_path, stack, budget = [start], {start}, [0], max(10**6, 1000 * max_routes)
    while stack:
        budget -= 1
        if budget < 0:
            raise ValueError(f"route search exceeded {max(10**6, 1000 * max_routes)} steps; "
                             f"map {mdp.name!r} has too many simple paths to list")
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
    return Trajectory(tuple(states), tuple(int(np.flatnonzero(nxt[s] == t)[0]) for s, t in zip(states[:-1], states[1:])))


def has_two_routes(mdp: TabularMDP) -> bool:
    """True iff the map has exactly two simple routes S -> G and their lengths differ."""
    try:
        found = routes(mdp, max_routes=2)
    except ValueError:
        return False
    return len(found) == 2 and len(found[0]) != len(found[1])


# ------------------------------------------------------ study trajectories
def most_likely_path(mdp: TabularMDP, policy) -> Trajectory:
    """The most probable path S -> G of a deterministic policy (Shape (S,) actions), paper Eq. 19.

    Maximises prod_i P(s_{i+1} | s_i, policy[s_i]) over paths ending in a goal (Dijkstra on -log P;
    such a path is simple). Ties (1e-12 in log-probability): fewer steps, then exploration order,
    so the answer is deterministic. On a deterministic map it is the path the policy walks.
    (Greedily following the most likely next state can loop: on the slippery 4x4 map the optimal
    'left' at S stays put with probability 2/3.)
    """
    policy = np.asarray(policy)
    if policy.shape != (mdp.n_states,) or not np.issubdtype(policy.dtype, np.integer):
        raise ValueError(f"policy must be integer actions of shape ({mdp.n_states},), got {policy.dtype} {policy.shape}")
    start = _start(mdp)
    best, prev, heap, done = {start: (0.0, 0)}, {}, [(0.0, 0, start)], set()
    while heap:
        cost, n, s = heapq.heappop(heap)
        if s in done:
            continue
        done.add(s)
        if mdp.goal[s]:
            states = [s]
            while states[-1] != start:
                states.append(prev[states[-1]])
            return Trajectory(tuple(states[::-1]), tuple(int(policy[u]) for u in states[:0:-1]))
        if mdp.terminal[s]:
            continue
        for t, p in zip(mdp.next_states[s, policy[s]].tolist(), mdp.probs[s, policy[s]].tolist()):
            if p <= 0 or t == s or t in done:
                continue
            key, old = (cost - math.log(p), n + 1), best.get(t, (np.inf, 0))
            if key[0] < old[0] - 1e-12 or (abs(key[0] - old[0]) <= 1e-12 and key[1] < old[1]):
                best[t], prev[t] = key, s
                heapq.heappush(heap, (*key, t))
    raise ValueError(f"the policy never reaches a goal from the start on map {mdp.name!r}")


def chosen_and_rejected(mdp: TabularMDP, gamma: float = 0.99) -> tuple[Trajectory, Trajectory]:
    """The study's (chosen, rejected) pair on any lake (Sec. 5.3: optimal vs sub-optimal trajectory).

    chosen: ``most_likely_path`` of the greedy policy on Q* (value iteration, tol 1e-12).
    rejected (the rule): the shortest route S -> G along intended moves that makes a
    *sub-optimal move* u -> v (action a with Q*(u, a) below max_a Q*(u, .) by more than the tie
    tolerance, into a non-hole tile), built as P1 + (u -> v) + P2 with P1 a shortest path S -> u
    and P2 a shortest path v -> G avoiding P1 (or P2 first, P1 avoiding it; the shorter wins).
    Moves are tried in order of the bound d(S, u) + 1 + d(v, G), then u, then a, until the bound
    reaches the best length; paths are breadth-first in action order: deterministic.
    On a deterministic map every route with a sub-optimal move is longer than chosen, so rejected
    is strictly worse (on the two-route map: the long route). On a slippery map it is typically
    a route that risks holes the optimal policy avoids. ValueError if there is none.
    """
    from .solve import TIE_ATOL, greedy_policy, value_iteration

    sol = value_iteration(mdp, gamma, tol=1e-12)
    chosen = most_likely_path(mdp, greedy_policy(sol.Q))
    top = sol.Q.max(1, keepdims=True)
    suboptimal = sol.Q < top - TIE_ATOL * np.maximum(1.0, np.abs(top))  # (S, A)
    succ, pred, ok = _graph(mdp)
    nxt, start, at_goal = intended_next(mdp), _start(mdp), mdp.goal.tolist().__getitem__
    d_start = _bfs(succ, [start], ok)[0]
    d_goal = _bfs(pred, np.flatnonzero(mdp.goal).tolist(), ok)[0]
    moves = []
    for u, a in zip(*np.nonzero(suboptimal & ~mdp.terminal[:, None])):
        u, v = int(u), int(nxt[u, a])
        if v in succ[u] and u in d_start and v in d_goal:
            moves.append((d_start[u] + 1 + d_goal[v], u, int(a), v))

    def shortest(src: int, stop, avoid: set[int]) -> list[int]:
        return _bfs(succ, [src], [x and i not in avoid for i, x in enumerate(ok)], stop)[1] or []

    best: list[int] = []
    for bound, u, a, v in sorted(moves):
        if best and bound >= len(best) - 1:
            break
        at_u = u.__eq__
        p1 = shortest(start, at_u, {v})
        p2 = shortest(v, at_goal, set(p1)) if p1 else []
        q2 = shortest(v, at_goal, {u})
        q1 = shortest(start, at_u, set(q2)) if q2 else []
        for path in (p1 + p2 if p2 else [], q1 + q2 if q1 else []):
            if path and len(set(path)) == len(path) and (not best or len(path) < len(best)):
                best = path
    if not best:
        raise ValueError(f"map {mdp.name!r} has no route to G that makes a sub-optimal move "
                         f"(the study needs a second, worse route)")
    return chosen, _route(mdp, best)


def _render(mdp: TabularMDP, arrows: dict[int, int]) -> str:
    if mdp.shape is None or mdp.desc is None:
        raise ValueError(f"MDP {mdp.name!r} is not a lake map")
    ncol = mdp.shape[1]
    return "\n".join(" ".join(tile if tile in "HG" else ACTION_ARROWS[arrows[r * ncol + c]] if r * ncol + c in arrows
                               else "·" for c, tile in enumerate(row)) for r, row in enumerate(mdp.desc))


def render_policy(mdp: TabularMDP, policy) -> str:
    """The map with the arrow of policy[s] (Shape (S,) actions) on every frozen tile; H and G as letters."""
    policy = np.asarray(policy)
    if policy.shape != (mdp.n_states,):
        raise ValueError(f"policy must have shape ({mdp.n_states},), got {tuple(policy.shape)}")
    return _render(mdp, {s: int(a) for s, a in enumerate(policy.tolist()) if not mdp.terminal[s]})


def render_path(mdp: TabularMDP, path: Trajectory) -> str:
    """The map with the trajectory's actions as arrows on its states, '·' on other frozen tiles."""
    return _render(mdp, dict(zip(path.states[:-1], path.actions)))
