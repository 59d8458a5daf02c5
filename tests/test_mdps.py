"""MDP sources (mdps/): each family against an independent construction, value iteration against
pymdptoolbox, the registry's rules, and the data rules (data_rules.py) on them."""

import re
import warnings

import gymnasium as gym
import numpy as np
import pytest

from frozenlake_ift import data_rules, theory
from frozenlake_ift.config import StudyConfig
from frozenlake_ift.data import build_data
from frozenlake_ift.lakes import make_lake
from frozenlake_ift.mdp import TabularMDP
from frozenlake_ift.mdps import MDPSource, check_env, make_env, register_env, unregister_env
from frozenlake_ift.mdps.npz import save_npz
from frozenlake_ift.mdps.tokens import prefix_state
from frozenlake_ift.solve import value_iteration
from frozenlake_ift.trajectories import Trajectory, start_states

GYM_IDS = ("CliffWalking-v1", "CliffWalkingSlippery-v1", "Taxi-v4")


def _gym_dense(env_id):
    """gymnasium's own P as dense arrays (P, expected R), read independently of mdps.gym_text."""
    env = gym.make(env_id).unwrapped
    S, A = env.observation_space.n, env.action_space.n
    P, R, done_into = np.zeros((S, A, S)), np.zeros((S, A)), np.zeros(S, bool)
    for s in range(S):
        for a in range(A):
            for p, t, r, d in env.P[s][a]:
                P[s, a, t] += p
                R[s, a] += p * r
                done_into[t] |= bool(d)
    return P, R, done_into, np.asarray(env.initial_state_distrib, float)


@pytest.mark.parametrize("env_id", GYM_IDS)
def test_gym_source_is_gymnasiums_model(env_id):
    mdp = make_env(f"gym:{env_id}")
    P, R, terminal, rho0 = _gym_dense(env_id)
    live = ~terminal  # terminal states are absorbing in the study's MDP; every other row is gymnasium's
    np.testing.assert_array_equal(mdp.terminal, terminal)
    np.testing.assert_allclose(mdp.dense_P()[live], P[live], atol=1e-15)
    np.testing.assert_allclose(mdp.R[live], R[live], atol=1e-12)
    np.testing.assert_allclose(mdp.rho0, rho0 / rho0.sum())
    T = mdp.dense_P()[terminal]
    assert np.all(T[np.arange(len(T)), :, np.flatnonzero(terminal)] == 1) and not mdp.R[terminal].any()
    # the expected reward of each transition reproduces R
    np.testing.assert_allclose((mdp.dense_P() * mdp.dense_rewards()).sum(-1), mdp.R, atol=1e-12)


def test_gym_goals_and_starts():
    taxi = make_env("gym:Taxi-v4")
    assert (taxi.n_states, taxi.n_actions, int((taxi.rho0 > 0).sum()), int(taxi.goal.sum())) == (500, 6, 300, 4)
    cliff = make_env("gym:CliffWalking-v1")  # no terminal entry pays: the end itself is the goal
    assert np.flatnonzero(cliff.goal).tolist() == [47] and np.flatnonzero(cliff.rho0).tolist() == [36]
    lake = make_env("gym:FrozenLake-v1,map_name=8x8,is_slippery=false")  # a lake-like env keeps its map
    ours = make_lake("8x8")
    assert lake.desc == ours.desc and np.array_equal(lake.dense_P(), ours.dense_P())
    assert np.array_equal(lake.goal, ours.goal) and np.array_equal(lake.R, ours.R)
    # the cliff of the slippery variant: the start re-entered by a step (-1) or a fall (-100) is one
    # successor paying their probability-weighted mean
    slip = make_env("gym:CliffWalkingSlippery-v1")
    k = int(np.flatnonzero(slip.next_states[36, 0] == 36)[0])
    assert slip.probs[36, 0, k] == pytest.approx(2 / 3) and slip.rewards[36, 0, k] == pytest.approx(-50.5)


