"""Frozen Lake maps as exact tabular MDPs: parsing, validation, builders, grid helpers.

The only module that reads gymnasium (imported inside functions). A map is a tuple of rows over
S (start), F (frozen), H (hole), G (goal); state = row * ncol + col; actions 0 = left, 1 = down,
2 = right, 3 = up (gymnasium's order). ``make_lake`` reads gymnasium's ``env.unwrapped.P`` up to
``GYM_BUILD_MAX_STATES`` states, above that an equivalent vectorised numpy builder (tested equal).
Maps of more than ``MAX_STATES`` tiles are refused before anything is allocated (``max_states=``).
``intended_next`` gives each action's intended move; routes along these moves, the study's
(chosen, rejected) pair and the text renderings live in ``routes.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import numpy as np

from .actions import ACTION_ARROWS, ACTION_NAMES, DELTAS  # noqa: F401  (re-exported: lakes.ACTION_NAMES)
from .mdp import TabularMDP
from .solve import format_bytes

if TYPE_CHECKING:
    from gymnasium.envs.toy_text.frozen_lake import FrozenLakeEnv

TILES = {"S": "start", "F": "frozen", "H": "hole", "G": "goal"}
MAP_NAMES = ("4x4", "8x8", "two-route", "random:SIZE:SEED")
GYM_BUILD_MAX_STATES = 4096
MAX_STATES = 2**22  # a 2048x2048 map: about 1.3 GiB of model when slippery (see lake_bytes)
RANDOM_MAP_TILES = 10**8  # tiles drawn for a random map before giving up (gymnasium draws until a board has a path)

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
        raise ValueError(  # noqa: TRY004  (a map is a user value: ValueError, as for every other bad map; tests match it)
            f"a map must be a sequence of row strings such as ['SF', 'FG'], got {desc!r}"
        )
    rows = tuple(str(r) for r in desc)
    if not rows or not rows[0]:
        raise ValueError("a map must have at least one row of at least one tile")
    lengths = [len(r) for r in rows]
    if len(set(lengths)) != 1:
        bad = next(i for i, n in enumerate(lengths) if n != lengths[0])
        raise ValueError(
            f"map rows must all have the same length, got lengths {lengths} "
            f"(row {bad} has {lengths[bad]} tiles, row 0 has {lengths[0]})"
        )
    for i, row in enumerate(rows):
        for j, ch in enumerate(row):
            if ch not in TILES:
                allowed = ", ".join(f"{k} ({v})" for k, v in TILES.items())
                raise ValueError(
                    f"unknown tile letter {ch!r} at row {i}, column {j} of the map; allowed letters are {allowed}"
                )
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


def lake_bytes(n_states: int, slippery: bool) -> int:
    """Bytes of a lake's TabularMDP arrays: next_states and probs (S, 4, K), the successors' rewards
    (S, 4, K) when slippery, R (S, 4), rho0 and three masks (S,); K = 3 when slippery, else 1.
    Building it (numpy builder) and value iteration (a relabelled copy) each take about as much
    again (docs/solver.md)."""
    return int(n_states) * (4 * 3 * 24 + 4 * 8 + 8 + 3 if slippery else 4 * 16 + 4 * 8 + 8 + 3)


def _check_size(spec, nrow: int, ncol: int, slippery: bool, max_states) -> None:
    if isinstance(max_states, bool) or not isinstance(max_states, (int, np.integer)) or max_states < 1:
        raise ValueError(f"max_states must be an integer >= 1, got {max_states!r}")
    if nrow * ncol > max_states:
        label = repr(spec) if isinstance(spec, str) and len(spec) <= 40 else f"of {nrow:,}x{ncol:,} tiles"
        raise ValueError(
            f"map {label} has {nrow * ncol:,} states, needing about "
            f"{format_bytes(lake_bytes(nrow * ncol, slippery))} for its model alone; the limit is "
            f"{max_states:,} states (pass max_states=... to raise it)"
        )


def _parse_map(spec, slippery: bool = False, max_states: int = MAX_STATES) -> tuple[tuple[str, ...], str]:
    """Map name or rows -> (validated rows, name); maps above max_states are refused before they are made."""
    if not isinstance(spec, str):
        if isinstance(spec, Sequence) and len(spec) and isinstance(spec[0], str):
            _check_size(spec, len(spec), len(spec[0]), slippery, max_states)
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
            raise ValueError(
                f"random maps are written 'random:SIZE:SEED' or 'random:SIZE:SEED:P' with integers "
                f"SIZE >= 2, SEED >= 0 and a frozen-tile probability P in (0, 1], got {spec!r}"
            )
        _check_size(spec, size, size, slippery, max_states)
        return validate_desc(random_map(size, p, seed, spec)), spec
    if "," in spec or (spec and set(spec) <= set(TILES)):  # rows, e.g. "SFF,FHF,FFG" or one row "SFG"
        rows = spec.split(",")
        _check_size(spec, len(rows), len(rows[0]), slippery, max_states)
        desc = validate_desc(rows)
        return desc, f"custom-{len(desc)}x{len(desc[0])}"
    raise ValueError(
        f"unknown map {spec!r}; allowed: '4x4', '8x8', 'two-route', 'random:SIZE:SEED[:P]', "
        f"or comma-separated rows such as 'SFF,FHF,FFG'"
    )


def random_map(size: int, p: float = 0.8, seed: int | None = None, name: str = "") -> list[str]:
    """gymnasium's ``generate_random_map(size, p, seed)``, the same maps draw for draw, but giving up
    (ValueError) after ``RANDOM_MAP_TILES`` tiles drawn (``RANDOM_MAP_TILES // size**2`` boards, a few
    seconds) without a board that has a path from S to G, where gymnasium would draw forever (a low
    frozen-tile probability P on a large map)."""
    from gymnasium.envs.toy_text.frozen_lake import is_valid
    from gymnasium.utils import seeding

    rng, _ = seeding.np_random(seed)
    p = min(1, p)
    tries = max(1, RANDOM_MAP_TILES // (size * size))
    for _ in range(tries):
        board = rng.choice(["F", "H"], (size, size), p=[p, 1 - p])
        board[0][0] = "S"
        board[-1][-1] = "G"
        if is_valid(cast("list[list[str]]", board), size):  # gymnasium's own test, on its own board type
            return ["".join(x) for x in board]
    raise ValueError(
        f"random map {name or f'random:{size}:{seed}:{p:g}'!r}: none of {tries:,} boards of {size}x{size} "
        f"tiles frozen with probability {p:g} has a path from S to G; use a larger P (the default is 0.8)"
    )


def make_lake(
    map_name_or_desc,
    slippery: bool = False,
    success_rate: float | None = None,
    *,
    builder: str = "auto",
    max_states: int = MAX_STATES,
) -> TabularMDP:
    """Build the exact MDP of a Frozen Lake map.

    Args:
        map_name_or_desc: "4x4", "8x8", "two-route", "random:SIZE:SEED" (gymnasium's
            ``generate_random_map(SIZE, p=0.8, seed=SEED)``; "random:SIZE:SEED:P" sets p),
            rows "SFF,FHF,FFG" (or one row "SFG"), or a list of row strings.
        slippery: gymnasium's ``is_slippery``: the move goes to a-1, a, a+1 (mod 4).
        success_rate: probability of the intended move when slippery (default 1/3, the slips
            share the rest); ignored when not slippery, as in gymnasium.
        builder: "gym", "numpy" or "auto" (gym up to ``GYM_BUILD_MAX_STATES`` states).
        max_states: maps with more states are refused (ValueError with the memory estimate) before
            the map is generated or any array allocated.
    Reward 1 for entering G, else 0; G and H are absorbing; rho0 is the S tile.
    """
    if not isinstance(slippery, (bool, np.bool_)):
        raise TypeError(f"slippery must be True or False, got {type(slippery).__name__} {slippery!r}")
    if success_rate is not None and (
        isinstance(success_rate, (bool, np.bool_))
        or not isinstance(success_rate, (int, float, np.integer, np.floating))
    ):
        raise TypeError(f"success_rate must be a number in [0, 1] or None, got {type(success_rate).__name__}")
    desc, name = _parse_map(map_name_or_desc, bool(slippery), max_states)
    _check_size(map_name_or_desc, len(desc), len(desc[0]), bool(slippery), max_states)  # named maps too
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
    terminal, goal = np.isin(tiles, [b"G", b"H"]), tiles == b"G"
    return TabularMDP(
        ns,
        pr,
        R,
        terminal=terminal,
        rho0=(tiles == b"S").astype(np.float64),
        goal=goal,
        shape=(len(desc), len(desc[0])),
        desc=desc,
        name=name,
        # slippery: the reward of each successor (1 on entering G); one successor: it is R itself
        rewards=(goal[ns] & (pr > 0) & ~terminal[:, None, None]).astype(np.float64) if ns.shape[2] > 1 else None,
    )


def _moves(nrow: int, ncol: int) -> np.ndarray:
    """Tile reached by each intended move (a wall keeps the tile), Shape (nrow * ncol, 4)."""
    r, c = np.divmod(np.arange(nrow * ncol, dtype=np.int64), ncol)
    return np.stack([np.clip(r + dr, 0, nrow - 1) * ncol + np.clip(c + dc, 0, ncol - 1) for dr, dc in DELTAS], 1)


def _gym_model(desc, slippery, rate):
    """(next_states, probs, R) from gymnasium's ``env.unwrapped.P``; duplicates at walls summed.

    Successors keep their order of first appearance; zero-probability entries are dropped;
    padding repeats the state itself with probability 0.
    """
    import gymnasium as gym

    # rows as lists of letters: gymnasium's np.asarray(desc, "c") drops the column axis of 1-wide maps
    env = gym.make("FrozenLake-v1", desc=[list(row) for row in desc], is_slippery=slippery, success_rate=rate)
    P = cast("FrozenLakeEnv", env.unwrapped).P  # the model of FrozenLake-v1
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


# ------------------------------------------------------------- MDP source
def check_source(arg: str) -> None:
    """The ``lake`` MDP source takes no argument: its map and ice are StudyConfig's ``map`` and ``slippery``."""
    if arg:
        raise ValueError(
            f"env 'lake' takes its map from the map field (--map) and its ice from slippery (--slippery), "
            f"not from the spec: got 'lake:{arg}'; use env='lake' with map={arg!r}"
        )
    return None


def build_source(arg: str, config=None) -> TabularMDP:
    """The ``lake`` MDP source: ``make_lake(config.map, slippery=config.slippery)`` (defaults without a config)."""
    check_source(arg)
    if config is None:
        return make_lake(TWO_ROUTE_MAP)
    return make_lake(config.map if isinstance(config.map, str) else list(config.map), slippery=config.slippery)
