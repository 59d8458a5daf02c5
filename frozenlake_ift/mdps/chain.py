"""``chain:N[:P]``: N states in a line, moves left and right that slip with probability P, reward at the right end.

States 0 .. N-1, the start 0 at the left end; action 0 moves left, 1 moves right; with probability
P the move goes the other way (a wall keeps the state). Entering N-1 (the right end) pays 1 and ends
the episode: it is the goal. P defaults to 0 (deterministic); P must lie in [0, 0.5) so that
"right" is the better move everywhere.
"""

from __future__ import annotations

import numpy as np

from ..mdp import TabularMDP

EXAMPLE = "chain:8:0.1"
MAX_STATES = 100_000


def parse(arg: str) -> tuple[int, float]:
    """(N, P); ValueError naming what is allowed."""
    parts = arg.split(":")
    try:
        n, p = int(parts[0]), float(parts[1]) if len(parts) == 2 else 0.0
        ok = len(parts) in (1, 2) and 2 <= n <= MAX_STATES and 0 <= p < 0.5
    except (ValueError, IndexError):
        ok = False
    if not ok:
        raise ValueError(
            f"a chain is written chain:N or chain:N:P with an integer N in [2, {MAX_STATES:,}] and a slip "
            f"probability P in [0, 0.5) (e.g. {EXAMPLE}), got 'chain:{arg}'"
        )
    return n, p


def check(arg: str) -> int:
    return parse(arg)[0]


def build(arg: str, config=None) -> TabularMDP:
    """The chain of ``chain:N[:P]`` (see the module docstring)."""
    n, slip = parse(arg)
    s = np.arange(n)
    left, right = np.maximum(s - 1, 0), np.minimum(s + 1, n - 1)
    ns = np.stack([np.stack([left, right], -1), np.stack([right, left], -1)], 1)  # (S, A, K): intended, slipped
    probs = np.broadcast_to(np.array([1.0 - slip, slip]), ns.shape).copy()
    goal = s == n - 1
    ns[goal], probs[goal] = n - 1, np.array([1.0, 0.0])
    same = ns[..., 0] == ns[..., 1]  # a wall bump that slips into the same wall: one successor
    probs[..., 0] = np.where(same, 1.0, probs[..., 0])
    probs[..., 1] = np.where(same, 0.0, probs[..., 1])
    rewards = (goal[ns] & ~goal[:, None, None]).astype(np.float64)  # 1 on entering the right end
    return TabularMDP(
        ns,
        probs,
        (probs * rewards).sum(-1),
        terminal=goal,
        rho0=(s == 0).astype(np.float64),
        goal=goal,
        name=f"chain:{arg}",
        rewards=rewards,
        action_names=("left", "right"),
    )
