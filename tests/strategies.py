"""Hypothesis strategies shared by the test modules."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from frozenlake_ift.lakes import validate_desc
from frozenlake_ift.mdp import TabularMDP


@st.composite
def lake_descs(draw, max_size=5):
    """Valid maps of 1..max_size rows and columns, about a quarter holes."""
    nrow = draw(st.integers(1, max_size))
    ncol = draw(st.integers(2 if nrow == 1 else 1, max_size))
    tiles = draw(st.lists(st.sampled_from("FFFH"), min_size=nrow * ncol, max_size=nrow * ncol))
    s, g = draw(st.lists(st.integers(0, nrow * ncol - 1), min_size=2, max_size=2, unique=True))
    tiles[s], tiles[g] = "S", "G"
    desc = ["".join(tiles[r * ncol:(r + 1) * ncol]) for r in range(nrow)]
    try:
        validate_desc(desc)
    except ValueError:
        assume(False)
    return desc


# ------------------------------------------------------------- tabular MDPs with a target path (theory)
class Inst:
    """A generated case: dense P, the MDP, a policy pi and a target path (states, actions).

    Its repr is a ``make_inst(...)`` call, so a falsifying example can be pasted into ``@example``.
    """

    def __init__(self, P: np.ndarray, mdp: TabularMDP, pi: np.ndarray, states: tuple, actions: tuple):
        self.P, self.mdp, self.pi, self.states, self.actions = P, mdp, pi, states, actions

    def __repr__(self) -> str:
        return (f"make_inst(P={self.P.tolist()}, rho0={self.mdp.rho0.tolist()}, pi={self.pi.tolist()}, "
                f"states={self.states}, actions={self.actions}, terminal={self.mdp.terminal.tolist()})")


def make_inst(P, rho0, pi, states, actions, terminal=None) -> Inst:
    P, rho0, pi = (np.asarray(x, dtype=float) for x in (P, rho0, pi))
    terminal = np.zeros(P.shape[0], bool) if terminal is None else np.asarray(terminal, bool)
    mdp = TabularMDP.from_dense(P, np.zeros(P.shape[:2]), terminal, rho0)
    return Inst(P, mdp, pi, tuple(states), tuple(actions))


def _weights(draw, n: int) -> np.ndarray:
    w = np.array(draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)), dtype=float)
    if w.sum() == 0:
        w[draw(st.integers(0, n - 1))] = 1.0
    return w / w.sum()


@st.composite
def policies(draw, S: int, A: int) -> np.ndarray:
    """Rows on the simplex; sharpened rows give near-deterministic policies (and exact one-hots)."""
    sharp = draw(st.sampled_from([1.0, 1.0, 3.0, 40.0]))
    pi = np.stack([_weights(draw, A) ** sharp for _ in range(S)])
    return pi / pi.sum(-1, keepdims=True)


@st.composite
def instances(draw, max_states=5, max_actions=3, min_len=1, max_len=5, deterministic=None,
              point_start=False, markov_path=False) -> Inst:
    """A random dense MDP (some absorbing terminal states), a policy and a feasible target path."""
    S, A = draw(st.integers(2, max_states)), draw(st.integers(2, max_actions))
    det = draw(st.booleans()) if deterministic is None else deterministic
    terminal = np.array(draw(st.lists(st.booleans(), min_size=S, max_size=S)))
    terminal[0] = False
    P = np.zeros((S, A, S))
    for s, a in itertools.product(range(S), range(A)):
        if terminal[s]:
            P[s, a, s] = 1.0
        elif det:
            P[s, a, draw(st.integers(0, S - 1))] = 1.0
        else:
            P[s, a] = _weights(draw, S)
    rho0 = np.eye(S)[0] if point_start else _weights(draw, S)
    pi = draw(policies(S, A))
    choice = draw(st.lists(st.integers(0, A - 1), min_size=S, max_size=S))  # a Markov target policy
    states = [int(draw(st.sampled_from(np.flatnonzero(rho0 > 0).tolist())))]
    actions = []
    for _ in range(draw(st.integers(min_len, max_len))):
        a = choice[states[-1]] if markov_path else draw(st.integers(0, A - 1))
        actions.append(a)
        states.append(int(draw(st.sampled_from(np.flatnonzero(P[states[-1], a] > 0).tolist()))))
    return make_inst(P, rho0, pi, states, actions, terminal)
