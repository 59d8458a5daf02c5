"""The study on any finite MDP through the CLI: --env for every source, bad input, --config round trips,
--seed, and plugins (a method, an MDP source and a data rule from a module outside the package) loaded
with --plugin and through the frozenlake_ift.plugins entry-point group, in reproduce and in sweep workers."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from frozenlake_ift import cli, plots
from frozenlake_ift.mdps import make_env
from frozenlake_ift.mdps.npz import save_npz

TINY = ["--seeds", "2", "--steps", "3", "--set", "eval_every=3", "--set", "fit_steps=30", "--no-figures"]


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    path = tmp_path_factory.mktemp("npz") / "mdp.npz"
    save_npz(make_env("chain:4:0.1"), path)
    return path


@pytest.mark.parametrize(
    ("spec", "headline"),
    [
        ("gym:CliffWalking-v1", "success"),
        ("gym:Taxi-v4", "success"),
        ("bandit:1,0.5,0", "value_ratio"),
        ("chain:8:0.1", "success"),
        ("tokens:2:3", "success"),
        ("file", "success"),
    ],
)
def test_reproduce_runs_on_every_source_and_plots(tmp_path, capsys, npz, spec, headline):
    spec = f"file:{npz}" if spec == "file" else spec
    out = tmp_path / "run"
    assert cli.main(["reproduce", "--env", spec, "--out", str(out), "--json", *TINY]) == 0, capsys.readouterr().err
    res = json.loads((out / "results.json").read_text())
    other = {"success": "value_ratio", "value_ratio": "success"}[headline]
    for m, curves in res["curves"].items():
        assert headline in curves and other not in curves and "value" in curves, m
        assert np.isfinite(curves[headline]).all()
    assert res["config"]["env"] == spec and res["map"]["env"] == spec and res["map"]["desc"] is None
    assert len(res["final_policy"]["sft"]) == len(res["map"]["pi_star"])
    assert plots.figure_names(res) == ["curves", "policy", "tmatrix"]
    if spec.startswith(("bandit", "tokens")):  # drawing costs time: two sources draw every figure
        written = plots.save_figures(res, tmp_path / "figs", formats=("png",))
        assert [p.name for p in written] == ["curves.png", "policy.png", "tmatrix.png"]


def _bad_env(tmp_path, capsys, argv, needle):
    out = tmp_path / "out"
    assert cli.main(["reproduce", *argv, "--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and needle in err, err
    assert not out.exists()  # nothing written


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--env", "gym:NoSuchEnv-v0"], "gymnasium cannot make 'NoSuchEnv-v0'"),
        (["--env", "gym:CartPole-v1"], "has no exact model"),
        (["--env", "bandit:1"], "at least two finite arm rewards"),
        (["--env", "tokens:3:14"], "states (prefixes of at most 14 tokens over 3); the limit is"),
        (["--env", "nope:3"], "'nope' is no registered MDP source"),
        (["--env", "bandit:1,0.5", "--map", "4x4"], "map and slippery describe the lake"),
        (["--env", "bandit:1,0.5", "--set", "negatives=second-route"], "needs a Frozen Lake map"),
    ],
)
def test_bad_envs_one_line_exit_2_nothing_written(tmp_path, capsys, argv, needle):
    _bad_env(tmp_path, capsys, argv, needle)


@pytest.mark.parametrize(
    ("arrays", "needle"),
    [
        ({"P": np.full((2, 2, 3), 0.5)}, "P must be a numeric array of shape (S, A, S)"),
        ({"P": np.full((2, 2, 2), 0.3)}, "every P[s, a] must sum to 1"),
        ({"P": np.array([[[1.5, -0.5]] * 2] * 2)}, "finite, non-negative"),
        ({"R": np.array([[np.nan, 0], [0, 0]])}, "R must be finite"),
    ],
)
def test_bad_npz_through_the_cli(tmp_path, capsys, arrays, needle):
    base = {"P": np.full((2, 2, 2), 0.5), "R": np.zeros((2, 2)), "terminal": np.zeros(2, bool), "rho0": [1.0, 0]}
    np.savez(tmp_path / "m.npz", **{**base, **arrays})
    _bad_env(tmp_path, capsys, ["--env", f"file:{tmp_path / 'm.npz'}"], needle)


def test_config_round_trips_from_results_toml_and_yaml(tmp_path, capsys):
    first = tmp_path / "a"
    argv = ["--env", "chain:5:0.2", "--seed", "7", "--set", "lam=0.3", "--set", "negatives=second-best"]
    assert cli.main(["reproduce", *argv, "--out", str(first), *TINY]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "seeds 7..8, base seed 7" in header and "chain:5:0.2" in header
    a = json.loads((first / "results.json").read_text())
    assert cli.main(["reproduce", "--config", str(first / "results.json"), "--out", str(tmp_path / "b"), "--json"]) == 0
    b = json.loads((tmp_path / "b" / "results.json").read_text())
    assert a["config"] == b["config"] and a["curves"] == b["curves"]  # the same study, exactly
    (tmp_path / "c.toml").write_text('env = "bandit:1,0.5,0"\nseeds = 2\nsteps = 2\nmethods = ["sft", "dpo"]\n')
    assert (
        cli.main(
            [
                "reproduce",
                "--config",
                str(tmp_path / "c.toml"),
                "--steps",
                "3",
                "--out",
                str(tmp_path / "c"),
                "--json",
                "--no-figures",
            ]
        )
        == 0
    )
    c = json.loads((tmp_path / "c" / "results.json").read_text())["config"]
    assert (c["env"], c["seeds"], c["steps"], c["methods"]) == ("bandit:1,0.5,0", 2, 3, ["sft", "dpo"])  # flags win
    pytest.importorskip("yaml")
    (tmp_path / "d.yaml").write_text("env: tokens:2:2\nseeds: 2\nsteps: 2\nnope: 1\n")
    assert cli.main(["reproduce", "--config", str(tmp_path / "d.yaml"), "--out", str(tmp_path / "d")]) == 2
    assert "unknown StudyConfig fields ['nope']" in capsys.readouterr().err


def test_no_abbreviations(capsys):
    assert cli.main(["reproduce", "--see", "3"]) == 2  # once read as --seeds 3
    assert "unrecognized arguments: --see 3" in capsys.readouterr().err
    assert cli.main(["solve", "--ma", "4x4"]) == 2


# ------------------------------------------------------------------------------------ plugins
PLUGIN = '''
"""A plugin outside the package: a method, an MDP source and a data rule."""
import numpy as np
import torch

from frozenlake_ift.data_rules import DataRule, register_rule
from frozenlake_ift.mdp import TabularMDP
from frozenlake_ift.mdps import MDPSource, register_env
from frozenlake_ift.methods import Method, register_method
from frozenlake_ift.methods.batches import pair_logps
from frozenlake_ift.trajectories import Trajectory


def hinge(params, batch, ctx):
    lc, lr = pair_logps(params, batch, ctx)  # (E, N, T)
    margin = (lc * batch.chosen.mask).sum(-1) - (lr * batch.rejected.mask).sum(-1)  # (E, N)
    return torch.relu(1 - margin).mean(-1)  # (E,)


def ring(arg, config):
    """ring:N: N states on a ring, 0 the start, N-1 the goal (terminal); actions: +1, -1."""
    n = int(arg)
    P = np.zeros((n, 2, n))
    for s in range(n - 1):
        P[s, 0, (s + 1) % n] = P[s, 1, (s - 1) % n] = 1
    P[n - 1, :, n - 1] = 1
    R = np.zeros((n, 2))
    R[n - 2, 0] = R[0, 1] = 1
    return TabularMDP.from_dense(P, R, np.arange(n) == n - 1, np.arange(n) == 0, goal=np.arange(n) == n - 1,
                                 name=f"ring:{n}")


def the_long_way(plan, arg, config):
    """Rejected: the long way round (action 0 from every state; pi* takes the one step back, action 1)."""
    states = [plan.starts[0]]
    while not plan.mdp.terminal[states[-1]]:
        states.append(int(plan.mdp.next_states[states[-1], 0, 0]))
    return [Trajectory(states, [0] * (len(states) - 1))]


register_method(Method("hinge", loss=hinge))
register_env(MDPSource("ring", build=ring, example="ring:6"))
register_rule(DataRule("long-way", rejected=the_long_way))
'''


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("plugin")
    (d / "myplug.py").write_text(PLUGIN)
    site = d / "site"  # a distribution whose entry point names the module
    (site / "myplug-0.1.dist-info").mkdir(parents=True)
    (site / "myplug-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: myplug\nVersion: 0.1\n")
    (site / "myplug-0.1.dist-info" / "entry_points.txt").write_text("[frozenlake_ift.plugins]\nmyplug = myplug\n")
    return d


def _cli(plugin_dir, paths, *runs):
    """Run several CLI calls in one fresh interpreter with ``paths`` on PYTHONPATH; return their outputs."""
    code = textwrap.dedent(
        """
        import json, sys
        from frozenlake_ift.cli import main
        sys.exit(max(main(argv) for argv in json.loads(sys.argv[1])))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, paths), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", code, json.dumps(list(runs))],
        cwd=plugin_dir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


