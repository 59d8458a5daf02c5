"""Value iteration, backward induction, policy evaluation, success probability."""

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from frozenlake_ift import solve
from frozenlake_ift.lakes import make_lake
from frozenlake_ift.solve import (
    finite_horizon,
    greedy_policy,
    optimal_action_probs,
    policy_evaluation,
    q_values,
    success_probability,
    value_iteration,
)
from strategies import lake_descs


@st.composite
def lakes_(draw, max_size=5):
    """(mdp, rng): a valid generated map, slippery or not, with a random success rate."""
    desc = draw(lake_descs(max_size))
    slippery = draw(st.booleans())
    rate = draw(st.sampled_from([None, 0.5, 0.8])) if slippery else None
    return make_lake(desc, slippery, rate), np.random.default_rng(draw(st.integers(0, 2**31)))


GAMMAS = st.sampled_from([0.5, 0.9, 0.99])


# ------------------------------------------------------------------ golden values by hand
def test_golden_deterministic_corridor():
    """Map S F G, gamma 0.9; state 0 = S, 1 = F, 2 = G; up/down bump into the walls and stay.

    V(2) = 0 (terminal). V(1) = R(1, right) = 1. V(0) = 0.9 * V(1) = 0.9.
    Q(0) = [0.9 * V(0), 0.9 * V(0), 0.9 * V(1), 0.9 * V(0)] = [0.81, 0.81, 0.9, 0.81]
    Q(1) = [0.9 * V(0), 0.9 * V(1), 1 + 0.9 * V(2), 0.9 * V(1)] = [0.81, 0.9, 1.0, 0.9]
    """
    mdp = make_lake(["SFG"])
    for method in ("gauss-seidel", "jacobi"):
        sol = value_iteration(mdp, 0.9, method=method)
        np.testing.assert_allclose(sol.V, [0.9, 1.0, 0.0], atol=1e-12)
        np.testing.assert_allclose(sol.Q, [[0.81, 0.81, 0.9, 0.81], [0.81, 0.9, 1.0, 0.9], [0, 0, 0, 0]], atol=1e-12)
        assert sol.policy.tolist() == [2, 2, 0] and sol.policy.dtype == np.int64  # G: all tied -> 0
        assert sol.converged and sol.residual == 0.0 and sol.gamma == 0.9
    assert success_probability(mdp, sol.policy) == 1.0
    assert success_probability(mdp, sol.policy, horizon=1) == 0.0  # G is two moves away
    assert success_probability(mdp, sol.policy, horizon=2) == 1.0
    assert success_probability(mdp, np.zeros(3, dtype=int)) == 0.0  # always left never arrives


def test_golden_finite_horizon():
    """Same corridor, gamma 1. One step left: only F can score (V = [0, 1, 0]); two steps: S can too."""
    fh = finite_horizon(make_lake(["SFG"]), 2, gamma=1.0)
    assert fh.V.shape == (3, 3) and fh.Q.shape == (2, 3, 4) and fh.policy.shape == (2, 3)
    np.testing.assert_allclose(fh.V, [[1, 1, 0], [0, 1, 0], [0, 0, 0]])
    assert fh.policy[0, 0] == 2  # two steps left at S: go right
    assert fh.policy[1, 0] == 0  # one step left at S: nothing helps, all tied -> lowest action
    assert success_probability(make_lake(["SFG"]), fh.policy) == 1.0  # non-stationary (H, S) policy


