"""The study's maps as registered gymnasium environments.

``import frozenlake_ift`` registers the ids below (idempotently, nothing else happens), so
gymnasium's ``module:`` form needs no explicit import:

    import gymnasium as gym
    env = gym.make("frozenlake_ift:TwoRoute-v0")                         # the study's map
    env = gym.make("frozenlake_ift:Lake-v0", map="random:8:0", is_slippery=True)
    envs = gym.make_vec("frozenlake_ift:TwoRouteSlippery-v0", num_envs=8)

Every id builds gymnasium's own ``FrozenLakeEnv`` (``env.unwrapped`` is one) with our map, so
wrappers, vector environments and ``render_mode="rgb_array"`` work as for ``FrozenLake-v1``.
States, actions (0 = left, 1 = down, 2 = right, 3 = up) and rewards (1 for entering G) are
gymnasium's, which is also the model ``lakes.make_lake`` reads: the exact MDP of an environment
is ``lakes.make_lake(desc, slippery)``, and its success within the time limit is
``solve.success_probability(mdp, pi, horizon=env.spec.max_episode_steps)``.

Time limits (``max_episode_steps``, the ``TimeLimit`` gymnasium adds; override with
``gym.make(..., max_episode_steps=N)``) follow one rule, ``episode_limit``: gymnasium's own
choices (100 steps for 4x4, 200 for 8x8) extended to any size: 100 for maps of at most 25 tiles
(the 5x5 two-route map), 200 up to 64 tiles, 4 steps per tile above. A registration cannot see
the map its ``map=`` kwarg will pick, so ``Lake-v0`` is registered with 200; ``Agent.make_env``
and ``agents.evaluate`` pass ``episode_limit(desc)`` explicitly.

``4x4`` and ``8x8`` get no ids of their own: they are gymnasium's FrozenLake-v1 and
FrozenLake8x8-v1 (pass ``is_slippery=False`` for the study's deterministic setting), or
``Lake-v0`` with ``map="4x4"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gymnasium.envs.registration import register, registry
from gymnasium.envs.toy_text.frozen_lake import FrozenLakeEnv

from . import lakes

PACKAGE = "frozenlake_ift"
ENTRY_POINT = f"{PACKAGE}.envs:make_frozen_lake"
LAKE_ID = "Lake-v0"  # the generic id, built from a map name or rows
# episode_limit: (most tiles, steps) in order; above the last, STEPS_PER_TILE steps per tile
EPISODE_LIMITS = ((25, 100), (64, 200))
STEPS_PER_TILE = 4


def episode_limit(desc: Sequence[str]) -> int:
    """The time limit (``max_episode_steps``) of a map: 100 up to 25 tiles, 200 up to 64, 4 per tile above."""
    tiles = len(desc) * len(desc[0])
    for most, steps in EPISODE_LIMITS:
        if tiles <= most:
            return steps
    return STEPS_PER_TILE * tiles


@dataclass(frozen=True)
class EnvRegistration:
    """One registered id: its default keyword arguments (for ``make_frozen_lake``) and its time limit."""

    id: str
    kwargs: dict = field(default_factory=dict)
    max_episode_steps: int = EPISODE_LIMITS[0][1]
    doc: str = ""


REGISTRATIONS: tuple[EnvRegistration, ...] = (
    EnvRegistration(
        "TwoRoute-v0",
        {"map": "two-route", "is_slippery": False},
        episode_limit(lakes.TWO_ROUTE_MAP),
        "the study's 5x5 ring map, deterministic (the study's default)",
    ),
    EnvRegistration(
        "TwoRouteSlippery-v0",
        {"map": "two-route", "is_slippery": True},
        episode_limit(lakes.TWO_ROUTE_MAP),
        "the 5x5 ring map on gymnasium's slippery ice (the intended move with probability 1/3)",
    ),
    EnvRegistration(
        LAKE_ID,
        {"map": "two-route", "is_slippery": False},
        EPISODE_LIMITS[-1][1],
        "any map: map= a lakes.make_lake name or rows, or desc= rows; deterministic unless is_slippery=True",
    ),
)
ENV_IDS: tuple[str, ...] = tuple(r.id for r in REGISTRATIONS)


def register_envs() -> None:
    """Register every id of ``REGISTRATIONS`` that gymnasium's registry lacks (idempotent)."""
    for reg in REGISTRATIONS:
        if reg.id not in registry:
            register(
                id=reg.id, entry_point=ENTRY_POINT, kwargs=dict(reg.kwargs), max_episode_steps=reg.max_episode_steps
            )


def resolve_desc(map: str | Sequence[str] | None = None, desc: Sequence[str] | None = None) -> tuple[str, ...]:
    """The rows of a map given as ``map`` (a ``lakes.make_lake`` name or rows) or ``desc`` (rows).

    ``desc`` wins when both are given (so ``gym.make(id, desc=rows)`` overrides a registered
    ``map``). Raises ValueError for a malformed map, naming the problem.
    """
    spec = desc if desc is not None else map
    if spec is None:
        raise ValueError(f"give a map: map= one of {list(lakes.MAP_NAMES)} or rows, or desc= rows such as ['SF', 'FG']")
    if isinstance(spec, str):
        named = lakes.make_lake(spec, builder="numpy").desc
        assert named is not None  # a lake always keeps its rows
        return named
    if not isinstance(spec, Sequence) and not hasattr(spec, "tolist"):
        raise ValueError(f"a map must be a name or a sequence of row strings such as ['SF', 'FG'], got {spec!r}")
    rows = spec.tolist() if hasattr(spec, "tolist") else list(spec)  # numpy arrays of bytes, as gymnasium keeps them
    return lakes.validate_desc([_row_text(r) for r in rows])


def _row_text(row) -> str:
    """A row as text: "SFF", b"SFF", or a sequence of letters ["S", "F"] / [b"S", b"F"]."""
    if isinstance(row, bytes):
        return row.decode("ascii")
    if isinstance(row, str):
        return row
    return "".join(_row_text(c) for c in row)


def make_frozen_lake(
    map: str | Sequence[str] | None = "two-route",
    desc: Sequence[str] | None = None,
    is_slippery: bool = False,
    **kwargs,
):
    """gymnasium's ``FrozenLakeEnv`` on one of our maps (the entry point of every registered id).

    Args:
        map: a ``lakes.make_lake`` name ("two-route", "4x4", "8x8", "random:SIZE:SEED[:P]",
            "SFF,FHF,FFG") or a list of rows.
        desc: rows, as gymnasium's own ``desc=``; overrides ``map``.
        is_slippery: gymnasium's slippery ice. Default False (the study's setting; gymnasium's
            own FrozenLakeEnv defaults to True).
        **kwargs: passed on to ``FrozenLakeEnv`` (``render_mode``, ``success_rate``,
            ``reward_schedule``).
    """
    if "map_name" in kwargs:
        raise TypeError("use map= (a lakes.make_lake name or rows) or desc= instead of gymnasium's map_name=")
    # rows as lists of letters: np.asarray(desc, "c") in gymnasium drops the column axis of 1-wide maps
    letters: list = [list(r) for r in resolve_desc(map, desc)]
    return FrozenLakeEnv(desc=letters, is_slippery=bool(is_slippery), **kwargs)


make_frozen_lake.metadata = FrozenLakeEnv.metadata  # type: ignore[attr-defined]  # gym.make reads render modes here
