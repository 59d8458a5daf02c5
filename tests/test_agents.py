"""Tests for frozenlake_ift.agents: trained policies as gymnasium agents, Monte-Carlo vs exact success.

The Monte-Carlo comparisons are seeded (environment resets seed + i, actions from
default_rng(seed)), so they are deterministic; their intervals are Bonferroni-corrected for the
number of comparisons in each test, so that with a correct implementation a fresh seed would fail
one of them with probability below 1%.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from frozenlake_ift import lakes, results, solve
from frozenlake_ift.agents import Agent, binomial_interval, evaluate
from frozenlake_ift.study import StudyConfig, run_study
from frozenlake_ift.testing import policies

FAMILY_ALPHA = 0.01  # family-wise error of each Monte-Carlo test
MC_MEMBERS = (0, 1)  # ensemble members whose sampled policies are rolled out, for every method
MC_EPISODES = 300


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The default study (StudyConfig() on CPU), saved: results.json + params.pt."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("default-run")
    results.save(run_study(StudyConfig(device="cpu")), out)
    return out


def _opt(name, slippery, gamma=0.99):
    mdp = lakes.make_lake(name, slippery=slippery)
    return mdp, solve.optimal_action_probs(solve.value_iteration(mdp, gamma).Q)


# ------------------------------------------------------------------ the agent
def test_greedy_acts_by_argmax_with_lowest_index_on_ties():
    pi = np.array([[0.1, 0.6, 0.3, 0.0], [0.25, 0.25, 0.25, 0.25], [0, 0, 0.5, 0.5]])
    a = Agent(pi)
    assert [a.act(s) for s in range(3)] == [1, 0, 2] and isinstance(a.act(np.int64(0)), int)
    assert a.act(np.array([2, 0, 1])).tolist() == [2, 1, 0]
    assert np.array_equal(a.action_probs, np.eye(4)[[1, 0, 2]])


@settings(max_examples=25)
@given(st.integers(1, 4), st.integers(1, 4), st.data())
def test_sampling_never_draws_a_zero_probability_action_and_matches_pi(S, A, data):
    pi = data.draw(policies(S, A))
    agent = Agent(pi, greedy=False)
    assert np.array_equal(agent.action_probs, agent.pi)
    n = 4000
    obs = np.repeat(np.arange(S), n)
    acts = agent.act(obs, np.random.default_rng(0)).reshape(S, n)
    freq = np.stack([(acts == a).mean(1) for a in range(A)], 1)  # (S, A)
    assert (freq[pi == 0] == 0).all()
    assert np.abs(freq - pi).max() < 5 * np.sqrt(0.25 / n)  # 5 standard errors at worst


def test_sampling_is_seeded():
    pi = np.full((3, 4), 0.25)
    a = Agent(pi, greedy=False)
    obs = np.zeros(50, dtype=np.int64)
    assert np.array_equal(a.act(obs, np.random.default_rng(7)), a.act(obs, np.random.default_rng(7)))


@pytest.mark.parametrize(
    "kwargs, exc, needle",
    [
        ({"pi": np.ones(4) / 4}, ValueError, "Shape \\(S, A\\)"),
        ({"pi": [[0.5, 0.6]]}, ValueError, "row 0 sums to"),
        ({"pi": [[1.5, -0.5]]}, ValueError, "non-negative"),
        ({"pi": [[np.nan, 1.0]]}, ValueError, "finite"),
        ({"pi": np.full((4, 4), 0.25), "desc": ("SF", "FG", "FF")}, ValueError, "4 states but the map"),
        ({"pi": [[1.0]], "greedy": "yes"}, TypeError, "greedy must be True or False"),
    ],
)
def test_agent_rejects_bad_policies(kwargs, exc, needle):
    with pytest.raises(exc, match=needle):
        Agent(**kwargs)


def test_observations_must_be_states():
    a = Agent(np.full((4, 4), 0.25), desc=("SF", "FG"))
    for bad in (4, -1, 1.5, np.array([0, 7])):
        with pytest.raises(ValueError, match="state indices in \\[0, 3\\]"):
            a.act(bad)
    with pytest.raises(ValueError, match="has no map"):
        Agent(np.full((4, 4), 0.25)).make_env()


# ------------------------------------------------------------------ intervals
@settings(max_examples=40)
@given(
    st.integers(1, 400).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.sampled_from([0.9, 0.95, 0.99, 0.999]),
)
def test_intervals_agree_with_scipy(kn, conf):
    k, n = kn
    ci = binomtest(k, n).proportion_ci(confidence_level=conf, method="exact")
    assert np.allclose(binomial_interval(k, n, conf), (ci.low, ci.high), atol=1e-9)
    ci = binomtest(k, n).proportion_ci(confidence_level=conf, method="wilson")
    assert np.allclose(binomial_interval(k, n, conf, method="wilson"), (ci.low, ci.high), atol=1e-12)


def test_clopper_pearson_golden_values():
    # k = 0: high solves (1 - p)^n = alpha / 2; k = n: low solves p^n = alpha / 2
    assert binomial_interval(0, 10, 0.99) == (0.0, pytest.approx(1 - 0.005 ** (1 / 10)))
    assert binomial_interval(10, 10, 0.99) == (pytest.approx(0.005 ** (1 / 10)), 1.0)


@pytest.mark.parametrize(
    "args, exc",
    [
        ((1, 0), ValueError),
        ((5, 4), ValueError),
        ((1, 2, 1.0), ValueError),
        ((1, 2, 0.9, "exact"), ValueError),
        ((1.0, 2), TypeError),
    ],
)
def test_interval_errors(args, exc):
    with pytest.raises(exc):
        binomial_interval(*args)


# ------------------------------------------------------------------ Monte Carlo vs exact (hand-made policies)
def test_evaluate_is_seeded_and_counts_every_episode():
    mdp, pi = _opt("two-route", slippery=False)
    agent = Agent(0.7 * pi + 0.3 / 4, greedy=False, desc=mdp.desc)
    one, two = evaluate(agent, 101, seed=3, num_envs=8), evaluate(agent, 101, seed=3, num_envs=8)
    assert one == two and one.episodes == 101 and one.max_episode_steps == 100 and one.confidence == 0.99
    assert 0 < one.successes < 101 and one.low <= one.rate <= one.high


def test_deterministic_greedy_policies_succeed_always_or_never():
    mdp, pi = _opt("two-route", slippery=False)
    good = Agent(pi, desc=mdp.desc)
    stuck = Agent(np.eye(4)[np.zeros(25, int)], desc=mdp.desc)  # always left: S is at a wall
    ev_good, ev_stuck = evaluate(good, 8, num_envs=4), evaluate(stuck, 8, num_envs=4)
    assert (ev_good.successes, ev_good.mean_length, ev_good.truncated) == (8, 6.0, 0)
    assert (ev_stuck.successes, ev_stuck.mean_length, ev_stuck.truncated) == (0, 100.0, 8)
    assert good.success_probability(100) == 1.0 and stuck.success_probability(100) == 0.0


CASES = [("two-route", True, False), ("8x8", True, True), ("random:6:0", True, False)]  # (map, slippery, greedy)


def test_exact_finite_horizon_success_lies_in_the_monte_carlo_interval():
    conf = 1 - FAMILY_ALPHA / len(CASES)
    for name, slippery, greedy in CASES:
        mdp, pi = _opt(name, slippery)
        agent = Agent(pi if greedy else 0.8 * pi + 0.2 / 4, greedy=greedy, desc=mdp.desc, slippery=slippery)
        ev = evaluate(agent, 300, seed=0, confidence=conf)
        exact = agent.success_probability(ev.max_episode_steps)
        assert ev.contains(exact), (name, greedy, ev, exact)


def test_gymnasiums_own_frozen_lake_agrees_and_the_horizon_matters():
    # gymnasium's registered FrozenLake-v1 (slippery 4x4), cut at 10 steps: the exact 10-step success
    # is inside the interval, the exact success without a time limit (0.82) is far outside it
    mdp, pi = _opt("4x4", slippery=True)
    agent = Agent(pi, desc=mdp.desc, slippery=True)
    ev = evaluate(agent, 1000, seed=0, env_id="FrozenLake-v1", max_episode_steps=10, confidence=1 - FAMILY_ALPHA / 2)
    assert ev.max_episode_steps == 10 and ev.truncated > 0
    assert ev.contains(agent.success_probability(10))
    assert not ev.contains(agent.success_probability())


def test_evaluate_errors():
    agent = Agent(np.full((4, 4), 0.25), desc=("SF", "FG"))
    for kwargs, needle in (
        ({"episodes": 0}, "episodes must be"),
        ({"num_envs": 0}, "num_envs must be"),
        ({"env_id": "FrozenLake-v1"}, "observation space"),
    ):
        with pytest.raises(ValueError, match=needle):
            evaluate(agent, **{"episodes": 4, **kwargs})


# ------------------------------------------------------------------ trained agents of the default study
def test_from_run_reads_the_saved_policy_of_each_member(default_run):
    saved, res = results.load_params(default_run), results.load(default_run)
    E = len(saved.seeds)
    for method in [*res["curves"], "base", "star"]:
        table = saved.policy_table(method).numpy()  # (E, S, A)
        for member in (0, E - 1):
            agent = Agent.from_run(default_run, method, member, greedy=False)
            assert agent.name == f"{method}[{member}]" and agent.desc == lakes.TWO_ROUTE_MAP and not agent.slippery
            assert np.allclose(agent.pi, table[member], atol=1e-12)
        exact = (
            res["curves"][method]["success"][-1] if method in res["curves"] else res["fit"][f"{method}_success"]
        )  # the study's exact success per member (torch metrics)
        mine = [Agent(table[e], greedy=False, desc=agent.desc).success_probability() for e in range(E)]  # numpy
        assert np.allclose(mine, exact, atol=1e-6)


def test_trained_policies_exact_success_lies_in_the_monte_carlo_interval(default_run):
    methods = list(results.load(default_run)["curves"])
    conf = 1 - FAMILY_ALPHA / (len(methods) * len(MC_MEMBERS))  # Bonferroni over the comparisons
    for method in methods:
        for member in MC_MEMBERS:
            agent = Agent.from_run(default_run, method, member, greedy=False)
            ev = evaluate(agent, MC_EPISODES, seed=member, confidence=conf)
            exact = agent.success_probability(horizon=ev.max_episode_steps)  # matched to the TimeLimit
            assert ev.max_episode_steps == 100 and ev.contains(exact), (method, member, ev, exact)


def test_greedy_trained_policies_match_exactly(default_run):
    # deterministic map and greedy policy: every episode is the same, success is 0 or 1 exactly
    saved = results.load_params(default_run)
    for method in saved.methods:
        for pi in saved.policy_table(method).numpy():
            agent = Agent(pi, desc=lakes.TWO_ROUTE_MAP)
            exact = agent.success_probability(horizon=100)
            assert exact in (0.0, 1.0) and evaluate(agent, 1, num_envs=1).successes == exact


@pytest.mark.parametrize(
    "method, member, needle",
    [
        ("ppo", 0, "unknown method 'ppo'.*allowed: sft, ift, dpo, orpo, base, star"),
        ("ift", 20, "member must be an integer in \\[0, 19\\]"),
        ("ift", -1, "member must be an integer"),
    ],
)
def test_from_run_errors(default_run, method, member, needle):
    with pytest.raises(ValueError, match=needle):
        Agent.from_run(default_run, method, member)


def test_from_run_needs_a_run_folder(tmp_path, default_run):
    with pytest.raises(ValueError, match="is not a run folder"):
        Agent.from_run(tmp_path, "ift")
    (tmp_path / "results.json").write_bytes((default_run / "results.json").read_bytes())
    with pytest.raises(ValueError, match="has no params\\.pt"):
        Agent.from_run(tmp_path, "ift")