def test_bandit_chain_and_tokens_by_hand():
    bandit = make_env("bandit:1,0.5,0")
    P = np.zeros((2, 3, 2))
    P[:, :, 1] = 1
    assert np.array_equal(bandit.dense_P(), P) and bandit.R[0].tolist() == [1, 0.5, 0] and not bandit.goal.any()
    chain = make_env("chain:3:0.25")
    want = np.zeros((3, 2, 3))
    want[0, 0] = [0.75, 0.25, 0]  # left at the wall stays, or slips right
    want[0, 1] = [0.25, 0.75, 0]
    want[1, 0] = [0.75, 0, 0.25]
    want[1, 1] = [0.25, 0, 0.75]
    want[2, :, 2] = 1  # the right end: the goal, absorbing
    np.testing.assert_allclose(chain.dense_P(), want)
    np.testing.assert_allclose(chain.R, [[0, 0], [0.25, 0.75], [0, 0]])
    tok = make_env("tokens:2:2")  # <> 0 1 00 01 10 11; target 01
    assert tok.state_names == ("<>", "0", "1", "0 0", "0 1", "1 0", "1 1")
    assert tok.next_states[..., 0].tolist() == [[1, 2], [3, 4], [5, 6], [3, 3], [4, 4], [5, 5], [6, 6]]
    assert np.flatnonzero(tok.goal).tolist() == [prefix_state((0, 1), 2)] == [4]
    assert tok.terminal.tolist() == [False] * 3 + [True] * 4 and tok.R[1].tolist() == [0, 1]


@pytest.mark.parametrize(
    "spec", ["gym:CliffWalking-v1", "gym:Taxi-v4", "bandit:1,0.5,0", "chain:8:0.1", "tokens:3:3", "lake"]
)
def test_value_iteration_matches_pymdptoolbox(spec):
    mdptoolbox = pytest.importorskip("mdptoolbox.mdp")
    mdp, gamma = make_env(spec), 0.95
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # policy iteration with exact (matrix) evaluation: its value-iteration bound fails on a one-step bandit
        ref = mdptoolbox.PolicyIteration(mdp.dense_P().transpose(1, 0, 2), mdp.R, gamma, eval_type=0)
        ref.run()
    np.testing.assert_allclose(value_iteration(mdp, gamma, tol=1e-12).V, ref.V, atol=1e-6 * max(1, abs(mdp.R).max()))