def test_golden_slippery_two_tiles():
    """Map S G slippery (success 1/3), gamma 0.9. At S the three moves of down / right / up each
    reach G once (reward 1, prob 1/3) and bump twice (stay, prob 2/3); left never leaves.

    V = 1/3 + 0.9 * 2/3 * V  ->  V = (1/3) / 0.4 = 5/6;  Q(S) = [0.9 * 5/6, 5/6, 5/6, 5/6] = [0.75, ...].
    Uniform policy: V = 1/4 * 0.9 V + 3/4 * (1/3 + 0.6 V) -> V (1 - 0.675) = 0.25 -> V = 10/13.
    """
    mdp = make_lake(["SG"], slippery=True)
    sol = value_iteration(mdp, 0.9, tol=1e-13)
    assert sol.V[0] == pytest.approx(5 / 6, abs=1e-12)
    np.testing.assert_allclose(sol.Q[0], [0.75, 5 / 6, 5 / 6, 5 / 6], atol=1e-12)
    assert sol.policy[0] == 1  # down, right, up tied -> lowest index
    np.testing.assert_allclose(optimal_action_probs(sol.Q)[0], [0, 1 / 3, 1 / 3, 1 / 3])
    uniform = np.full((2, 4), 0.25)
    assert policy_evaluation(mdp, uniform, 0.9)[0] == pytest.approx(10 / 13, abs=1e-12)
    assert success_probability(mdp, sol.policy) == pytest.approx(1.0)
    for H in (1, 2, 5):  # fails to arrive only if every step bumps: 1 - (2/3)^H
        assert success_probability(mdp, sol.policy, horizon=H) == pytest.approx(1 - (2 / 3) ** H)


def test_golden_softmax_and_ties():
    Q = np.array([[0.0, np.log(2.0)], [1.0, 1.0], [3.0, 1.0]])
    np.testing.assert_allclose(optimal_action_probs(Q, temperature=1.0)[0], [1 / 3, 2 / 3])
    np.testing.assert_allclose(optimal_action_probs(Q), [[0, 1], [0.5, 0.5], [1, 0]])
    assert greedy_policy(Q).tolist() == [1, 0, 0]
    assert greedy_policy(np.array([[1.0, 1.0 + 1e-12]])).tolist() == [0]  # within the tie tolerance
    assert greedy_policy(np.array([[1.0, 1.0 + 1e-6]])).tolist() == [1]


# ------------------------------------------------------------------ an independent solver
@pytest.mark.parametrize("seed", range(12))
def test_matches_pymdptoolbox(seed):
    mdptoolbox = pytest.importorskip("mdptoolbox.mdp")
    rng = np.random.default_rng(seed)
    size, slippery, gamma = int(rng.integers(3, 11)), bool(seed % 2), [0.9, 0.99][seed % 3 == 0]
    mdp = make_lake(f"random:{size}:{seed}", slippery)
    P = mdp.dense_P().transpose(1, 0, 2)  # (A, S, S)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = mdptoolbox.ValueIteration(P, mdp.R, gamma, epsilon=1e-9, max_iter=100_000)
        ref.run()
    sol = value_iteration(mdp, gamma, tol=1e-12)
    np.testing.assert_allclose(sol.V, ref.V, atol=1e-6)
    top2 = np.sort(sol.Q, 1)[:, -2:]
    decided = top2[:, 1] - top2[:, 0] > 1e-5  # not tied
    assert decided.any()
    np.testing.assert_array_equal(sol.policy[decided], np.asarray(ref.policy)[decided])


# ------------------------------------------------------------------ properties
@given(lakes_(), GAMMAS)
def test_bellman_residual_at_V_star(case, gamma):
    mdp, _ = case
    sol = value_iteration(mdp, gamma, tol=1e-10)
    P = mdp.dense_P()
    backup = (mdp.R + gamma * P @ sol.V).max(1)  # independent dense Bellman backup
    assert np.abs(backup - sol.V).max() <= 1e-10 * (1 + gamma)
    assert sol.residual <= 1e-10 and sol.converged
    np.testing.assert_allclose(sol.V, sol.Q.max(1), atol=0)
    # Q is the backup of the fixed point V_fp and V = max_a Q, so Q(V) and Q differ by at most
    # gamma * max|V - V_fp| = gamma * residual (tiny values made a relative tolerance fail)
    assert np.abs(q_values(mdp, sol.V, gamma) - sol.Q).max() <= gamma * sol.residual + 1e-15


