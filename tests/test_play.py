"""Tests for frozenlake_ift.play: the ``play`` command renders a rollout to a GIF."""

import argparse
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from PIL import Image

from frozenlake_ift import envs, lakes, play, results, solve
from frozenlake_ift.agents import Agent
from frozenlake_ift.study import StudyConfig, run_study


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A small saved study (2 seeds, 20 steps): results.json + params.pt."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("small-run")
    results.save(run_study(StudyConfig(seeds=2, steps=20, device="cpu")), out)
    return out


@pytest.fixture(autouse=True)
def _headless(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")


def _args(*argv):
    parser = argparse.ArgumentParser(prog="frozenlake-ift")
    play.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["play", *map(str, argv)])


def _gif_frames(path) -> list[np.ndarray]:
    im = Image.open(path)
    frames = []
    for i in range(im.n_frames):
        im.seek(i)
        frames.append(np.asarray(im.convert("RGB")))
    return frames


def _render_state(desc, state: int) -> np.ndarray:
    """An independent rendering of one state: a fresh environment placed on it."""
    env = gym.make(f"{envs.PACKAGE}:{envs.LAKE_ID}", desc=list(desc), render_mode="rgb_array")
    env.reset(seed=0)
    env.unwrapped.s = state
    frame = env.render()
    env.close()
    return frame


