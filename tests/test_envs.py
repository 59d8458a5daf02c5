"""Tests for frozenlake_ift.envs: registered gymnasium environments on the study's maps."""

import json
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.toy_text.frozen_lake import MAPS, FrozenLakeEnv

import frozenlake_ift
from frozenlake_ift import envs, lakes

PKG = envs.PACKAGE


def _desc(env) -> tuple[str, ...]:
    return tuple(b"".join(row).decode() for row in env.unwrapped.desc)


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


# ------------------------------------------------------------------ registration
def test_module_form_works_in_a_fresh_interpreter_without_an_import():
    # the acceptance command: gymnasium imports frozenlake_ift itself through the "module:" prefix
    out = _run("import gymnasium as gym; env = gym.make('frozenlake_ift:TwoRoute-v0'); print(env.reset(seed=0))")
    assert out.strip() == "(0, {'prob': 1})"


def test_import_registers_our_ids_and_does_nothing_else():
    code = (
        "import json, os, sys, gymnasium as gym; before = set(gym.registry); env = dict(os.environ); "
        "import frozenlake_ift; "
        "print(json.dumps({'added': sorted(set(gym.registry) - before), 'env_same': env == dict(os.environ), "
        "'heavy': [m for m in ('torch', 'matplotlib', 'transformers', 'pygame') if m in sys.modules]}))"
    )
    got = json.loads(_run(code))
    assert got == {"added": sorted(envs.ENV_IDS), "env_same": True, "heavy": []}


def test_registration_is_idempotent():
    import importlib

    specs = {i: gym.spec(i) for i in envs.ENV_IDS}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gymnasium warns "Overriding environment" on a second register()
        envs.register_envs()
        importlib.reload(frozenlake_ift)
    assert {i: gym.spec(i) for i in envs.ENV_IDS} == specs


def test_registrations_follow_the_episode_limit_rule():
    assert [r.id for r in envs.REGISTRATIONS] == list(envs.ENV_IDS)
    for reg in envs.REGISTRATIONS:
        spec = gym.spec(reg.id)
        assert spec.entry_point == envs.ENTRY_POINT and spec.kwargs == reg.kwargs
        assert spec.max_episode_steps == reg.max_episode_steps
    assert gym.spec("TwoRoute-v0").max_episode_steps == envs.episode_limit(lakes.TWO_ROUTE_MAP) == 100


@pytest.mark.parametrize("gym_id, name", [("FrozenLake-v1", "4x4"), ("FrozenLake8x8-v1", "8x8")])
def test_episode_limit_agrees_with_gymnasiums_own_choices(gym_id, name):
    assert envs.episode_limit(MAPS[name]) == gym.spec(gym_id).max_episode_steps


def test_episode_limit_golden_values():
    assert [envs.episode_limit(["S" * n] * n) for n in (2, 5, 6, 8, 9, 32)] == [100, 100, 200, 200, 324, 4096]


# ------------------------------------------------------------------ the environments
@pytest.mark.parametrize("env_id, slippery", [("TwoRoute-v0", False), ("TwoRouteSlippery-v0", True)])
def test_ids_build_gymnasiums_own_frozen_lake_on_the_study_map(env_id, slippery):
    env = gym.make(f"{PKG}:{env_id}")
    assert type(env.unwrapped) is FrozenLakeEnv
    assert _desc(env) == lakes.TWO_ROUTE_MAP
    n_successors = {len(env.unwrapped.P[0][a]) for a in range(4)}
    assert n_successors == ({3} if slippery else {1})
    assert isinstance(env, gym.wrappers.TimeLimit) and env.spec.max_episode_steps == 100


def test_the_chosen_route_reaches_the_goal_with_reward_one():
    env = gym.make(f"{PKG}:TwoRoute-v0")
    obs, _ = env.reset(seed=0)
    trail = [obs]
    for a in (2, 2, 2, 2, 1, 1):  # R R R R D D, the study's chosen route
        obs, r, term, trunc, _ = env.step(a)
        trail.append(obs)
    assert trail == [0, 1, 2, 3, 4, 9, 14] and (r, term, trunc) == (1.0, True, False)