@given(lakes_(), GAMMAS)
def test_V_star_dominates_every_policy_and_greedy_attains_it(case, gamma):
    mdp, rng = case
    sol = value_iteration(mdp, gamma, tol=1e-12)
    err = 2 * 1e-12 / (1 - gamma) + 1e-12
    for _ in range(3):
        pi = rng.dirichlet(np.ones(mdp.n_actions) * 0.5, size=mdp.n_states)
        assert (policy_evaluation(mdp, pi, gamma) <= sol.V + err).all()
        det = rng.integers(0, mdp.n_actions, size=mdp.n_states)
        assert (policy_evaluation(mdp, det, gamma) <= sol.V + err).all()
    np.testing.assert_allclose(policy_evaluation(mdp, sol.policy, gamma), sol.V, atol=err)
    np.testing.assert_allclose(policy_evaluation(mdp, optimal_action_probs(sol.Q), gamma), sol.V, atol=err)


@given(lakes_(), GAMMAS)
def test_gauss_seidel_equals_jacobi(case, gamma):
    mdp, _ = case
    a, b = value_iteration(mdp, gamma, tol=1e-12), value_iteration(mdp, gamma, tol=1e-12, method="jacobi")
    np.testing.assert_allclose(a.V, b.V, atol=4e-12 / (1 - gamma))


@given(lakes_(), st.integers(1, 12))
def test_success_probability_and_preference(case, H):
    mdp, rng = case
    pi = rng.dirichlet(np.ones(mdp.n_actions), size=mdp.n_states)
    T = mdp.state_transition(pi)
    np.testing.assert_allclose(T.sum(1), 1.0, atol=1e-12)
    pref = mdp.preference(pi, H)
    np.testing.assert_allclose(pref.sum(1), 1.0, atol=1e-12)
    assert pref.min() >= 0
    p_inf = success_probability(mdp, pi)
    p_h = [success_probability(mdp, pi, horizon=h) for h in range(H + 1)]
    assert 0.0 <= p_inf <= 1.0 and all(0.0 <= p <= 1.0 for p in p_h)
    assert all(x <= y + 1e-12 for x, y in itertools.pairwise(p_h)) and p_h[-1] <= p_inf + 1e-9
    assert p_h[H] == pytest.approx(pref[H][mdp.goal].sum(), abs=1e-12)


@given(lakes_(), st.sampled_from([0.5, 0.9]))
def test_iterative_paths_match_direct_solves(case, gamma):
    mdp, rng = case
    pi = rng.dirichlet(np.ones(mdp.n_actions), size=mdp.n_states)
    direct_v, direct_p = policy_evaluation(mdp, pi, gamma), success_probability(mdp, pi)
    old = solve.DENSE_MAX_STATES
    solve.DENSE_MAX_STATES = 0
    try:
        iter_v, iter_p = policy_evaluation(mdp, pi, gamma, tol=1e-13), success_probability(mdp, pi)
    finally:
        solve.DENSE_MAX_STATES = old
    np.testing.assert_allclose(iter_v, direct_v, atol=1e-11)
    # The sweeps stop on the Bellman residual (1e-13); their error is that residual times the expected
    # time to absorption, which a near-deterministic random policy can make ~1e4 steps (hypothesis
    # found a 3x1 map where it was 2e-9), so the tolerance here is looser than the residual.
    assert iter_p == pytest.approx(direct_p, abs=1e-6)


@given(lakes_(), st.sampled_from([0.5, 0.8]))
def test_finite_horizon_approaches_infinite_horizon(case, gamma):
    mdp, rng = case
    H = 80
    fh, sol = finite_horizon(mdp, H, gamma), value_iteration(mdp, gamma, tol=1e-13)
    np.testing.assert_allclose(fh.V[0], sol.V, atol=gamma**H / (1 - gamma) + 1e-10)
    pi = rng.dirichlet(np.ones(mdp.n_actions), size=mdp.n_states)
    assert (policy_evaluation(mdp, pi, gamma, horizon=5) <= fh.V[H - 5] + 1e-12).all()


@given(st.lists(st.lists(st.floats(-5, 5), min_size=3, max_size=3), min_size=1, max_size=6), st.floats(0.01, 10))
def test_optimal_action_probs_are_distributions(rows, temperature):
    Q = np.array(rows)
    for t in (0.0, temperature):
        pi = optimal_action_probs(Q, t)
        np.testing.assert_allclose(pi.sum(1), 1.0, atol=1e-12)
        assert pi.min() >= 0
    one_hot = optimal_action_probs(Q)
    assert (one_hot[np.arange(len(Q)), greedy_policy(Q)] > 0).all()


