"""Issue 25, classes 3 to 8 and 10: the solver at the edges of float64, diverged runs, exposure and
escapes, hangs and blow-ups, what used to be accepted silently, messages, interrupted sweeps."""

import json
import math
import time

import numpy as np
import pytest
import torch

from frozenlake_ift import batched, cli, lakes, losses, metrics, safety, solve, sweep, sweep_tasks
from frozenlake_ift.config import StudyConfig
from helpers import saved_cells

TINY = dict(seeds=2, steps=4, eval_every=2, fit_steps=20, device="cpu")


def _one_error_line(err: str, needle: str = "") -> str:
    assert err.count("\n") == 1 and ": error: " in err and "Traceback" not in err, err
    assert needle in err, err
    return err


def _refused(capsys, argv, needle, status=2) -> str:
    assert cli.main(argv) == status
    captured = capsys.readouterr()
    return _one_error_line(captured.err, needle)


# ------------------------------------------------------------ class 3: gamma at the edges of float64
@pytest.mark.parametrize(
    "gamma, needle",
    [(1 - 1e-12, "too close to 1 for float64"), (1 - 1e-9, "too close to 1"), (1e-300, "too small for float64")],
)
@pytest.mark.parametrize("name, slippery", [("4x4", False), ("8x8", True)])
def test_gamma_float64_cannot_serve_is_refused_naming_it(name, slippery, gamma, needle):
    mdp = lakes.make_lake(name, slippery=slippery)
    with pytest.raises(ValueError, match=needle) as info:
        solve.value_iteration(mdp, gamma)
    assert repr(gamma) in str(info.value)


def test_gammas_near_the_edges_solve_right():
    """Just inside the bounds the greedy policy is the best one: it reaches G as surely as gamma = 1 allows
    (V at gamma = 1 is the best success probability), on a deterministic and a slippery map."""
    for name, slippery in (("4x4", False), ("8x8", True), ("4x4", True)):
        mdp = lakes.make_lake(name, slippery=slippery)
        best = float(mdp.rho0 @ solve.value_iteration(mdp, 1.0).V)
        for gamma in (1 - solve.GAMMA_GAP, 1 - 1e-6):
            sol = solve.value_iteration(mdp, gamma)
            assert solve.success_probability(mdp, sol.policy) == pytest.approx(best, abs=1e-6), (name, gamma)
    mdp = lakes.make_lake("4x4")
    sol = solve.value_iteration(mdp, 1e-40)  # values of 1e-200: small, representable, exact
    assert solve.success_probability(mdp, sol.policy) == 1.0 and float(mdp.rho0 @ sol.V) == pytest.approx(1e-200)
    with pytest.raises(ValueError, match="too small for float64"):
        solve.finite_horizon(mdp, 10, 1e-300)


def test_a_stalling_greedy_policy_is_refused():
    """A loose tolerance near gamma = 1 leaves the values unresolved: the policy would never reach G."""
    with pytest.raises(ValueError, match="never collects a reward"):
        solve.value_iteration(lakes.make_lake("8x8", slippery=True), 1 - 1e-8, tol=1e-3)


def test_cli_names_gamma_and_prints_it_whole(capsys, tmp_path, monkeypatch):
    assert cli.main(["solve", "--map", "4x4", "--gamma", "0.99999999"]) == 0
    out = capsys.readouterr().out
    assert "gamma 0.99999999," in out and "success probability  1" in out
    _refused(capsys, ["solve", "--map", "4x4", "--gamma", "0.999999999999"], "gamma 0.999999999999 is too close to 1")
    monkeypatch.setattr("frozenlake_ift.study.run_study", lambda *a, **k: pytest.fail("the study ran"))
    _refused(capsys, ["reproduce", "--set", "gamma=0.999999999", "--out", str(tmp_path / "r")], "gamma 0.999999999")
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------ class 4: a diverged run is a result
def test_solve_absorbing_golden_values():
    """By hand: from state 0 the policy enters G with probability 0.5 and a closed loop (state 1) with 0.5;
    state 2 reaches G surely. The least solution (the absorption probability) is [0.5, 0, 1]."""
    T = torch.tensor([[[0.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.5]]], dtype=torch.float64)  # (1, 3, 3)
    into_goal = torch.tensor([[0.5, 0.0, 0.5]], dtype=torch.float64)
    assert metrics.solve_absorbing(T, into_goal).tolist() == [[0.5, 0.0, 1.0]]
    value = metrics.solve_absorbing(T, into_goal, 0.5)  # V = r + 0.5 T V: [0.5, 0, 2/3]
    assert torch.allclose(value, torch.tensor([[0.5, 0.0, 2 / 3]], dtype=torch.float64))
    nan = metrics.solve_absorbing(torch.full_like(T, math.nan), into_goal)
    assert torch.isnan(nan).all()


