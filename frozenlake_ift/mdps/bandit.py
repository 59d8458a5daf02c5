"""``bandit:R1,R2,...``: a K-armed bandit as an MDP: one state, K arms, the episode ends after one pull.

States: 0 (pull an arm) and 1 (the end, terminal). Action k pays R_k and ends the episode, so
Q*(0, k) = R_k for every discount and pi* pulls the best arm. No goal state: a bandit is judged by
its return (``value`` and ``value_ratio``), not by a success probability. The default data pair
(``second-best``) is the best arm (chosen) against the second-best arm (rejected): the setting of
the IPO paper's example (Azar et al., 2023, Sec. 4).
"""

from __future__ import annotations

import math

import numpy as np

from ..mdp import TabularMDP

EXAMPLE = "bandit:1,0.5,0"


def parse(arg: str) -> tuple[float, ...]:
    """The arms' rewards; ValueError unless there are at least two finite numbers."""
    try:
        rewards = tuple(float(x) for x in arg.split(",") if x.strip())
    except ValueError:
        rewards = ()
    if len(rewards) < 2 or not all(math.isfinite(r) for r in rewards):
        raise ValueError(
            f"a bandit is written bandit:R1,R2,... with at least two finite arm rewards (e.g. {EXAMPLE}), "
            f"got 'bandit:{arg}'"
        )
    return rewards


def check(arg: str) -> int:
    parse(arg)
    return 2


def build(arg: str, config=None) -> TabularMDP:
    """The bandit of ``bandit:R1,R2,...`` (see the module docstring)."""
    rewards = parse(arg)
    K = len(rewards)
    P = np.zeros((2, K, 2))  # (S, A, S)
    P[0, :, 1] = 1.0  # every arm ends the episode
    P[1, :, 1] = 1.0  # the end is absorbing
    R = np.zeros((2, K))
    R[0] = rewards
    return TabularMDP.from_dense(
        P,
        R,
        terminal=np.array([False, True]),
        rho0=np.array([1.0, 0.0]),
        name=f"bandit:{arg}",
        state_names=("pull", "end"),
        action_names=tuple(f"arm {k} ({r:g})" for k, r in enumerate(rewards)),
    )