# ------------------------------------------------------------------ scale, limits, errors
def test_large_deterministic_map_is_exact_in_two_sweeps():
    mdp = make_lake("random:128:0")
    sol = value_iteration(mdp, 0.99)
    assert sol.iterations == 2 and sol.residual == 0.0
    assert success_probability(mdp, sol.policy) == 1.0
    # V*(S) = gamma^(d - 1), d = the number of moves of the optimal path
    d = 0
    s = 0
    while not mdp.goal[s]:
        s, d = int(mdp.next_states[s, sol.policy[s], 0]), d + 1
    assert sol.V[0] == pytest.approx(0.99 ** (d - 1), rel=1e-12)


@pytest.mark.parametrize("method", ["gauss-seidel", "jacobi"])
def test_gamma_1_finds_the_least_fixed_point(method):
    """Undiscounted, V*(S) is the best success probability: 14/17 on the slippery 4x4 lake. Zero-reward
    loops make other fixed points (e.g. V + c on safe regions); extrapolating could land on one."""
    sol = value_iteration(make_lake("4x4", slippery=True), 1.0, method=method)
    assert sol.V[0] == pytest.approx(14 / 17, abs=1e-8) and sol.converged
    assert value_iteration(make_lake("8x8", slippery=True), 1.0, method=method).V.max() <= 1.0


def test_max_iter_reached_is_reported():
    mdp = make_lake("8x8", slippery=True)
    for method in ("gauss-seidel", "jacobi"):
        sol = value_iteration(mdp, 0.99, max_iter=3, method=method)
        assert sol.iterations == 3 and not sol.converged and sol.residual > 1e-10


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(gamma=0.0), r"gamma must be a discount in \(0, 1\], got 0.0"),
        (dict(gamma=1.5), r"gamma must be a discount in \(0, 1\], got 1.5"),
        (dict(gamma=float("nan")), r"gamma must be a discount in \(0, 1\], got nan"),
        (dict(gamma="0.9"), r"gamma must be a discount in \(0, 1\], got '0.9'"),
        (dict(gamma=0.9, tol=-1e-3), "tol must be a finite number >= 0, got -0.001"),
        (dict(gamma=0.9, max_iter=0), "max_iter must be an integer >= 1, got 0"),
        (dict(gamma=0.9, method="sor"), "method must be 'gauss-seidel' or 'jacobi', got 'sor'"),
    ],
)
def test_value_iteration_errors(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        value_iteration(make_lake("4x4"), **kwargs)


def test_other_errors():
    mdp = make_lake("4x4")
    with pytest.raises(ValueError, match="horizon must be an integer >= 1, got 0"):
        finite_horizon(mdp, 0)
    with pytest.raises(ValueError, match=r"gamma must be a discount in \(0, 1\]"):
        finite_horizon(mdp, 3, gamma=-1)
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0, got -1"):
        optimal_action_probs(np.zeros((2, 2)), -1)
    with pytest.raises(ValueError, match=r"Q must have shape \(S, A\)"):
        optimal_action_probs(np.zeros(4))
    with pytest.raises(ValueError, match=r"Q must have shape \(S, A\)"):
        greedy_policy(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match=r"V must have shape \(16,\), got \(4,\)"):
        q_values(mdp, np.zeros(4), 0.9)
    with pytest.raises(ValueError, match=r"actions must lie in \[0, 3\], got range \[0, 4\]"):
        success_probability(mdp, np.array([4] + [0] * 15))
    with pytest.raises(ValueError, match=r"integer actions of shape \(16,\)"):
        policy_evaluation(mdp, np.zeros(16), 0.9)
    with pytest.raises(ValueError, match=r"pi must have shape \(16, 4\)"):
        policy_evaluation(mdp, np.ones((16, 3)) / 3, 0.9)
    with pytest.raises(ValueError, match="non-stationary policy of 2 steps needs horizon 2 or None, got 3"):
        success_probability(mdp, np.zeros((2, 16), dtype=int), horizon=3)
    with pytest.raises(ValueError, match="horizon must be an integer >= 0, got -1"):
        success_probability(mdp, np.zeros(16, dtype=int), horizon=-1)