def _same_picture(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to palette rounding: fewer than 0.1% of pixels off by more than 8 levels (an agent sprite
    covers more than 1% of a tile map)."""
    return bool((np.abs(a.astype(int) - b.astype(int)).max(-1) > 8).mean() < 1e-3)


def _check_outcome(roll: play.Rollout, desc) -> None:
    """The outcome the rollout reports is what the environment said and where it ended."""
    tile = "".join(desc)[roll.states[-1]]
    assert roll.outcome == {"G": "goal", "H": "hole"}.get(tile, "time limit")
    assert roll.terminated == (tile in "GH") and roll.truncated == (roll.steps == roll.max_episode_steps)
    assert sum(roll.rewards) == (1.0 if tile == "G" else 0.0)
    assert all(t not in "GH" for t in ("".join(desc)[s] for s in roll.states[:-1]))  # no earlier end


@pytest.mark.parametrize("method, extra", [("ift", []), ("dpo", ["--sample", "--seed", "3"]), ("star", [])])
def test_play_writes_a_gif_of_the_rollout_the_environment_played(small_run, tmp_path, capsys, method, extra):
    out = tmp_path / f"{method}.gif"
    assert play.run(_args(small_run, "--method", method, "--member", 1, "--out", out, *extra)) == 0
    agent = Agent.from_run(small_run, method, 1, greedy="--sample" not in extra)
    roll = play.rollout(agent, seed=int(extra[-1]) if extra else 0)  # the same seeded episode again
    _check_outcome(roll, lakes.TWO_ROUTE_MAP)
    frames = _gif_frames(out)
    assert len(frames) == roll.steps + 1 >= 2
    h, w = roll.frames[0].shape[:2]
    assert frames[0].shape == (h + play.CAPTION_HEIGHT, w, 3)
    for gif_frame, rgb in zip(frames, roll.frames, strict=True):
        assert _same_picture(gif_frame[:h], rgb)  # the renderer's frames, undistorted
    # the last frame shows the state the episode ended in: of fresh renderings of every state, that one
    # matches it; gymnasium hides an agent that fell into a hole, so then every hole matches alike
    flat = "".join(lakes.TWO_ROUTE_MAP)
    matches = {s for s in range(len(flat)) if _same_picture(frames[-1][:h], _render_state(lakes.TWO_ROUTE_MAP, s))}
    end = roll.states[-1]
    assert matches == ({s for s, t in enumerate(flat) if t == "H"} if flat[end] == "H" else {end})
    said = capsys.readouterr().out
    assert f"wrote {out}: {method}[1]" in said and play.OUTCOMES[roll.outcome] in said


def test_each_outcome_is_reported_as_the_environment_ends_it(tmp_path):
    desc = ("SF", "HG")
    mdp = lakes.make_lake(list(desc))
    to_goal = Agent(solve.optimal_action_probs(solve.value_iteration(mdp, 0.9).Q), desc=desc, name="goal")
    to_hole = Agent(np.eye(4)[np.ones(4, int)], desc=desc, name="hole")  # down from S: the hole
    stuck = Agent(np.eye(4)[np.zeros(4, int)], desc=desc, name="wall")  # left from S: the wall
    for agent, outcome, steps in ((to_goal, "goal", 2), (to_hole, "hole", 1), (stuck, "time limit", 5)):
        roll = play.rollout(agent, max_episode_steps=5)
        assert (roll.outcome, roll.steps, len(roll.frames)) == (outcome, steps, steps + 1)
        _check_outcome(roll, desc)
        path = play.save_gif(roll, tmp_path / f"{outcome}.gif")
        assert Image.open(path).n_frames == steps + 1
    assert play.captions(roll, greedy=True)[-1] == "wall greedy  t=5 left: hit the time limit"
    hole = play.rollout(to_hole, render=False)
    assert play.captions(hole, greedy=False) == [
        "hole sampled  t=0",
        "hole sampled  t=1 down: fell into a hole at (1, 0)",
    ]


def test_rollout_without_rendering_has_no_frames_and_save_gif_refuses_it(tmp_path):
    roll = play.rollout(Agent(np.eye(4)[np.ones(4, int)], desc=("SF", "HG")), render=False)
    assert roll.frames == [] and roll.outcome == "hole"
    with pytest.raises(ValueError, match="no frames"):
        play.save_gif(roll, tmp_path / "x.gif")


def test_default_out_path_is_in_the_run_folder(small_run):
    assert play.run(_args(small_run, "--method", "sft", "--max-steps", 3)) == 0
    assert Image.open(small_run / "play-sft-0.gif").n_frames >= 2


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--method", "ppo"], "unknown method 'ppo'"),
        (["--member", 2], "member must be an integer in \\[0, 1\\]"),
        (["--member", -1], "--member must be >= 0"),
        (["--max-steps", 0], "--max-steps must be >= 1"),
        (["--fps", 0], "--fps must be a number of frames per second in \\[0.01, 50\\]"),
        (["--fps", 1e-300], "--fps must be a number"),  # was an OverflowError (issue 25)
        (["--fps", float("inf")], "--fps must be a number"),  # was accepted
        (["--fps", float("nan")], "--fps must be a number"),
        (["--out", "/nonexistent-dir/x.gif"], "folder '/nonexistent-dir' does not exist"),
        (["--out", "x.png"], "--out must end in .gif"),
    ],
)
def test_play_errors_are_one_clear_value_error(small_run, argv, needle):
    with pytest.raises(ValueError, match=needle):
        play.run(_args(small_run, *argv))


def test_play_needs_a_run_folder(tmp_path):
    with pytest.raises(ValueError, match="is not a run folder"):
        play.run(_args(tmp_path, "--out", tmp_path / "x.gif"))
    (tmp_path / "d.gif").mkdir()
    with pytest.raises(ValueError, match="is a folder"):
        play.check_out_path(tmp_path / "d.gif")


def test_missing_pygame_names_the_render_extra(small_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)
    with pytest.raises(ImportError, match=r'pip install "frozenlake_ift\[render\]"'):
        play.require_pygame()
    with pytest.raises(ValueError, match=r"frozenlake_ift\[render\]"):
        play.run(_args(small_run, "--out", tmp_path / "x.gif"))
    assert not (tmp_path / "x.gif").exists()


def test_cli_has_the_play_command(small_run, tmp_path, capsys):
    from frozenlake_ift import cli

    assert cli.main(["play", str(small_run), "--method", "ift", "--out", str(tmp_path / "a.gif")]) == 0
    assert (tmp_path / "a.gif").exists()
    assert cli.main(["play", str(small_run), "--method", "nope", "--out", str(tmp_path / "b.gif")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown method 'nope'" in err[0] and not (tmp_path / "b.gif").exists()
