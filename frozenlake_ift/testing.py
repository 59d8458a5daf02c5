"""Hypothesis strategies for property tests of alignment theory on tabular MDPs.

Needs hypothesis (``pip install "frozenlake_ift[testing]"``); the package itself never imports
this module. Every strategy shrinks towards small cases, and each returns what its docstring
promises (``tests/test_testing.py`` checks it):

==========================  ============================================================================
``lake_descs(max_size)``    valid Frozen Lake maps (tuples of rows): one S, a G reachable from S
``lake_mdps(max_size)``     their exact MDPs (``lakes.make_lake``), deterministic or slippery
``tabular_mdps(...)``       random finite MDPs (``TabularMDP``): absorbing terminals, goals among them,
                            rewards on non-terminal states only
``policies(S, A)``          row-stochastic policies, Shape (S, A), from uniform to exactly one-hot
``instances(...)``          ``Inst``: a dense MDP, a policy and a feasible target path (theory tests)
``masked_logps(...)``       ``MaskedBatch``: per-step log-probs <= 0, Shape (B, T), and a bool mask
                            with at least one True per row, as ``losses.py`` expects
==========================  ============================================================================

Example: a property of the theory, checked on every generated MDP and policy::

    import itertools

    import numpy as np
    from hypothesis import given, strategies as st
    from frozenlake_ift import solve
    from frozenlake_ift.testing import policies, tabular_mdps

    @given(tabular_mdps(), st.data())
    def test_success_is_a_probability_that_grows_with_the_horizon(mdp, data):
        pi = data.draw(policies(mdp.n_states, mdp.n_actions))
        p = [solve.success_probability(mdp, pi, horizon=h) for h in range(6)]
        assert all(0 <= a <= b + 1e-12 <= 1 + 2e-12 for a, b in itertools.pairwise(p))
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

try:
    from hypothesis import assume
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    raise ImportError('frozenlake_ift.testing needs hypothesis: pip install "frozenlake_ift[testing]"') from exc

from .lakes import make_lake, validate_desc
from .mdp import TabularMDP

if TYPE_CHECKING:
    import torch

__all__ = [
    "Inst",
    "MaskedBatch",
    "instances",
    "lake_descs",
    "lake_mdps",
    "make_inst",
    "masked_logps",
    "policies",
    "tabular_mdps",
]


def _check_size(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


# ------------------------------------------------------------------------------ lakes
@st.composite
def lake_descs(draw, max_size=5):
    """Valid maps of 1..max_size rows and columns (at least 2 tiles), about a quarter holes.

    A map is a tuple of row strings over S, F, H, G with exactly one S and a G reachable from S
    (``lakes.validate_desc`` accepts it); maps with the goal cut off are filtered out.
    """
    _check_size("max_size", max_size, 2)
    nrow = draw(st.integers(1, max_size))
    ncol = draw(st.integers(2 if nrow == 1 else 1, max_size))
    tiles = draw(st.lists(st.sampled_from("FFFH"), min_size=nrow * ncol, max_size=nrow * ncol))
    s, g = draw(st.lists(st.integers(0, nrow * ncol - 1), min_size=2, max_size=2, unique=True))
    tiles[s], tiles[g] = "S", "G"
    desc = ["".join(tiles[r * ncol : (r + 1) * ncol]) for r in range(nrow)]
    try:
        return validate_desc(desc)
    except ValueError:
        assume(False)


@st.composite
def lake_mdps(draw, max_size=4, slippery=None):
    """The exact MDP of a ``lake_descs`` map (``lakes.make_lake``); slippery drawn when None."""
    desc = draw(lake_descs(max_size))
    slip = draw(st.booleans()) if slippery is None else bool(slippery)
    return make_lake(list(desc), slippery=slip)


# ------------------------------------------------------------------------------ MDPs and policies
def _weights(draw, n: int) -> np.ndarray:
    """A distribution over n outcomes with small-integer weights (often sparse)."""
    w = np.array(draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)), dtype=float)
    if w.sum() == 0:
        w[draw(st.integers(0, n - 1))] = 1.0
    return w / w.sum()


@st.composite
def policies(draw, S: int, A: int) -> np.ndarray:
    """Row-stochastic policies, Shape (S, A): rows on the simplex, float64.

    Sharpened rows give near-deterministic policies, and exact one-hots where a row has one
    non-zero weight.
    """
    _check_size("S", S, 1)
    _check_size("A", A, 1)
    sharp = draw(st.sampled_from([1.0, 1.0, 3.0, 40.0]))
    pi = np.stack([_weights(draw, A) ** sharp for _ in range(S)])
    return pi / pi.sum(-1, keepdims=True)


@st.composite
def tabular_mdps(draw, max_states=5, max_actions=3, deterministic=None, with_goal=True):
    """Random finite MDPs as ``TabularMDP``: 2..max_states states, 2..max_actions actions.

    Terminal states are absorbing with reward 0; state 0 is never terminal. When ``with_goal``,
    at least one state is a terminal goal. Rewards R(s, a) of non-terminal states are multiples of
    1/4 in [-1, 1]. rho0 is a sparse distribution over the states; transitions are one-hot
    (``deterministic=True``), sparse distributions (False) or either (None).
    """
    S, A = (
        draw(st.integers(2, _check_size("max_states", max_states, 2))),
        draw(st.integers(2, _check_size("max_actions", max_actions, 2))),
    )
    det = draw(st.booleans()) if deterministic is None else bool(deterministic)
    terminal = np.array(draw(st.lists(st.booleans(), min_size=S, max_size=S)))
    terminal[0] = False
    if with_goal and not terminal.any():
        terminal[draw(st.integers(1, S - 1))] = True
    goal = terminal & np.array(draw(st.lists(st.booleans(), min_size=S, max_size=S)))
    if with_goal and not goal.any():
        goal[draw(st.sampled_from(np.flatnonzero(terminal).tolist()))] = True
    P = np.zeros((S, A, S))
    for s, a in itertools.product(range(S), range(A)):
        if terminal[s]:
            P[s, a, s] = 1.0
        elif det:
            P[s, a, draw(st.integers(0, S - 1))] = 1.0
        else:
            P[s, a] = _weights(draw, S)
    R = np.array(draw(st.lists(st.integers(-4, 4), min_size=S * A, max_size=S * A)), dtype=float).reshape(S, A) / 4
    R[terminal] = 0.0
    return TabularMDP.from_dense(P, R, terminal, _weights(draw, S), goal=goal, name=f"random-{S}x{A}")


# ------------------------------------------------------------------------------ theory instances
class Inst:
    """A generated case: dense P, the MDP, a policy pi and a target path (states, actions).

    Its repr is a ``make_inst(...)`` call, so a falsifying example can be pasted into ``@example``.
    """

    def __init__(self, P: np.ndarray, mdp: TabularMDP, pi: np.ndarray, states: tuple, actions: tuple):
        self.P, self.mdp, self.pi, self.states, self.actions = P, mdp, pi, states, actions

    def __repr__(self) -> str:
        return (
            f"make_inst(P={self.P.tolist()}, rho0={self.mdp.rho0.tolist()}, pi={self.pi.tolist()}, "
            f"states={self.states}, actions={self.actions}, terminal={self.mdp.terminal.tolist()})"
        )


def make_inst(P, rho0, pi, states, actions, terminal=None) -> Inst:
    """An ``Inst`` from plain lists: P Shape (S, A, S), rho0 (S,), pi (S, A), the path, terminal (S,)."""
    P, rho0, pi = (np.asarray(x, dtype=float) for x in (P, rho0, pi))
    terminal = np.zeros(P.shape[0], bool) if terminal is None else np.asarray(terminal, bool)
    mdp = TabularMDP.from_dense(P, np.zeros(P.shape[:2]), terminal, rho0)
    return Inst(P, mdp, pi, tuple(states), tuple(actions))


@st.composite
def instances(
    draw, max_states=5, max_actions=3, min_len=1, max_len=5, deterministic=None, point_start=False, markov_path=False
) -> Inst:
    """A random dense MDP (some absorbing terminal states), a policy and a feasible target path.

    The path starts in the support of rho0 and every step (s_i, a_i, s_{i+1}) has P > 0; it has
    min_len..max_len actions. markov_path: the actions follow one fixed action per state.
    point_start: rho0 is state 0. deterministic: one-hot transitions (None: drawn).
    """
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


# ------------------------------------------------------------------------------ loss inputs
@dataclass(frozen=True)
class MaskedBatch:
    """Per-step log-probs and their mask, as every function of ``losses.py`` takes them.

    logps: Shape (B, T) float tensor, every entry <= 0 (or ``pad_value`` at masked steps).
    mask: Shape (B, T) bool tensor, at least one True per row (True = the step counts).
    """

    logps: torch.Tensor  # (B, T)
    mask: torch.Tensor  # (B, T) bool

    @property
    def shape(self) -> tuple[int, int]:
        B, T = self.logps.shape
        return int(B), int(T)


@st.composite
def masked_logps(
    draw, max_batch=4, max_len=8, min_logp=-20.0, contiguous=False, pad_value=None, dtype="float64"
) -> MaskedBatch:
    """A ``MaskedBatch`` of B in 1..max_batch rows and T in 1..max_len steps.

    Unmasked log-probs lie in [min_logp, 0] (0 and min_logp included). contiguous=True: each
    row's mask is one run [start, end) (prompt / response / padding); else any pattern with at
    least one True. pad_value (e.g. float("-inf")): the value put at masked steps, which the
    losses must ignore; None keeps valid log-probs there too. dtype: "float32" or "float64".
    """
    import torch

    dtypes = {"float32": torch.float32, "float64": torch.float64}
    if dtype not in dtypes:
        raise ValueError(f"dtype must be one of {list(dtypes)}, got {dtype!r}")
    if not (isinstance(min_logp, (int, float)) and np.isfinite(min_logp) and min_logp <= 0):
        raise ValueError(f"min_logp must be a finite number <= 0, got {min_logp!r}")
    B = draw(st.integers(1, _check_size("max_batch", max_batch, 1)))
    T = draw(st.integers(1, _check_size("max_len", max_len, 1)))
    values = st.one_of(st.just(0.0), st.just(float(min_logp)), st.floats(float(min_logp), 0.0))
    flat = draw(st.lists(values, min_size=B * T, max_size=B * T))
    rows = []
    for _ in range(B):
        if contiguous:
            start = draw(st.integers(0, T - 1))
            end = draw(st.integers(start + 1, T))
            rows.append([start <= k < end for k in range(T)])
        else:
            row = draw(st.lists(st.booleans(), min_size=T, max_size=T))
            row[draw(st.integers(0, T - 1))] = True
            rows.append(row)
    mask = torch.tensor(rows, dtype=torch.bool)  # (B, T)
    logps = torch.tensor(flat, dtype=dtypes[dtype]).reshape(B, T)  # (B, T)
    if pad_value is not None:
        logps = torch.where(mask, logps, torch.full_like(logps, float(pad_value)))  # (B, T)
    return MaskedBatch(logps, mask)