def test_time_limit_truncates_a_policy_that_never_arrives():
    env = gym.make(f"{PKG}:TwoRoute-v0")
    env.reset(seed=0)
    for t in range(1, 101):
        obs, r, term, trunc, _ = env.step(0)  # left at S: a wall, stays at S
        assert obs == 0 and r == 0 and not term and trunc == (t == 100)


@pytest.mark.parametrize(
    "map_spec", ["4x4", "8x8", "random:6:0", "two-route", "SFF,FHF,FFG", ["SF", "HG"], ["S", "F", "G"]]
)
def test_lake_id_takes_any_make_lake_map(map_spec):
    env = gym.make(f"{PKG}:{envs.LAKE_ID}", map=map_spec)
    mdp = lakes.make_lake(map_spec)
    assert _desc(env) == mdp.desc and env.observation_space.n == mdp.n_states
    # its model is the one lakes.make_lake reads: same successors and probabilities for every (s, a)
    for s in range(mdp.n_states):
        for a in range(4):
            ((p, t, r, _done),) = env.unwrapped.P[s][a]
            assert (p, t) == (1.0, int(mdp.next_states[s, a, 0])) and r == mdp.R[s, a]


def test_lake_id_desc_overrides_map_and_accepts_gymnasium_forms():
    assert _desc(gym.make(f"{PKG}:TwoRoute-v0", desc=["SH", "FG"])) == ("SH", "FG")
    as_bytes = np.asarray(["SF", "FG"], dtype="c")  # gymnasium's own storage of a map
    assert _desc(gym.make(f"{PKG}:{envs.LAKE_ID}", desc=as_bytes)) == ("SF", "FG")
    slip = gym.make(f"{PKG}:{envs.LAKE_ID}", map="4x4", is_slippery=True, success_rate=0.5)
    probs = sorted(p for p, *_ in slip.unwrapped.P[0][1])  # state 0, action down
    assert probs == [0.25, 0.25, 0.5]


@pytest.mark.parametrize(
    "kwargs, exc, needle",
    [
        ({"map": "nowhere"}, ValueError, "unknown map 'nowhere'"),
        ({"desc": ["SH", "HG"]}, ValueError, "unreachable"),
        ({"desc": ["SX"]}, ValueError, "unknown tile letter 'X'"),
        ({"map": None}, ValueError, "give a map"),
        ({"map_name": "4x4"}, TypeError, "map_name"),
    ],
)
def test_bad_maps_raise_naming_the_problem(kwargs, exc, needle):
    with pytest.raises(exc, match=needle):
        gym.make(f"{PKG}:{envs.LAKE_ID}", **kwargs)


# ------------------------------------------------------------------ gymnasium features
def test_vector_env_and_wrappers_work():
    vec = gym.make_vec(f"{PKG}:TwoRouteSlippery-v0", num_envs=3, vectorization_mode="sync")
    obs, _ = vec.reset(seed=0)
    assert obs.tolist() == [0, 0, 0]
    obs, rew, term, _, _ = vec.step(np.array([2, 2, 2]))
    assert obs.shape == rew.shape == term.shape == (3,) and set(obs.tolist()) <= {0, 1, 5}
    vec.close()
    wrapped = gym.wrappers.RecordEpisodeStatistics(gym.make(f"{PKG}:TwoRoute-v0"))
    wrapped.reset(seed=0)
    for a in (2, 2, 2, 2, 1, 1):
        *_, info = wrapped.step(a)
    assert info["episode"]["r"] == 1.0 and info["episode"]["l"] == 6


def test_rgb_array_rendering(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    env = gym.make(f"{PKG}:TwoRoute-v0", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (320, 320, 3) and frame.dtype == np.uint8
    env.step(2)
    assert not np.array_equal(env.render(), frame)  # the agent moved
    env.close()
