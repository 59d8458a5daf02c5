"""The two sweep kernels (numba, numpy) against each other and against scipy peers; the relative tie
rule on tiny and exactly tied values; the size bounds of make_lake and the finite-horizon solvers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frozenlake_ift import lakes, solve
from frozenlake_ift.lakes import make_lake
from frozenlake_ift.solve import (
    finite_horizon,
    greedy_policy,
    optimal_action_probs,
    optimal_actions,
    policy_evaluation,
    success_probability,
    value_iteration,
)
from strategies import lake_descs

HAVE_NUMBA = solve.numba_available()
KERNELS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed"))]


def open_map(nrow: int, ncol: int | None = None) -> list[str]:
    """All frozen, S at the top-left, G at the bottom-right."""
    rows = ["F" * (ncol or nrow) for _ in range(nrow)]
    rows[0], rows[-1] = "S" + rows[0][1:], rows[-1][:-1] + "G"
    return rows


@pytest.fixture(params=KERNELS)
def kernel(request, monkeypatch):
    monkeypatch.setattr(solve, "KERNEL", request.param)
    return request.param


@pytest.fixture(scope="module")
def slippery_40():
    return make_lake("random:40:3", slippery=True)


# ------------------------------------------------------------------ kernels agree, peers agree
@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
@settings(max_examples=25)
@given(lake_descs(max_size=6), st.booleans(), st.sampled_from([0.5, 0.9, 0.99, 1.0]))
def test_numba_and_numpy_kernels_compute_the_same_sweeps(desc, slippery, gamma):
    mdp = make_lake(desc, slippery)
    out = {}
    for k in ("numpy", "numba"):
        solve.KERNEL = k
        try:
            mdp._cache.clear()
            out[k] = value_iteration(mdp, gamma, tol=1e-12), solve.level_order(mdp)
        finally:
            solve.KERNEL = "auto"
    (a, la), (b, lb) = out["numpy"], out["numba"]
    for x, y in zip(la, lb, strict=True):  # the same level order from both breadth-first searches
        np.testing.assert_array_equal(x, y)
    np.testing.assert_allclose(a.V, b.V, rtol=0, atol=1e-13)
    assert a.converged and b.converged


def test_kernels_agree_with_scipy_policy_iteration(kernel, slippery_40):
    """Independent peer: Howard's policy iteration with sparse direct solves (exact up to rounding)."""
    sp = pytest.importorskip("scipy.sparse")
    from scipy.sparse.linalg import spsolve

    mdp, gamma = slippery_40, 0.99
    mdp._cache.clear()
    sol = value_iteration(mdp, gamma, tol=1e-9)
    S, A, K = mdp.next_states.shape
    P = sp.csr_matrix(
        (mdp.probs.ravel().copy(), mdp.next_states.ravel().copy(), np.arange(0, S * A * K + 1, K)), shape=(S * A, S)
    )
    r, pi, idx = mdp.R.ravel(), np.zeros(S, dtype=np.int64), np.arange(S)
    for _ in range(500):
        V = spsolve((sp.identity(S, format="csc") - gamma * P[idx * A + pi]).tocsc(), r[idx * A + pi])
        Q = (r + gamma * (P @ V)).reshape(S, A)
        new = np.where(Q.max(1) - Q[idx, pi] > 1e-12, Q.argmax(1), pi)
        if np.array_equal(new, pi):
            break
        pi = new
    assert sol.error_bound <= 1e-7
    np.testing.assert_allclose(sol.V, V, rtol=0, atol=sol.error_bound + 1e-10)
    top2 = np.sort(Q, 1)[:, -2:]
    decided = top2[:, 1] - top2[:, 0] > 2 * (sol.error_bound + 1e-10)
    assert decided.sum() > 100
    np.testing.assert_array_equal(sol.policy[decided], Q.argmax(1)[decided])


@settings(max_examples=30)
@given(lake_descs(max_size=5), st.booleans(), st.sampled_from([0.5, 0.9, 0.99]), st.sampled_from([1e-3, 1e-6]))
def test_error_bound_holds(desc, slippery, gamma, tol):
    mdp = make_lake(desc, slippery)
    loose, exact = value_iteration(mdp, gamma, tol=tol), value_iteration(mdp, gamma, tol=1e-14)
    assert np.abs(loose.V - exact.V).max() <= loose.error_bound + 1e-12
    assert loose.error_bound == (0.0 if loose.residual == 0 else gamma * loose.residual / (1 - gamma))