STUDY = ["--env", "ring:6", "--methods", "sft,hinge,dpo", "--set", "negatives=long-way", *TINY]
SWEEP = [
    "--fix",
    "env=ring:6",
    "--fix",
    "methods=sft+hinge",
    "--fix",
    "negatives=long-way",
    "--fix",
    "seeds=2",
    "--fix",
    "steps=3",
    "--fix",
    "eval_every=3",
    "--fix",
    "fit_steps=30",
    "--set",
    "lr=0.01,0.02",
    "--workers",
    "2",
    "--engine",
    "per-cell",
    "--no-progress",
    "--json",
]


@pytest.mark.parametrize("how", ["--plugin", "entry point"])
def test_plugin_method_source_and_rule_through_reproduce_and_sweep(plugin_dir, how):
    paths = [plugin_dir] if how == "--plugin" else [plugin_dir, plugin_dir / "site"]
    extra = ["--plugin", "myplug"] if how == "--plugin" else []
    out = plugin_dir / how.strip("-").replace(" ", "_")
    done = _cli(
        plugin_dir,
        paths,
        ["reproduce", *extra, *STUDY, "--out", str(out / "run")],
        ["sweep", *extra, *SWEEP, "--out", str(out / "sweep")],
    )
    assert done.returncode == 0, done.stderr
    res = json.loads((out / "run" / "results.json").read_text())
    assert list(res["curves"]) == ["sft", "hinge", "dpo"] and res["map"]["name"] == "ring:6"
    assert res["map"]["chosen"]["actions"] == [1] and res["map"]["rejected"]["actions"] == [0] * 5  # the rule's
    cells = sorted((out / "sweep" / "cells").glob("*.json"))
    assert len(cells) == 2 and all("hinge" in json.loads(p.read_text())["summary"] for p in cells)


