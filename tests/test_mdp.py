"""TabularMDP: construction, validation, and the operations of paper Eq. 2-6 and 19."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from frozenlake_ift.mdp import TabularMDP


def _chain() -> TabularMDP:
    """0 -a0-> 1 -a0-> 2 (terminal); a1 stays put. Reward 1 for entering 2."""
    P = np.zeros((3, 2, 3))
    P[0, 0, 1] = P[1, 0, 2] = 1.0
    P[0, 1, 0] = P[1, 1, 1] = 1.0
    P[2, :, 2] = 1.0
    R = np.zeros((3, 2))
    R[1, 0] = 1.0
    return TabularMDP.from_dense(P, R, terminal=[False, False, True], rho0=[1.0, 0.0, 0.0], goal=[False, False, True])


@st.composite
def dense_mdps(draw):
    """Random MDPs (S <= 6, A <= 3) with sparse rows; some terminal (absorbing, reward 0) states."""
    S, A = draw(st.integers(1, 6)), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    P = rng.random((S, A, S)) * (rng.random((S, A, S)) < 0.5)
    P[np.arange(S), :, rng.integers(0, S, size=S)] += 0.1  # every row has some mass
    P /= P.sum(-1, keepdims=True)
    terminal = rng.random(S) < 0.3
    for s in np.flatnonzero(terminal):
        P[s] = 0.0
        P[s, :, s] = 1.0
    R = rng.normal(size=(S, A)) * ~terminal[:, None]
    rho0 = rng.dirichlet(np.ones(S))
    return TabularMDP.from_dense(P, R, terminal, rho0), P, rng


def _policy(rng, S, A):
    return rng.dirichlet(np.ones(A), size=S)


# ------------------------------------------------------------------ round trip and operations
@given(dense_mdps())
def test_from_dense_and_dense_P_round_trip(case):
    mdp, P, _ = case
    np.testing.assert_allclose(mdp.dense_P(), P, atol=1e-15)
    assert mdp.nnz == int((P > 0).sum())
    assert mdp.next_states.shape[2] == max(int((P > 0).sum(-1).max()), 1)  # K = widest row
    again = TabularMDP.from_dense(mdp.dense_P(), mdp.R, mdp.terminal, mdp.rho0)
    np.testing.assert_array_equal(again.next_states, mdp.next_states)


@given(dense_mdps())
def test_state_transition_is_eq_2_and_rows_sum_to_1(case):
    mdp, P, rng = case
    pi = _policy(rng, mdp.n_states, mdp.n_actions)
    T = mdp.state_transition(pi)
    np.testing.assert_allclose(T, np.einsum("sa,sat->st", pi, P), atol=1e-14)
    np.testing.assert_allclose(T.sum(1), 1.0, atol=1e-12)
    d = rng.dirichlet(np.ones(mdp.n_states))
    np.testing.assert_allclose(mdp.push(d, pi), d @ T, atol=1e-14)


@given(dense_mdps(), st.integers(0, 6))
def test_preference_is_rho0_times_matrix_powers(case, n):
    mdp, _, rng = case
    pi = _policy(rng, mdp.n_states, mdp.n_actions)
    T = mdp.state_transition(pi)
    pref = mdp.preference(pi, n)
    assert pref.shape == (n + 1, mdp.n_states)
    for i in range(n + 1):
        np.testing.assert_allclose(pref[i], mdp.rho0 @ np.linalg.matrix_power(T, i), atol=1e-12)
    np.testing.assert_allclose(pref.sum(1), 1.0, atol=1e-12)  # a distribution at every step
    assert pref.min() >= 0


@given(dense_mdps(), st.integers(1, 5), st.integers(0, 10**6))
def test_path_probability_is_product_of_one_step_transitions(case, n, seed):
    """Paper Eq. 19: Pr(path) = rho0(s_0) * prod_i T_pi(s_{i-1}, s_i)."""
    mdp, P, rng = case
    pi = _policy(rng, mdp.n_states, mdp.n_actions)
    T = mdp.state_transition(pi)
    path_rng = np.random.default_rng(seed)
    states = path_rng.integers(0, mdp.n_states, size=n + 1)
    actions = path_rng.integers(0, mdp.n_actions, size=n)
    want = mdp.rho0[states[0]] * np.prod([T[states[i - 1], states[i]] for i in range(1, n + 1)])
    assert mdp.path_probability(states, pi) == pytest.approx(want, rel=1e-12, abs=1e-300)
    want_a = mdp.rho0[states[0]] * np.prod(
        [pi[states[i - 1], actions[i - 1]] * P[states[i - 1], actions[i - 1], states[i]] for i in range(1, n + 1)]
    )
    assert mdp.path_probability(states, pi, actions) == pytest.approx(want_a, rel=1e-12, abs=1e-300)


@given(dense_mdps())
def test_occupancy_closed_forms(case):
    mdp, _, rng = case
    pi = _policy(rng, mdp.n_states, mdp.n_actions)
    T = mdp.state_transition(pi)
    gamma = 0.8
    want = (1 - gamma) * mdp.rho0 @ np.linalg.inv(np.eye(mdp.n_states) - gamma * T)
    np.testing.assert_allclose(mdp.occupancy(pi, gamma=gamma), want, atol=1e-10)
    H = 4
    np.testing.assert_allclose(mdp.occupancy(pi, horizon=H), mdp.preference(pi, H - 1).sum(0), atol=1e-12)
    assert mdp.occupancy(pi, horizon=H).sum() == pytest.approx(H)


@given(dense_mdps())
def test_next_state_distribution_and_transition_prob(case):
    mdp, P, rng = case
    s = rng.integers(0, mdp.n_states, size=5)
    a = rng.integers(0, mdp.n_actions, size=5)
    np.testing.assert_allclose(mdp.next_state_distribution(s, a), P[s, a], atol=1e-15)
    assert mdp.transition_prob(int(s[0]), int(a[0]), int(s[1])) == pytest.approx(P[s[0], a[0], s[1]])


def test_expect_and_q_from_v_by_hand():
    mdp = _chain()
    V = np.array([0.5, 2.0, 7.0])
    # Q(0, a0) = 0 + 0.5 * V(1) = 1.0; Q(0, a1) = 0.5 * V(0) = 0.25; Q(1, a0) = 1 + 0.5 * V(2) = 4.5
    np.testing.assert_allclose(mdp.q_from_v(V, 0.5), [[1.0, 0.25], [4.5, 1.0], [3.5, 3.5]])
    assert mdp.expect(np.stack([V, 2 * V], 1)).shape == (3, 2, 2)


def test_replace_does_not_share_the_cache():
    mdp = _chain()
    mdp._cache["x"] = 1
    assert "x" not in dataclasses.replace(mdp, R=2 * mdp.R)._cache


# ------------------------------------------------------------------ validation
def _kw(**over):
    base = dict(
        next_states=np.array([[[1]], [[1]]]),
        probs=np.ones((2, 1, 1)),
        R=np.zeros((2, 1)),
        terminal=np.array([False, True]),
        rho0=np.array([1.0, 0.0]),
    )
    base.update(over)
    return base


@pytest.mark.parametrize(
    "over, needle",
    [
        (dict(next_states=np.ones((2, 1), dtype=int)), r"next_states must have shape \(S, A, K\)"),
        (dict(probs=np.ones((2, 1, 2))), r"probs must have shape \(2, 1, 1\), got \(2, 1, 2\)"),
        (dict(R=np.zeros((2, 2))), r"R must have shape \(2, 1\), got \(2, 2\)"),
        (dict(terminal=np.array([False])), r"terminal must have shape \(2,\)"),
        (dict(rho0=np.ones(3) / 3), r"rho0 must have shape \(2,\)"),
        (dict(goal=np.array([True])), r"goal must have shape \(2,\)"),
        (dict(next_states=np.ones((2, 1, 1))), "next_states must be integers"),
        (dict(next_states=np.array([[[2]], [[1]]])), r"next_states must lie in \[0, 1\]"),
        (dict(probs=np.array([[[-1.0]], [[1.0]]])), "probs must be non-negative"),
        (dict(probs=np.array([[[0.5]], [[1.0]]])), r"\(s=0, a=0\) sum to 0.5"),
        (dict(probs=np.array([[[np.nan]], [[1.0]]])), "probs must be finite"),
        (dict(R=np.array([[np.inf], [0.0]])), "R must be finite"),
        (dict(rho0=np.array([0.5, 0.2])), "rho0 must be a distribution"),
        (dict(next_states=np.array([[[1]], [[0]]])), "terminal state 1 is not absorbing"),
        (dict(R=np.array([[0.0], [1.0]])), "terminal state 1 must earn reward 0"),
        (dict(goal=np.array([True, False])), "goal states must be terminal"),
        (
            dict(
                next_states=np.zeros((0, 1, 1), dtype=int),
                probs=np.zeros((0, 1, 1)),
                R=np.zeros((0, 1)),
                terminal=np.zeros(0, bool),
                rho0=np.zeros(0),
            ),
            "at least one state",
        ),
    ],
)
def test_construction_errors_name_the_problem(over, needle):
    with pytest.raises(ValueError, match=needle):
        TabularMDP(**_kw(**over))


def test_from_dense_errors():
    with pytest.raises(ValueError, match=r"P must have shape \(S, A, S\), got \(2, 1, 3\)"):
        TabularMDP.from_dense(np.ones((2, 1, 3)) / 3, np.zeros((2, 1)), [False, False], [1, 0])
    P = np.array([[[1.5, -0.5]], [[0.0, 1.0]]])
    with pytest.raises(ValueError, match="finite, non-negative"):
        TabularMDP.from_dense(P, np.zeros((2, 1)), [False, True], [1, 0])


def test_operation_errors():
    mdp = _chain()
    with pytest.raises(ValueError, match=r"pi must have shape \(3, 2\), got \(3, 3\)"):
        mdp.state_transition(np.ones((3, 3)) / 3)
    with pytest.raises(ValueError, match="distribution over actions"):
        mdp.state_transition(np.array([[1.0, 1.0], [0.5, 0.5], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="distribution over actions"):
        mdp.check_policy(np.array([[np.nan, 1.0], [0.5, 0.5], [0.5, 0.5]]))
    pi = np.full((3, 2), 0.5)
    with pytest.raises(ValueError, match="n_steps must be >= 0"):
        mdp.preference(pi, -1)
    with pytest.raises(ValueError, match="horizon must be >= 0"):
        mdp.occupancy(pi, horizon=-1)
    with pytest.raises(ValueError, match=r"needs gamma in \(0, 1\)"):
        mdp.occupancy(pi, gamma=1.0)
    with pytest.raises(ValueError, match="at least one state"):
        mdp.path_probability([], pi)
    with pytest.raises(ValueError, match="needs 1 actions, got 2"):
        mdp.path_probability([0, 1], pi, [0, 0])
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        mdp.next_state_distribution([0, 1], [0])
