"""Trajectory sampling (numpy and batched torch) against exact occupancies, success probabilities,
values and path probabilities; the two samplers against each other; conventions; reproducibility.

Statistical bounds. Each check compares a mean of N i.i.d. episodes with its exact expectation and
allows Z = 5 standard errors: by the CLT a correct sampler exceeds that with probability about
5.7e-7 per check, so even the ~100 checks below (a Bonferroni union bound) fail by chance with
probability below 1e-4, while a biased sampler (off-by-one step, wrong row, wrong CDF) is off by
many standard errors. Where the variance is known exactly (Bernoulli successes, returns in
[0, 1] with Var <= m (1 - m)) the bound uses it; for visit counts it uses the sample standard
deviation and first asserts that every reachable state is visited in >= 50 expected episodes, so
that the estimate and the normal approximation are sound. The seeds are fixed: the tests are
deterministic, the bounds say why they are not tuned to the seeds.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from frozenlake_ift import lakes, policy, routes, solve
from frozenlake_ift.mdp import TabularMDP
from frozenlake_ift.sampling import (
    FIELDS,
    Episodes,
    Rollouts,
    episodes_from_uniforms,
    mdp_tensors,
    n_uniforms,
    rollouts_from_mdp,
    rollouts_from_uniforms,
    sample_episodes,
    sample_rollouts,
)
from strategies import lake_descs, tabular_mdps

Z = 5.0


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Intra-op threads on shared, busy cores made these samplers ~10x slower (measured); restored after."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def slip4():
    return lakes.make_lake("4x4", slippery=True)


@pytest.fixture(scope="module")
def two():
    return lakes.make_lake("two-route")


def _soft_policies(n: int, S: int, seed: int) -> np.ndarray:
    """n random policies with every action probability positive. Shape (n, S, A=4)."""
    return np.random.default_rng(seed).dirichlet(np.full(4, 2.0), size=(n, S))


def _good_policies(mdp, n: int, seed: int) -> np.ndarray:
    """0.8 * greedy-optimal + 0.2 * random: success probabilities around 0.2 on the slippery 4x4.

    The optimum by plain value iteration on dense P (any near-optimal policy would do)."""
    P, V = mdp.dense_P(), np.zeros(mdp.n_states)
    for _ in range(2000):
        Q = mdp.R + 0.99 * P @ V  # (S, A)
        V = Q.max(1)
    return 0.8 * np.eye(4)[Q.argmax(1)] + 0.2 * _soft_policies(n, mdp.n_states, seed)


def _exact_visits(mdp, pi: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray]:
    """By hand from T_pi: expected visits sum_{t<T} (rho0 T_pi^t)[s] and Pr(s visited at some t < T)."""
    Tpi = mdp.state_transition(pi)  # (S, S)
    d, occ = mdp.rho0.copy(), np.zeros(mdp.n_states)
    for _ in range(T):
        occ += d
        d = d @ Tpi
    hit = np.empty(mdp.n_states)
    for s in range(mdp.n_states):  # make s absorbing: its mass at t = T - 1 is Pr(reached by then)
        M = Tpi.copy()
        M[s] = np.eye(mdp.n_states)[s]
        hit[s] = (mdp.rho0 @ np.linalg.matrix_power(M, T - 1))[s]
    return occ, hit


def _empirical_visits(states: np.ndarray, S: int, T: int) -> np.ndarray:
    """Visits to each state over t < T per episode. Shape: states (N, >= T) -> (N, S)."""
    return (states[:, :T, None] == np.arange(S)).sum(1)


def _assert_visits(states: np.ndarray, mdp, pi: np.ndarray, T: int) -> None:
    N = states.shape[0]
    exact, hit = _exact_visits(mdp, pi, T)
    np.testing.assert_allclose(exact, mdp.occupancy(pi, horizon=T), atol=1e-12)  # two exact methods agree
    assert (N * hit[exact > 0] >= 50).all(), "test design: a reachable state is visited too rarely for the CLT"
    X = _empirical_visits(states, mdp.n_states, T)  # (N, S)
    se = X.std(0, ddof=1) / math.sqrt(N)  # (S,)
    err = np.abs(X.mean(0) - exact)
    assert (err <= Z * se + 1e-12).all(), f"visits off by {err / np.maximum(se, 1e-300)} standard errors"
    assert (X[:, exact == 0] == 0).all()  # unreachable states are never visited


def _assert_binomial(hits: np.ndarray, p: float) -> None:
    """Mean of 0/1 (or [0, 1]-valued with mean p) samples within Z exact standard errors of p."""
    N = hits.size
    assert abs(hits.mean() - p) <= Z * math.sqrt(p * (1 - p) / N) + 1e-12, (hits.mean(), p, N)


# ------------------------------------------------------------------ against exact quantities
def test_numpy_visit_frequencies_match_exact_occupancy(slip4):
    pi, T = _soft_policies(1, 16, seed=1)[0], 16
    ep = sample_episodes(slip4, pi, 10_000, T, seed=2)
    _assert_visits(ep.states, slip4, pi, T)


def test_torch_visit_frequencies_match_each_members_exact_occupancy(slip4):
    pis, T = _soft_policies(3, 16, seed=3), 16
    ro = rollouts_from_mdp(slip4, torch.tensor(pis), 10_000, T, torch.Generator().manual_seed(4))
    assert ro.states.shape == (3, 10_000, T + 1)
    for e in range(3):
        _assert_visits(ro.states[e].numpy(), slip4, pis[e], T)


@pytest.fixture(scope="module")
def good_case(slip4):
    """Three near-optimal policies, their numpy episodes (member 0) and torch rollouts (all three)."""
    pis, T, N = _good_policies(slip4, 3, seed=5), 40, 10_000
    ep = sample_episodes(slip4, pis[0], N, T, seed=6)
    ro = rollouts_from_mdp(slip4, torch.tensor(pis, dtype=torch.float32), N, T, torch.Generator().manual_seed(7))
    return pis, T, ep, ro


def test_success_rates_match_exact_success_probability(slip4, good_case):
    pis, T, ep, ro = good_case
    p = [solve.success_probability(slip4, pi, horizon=T) for pi in pis]
    assert all(0.1 < q < 0.5 for q in p)  # test design: rates far from 0 and 1
    _assert_binomial(ep.success, p[0])
    for e in range(3):
        _assert_binomial(ro.success[e].numpy(), p[e])
    # numpy and torch agree in distribution: both sit within the bound of the same exact value,
    # hence within 2 Z standard errors of each other
    gap = abs(ep.success.mean() - ro.success[0].double().mean().item())
    assert gap <= 2 * Z * math.sqrt(p[0] * (1 - p[0]) / ep.n_episodes)


def test_mean_discounted_return_matches_finite_horizon_policy_value(slip4, good_case):
    pis, T, ep, ro = good_case
    for gamma in (0.9, 1.0):
        v = [float(solve.policy_evaluation(slip4, pi, gamma, horizon=T) @ slip4.rho0) for pi in pis]
        _assert_binomial(ep.returns(gamma), v[0])  # returns lie in [0, 1]: Var <= v (1 - v)
        for e in range(3):
            _assert_binomial(ro.returns(gamma)[e].numpy(), v[e])


def test_route_frequency_matches_path_probability(two):
    chosen = routes.routes(two)[0]  # the shorter of the two routes
    pi = np.full((25, 4), 0.25)
    pi[list(chosen.states[:-1])] = 0.05
    pi[list(chosen.states[:-1]), list(chosen.actions)] = 0.85
    p = two.path_probability(chosen.states, pi, chosen.actions)
    n = len(chosen)
    ro = rollouts_from_mdp(two, torch.tensor(pi)[None], 5000, 12, torch.Generator().manual_seed(9))
    for states in (sample_episodes(two, pi, 5000, 12, seed=8).states, ro.states[0].numpy()):
        _assert_binomial((states[:, : n + 1] == chosen.states).all(1), p)


# ------------------------------------------------------------------ deterministic routes
def _one_hot_route_policy(route: routes.Trajectory, S: int) -> np.ndarray:
    pi = np.zeros((S, 4))
    pi[:, 0] = 1.0
    pi[list(route.states[:-1])] = 0.0
    pi[list(route.states[:-1]), list(route.actions)] = 1.0
    return pi


@pytest.mark.parametrize("T", [4, 15])
def test_one_hot_policy_walks_exactly_its_route(two, T):
    pair = routes.routes(two)  # the two simple routes S -> G (chosen and rejected of the study)
    pis = np.stack([_one_hot_route_policy(r, 25) for r in pair])  # (2, S, A)
    ro = rollouts_from_mdp(two, torch.tensor(pis), 7, T, torch.Generator().manual_seed(0))
    for e, route in enumerate(pair):
        assert two.path_probability(route.states, pis[e], route.actions) == 1.0
        n, k = len(route), min(len(route), T)
        for ep in (ro.member(e), sample_episodes(two, pis[e], 7, T, seed=e)):
            expected_states = list(route.states[: k + 1]) + [route.states[-1]] * (T - n)
            assert (ep.states == expected_states).all()
            assert (ep.actions == list(route.actions[:k]) + [0] * (T - k)).all()
            assert (ep.lengths == k).all() and (ep.success == (T >= n)).all()
            reward_at_end = [0.0] * (n - 1) + [1.0] + [0.0] * (T - n)
            assert (ep.rewards == (reward_at_end if T >= n else [0.0] * T)).all()
            np.testing.assert_allclose(ep.returns(0.9), 0.9 ** (n - 1) if T >= n else 0.0, rtol=1e-15)


# ------------------------------------------------------------------ conventions by hand
def _tiny():
    """0 --a1--> 1 --a1--> 2 (goal); a0: 0 -> 3 (hole), 1 stays. Reward 1 on entering 2."""
    P = np.zeros((4, 2, 4))
    P[0, 1, 1] = P[1, 1, 2] = P[0, 0, 3] = P[1, 0, 1] = 1.0
    P[2, :, 2] = P[3, :, 3] = 1.0
    R = np.zeros((4, 2))
    R[1, 1] = 1.0
    return TabularMDP.from_dense(P, R, [False, False, True, True], [1.0, 0, 0, 0], goal=[False, False, True, False])


def test_conventions_by_hand_on_a_tiny_chain():
    mdp = _tiny()
    go, fall = np.array([[0, 1.0]] * 4), np.array([[1.0, 0]] * 4)
    ep = sample_episodes(mdp, go, 3, 4)
    assert (ep.states == [0, 1, 2, 2, 2]).all() and (ep.actions == [1, 1, 0, 0]).all()
    assert (ep.mask == [True, True, False, False]).all() and (ep.rewards == [0, 1, 0, 0]).all()
    assert (ep.lengths == 2).all() and ep.success.all()
    assert (ep.returns(0.5) == 0.5).all() and (ep.returns(0.0) == 0.0).all() and (ep.returns() == 1.0).all()
    ep = sample_episodes(mdp, fall, 3, 4)
    assert (ep.states == [0, 3, 3, 3, 3]).all() and (ep.mask == [True, False, False, False]).all()
    assert not ep.success.any() and (ep.returns(0.9) == 0).all() and (ep.lengths == 1).all()
    # 1 stays with probability 1/2: return gamma^(k+1) with k the number of stays (by hand)
    half = np.array([[0, 1.0], [0.5, 0.5], [0, 1.0], [0, 1.0]])
    ep = sample_episodes(mdp, half, 400, 6, seed=1)
    stays = (ep.states[:, 1:-1] == 1).sum(1) - 1  # state 1 is visited 1 + stays times (before G or the end)
    np.testing.assert_allclose(ep.returns(0.5), np.where(ep.success, 0.5 ** (stays + 1), 0.0), rtol=1e-15)
    assert ep.success.any() and not ep.success.all()


def _mdp_and_policies(data, lake: bool):
    """A lake (deterministic or slippery) or a random finite MDP (rho0 may sit on a goal), and two
    policies with some zero-probability actions."""
    if lake:
        mdp = lakes.make_lake(data.draw(lake_descs(max_size=4)), slippery=data.draw(st.booleans()))
    else:
        mdp = data.draw(tabular_mdps(max_states=5, max_actions=3))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    S, A = mdp.n_states, mdp.n_actions
    pi = rng.dirichlet(np.full(A, 0.5), size=(2, S)) * (rng.random((2, S, A)) < 0.7)
    pi[..., 0] += pi.sum(-1) == 0  # never an empty row
    return mdp, pi / pi.sum(-1, keepdims=True), rng


@settings(max_examples=30)
@given(st.data(), st.booleans(), st.integers(1, 9), st.booleans())
def test_invariants_and_numpy_equals_torch_on_common_uniforms(data, lake, T, float32):
    mdp, pi, rng = _mdp_and_policies(data, lake)
    pi_t = torch.tensor(pi, dtype=torch.float32 if float32 else torch.float64)
    u = rng.random((2, 16, n_uniforms(T)))
    m = mdp_tensors(mdp)
    ro = rollouts_from_uniforms(m.P, pi_t, m.rho0, m.terminal, m.goal, torch.tensor(u))
    P = mdp.dense_P()
    for e in range(2):
        ep = ro.member(e)
        np_ep = episodes_from_uniforms(mdp, pi_t[e].double().numpy(), u[e])
        for f in FIELDS:  # two implementations (sparse numpy, dense batched torch) agree exactly
            np.testing.assert_array_equal(getattr(np_ep, f), getattr(ep, f), err_msg=f)
        s, a, nxt = ep.states[:, :-1], ep.actions, ep.states[:, 1:]
        assert (ep.mask == ~mdp.terminal[s]).all()  # mask = "s_t non-terminal", hence a prefix
        assert (np.diff(ep.mask.astype(int), axis=1) <= 0).all()
        assert (nxt[~ep.mask] == s[~ep.mask]).all() and (a[~ep.mask] == 0).all()
        assert (pi[e][s, a][ep.mask] > 0).all() and (P[s, a, nxt][ep.mask] > 0).all()  # only possible moves
        assert (mdp.rho0[ep.states[:, 0]] > 0).all()
        assert (ep.rewards == (ep.mask & mdp.goal[nxt])).all()
        entered = ep.success & ~mdp.goal[ep.states[:, 0]]  # success without reward: started on a goal
        assert (ep.rewards.sum(1) == entered).all() and (ep.success == mdp.goal[ep.states[:, -1]]).all()
        np.testing.assert_allclose(ep.returns(0.7), np.where(entered, 0.7 ** (ep.lengths - 1.0), 0.0), rtol=1e-15)


def test_rows_summing_slightly_below_one_never_pick_a_zero_probability_outcome(slip4):
    """Rows summing to a little under 1 (float32 softmax) with zero-probability outcomes after the last
    positive one: a u above the row's sum, or exactly on a cumulative sum, still picks a possible
    outcome. At S (state 0) of the slippery 4x4, 'left' leads to {0: 2/3, 4: 1/3} only."""
    m = mdp_tensors(slip4)
    pi = torch.zeros((1, 16, 4), dtype=torch.float32)
    pi[..., 0], pi[..., 1] = 0.5, 0.5 - 4e-6  # sum 1 - 4e-6 (ROW_SUM_TOL 1e-5); 'right' and 'up' impossible
    P = m.P.float().clone()
    P[0, 0, 4] -= 4e-6
    # 'down' at S slips to {0, 1, 4} (1/3 each, in state order); 'left' to {0: 2/3, 4: 1/3 - 4e-6}
    for value, action, nxt in ((1 - 1e-9, 1, 4), (0.5, 1, 1), (0.0, 0, 0)):
        u = torch.full((1, 3, n_uniforms(4)), value, dtype=torch.float64)
        ro = rollouts_from_uniforms(P, pi, m.rho0, m.terminal, m.goal, u)
        assert ((ro.actions[ro.mask] == 0) | (ro.actions[ro.mask] == 1)).all(), value
        assert (ro.actions[..., 0] == action).all() and (ro.states[..., 1] == nxt).all(), (value, ro.states)
        ro = rollouts_from_uniforms(P, torch.tensor([[[1.0, 0, 0, 0]] * 16]), m.rho0, m.terminal, m.goal, u)
        assert (ro.states[..., 1] == (4 if value >= 2 / 3 else 0)).all()  # P's guard: never state 1
    P_np = slip4.dense_P()
    P_np[0, 0, 4] -= 5e-10  # TabularMDP allows row sums within 1e-9
    mdp = TabularMDP.from_dense(P_np, slip4.R, slip4.terminal, slip4.rho0, goal=slip4.goal)
    pi_np = np.zeros((16, 4))
    pi_np[:, 0], pi_np[:, 1] = 0.5, 0.5 - 4e-7  # within check_policy's 1e-6
    ep = episodes_from_uniforms(mdp, pi_np, np.full((3, n_uniforms(4)), 1 - 1e-12))
    assert (ep.actions[ep.mask] == 1).all() and (ep.states[:, 1] == 4).all()
    ep = episodes_from_uniforms(mdp, np.tile([1.0, 0, 0, 0], (16, 1)), np.full((3, n_uniforms(4)), 1 - 1e-12))
    assert (ep.states[:, 1] == 4).all()


# ------------------------------------------------------------------ reproducibility
def _rollouts(two, pis, seed, N=32, T=20):
    m, g = mdp_tensors(two), torch.Generator().manual_seed(seed)
    return sample_rollouts(m.P, torch.tensor(pis), m.rho0, m.terminal, m.goal, N, T, g)


def _equal(a: Rollouts, b: Rollouts, members=slice(None)) -> bool:
    return all(torch.equal(getattr(a, f)[members], getattr(b, f)[members]) for f in FIELDS)


def test_same_seed_bit_identical_different_seed_different(two):
    pis = _soft_policies(3, 25, seed=10)
    a, b, c = _rollouts(two, pis, 1), _rollouts(two, pis, 1), _rollouts(two, pis, 2)
    assert _equal(a, b) and not torch.equal(a.states, c.states)
    m, g, ref = mdp_tensors(two), torch.Generator().manual_seed(6), torch.Generator().manual_seed(6)
    sample_rollouts(m.P, torch.tensor(pis), m.rho0, m.terminal, m.goal, 8, 30, g)
    torch.rand(3 * 8 * n_uniforms(30), generator=ref, dtype=torch.float64)  # the documented E N (2T+1) draws
    assert torch.equal(torch.rand(5, generator=g), torch.rand(5, generator=ref))
    g = np.random.default_rng(3)
    x, y = sample_episodes(two, pis[0], 40, 20, seed=3), sample_episodes(two, pis[0], 40, 20, seed=g)
    assert all(np.array_equal(getattr(x, f), getattr(y, f)) for f in FIELDS)
    assert not np.array_equal(sample_episodes(two, pis[0], 40, 20, seed=g).states, x.states)  # g advanced
    first = sample_episodes(two, pis[0], 10, 20, seed=3)  # the first N' episodes do not depend on N
    assert all(np.array_equal(getattr(first, f), getattr(x, f)[:10]) for f in FIELDS)


def test_members_depend_only_on_their_own_policy_and_index_on_cpu(two):
    pis = _soft_policies(3, 25, seed=11)
    base = _rollouts(two, pis, 5)
    other = pis.copy()
    other[0], other[2] = _soft_policies(2, 25, seed=12)
    changed = _rollouts(two, other, 5)
    assert _equal(base, changed, 1) and not torch.equal(base.states[0], changed.states[0])
    assert _equal(base, _rollouts(two, pis[:2], 5), slice(0, 2))  # first E' members = an E'-member call


def test_shorter_horizon_is_a_prefix_and_early_exit_changes_nothing(two):
    m, pis = mdp_tensors(two), torch.tensor(_soft_policies(2, 25, seed=14))
    u = torch.rand((2, 64, n_uniforms(200)), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    long = rollouts_from_uniforms(m.P, pis, m.rho0, m.terminal, m.goal, u)  # all end long before t = 200
    assert not long.mask[..., -1].any() and long.lengths.max() < 200
    short = rollouts_from_uniforms(m.P, pis, m.rho0, m.terminal, m.goal, u[..., : n_uniforms(15)])
    assert torch.equal(short.states, long.states[..., :16]) and torch.equal(short.mask, long.mask[..., :15])
    assert torch.equal(short.actions, long.actions[..., :15]) and torch.equal(short.rewards, long.rewards[..., :15])
    assert (long.states[..., -1] == long.states[..., 60]).all()


def test_policy_network_tables_sample_without_gradients(two):
    params = policy.init_params(25, 4, 8, seeds=[0, 1])  # float32, requires_grad
    pi = policy.policy_table(params, 25)
    ro = rollouts_from_mdp(two, pi, 16, 10, torch.Generator().manual_seed(0))
    assert ro.states.shape == (2, 16, 11) and not ro.rewards.requires_grad
    assert ro.actions.dtype == torch.int64 and ro.mask.dtype == torch.bool and ro.success.dtype == torch.bool
    assert all(getattr(ro, f).is_contiguous() for f in FIELDS)


# ------------------------------------------------------------------ errors
def test_torch_input_errors(two):
    m, g = mdp_tensors(two), torch.Generator()
    pi = torch.full((2, 25, 4), 0.25)
    ok = dict(P=m.P, pi=pi, rho0=m.rho0, terminal=m.terminal, goal=m.goal, n_episodes=4, horizon=5, generator=g)
    bad_row = pi.clone()
    bad_row[1, 3] = torch.tensor([0.5, 0.2, 0.2, 0.2])
    neg_P = m.P.clone()
    neg_P[0, 0, :2] = torch.tensor([-0.5, 1.5], dtype=torch.float64)
    goal = m.goal.clone()
    goal[0] = True
    cases = [
        (ValueError, r"P must have shape \(S, A, S\)", dict(P=m.P[:, :, :24])),
        (ValueError, r"pi must have shape \(E, S=25, A=4\)", dict(pi=pi[:, :, :3])),
        (ValueError, r"pi must have shape", dict(pi=pi[0])),
        (ValueError, r"rho0 must have shape \(S=25,\)", dict(rho0=m.rho0[:5])),
        (TypeError, "terminal must be a bool tensor", dict(terminal=m.terminal.double())),
        (TypeError, "pi must be a torch.Tensor", dict(pi=pi.numpy())),
        (ValueError, r"pi rows .* sum to 1 .* index \(1, 3\) sums to 1.1", dict(pi=bad_row)),
        (ValueError, "P must hold finite, non-negative", dict(P=neg_P)),
        (ValueError, "P rows", dict(P=m.P * 0.9)),
        (ValueError, "rho0 rows", dict(rho0=m.rho0 * 2)),
        (ValueError, "goal states must be terminal, got goal state 0", dict(goal=goal)),
        (ValueError, "n_episodes must be >= 1, got 0", dict(n_episodes=0)),
        (TypeError, "n_episodes must be an integer", dict(n_episodes=True)),
        (ValueError, "horizon must be >= 1, got 0", dict(horizon=0)),
        (TypeError, "generator must be a torch.Generator", dict(generator=0)),
    ]
    for exc, match, change in cases:
        with pytest.raises(exc, match=match):
            sample_rollouts(**{**ok, **change})
    for bad_u, match in (
        (torch.rand(2, 4, 10), r"uniforms must have shape \(E=2, N, 2T\+1\)"),
        (torch.ones(2, 4, 11), r"uniforms must lie in \[0, 1\)"),
    ):
        with pytest.raises(ValueError, match=match):
            rollouts_from_uniforms(m.P, pi, m.rho0, m.terminal, m.goal, bad_u)
    ro = sample_rollouts(**ok)
    with pytest.raises(ValueError, match="gamma must be a discount in"):
        ro.returns(1.5)
    with pytest.raises(ValueError, match=r"e must lie in \[0, 1\], got 2"):
        ro.member(2)
    with pytest.raises(ValueError, match="mask must have shape"):
        Rollouts(ro.states, ro.actions, ro.rewards, ro.mask[:, :, :-1], ro.success)


def test_numpy_input_errors(two):
    pi = np.full((25, 4), 0.25)
    with pytest.raises(ValueError, match="pi must hold a distribution"):
        sample_episodes(two, pi * 1.1, 4, 5)
    with pytest.raises(ValueError, match=r"pi must have shape \(25, 4\)"):
        sample_episodes(two, pi[:5], 4, 5)
    with pytest.raises(ValueError, match="n_episodes must be >= 1, got 0"):
        sample_episodes(two, pi, 0, 5)
    with pytest.raises(ValueError, match="horizon must be >= 1, got 0"):
        sample_episodes(two, pi, 4, 0)
    for seed in (-1, 1.5, "0"):
        with pytest.raises(TypeError, match=r"seed must be an integer >= 0 or a numpy\.random\.Generator"):
            sample_episodes(two, pi, 4, 5, seed=seed)
    with pytest.raises(ValueError, match=r"uniforms must have shape \(N, 2T\+1\)"):
        episodes_from_uniforms(two, pi, np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"uniforms must be floating-point numbers in \[0, 1\)"):
        episodes_from_uniforms(two, pi, np.ones((4, 5)))
    ep = sample_episodes(two, pi, 4, 5)
    with pytest.raises(ValueError, match="gamma must be a discount in"):
        ep.returns(-0.1)
    with pytest.raises(TypeError, match="actions must have dtype int64"):
        Episodes(ep.states, ep.actions.astype(np.int32), ep.rewards, ep.mask, ep.success)