def test_plugin_that_cannot_be_imported_is_one_line(capsys):
    assert cli.main(["reproduce", "--plugin", "no_such_plugin_module", *TINY]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot import plugin module 'no_such_plugin_module'" in err


def test_statistics_may_not_shadow_metrics():
    from frozenlake_ift.methods import Method

    with pytest.raises(ValueError, match=r"statistics \['kl'\] would overwrite the metrics"):
        Method("shadow", loss=lambda p, b, c: None, stats=("kl",))


def test_a_statistic_named_like_a_metric_is_refused_at_run_time():
    import torch

    from frozenlake_ift.config import StudyConfig
    from frozenlake_ift.methods import LossOutput, Method, register_method, unregister_method
    from frozenlake_ift.study import run_study

    def loss(params, batch, ctx):
        value = params["b2"].sum(-1) ** 2  # (E,)
        return LossOutput(value, {"kl": torch.zeros_like(value)})

    register_method(Method("shadowing", loss=loss))
    try:
        with pytest.raises(ValueError, match=r"logs statistics named \['kl'\], which are metric names"):
            run_study(StudyConfig(methods=("shadowing",), seeds=1, steps=1, fit_steps=1))
    finally:
        unregister_method("shadowing")


def test_run_study_takes_a_python_mdp():
    from frozenlake_ift.config import StudyConfig
    from frozenlake_ift.results import to_dict
    from frozenlake_ift.study import run_study

    mdp = make_env("chain:5")
    r = run_study(StudyConfig(seeds=2, steps=2, fit_steps=20), mdp=mdp)
    assert r.data.mdp is mdp and r.final_policy("sft").shape == (2, 5, 2)
    assert to_dict(r)["map"]["env"] == "python"
    with pytest.raises(TypeError, match="config must be a StudyConfig"):
        run_study(None)  # type: ignore[arg-type]


def test_final_policy_matches_the_saved_parameters(tmp_path):
    from frozenlake_ift.config import StudyConfig
    from frozenlake_ift.results import load_params, save
    from frozenlake_ift.study import run_study

    r = run_study(StudyConfig(env="tokens:2:2", seeds=2, steps=3, fit_steps=20))
    save(r, tmp_path)
    np.testing.assert_allclose(load_params(tmp_path).policy_table("dpo"), r.final_policy("dpo").numpy(), atol=1e-7)
    assert Path(tmp_path / "results.json").is_file()


def test_a_sweep_over_envs_reports_each_metric_where_it_applies(tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["sweep", "--set", "env=bandit:1,0.5,0;chain:4", "--fix", "seeds=2", "--fix", "steps=2"]
    argv += ["--fix", "eval_every=2", "--fix", "fit_steps=20", "--out", str(out), "--no-progress", "--json"]
    assert cli.main([*argv, "--report"]) == 0, capsys.readouterr().err
    report = (out / "report.md").read_text()
    assert "| bandit:1,0.5,0 |" in report.split("### `value_ratio`")[1].split("###")[0]  # the bandit's return
    assert "| chain:4 |" in report.split("### `success`")[1].split("###")[0]  # the chain's success
    cell = next(p for p in (out / "cells").glob("*.json") if "bandit" in p.read_text())
    run = tmp_path / "run"
    run.mkdir()
    assert cli.main(["reproduce", "--env", "bandit:1,0.5,0", "--out", str(run), "--json", *TINY]) == 0
    capsys.readouterr()
    assert cli.main(["play", str(run), "--method", "sft"]) == 2
    assert "agents play lake maps only" in capsys.readouterr().err
    assert cell.is_file()