# ------------------------------------------------------------------ ties at the values' own scale
def test_open_210x210_map_at_gamma_095_is_solved(kernel):
    """The reported failure: V_start 5.1e-10 (= 0.95^417: 418 moves) was below the old absolute tie
    tolerance 1e-9, so every action tied and the lowest (left) walked into the wall: success 0."""
    mdp = make_lake(open_map(210))
    sol = value_iteration(mdp, 0.95)
    assert sol.V[0] == pytest.approx(0.95**417, rel=1e-12) and sol.residual == 0.0
    assert success_probability(mdp, sol.policy) == 1.0
    assert sol.policy[0] in (1, 2)  # down or right, never left / up into the wall


@pytest.mark.parametrize("n, gamma", [(12, 0.3), (20, 0.5), (30, 0.5)])
def test_slippery_open_maps_with_tiny_values(n, gamma):
    """V*(S) of 1e-9 .. 1e-27: the greedy policy still reaches G surely (no holes) and attains V*."""
    mdp = make_lake(open_map(n), slippery=True)
    sol = value_iteration(mdp, gamma, tol=0.0)  # tol 0: sweep until the residual is exactly 0
    assert 0 < sol.V[0] < 1e-8 and sol.converged
    assert success_probability(mdp, sol.policy) == pytest.approx(1.0, abs=1e-12)
    assert policy_evaluation(mdp, sol.policy, gamma)[0] == pytest.approx(sol.V[0], rel=1e-9)
    # S is symmetric under the diagonal flip: down and right tie exactly, split evenly
    np.testing.assert_allclose(optimal_action_probs(sol.Q)[0], [0, 0.5, 0.5, 0])


@pytest.mark.parametrize("slippery, gamma", [(False, 0.9), (True, 0.9), (True, 0.5), (False, 1e-3)])
def test_symmetric_maps_split_exact_ties_evenly(slippery, gamma, kernel):
    mdp = make_lake(open_map(24), slippery)  # 576 states, mirror-symmetric under the diagonal
    sol = value_iteration(mdp, gamma, tol=1e-13)
    pi = optimal_action_probs(sol.Q)
    np.testing.assert_allclose(pi[0], [0, 0.5, 0.5, 0])
    flip = np.arange(24 * 24).reshape(24, 24).T.ravel()  # state of the mirror tile
    swap = [3, 2, 1, 0]  # left <-> up, down <-> right under the diagonal flip
    live = ~mdp.terminal
    np.testing.assert_allclose(pi[flip][:, swap][live], pi[live], atol=0)


def test_tie_rule_golden():
    for scale in (1e-280, 1e-20, 1.0, 1e20):
        Q = scale * np.array([[1.0, 1.0 + 1e-6], [1.0, 1.0 + 1e-12], [2.0, 2.0], [-1.0, -1.0 - 1e-12]])
        assert greedy_policy(Q).tolist() == [1, 0, 0, 0], scale
        np.testing.assert_allclose(optimal_action_probs(Q), [[0, 1], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])
    assert optimal_actions(np.zeros((1, 3))).all()  # states that cannot score: all tied
    assert greedy_policy(np.array([[1.0, 1.0 + 1e-6]]), rtol=1e-5).tolist() == [0]
    assert greedy_policy(np.array([[0.0, 1e-200]]), atol=1e-100).tolist() == [0]
    with pytest.raises(ValueError, match="rtol must be a finite number >= 0, got -1"):
        greedy_policy(np.zeros((1, 2)), rtol=-1)
    with pytest.raises(ValueError, match="atol must be a finite number >= 0, got nan"):
        optimal_action_probs(np.zeros((1, 2)), atol=float("nan"))


ENTRIES = st.one_of(st.just(0.0), st.floats(-5, 5).filter(lambda x: abs(x) >= 1e-6))  # scaled: 0 or >= 1e-256


@given(
    st.lists(st.lists(ENTRIES, min_size=3, max_size=3), min_size=1, max_size=6),
    st.sampled_from([1e-250, 1e-30, 1e-3, 1e30, 1e250]),
)
def test_tie_rule_is_scale_invariant(rows, scale):
    """Far above TIE_ATOL (1e-300) the rule is purely relative."""
    Q = np.array(rows)
    np.testing.assert_array_equal(optimal_actions(scale * Q), optimal_actions(Q))
    np.testing.assert_array_equal(greedy_policy(scale * Q), greedy_policy(Q))