def test_lr_3_is_kept_with_nulls_not_an_internal_error(tmp_path, capsys):
    argv = ["reproduce", "--seeds", "2", "--steps", "40", "--set", "eval_every=10", "--set", "fit_steps=20"]
    argv += ["--set", "lr=3", "--no-figures", "--json", "--out", str(tmp_path / "r")]
    assert cli.main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((tmp_path / "r" / "results.json").read_text())
    assert set(saved["curves"]) == {"sft", "ift", "dpo", "orpo"} and printed["run_id"] == saved["run_id"]
    success = np.asarray(saved["curves"]["dpo"]["success"], dtype=float)  # null -> nan
    assert np.all(np.isnan(success) | ((success >= 0) & (success <= 1)))


# ------------------------------------------------------------ class 5: exposure and escapes
def test_spec_name_cannot_leave_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.json").write_text(json.dumps({"name": "../../escape", "grid": {"lam": [0]}}))
    _refused(capsys, ["sweep", "--grid", "s.json", "--fix", "seeds=1"], "'name' must be up to 64 letters")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]


def test_yaml_alias_bomb_is_refused_within_a_second(tmp_path):
    pytest.importorskip("yaml")
    rows = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    rows += [f"{b}: &{b} [{','.join([f'*{a}'] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi", strict=True)]
    (tmp_path / "bomb.yaml").write_text("\n".join(rows + ["grid: {lam: *i}"]) + "\n")  # 9^9 values
    assert (tmp_path / "bomb.yaml").stat().st_size < 400
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="more than 100,000 values"):
        sweep.load_spec(tmp_path / "bomb.yaml")
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize(
    "text, needle",
    [
        ('{"grid": {"lam": ' + "[" * 100 + "0" + "]" * 100 + "}}", "nested more than 16 levels"),
        ('{"grid": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested more than 16 levels"),
        ("grid:\n  lam: [0, 1\n", "is not valid YAML: expected ',' or ']'"),
    ],
)
def test_spec_files_nested_or_broken_are_one_line(tmp_path, capsys, text, needle):
    path = tmp_path / ("s.yaml" if text.startswith("grid:") else "s.json")
    path.write_text(text)
    _refused(capsys, ["sweep", "--grid", str(path), "--dry-run"], needle)


def test_a_utf16_spec_is_named(tmp_path, capsys):
    (tmp_path / "s.json").write_text('{"grid": {"lam": [0]}}', encoding="utf-16")
    _refused(capsys, ["sweep", "--grid", str(tmp_path / "s.json"), "--dry-run"], "'" + str(tmp_path / "s.json"))


# ------------------------------------------------------------ class 6: hangs and blow-ups
def test_a_random_map_without_a_path_gives_up(capsys, monkeypatch):
    monkeypatch.setattr(lakes, "RANDOM_MAP_TILES", 10**6)  # 400 boards of 50x50 (10**8, the default, is 2 s)
    _refused(capsys, ["solve", "--map", "random:50:0:0.01"], "none of 400 boards")
    from gymnasium.envs.toy_text.frozen_lake import generate_random_map

    assert all(lakes.random_map(8, p, s) == generate_random_map(8, p, s) for p in (0.5, 0.8) for s in (0, 3))


def test_ray_dead_address_is_refused_at_once(capsys):
    t0 = time.perf_counter()
    _refused(capsys, ["sweep", "--set", "lam=0", "--executor", "ray", "--address", "127.0.0.1:1"], "no Ray cluster")
    _refused(capsys, ["sweep", "--set", "lam=0", "--executor", "ray", "--address", "nonsense"], "HOST:PORT")
    assert time.perf_counter() - t0 < 10


def test_a_million_cells_are_refused_before_expanding(capsys, tmp_path):
    t0 = time.perf_counter()
    grid = [
        f"--set=lam={','.join(str(i / 1000) for i in range(1000))}",
        "--set=lr=" + ",".join(f"0.00{i + 1}" for i in range(9)),
    ]
    grid += ["--set=seed=" + ",".join(str(i) for i in range(200))]
    _refused(capsys, ["sweep", *grid, "--dry-run"], "the grid has 1,800,000 cells")
    assert time.perf_counter() - t0 < 5


def test_sweep_memory_is_estimated_before_building(capsys, tmp_path):
    t0 = time.perf_counter()
    argv = ["sweep", "--set", "map=two-route,random:200:0", "--out", str(tmp_path / "s")]
    _refused(capsys, argv + ["--dry-run"], "cell map=random:200:0 needs about")
    assert time.perf_counter() - t0 < 10 and not (tmp_path / "s").exists()


def test_memory_estimate_covers_measured_peaks():
    """Peaks measured on this machine (resident set, ``resource.getrusage``, one process, steps=1; see
    docs/reliability.md): the estimate must not be below them, nor wildly above."""
    measured = {("random:32:0", 2): 0.66e9, ("random:32:0", 16): 1.20e9, ("random:64:0", 2): 2.70e9}
    for (m, seeds), peak in measured.items():
        est = safety.config_bytes(StudyConfig(map=m, seeds=seeds, steps=1, eval_every=1))
        assert peak <= est <= 1.5 * peak, (m, seeds, est, peak)


# ------------------------------------------------------------ class 7: accepted silently before
def test_nan_token_in_results_refused(tmp_path, capsys):
    (tmp_path / "results.json").write_text('{"config": {}, "steps": [NaN]}')
    _refused(
        capsys, ["plot", str(tmp_path), "--out", str(tmp_path / "f")], "is not strict JSON: it holds the token NaN"
    )
    assert not (tmp_path / "f").exists()


def test_empty_shard_refused(capsys):
    _refused(capsys, ["sweep", "--set", "lam=0,0.1", "--shard", "", "--dry-run"], "--shard expects I/N")


def test_library_refusals():
    with pytest.raises(TypeError, match="slippery must be True or False"):
        lakes.make_lake("4x4", slippery="no")
    with pytest.raises(ValueError, match="logps must be log-probabilities"):
        losses.sft_loss(torch.full((1, 3), 0.5), torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="seed \\+ seeds - 1 must be at most"):
        StudyConfig(seed=2**63 - 1, seeds=2)


# ------------------------------------------------------------ class 8: messages
def test_long_values_are_cut_in_the_middle(capsys):
    err = _refused(capsys, ["reproduce", "--set", "methods=" + "x" * 100_000], "characters cut")
    assert len(err) < 1100 and "registered" in err  # the start and the allowed names at the end are kept


def test_out_name_too_long_refused_before_computing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("frozenlake_ift.study.run_study", lambda *a, **k: pytest.fail("the study ran"))
    _refused(capsys, ["reproduce", "--out", str(tmp_path / ("a" * 300))], "has 300 bytes")


def test_sweep_checks_its_folders_before_printing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweep, "run_sweep", lambda *a, **k: pytest.fail("the sweep ran"))
    other = tmp_path / "other"
    (other / "cells").mkdir(parents=True)
    (other / "sweep.json").write_text(json.dumps({"fields": ["lr"], "cells": {"k": {"lr": 1}}}))
    _refused(capsys, ["sweep", "--set", "lam=0,0.1", "--out", str(other)], "holds a sweep of other cells")
    real = safety.check_out_dir

    def read_only(path, what="--out"):
        if path.name == "cells":
            raise ValueError(f"{what} {str(path)!r} cannot be written (Read-only file system)")
        return real(path, what)

    monkeypatch.setattr(safety, "check_out_dir", read_only)
    _refused(capsys, ["sweep", "--set", "lam=0,0.1", "--out", str(tmp_path / "ro")], "cells' cannot be written")