def test_file_source_round_trips(tmp_path):
    taxi = make_env("chain:5:0.2")
    save_npz(taxi, tmp_path / "m.npz")
    back = make_env(f"file:{tmp_path / 'm.npz'}")
    assert np.array_equal(back.dense_P(), taxi.dense_P()) and np.array_equal(back.R, taxi.R)
    assert np.array_equal(back.goal, taxi.goal) and back.action_names == ("left", "right")


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("nope:1", "unknown env 'nope:1'"),
        ("gym:CartPole-v1", "has no exact model"),
        ("gym:Taxi-v3", "cannot make 'Taxi-v3'"),
        ("bandit:1", "at least two finite arm rewards"),
        ("bandit:1,nan", "at least two finite arm rewards"),
        ("tokens:4:12", "22,369,621 states"),
        ("chain:1", "integer N in [2"),
        ("lake:4x4", "takes its map from the map field"),
    ],
)
def test_bad_specs_name_the_value(spec, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        make_env(spec)


def _npz(path, **arrays):
    S, A = 2, 2
    base = {"P": np.full((S, A, S), 0.5), "R": np.zeros((S, A)), "terminal": np.zeros(S, bool), "rho0": [1.0, 0]}
    np.savez(path, **{**base, **arrays})
    return f"file:{path}"


@pytest.mark.parametrize(
    ("arrays", "needle"),
    [
        ({"P": np.full((2, 2, 3), 0.5)}, "P must be a numeric array of shape (S, A, S)"),
        ({"R": np.zeros((3, 2))}, "R must have shape (2, 2)"),
        ({"P": np.full((2, 2, 2), 0.4)}, "sums to 0.8"),
        ({"P": np.array([[[1.5, -0.5]] * 2] * 2)}, "finite, non-negative"),
        ({"P": np.array([[[np.nan, 1]] * 2] * 2)}, "finite, non-negative"),
        ({"rho0": [0.5, 0.2]}, "rho0 must be a distribution"),
        ({"extra": np.zeros(2)}, "unknown arrays ['extra']"),
    ],
)
def test_bad_npz_files_name_the_array(tmp_path, arrays, needle):
    spec = _npz(tmp_path / "m.npz", **arrays)
    with pytest.raises(ValueError, match=re.escape(needle)):
        make_env(spec)


def test_registry_refuses_builtin_names_and_checks_specs():
    with pytest.raises(ValueError, match="already registered as a built-in"):
        register_env(MDPSource("gym", build=lambda arg, config: None))
    src = register_env(MDPSource("ring", build=lambda arg, config: make_env("chain:3"), check=lambda arg: 3))
    try:
        assert check_env("ring:x") == 3 and make_env("ring").n_states == 3
        with pytest.raises(ValueError, match="already registered; pass replace=True"):
            register_env(MDPSource("ring", build=lambda arg, config: None))
        register_env(src, replace=True)
    finally:
        unregister_env("ring")
    with pytest.raises(ValueError, match="built in and cannot be removed"):
        unregister_env("lake")


# ------------------------------------------------------------------------------ data rules
def _data(env, **kw):
    return build_data(StudyConfig(env=env, **kw))


def test_bandit_pair_is_best_against_second_best_arm():
    data = _data("bandit:0.2,1,0.5,0")
    assert data.pi_star[0].tolist() == [0, 1, 0, 0]
    assert data.chosen == Trajectory((0, 1), (1,)) and data.rejected == Trajectory((0, 1), (2,))


def test_second_route_walks_its_own_tiles_on_slippery_lakes():
    cfg = StudyConfig(slippery=True)
    data = build_data(cfg)
    assert set(data.rejected.states) - set(data.chosen.states)  # not the chosen route's tiles with other moves
    assert data.chosen.states == (0, 1, 2, 3, 4, 9, 14)
    assert data.rejected.states == (0, 5, 10, 15, 20, 21, 22, 23, 24, 19, 14)  # the long route, on its tiles
    two = build_data(StudyConfig(slippery=True, route_pair="two-route"))
    assert two.rejected == data.rejected


def test_many_starts_give_one_pair_each_from_a_fixed_subset():
    data = _data("gym:Taxi-v4", max_starts=5)
    taxi = data.mdp
    assert len(data.chosen_all) == len(data.rejected_all) == 5 == len(data.starts)
    assert data.starts == start_states(taxi, 5, data_rules.START_SEED)
    assert [t.states[0] for t in data.chosen_all] == list(data.starts) == [t.states[0] for t in data.rejected_all]
    assert all(taxi.goal[t.states[-1]] for t in data.chosen_all)
    assert data.route_pair.shape[1] == 10 and data.chosen_paths.shape[1] == 5
    assert _data("gym:Taxi-v4", max_starts=5, seed=3).starts == data.starts  # the same for every config seed


def test_token_mdp_table1_estimate_is_the_product_of_token_probabilities():
    mdp = make_env("tokens:3:3:201")
    rng = np.random.default_rng(0)
    pi = rng.dirichlet(np.ones(3), size=mdp.n_states)  # a policy over the next token at every prefix
    target = (2, 0, 1)
    states = [prefix_state(target[:k], 3) for k in range(4)]
    product = np.cumprod([pi[s, t] for s, t in zip(states[:-1], target, strict=True)])  # a language model's
    est = theory.truly_estimate(mdp, pi, states, target)  # Table 1, "truly" (Eq. 19)
    np.testing.assert_allclose(est.prob[1:], product, rtol=1e-12)
    marginal = mdp.preference(pi, 3)  # (4, S): rho0^T T_pi^n, the model's n-step state distribution
    np.testing.assert_allclose([marginal[n, states[n]] for n in (1, 2, 3)], product, rtol=1e-12)
    sft = theory.sft_estimate(mdp, pi, states, target)  # teacher forcing: one token's probability a step
    np.testing.assert_allclose(sft.prob[1:], [pi[s, t] for s, t in zip(states[:-1], target, strict=True)])
    data = _data("tokens:3:3:201")
    assert data.chosen.actions == target and data.chosen.states == tuple(states)


def test_file_rule_and_bad_trajectories(tmp_path):
    path = tmp_path / "rej.json"
    data_rules.save_trajectories([Trajectory((0, 1), (2,))], path)
    data = _data("bandit:1,0.5,0", negatives=f"file:{path}")
    assert data.rejected == Trajectory((0, 1), (2,))
    data_rules.save_trajectories([Trajectory((0, 0), (2,))], path)  # 0 -a2-> 0 is impossible
    with pytest.raises(ValueError, match="impossible step 0 -a2-> 0"):
        _data("bandit:1,0.5,0", negatives=f"file:{path}")
    with pytest.raises(ValueError, match="needs a Frozen Lake map"):
        _data("bandit:1,0.5,0", negatives="second-route")
    with pytest.raises(ValueError, match="unknown data rule 'nope'"):
        StudyConfig(negatives="nope")
    with pytest.raises(ValueError, match="needs an argument: file:PATH"):
        StudyConfig(negatives="file")


def test_suboptimal_base_blocks_the_chosen_states_as_the_lake_map_did():
    from frozenlake_ift.data import blocked_mdp

    data = build_data(StudyConfig())
    blocked = blocked_mdp(data)
    rows = [
        "".join("H" if r * 5 + c in (1, 2, 3, 4, 9) else ch for c, ch in enumerate(row))
        for r, row in enumerate(data.mdp.desc)
    ]
    lake = make_lake(rows)  # the map the lake study used to build: the chosen route's tiles as holes
    for a, b in ((blocked.next_states, lake.next_states), (blocked.probs, lake.probs), (blocked.R, lake.R)):
        assert np.array_equal(a, b)
    assert np.array_equal(blocked.terminal, lake.terminal)
    with pytest.raises(ValueError, match="there are none"):
        blocked_mdp(_data("bandit:1,0.5,0"))


def test_tabular_mdp_checks_its_successor_rewards():
    with pytest.raises(ValueError, match="is not the expected successor reward"):
        TabularMDP.from_dense(np.ones((1, 1, 1)), [[1.0]], [False], [1.0], rewards=np.zeros((1, 1, 1)))


# ------------------------------------------------------------------ large MDPs: the sparse forms
@pytest.fixture(scope="module")
def taxi_study():
    import torch

    from frozenlake_ift import policy
    from frozenlake_ift.study import base_params, reference

    cfg = StudyConfig(env="gym:Taxi-v4", seeds=3, max_starts=4, dtype="float64")
    data = build_data(cfg)
    base = base_params(cfg, data, "cpu")
    params = policy.init_params(500, 6, 32, [5, 6, 7], dtype=torch.float64)
    return cfg, data, reference(cfg, data, base, policy.clone_params(base)), params


@pytest.mark.parametrize("lam", [0.0, 0.3, "per member"])
def test_sparse_inputs_equal_the_dense_one_hots(taxi_study, monkeypatch, lam):
    import torch

    from frozenlake_ift import policy
    from frozenlake_ift.methods.batches import path_logps

    cfg, data, _, params = taxi_study
    lam = torch.tensor([0.0, 0.2, 0.7], dtype=torch.float64) if lam == "per member" else lam
    assert data.mdp.n_states > policy.SPARSE_STATES
    sparse = path_logps(params, data.route_pair, data, cfg.activation, lam)  # (E, N, T)
    (g_sparse,) = torch.autograd.grad(sparse.sum(), params["W1"])
    monkeypatch.setattr(policy, "SPARSE_STATES", 10**9)  # the one-hot product of small maps
    dense = path_logps(params, data.route_pair, data, cfg.activation, lam)
    (g_dense,) = torch.autograd.grad(dense.sum(), params["W1"])
    mask = data.route_pair.expand(3).mask
    torch.testing.assert_close(sparse[mask], dense[mask], rtol=0, atol=1e-12)
    torch.testing.assert_close(g_sparse, g_dense, rtol=0, atol=1e-12)


def test_sparse_metrics_equal_the_dense_ones(taxi_study):
    import dataclasses

    from frozenlake_ift.study import evaluate

    cfg, data, ref, params = taxi_study
    assert ref.gram is not None and ref.solve_model is not None
    sparse = evaluate(params, data, cfg, ref).values
    dense = evaluate(params, data, cfg, dataclasses.replace(ref, gram=None, solve_model=None)).values
    assert set(sparse) == set(dense)
    for k in ("tmatrix_mse", "tmatrix_mse_opt", "value", "success"):
        np.testing.assert_allclose(sparse[k].numpy(), dense[k].numpy(), rtol=1e-12, atol=0, err_msg=k)


def test_sparse_state_matrix_is_the_dense_one_bit_for_bit(taxi_study):
    """The solve's T_pi from P's nonzero entries adds the dense product's terms in the same order: equal
    bits, on Taxi's cut model (one successor per action) and on a random stochastic P with zeros."""
    import torch

    from frozenlake_ift import metrics

    _, _, ref, _ = taxi_study
    model = ref.solve_model
    gen = torch.Generator().manual_seed(0)
    N, A = model.P_nn.shape[:2]
    pi = torch.softmax(torch.randn(3, N, A, generator=gen, dtype=torch.float64) * 3, -1)  # (3, N, A)
    assert torch.equal(metrics.sparse_state_matrix(model.P_nz, pi, N), metrics.state_matrix(model.P_nn, pi))
    P = torch.rand(7, 3, 5, generator=gen, dtype=torch.float64) * (torch.rand(7, 3, 5, generator=gen) < 0.5)
    P[:, :, 0] += 1e-3  # every row has a successor
    P = P / P.sum(-1, keepdim=True)  # (7, 3, 5)
    pi = torch.softmax(torch.randn(4, 7, 3, generator=gen, dtype=torch.float64), -1)  # (4, 7, 3)
    assert torch.equal(metrics.sparse_state_matrix(metrics.nonzero_by_action(P), pi, 5), metrics.state_matrix(P, pi))


def test_closed_blocks_by_hand():
    import torch

    from frozenlake_ift import metrics

    P = torch.zeros(5, 2, 5)
    for s, a, t in [(0, 0, 1), (1, 1, 3), (3, 0, 3), (3, 1, 0), (2, 0, 4), (4, 1, 4), (0, 1, 0), (1, 0, 1)]:
        P[s, a, t] = 1.0
    P[2, 1, 2] = P[4, 0, 4] = 1.0  # 2 and 4 reach each other only through 2 -> 4: one block still
    assert [b.tolist() for b in metrics.closed_blocks(P)] == [[0, 1, 3], [2, 4]]
    assert [b.tolist() for b in metrics.closed_blocks(torch.ones(3, 1, 3))] == [[0, 1, 2]]


def test_taxi_blocks_solve_as_the_whole(taxi_study, monkeypatch):
    """Taxi's solve states fall into 4 closed blocks (one per destination): solved block by block, the values,
    success and occupancy equal the whole systems' within 1e-12."""
    import dataclasses

    import torch

    from frozenlake_ift import metrics, policy

    _, _, ref, params = taxi_study
    model = ref.solve_model
    assert [len(p.rho0_n) for p in model.parts] == [100, 100, 100, 100]
    pi = torch.softmax(policy.table_logits(params), -1)  # (E, S, A) float64
    whole = metrics.model_value_and_success(dataclasses.replace(model, parts=()), pi, 0.99)
    blocks = metrics.model_value_and_success(model, pi, 0.99)
    for w, b in zip(whole, blocks, strict=True):
        torch.testing.assert_close(b, w, rtol=1e-12, atol=0)
    occ = metrics.discounted_occupancy(ref.P, ref.rho0, pi, 0.99)
    monkeypatch.setattr(policy, "SPARSE_STATES", 10**9)  # one system of all 500 states
    dense = metrics.discounted_occupancy(ref.P, ref.rho0, pi, 0.99)
    torch.testing.assert_close(occ, dense, rtol=0, atol=1e-12)
    torch.testing.assert_close(occ.sum(-1), torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-12)


def test_taxi_policies_that_never_leave_a_loop_get_the_least_solution(taxi_study):
    """A policy with zero probabilities (a softmax that underflowed) can loop forever without a goal: I - T is
    singular at gamma 1. The cut model's blocks then give what the dense form gives (the least solution:
    success 0 from the states that cannot reach a goal), not an error."""
    import torch

    from frozenlake_ift import metrics

    _, _, ref, _ = taxi_study
    S, A = ref.P.shape[:2]
    pi = torch.zeros(3, S, A, dtype=torch.float64)
    pi[0, :, 1] = 1.0  # always north: stuck against the top wall
    pi[1, :, 0] = 0.5  # south or north: never picks up, never drops off
    pi[1, :, 1] = 0.5
    pi[2] = 1.0 / A  # every action: reaches the goal with probability 1
    blocks = metrics.model_value_and_success(ref.solve_model, pi, 0.99)
    dense = metrics.value_and_success(ref.P, ref.R, ref.terminal, ref.goal, ref.rho0, pi, 0.99, states=ref.solve_states)
    for b, d in zip(blocks, dense, strict=True):
        torch.testing.assert_close(b, d, rtol=1e-12, atol=1e-12)
    assert blocks[1][:2].tolist() == [0.0, 0.0] and abs(float(blocks[1][2]) - 1.0) < 1e-9