# ------------------------------------------------------------------ sizes that cannot fit
def test_make_lake_refuses_maps_that_cannot_fit():
    with pytest.raises(
        ValueError,
        match=r"map 'random:100000:0' has 10,000,000,000 states, needing about "
        r"[\d,.]+ GiB .*the limit is 4,194,304 states \(pass max_states=",
    ):
        make_lake("random:100000:0")
    assert lakes.MAX_STATES == 4_194_304
    with pytest.raises(ValueError, match=r"has 16 states.*the limit is 15 states"):
        make_lake("4x4", max_states=15)
    assert make_lake("4x4", max_states=16).n_states == 16
    with pytest.raises(ValueError, match="map of 3x4 tiles has 12 states"):
        make_lake(["SFFF", "FHFH", "FFFG"], max_states=11)
    with pytest.raises(ValueError, match="map 'SFF,FFG' has 6 states"):
        make_lake("SFF,FFG", max_states=5)
    with pytest.raises(ValueError, match="max_states must be an integer >= 1, got 0"):
        make_lake("4x4", max_states=0)


def test_lake_bytes_matches_the_model():
    for slippery in (False, True):
        mdp = make_lake("8x8", slippery)
        arrays = (mdp.next_states, mdp.probs, mdp.R, mdp.rho0, mdp.terminal, mdp.goal)
        arrays += () if mdp.rewards is None else (mdp.rewards,)  # slippery: each successor's reward
        used = sum(a.nbytes for a in arrays)
        assert used <= lakes.lake_bytes(64, slippery) <= used + 64  # (bools: 3 bytes a state)


def test_finite_horizon_refuses_what_cannot_fit():
    mdp = make_lake("4x4")
    with pytest.raises(ValueError, match=r"horizon 1,000,000,000 is above the limit of 1,000,000 steps.*max_horizon="):
        finite_horizon(mdp, 10**9)
    with pytest.raises(
        ValueError,
        match=r"horizon 1,000,000,000 on 16 states x 4 actions needs about 715.3 GiB.*"
        r"the limit is 4.0 GiB \(pass max_bytes=",
    ):
        finite_horizon(mdp, 10**9, max_horizon=10**9)
    with pytest.raises(ValueError, match=r"needs about 0.1 MiB.*the limit is 0.0 MiB"):
        finite_horizon(mdp, 100, max_bytes=1000)
    with pytest.raises(ValueError, match="horizon 1,000,000,000 is above the limit"):
        success_probability(mdp, np.zeros(16, dtype=int), horizon=10**9)
    with pytest.raises(ValueError, match="horizon 1,000,000,000 is above the limit"):
        policy_evaluation(mdp, np.zeros(16, dtype=int), 0.9, horizon=10**9)


def test_long_horizons_stop_once_nothing_changes():
    """Once the iterate is a fixed point in floating point every later step is the same: exact to stop."""
    mdp = make_lake("4x4", slippery=True)
    pi = value_iteration(mdp, 0.99).policy
    assert success_probability(mdp, pi, horizon=10**6) == pytest.approx(success_probability(mdp, pi), abs=1e-12)
    np.testing.assert_allclose(
        policy_evaluation(mdp, pi, 0.9, horizon=10**6), policy_evaluation(mdp, pi, 0.9), atol=1e-12
    )


def test_progress_bars_change_nothing(capsys):
    mdp = make_lake("8x8", slippery=True)
    a, b = value_iteration(mdp, 0.9), value_iteration(mdp, 0.9, progress=True)
    np.testing.assert_array_equal(a.V, b.V)
    np.testing.assert_array_equal(finite_horizon(mdp, 30).Q, finite_horizon(mdp, 30, progress=True).Q)
    assert value_iteration(mdp, 0.9, method="jacobi", progress=True).converged
    assert "sweep" in capsys.readouterr().err


def test_kernel_choice(monkeypatch):
    monkeypatch.setattr(solve, "KERNEL", "numpy")
    assert solve.kernel_name(10**9) == "numpy"
    monkeypatch.setattr(solve, "KERNEL", "auto")
    assert solve.kernel_name(solve.NUMBA_MIN_STATES - 1) == "numpy"
    assert solve.kernel_name(solve.NUMBA_MIN_STATES) == ("numba" if HAVE_NUMBA else "numpy")
    monkeypatch.setattr(solve, "KERNEL", "fortran")
    with pytest.raises(ValueError, match=r"solve.KERNEL must be 'auto', 'numba' or 'numpy', got 'fortran'"):
        value_iteration(make_lake(open_map(130)), 0.9)
    monkeypatch.setattr(solve, "numba_available", lambda: False)  # as without numba
    monkeypatch.setattr(solve, "KERNEL", "numba")
    with pytest.raises(ValueError, match="numba is not installed"):
        solve.kernel_name()
    monkeypatch.setattr(solve, "KERNEL", "auto")
    assert solve.kernel_name(10**9) == "numpy"