# ------------------------------------------------------------ class 10: interrupted sweeps
@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The 4-cell sweep run straight through (the reference for the resumed one)."""
    d = tmp_path_factory.mktemp("whole")
    spec = sweep.make_spec({"grid": {"lam": [0.0, 0.1, 0.2, 0.3]}, "fixed": TINY})
    sweep.run_sweep(spec, d)
    return spec, d


def test_ctrl_c_of_a_batched_sweep_then_resume_recomputes_nothing_finished(whole, tmp_path, monkeypatch):
    spec, ref = whole
    real, runs = batched.run_group, []
    monkeypatch.setattr(sweep_tasks, "MIN_SPLIT_MEMBERS", 1)  # split the tiny group into tasks, as a big one is split

    def interrupted(configs, methods=None):  # Ctrl-C while the second task trains
        runs.append([sweep.cell_key(c) for c in configs])
        if len(runs) == 2:
            raise KeyboardInterrupt
        return real(configs, methods)

    monkeypatch.setattr(batched, "run_group", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(spec, tmp_path)  # the default batched engine, one worker
    kept = {p.stem: p.read_bytes() for p in (tmp_path / "cells").glob("*.json")}
    assert sorted(kept) == sorted(runs[0])  # the finished task's cells are kept
    again, real_study = [], sweep.run_study
    again_group = lambda cs, methods=None: again.extend(sweep.cell_key(c) for c in cs) or real(cs, methods)  # noqa: E731
    monkeypatch.setattr(batched, "run_group", again_group)
    monkeypatch.setattr(sweep, "run_study", lambda c, *a, **k: again.append(sweep.cell_key(c)) or real_study(c))
    summary = sweep.run_sweep(spec, tmp_path)
    assert summary["skipped"] == 2 and summary["ran"] == 2
    assert sorted(again) == sorted(runs[1])  # only the interrupted task's cells ran again, once each
    assert {k: (tmp_path / "cells" / f"{k}.json").read_bytes() for k in kept} == kept  # untouched
    assert saved_cells(tmp_path) == saved_cells(ref)


def test_truncated_manifest_resumes_its_own_sweep(whole, tmp_path):
    import shutil

    spec, ref = whole
    shutil.copytree(ref, tmp_path / "s")
    (tmp_path / "s" / "sweep.json").write_text('{"format": 2, "spec"')  # truncated
    summary = sweep.run_sweep(spec, tmp_path / "s")
    assert summary["skipped"] == 4 and summary["ran"] == 0
    assert json.loads((tmp_path / "s" / "sweep.json").read_text())["n_cells"] == 4


def test_report_of_one_folder_and_plot_of_a_cell(whole, tmp_path, capsys, monkeypatch):
    from frozenlake_ift import plots, report

    _, ref = whole
    rep, paths = report.write_report(str(ref), tmp_path / "rep", figures=False)  # a str, not a list
    assert rep["n_done"] == 4 and all(p.exists() for p in paths)
    cell = next((ref / "cells").glob("*.json"))
    monkeypatch.setattr(plots, "FIGURES", {"explored": plots.plot_explored})  # one figure stands for all (time)
    assert cli.main(["plot", str(cell)]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in (ref / "cells").iterdir() if not p.name.endswith(".json")) == []
    assert (ref / "plots" / cell.stem / "explored.png").is_file()
    res = json.loads(cell.read_text())
    assert f"lam={res['values']['lam']}" in plots._subtitle(res)
