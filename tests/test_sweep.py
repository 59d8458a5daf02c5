"""Sweeps: end to end, both engines, resume after an interrupt, corrupt cells, shards, malformed specs, the CLI."""

import json
import math

import pytest

from frozenlake_ift import batched, cli, report, results, study, sweep
from frozenlake_ift.study import StudyConfig
from helpers import saved_cells

TINY = dict(seeds=2, steps=10, eval_every=5, fit_steps=200, device="cpu")
SPEC = sweep.make_spec({"name": "tiny", "grid": {"base": ["random", "uniform"], "lam": [0.0, 0.5]}, "fixed": TINY})
SET_ARGS = ["--set", "base=random,uniform", "--set", "lam=0,0.5"] + [
    a for k, v in TINY.items() for a in ("--fix", f"{k}={v}")
]


def _close(a, b, rel=2e-5, path="") -> None:
    """Two cell records agree: same structure, numbers within rel (6 significant digits are stored)."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _close(a[k], b[k], rel, f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, rel, f"{path}[{i}]")
    elif isinstance(a, float) and not isinstance(a, bool):
        assert math.isclose(a, b, rel_tol=rel, abs_tol=1e-12), (path, a, b)
    else:
        assert a == b, (path, a, b)


def _counting(monkeypatch, fail_on=None, exc=KeyboardInterrupt):
    """Replace the study with a wrapper that records each config it runs (and raises on call ``fail_on``)."""
    calls, real = [], study.run_study

    def fake(config, *a, **k):
        calls.append(sweep.cell_key(config))
        if fail_on is not None and len(calls) == fail_on:
            raise exc("boom")
        return real(config, *a, **k)

    monkeypatch.setattr(sweep, "run_study", fake)
    return calls


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    d = tmp_path_factory.mktemp("full")
    seen = []
    summary = sweep.run_sweep(SPEC, d, on_cell=seen.append)
    return d, summary, seen


@pytest.fixture(scope="module")
def per_cell(tmp_path_factory):
    d = tmp_path_factory.mktemp("per_cell")
    return d, sweep.run_sweep(SPEC, d, engine="per-cell")


def test_engines_give_the_same_cells(full, per_cell):
    assert full[1]["tasks"] == 1 and per_cell[1]["tasks"] == 4  # one group of 4 small cells, kept whole, vs 4 cells
    a, b = saved_cells(full[0]), saved_cells(per_cell[0])
    _close(a, b)


def test_end_to_end_2x2(full):
    d, summary, seen = full
    assert summary["ran"] == 4 and summary["skipped"] == 0 and not summary["failed"] and len(seen) == 4
    cells = saved_cells(d)
    man = json.loads((d / "sweep.json").read_text())
    assert man["fields"] == ["base", "lam"] and man["n_cells"] == 4 and set(man["cells"]) == set(cells)
    for key, rec in cells.items():
        config = StudyConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in rec["config"].items()})
        assert sweep.cell_key(config) == key and rec["values"] == {k: rec["config"][k] for k in ("base", "lam")}
        assert set(rec["final"]) == {"sft", "ift", "dpo", "orpo"} and set(rec["curves"]) == set(rec["final"])
        assert all(len(v) == 2 for mc in rec["final"].values() for v in mc.values())  # one value per seed
        assert all(len(v) == len(rec["steps"]) == 3 for mc in rec["curves"].values() for v in mc.values())
        assert all(rec["final"][m][k] == rec["curves"][m][k][-1] for m in rec["final"] for k in rec["final"][m])
        assert {c["metric"] for c in rec["claims"]} >= {"param_mse", "policy_mse", "explored"}
        assert set(rec["ranking"]) >= {"param_mse", "policy_mse", "explored"}
    assert max(p.stat().st_size for p in (d / "cells").iterdir()) < 40_000
    res = results.load(d / "cells" / f"{next(iter(cells))}.json")  # what `frozenlake-ift plot` reads
    assert res["map"]["desc"] and res["curves"]["ift"]["param_mse"]


def test_plot_reads_a_cell_file(full, tmp_path, capsys):
    path = next((full[0] / "cells").glob("*.json"))
    assert cli.main(["plot", str(path), "--out", str(tmp_path / "fig")]) == 0
    assert list((tmp_path / "fig").glob("*.png"))


def test_rerun_skips_finished_cells(full, monkeypatch):
    d, _, _ = full
    calls = _counting(monkeypatch)
    summary = sweep.run_sweep(SPEC, d)
    assert calls == [] and summary["ran"] == 0 and summary["skipped"] == 4


def test_interrupt_then_resume_runs_each_cell_once(full, tmp_path, monkeypatch):
    calls = _counting(monkeypatch, fail_on=2)
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(SPEC, tmp_path, engine="per-cell")
    assert len(list((tmp_path / "cells").iterdir())) == 1  # the finished cell, and no partial file
    first = list(calls)
    calls = _counting(monkeypatch)
    summary = sweep.run_sweep(SPEC, tmp_path, engine="per-cell")
    assert summary["ran"] == 3 and summary["skipped"] == 1
    finished = [first[0]] + calls  # first[1] was the interrupted one: lost, then rerun
    assert len(finished) == 4 and len(set(finished)) == 4 and first[1] in calls
    _close(saved_cells(tmp_path), saved_cells(full[0]))


def test_batched_interrupt_keeps_finished_groups_and_resumes(full, tmp_path, monkeypatch):
    real, groups = batched.run_group, []

    def fake(configs, methods=None):
        groups.append(len(configs))
        if len(groups) == 2:
            raise KeyboardInterrupt
        return real(configs, methods)

    monkeypatch.setattr(batched, "run_group", fake)
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(SPEC, tmp_path, max_cells=2)  # two tasks of 2 cells
    assert groups == [2, 2] and len(list((tmp_path / "cells").glob("*.json"))) == 2
    summary = sweep.run_sweep(SPEC, tmp_path, max_cells=2)
    assert summary["ran"] == 2 and summary["skipped"] == 2 and groups[:2] == [2, 2]  # the rest: 1-cell chunks
    assert saved_cells(tmp_path) == saved_cells(full[0])  # the same cells as one group of 4: batching is exact


def test_corrupt_cell_is_recomputed(full, tmp_path):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(full[0], d)
    paths = sorted((d / "cells").glob("*.json"))
    paths[0].write_text(paths[0].read_text()[:500])  # truncated
    paths[1].write_text(json.dumps({"format": 1, "key": paths[1].stem}))  # an older layout
    summary = sweep.run_sweep(SPEC, d)
    assert summary["ran"] == 2 and summary["skipped"] == 2
    assert saved_cells(d) == saved_cells(full[0])


def test_another_spec_into_the_same_folder_is_refused(full, tmp_path):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(full[0], d)
    other = sweep.make_spec({"grid": {"lr": [0.01, 0.02]}, "fixed": TINY})
    with pytest.raises(ValueError, match="other cells"):
        sweep.run_sweep(other, d)
    assert saved_cells(d) == saved_cells(full[0]) and json.loads((d / "sweep.json").read_text())["n_cells"] == 4


def test_shards_merge_to_the_unsharded_sweep(full, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    ra = sweep.run_sweep(SPEC, a, shard=(1, 2))
    rb = sweep.run_sweep(SPEC, b, shard=(2, 2))
    assert ra["ran"] == rb["ran"] == 2
    ca, cb = saved_cells(a), saved_cells(b)
    assert not set(ca) & set(cb) and {**ca, **cb} == saved_cells(full[0])
    fields, records, missing = report.load_cells([a, b])
    _, records_full, _ = report.load_cells([full[0]])
    assert list(fields) == ["base", "lam"] and not missing
    strip = lambda rep: {k: v for k, v in rep.items() if k != "cell_seconds"}  # noqa: E731
    assert strip(report.analyze(fields, records)) == strip(report.analyze(fields, records_full))
    assert sorted(report.load_cells([a])[2]) == sorted(cb)  # a shard alone reports the other shard's cells missing


@pytest.mark.parametrize(
    "name, text, needle",
    [
        ("bad.json", '{"grid": {"lam": [0.1, }', "not valid JSON"),
        ("bad.toml", "[grid]\nlam = [0.1,", "not valid TOML"),
        ("unknown.json", '{"grid": {"lambda": [0.1, 0.2]}}', "'lambda'"),
        ("unknown_key.json", '{"grids": {"lam": [0.1]}}', "'grids'"),
        ("range.json", '{"grid": {"lam": [0.2, 1.5]}}', "lam must lie in [0, 1], got 1.5"),
        ("type.json", '{"grid": {"lam": ["abc"]}}', "'abc'"),
        ("base.toml", '[grid]\nbase = ["random", "pretrained"]', "'pretrained'"),
        ("map.json", '{"fixed": {"map": "9x9"}}', "9x9"),
        ("both.json", '{"grid": {"lam": [0.1]}, "fixed": {"lam": 0.2}}', "both"),
    ],
)
def test_malformed_spec_is_named_and_nothing_is_written(tmp_path, capsys, name, text, needle):
    spec = tmp_path / name
    spec.write_text(text)
    out = tmp_path / "out"
    assert cli.main(["sweep", "--grid", str(spec), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--set", "lambda=0,1"], "'lambda'"),
        (["--set", "lam=0,2"], "lam must lie in [0, 1], got 2.0"),
        (["--set", "lam=0", "--shard", "3/2"], "--shard"),
        (["--set", "lam=0", "--workers", "0"], "--workers"),
        ([], "nothing to sweep"),
    ],
)
def test_bad_command_line_exits_2_and_writes_nothing(tmp_path, capsys, argv, needle):
    out = tmp_path / "out"
    assert cli.main(["sweep", *argv, "--out", str(out), "--no-progress"]) == 2
    assert needle in capsys.readouterr().err and not out.exists()


def test_spec_formats_agree(tmp_path):
    (tmp_path / "s.toml").write_text(
        'name = "t"\n[grid]\nlam = [0, 0.5]\nmap = ["4x4", ["SFFG", "FHHF", "FFFF"]]\n[fixed]\nseeds = 2\n'
    )
    (tmp_path / "s.json").write_text(
        json.dumps(
            {
                "name": "t",
                "grid": {"lam": [0.0, 0.5], "map": ["4x4", ["SFFG", "FHHF", "FFFF"]]},
                "fixed": {"seeds": "2"},
            }
        )
    )
    files = ["s.toml", "s.json"]
    try:
        import yaml

        (tmp_path / "s.yaml").write_text(
            yaml.safe_dump({"grid": {"lam": [0, 0.5], "map": ["4x4", ["SFFG", "FHHF", "FFFF"]]}, "fixed": {"seeds": 2}})
        )
        files.append("s.yaml")
    except ImportError:  # YAML specs are optional
        pass
    keys = [[c.key for c in sweep.expand(sweep.load_spec(tmp_path / f))] for f in files]
    assert all(k == keys[0] for k in keys) and len(keys[0]) == 4
    cells = sweep.expand(sweep.load_spec(tmp_path / "s.toml"))
    assert cells[1].config.map == ("SFFG", "FHHF", "FFFF") and cells[1].values["map"] == ["SFFG", "FHHF", "FFFF"]


def test_shard_selection_is_a_partition():
    cells = sweep.expand(sweep.make_spec({"grid": {"lam": [0.0, 0.1, 0.2, 0.3, 0.4], "lr": [0.01, 0.02]}}))
    parts = [sweep.shard_cells(cells, i, 3) for i in (1, 2, 3)]
    keys = [c.key for p in parts for c in p]
    assert sorted(keys) == sorted(c.key for c in cells) and [len(p) for p in parts] == [4, 3, 3]
    assert sweep.parse_shard(" 2/3 ") == (2, 3)
    for bad in ("0/2", "3/2", "1", "a/b"):
        with pytest.raises(ValueError, match="--shard"):
            sweep.parse_shard(bad)


def test_default_spec_is_big_enough():
    spec = sweep.load_spec(sweep.DEFAULT_SPEC)
    cells = sweep.expand(spec)
    assert len(cells) >= 100 and all(c.config.seeds >= 20 for c in cells)
    assert len({c.key for c in cells}) == len(cells)


@pytest.mark.parametrize("engine", ["batched", "per-cell"])
def test_a_failing_cell_is_saved_with_its_error_and_retried(tmp_path, monkeypatch, engine):
    def broken(configs, methods=None):
        raise ValueError("group boom")

    monkeypatch.setattr(batched, "run_group", broken)  # the batched engine then runs each cell alone
    calls = _counting(monkeypatch, fail_on=1, exc=ValueError)
    summary = sweep.run_sweep(SPEC, tmp_path, engine=engine)
    assert summary["ran"] == 3 and len(summary["failed"]) == 1 and "boom" in summary["failed"][0]["error"]
    rec = json.loads((tmp_path / "cells" / f"{calls[0]}.json").read_text())
    assert rec["key"] == calls[0] and "boom" in rec["error"]  # the report can name it
    _, records, missing = report.load_cells([tmp_path])
    assert calls[0] in missing and len(records) == 3
    calls = _counting(monkeypatch)
    summary = sweep.run_sweep(SPEC, tmp_path, engine=engine)
    assert (
        summary["ran"] == 1
        and summary["skipped"] == 3
        and "error" not in json.loads((tmp_path / "cells" / f"{calls[0]}.json").read_text())
    )


def test_a_lone_group_trains_its_methods_in_parts_on_two_workers(full, tmp_path):
    """Fewer groups than workers: the group's methods train in parts, side by side in two processes, and the
    cells joined from the parts are the whole group's, bit for bit (timings aside)."""
    tasks = sweep.make_tasks(sweep.expand(SPEC), "batched", workers=2)
    assert [(len(t.cells), t.methods) for t in tasks] == [(4, ("sft", "ift")), (4, ("dpo", "orpo"))]
    summary = sweep.run_sweep(SPEC, tmp_path, workers=2)
    assert summary["tasks"] == 2 and summary["ran"] == 4 and not summary["failed"]
    assert saved_cells(tmp_path) == saved_cells(full[0])


def test_parts_of_sampling_methods_equal_the_whole_group(tmp_path):
    """Methods that draw samples (on-policy ones, negatives from the policy) each draw from their own
    generator, so training them in parts changes no draw: three workers, three parts, the same cells."""
    fixed = {**TINY, "methods": ["sft", "ppo", "dpo", "grpo", "ipo"], "negatives": "policy", "pairs": 2}
    spec = sweep.make_spec({"name": "sampling", "grid": {"lr": [0.01, 0.03]}, "fixed": fixed})
    parts = [t.methods for t in sweep.make_tasks(sweep.expand(spec), "batched", workers=3)]
    assert parts == [("sft", "ppo"), ("dpo",), ("grpo", "ipo")]
    sweep.run_sweep(spec, tmp_path / "whole")
    sweep.run_sweep(spec, tmp_path / "parts", workers=3)
    assert saved_cells(tmp_path / "parts") == saved_cells(tmp_path / "whole")


def test_a_failing_part_fails_its_cell_alone_and_a_rerun_completes_it(full, tmp_path, monkeypatch):
    cells = sweep.expand(SPEC)
    parts = sweep.make_tasks(cells, "batched", workers=2)
    monkeypatch.setattr(sweep, "make_tasks", lambda *a, **k: parts)  # the two parts, here one after the other
    real, bad = batched.run_group, cells[1].config

    def flaky(configs, methods=None):
        if methods == ("dpo", "orpo") and bad in configs:
            raise ValueError("part boom")
        return real(configs, methods)

    monkeypatch.setattr(batched, "run_group", flaky)
    summary = sweep.run_sweep(SPEC, tmp_path)
    assert summary["ran"] == 3 and [f["key"] for f in summary["failed"]] == [cells[1].key]
    assert "part boom" in json.loads((tmp_path / "cells" / f"{cells[1].key}.json").read_text())["error"]
    monkeypatch.undo()
    summary = sweep.run_sweep(SPEC, tmp_path)
    assert summary["ran"] == 1 and summary["skipped"] == 3
    assert saved_cells(tmp_path) == saved_cells(full[0])


def test_method_parts_are_checked_and_join_back(full):
    cfg = StudyConfig(**TINY)
    with pytest.raises(ValueError, match="subset"):
        batched.run_group([cfg], methods=("ppo",))
    with pytest.raises(ValueError, match="truly"):
        batched.run_group([StudyConfig(**TINY, methods=("truly", "sft"))], methods=("sft",))
    whole = json.loads(next((full[0] / "cells").glob("*.json")).read_text())
    methods = tuple(whole["config"]["methods"])
    for cut in range(1, len(methods)):  # any split of a whole record joins back to it
        per_method = (*results.METHOD_SECTIONS, "final")
        split = [
            {k: ({m: v[m] for m in ms if m in v} if k in per_method else v) for k, v in whole.items()}
            for ms in (methods[:cut], methods[cut:])
        ]
        split[1]["seconds"] = 0.0
        joined = results.join_records(split, methods)
        joined["final"] = {m: r["final"][m] for m in methods for r in split if m in r["final"]}
        assert json.dumps(joined) == json.dumps(whole)
    with pytest.raises(ValueError, match="hold"):
        results.join_records([whole], (*methods, "ppo"))


def test_report_files(full, tmp_path):
    rep, paths = report.write_report([full[0]], tmp_path / "rep")
    assert {p.name for p in paths} == {
        "report.md",
        "report.json",
        "claims_by_field.png",
        "claims_by_field.svg",
        "metrics_by_field.png",
        "metrics_by_field.svg",
    }
    assert rep["swept"] == ["base", "lam"] and rep["n_done"] == rep["n_cells"] == 4
    md = (tmp_path / "rep" / "report.md").read_text()
    for claim in rep["claims"]:
        assert claim in md
    assert "### `base`" in md and "## Per-cell rankings" in md and "±" in md
    assert "## Each metric against each swept field" in md and set(rep["metrics_by_field"]["success"]) == {
        "base",
        "lam",
    }
    c = next(iter(rep["claims"].values()))
    assert c["n"] == 4 and sum(h for h, _ in c["by_field"]["base"].values()) == c["holds"]


def test_cli_sweep_with_workers_and_report(full, tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli.main(["sweep", *SET_ARGS, "--out", str(out), "--workers", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ran"] == 4
    assert saved_cells(out) == saved_cells(full[0])  # a worker process gives the same bits as the serial sweep
    assert cli.main(["sweep", *SET_ARGS, "--out", str(out), "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["done"] == 4
    assert cli.main(["report", str(out), "--json", "--no-figures"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["done"] == 4 and rep["swept"] == ["base", "lam"] and (out / "report.md").exists()
    assert cli.main(["report", str(tmp_path / "nope")]) == 2
    assert "no sweep.json" in capsys.readouterr().err


def test_kill_keeps_finished_cells_and_rerun_completes(full, tmp_path):
    """A real SIGTERM to the CLI process: finished cells stay, no partial file, a rerun completes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "killed"
    argv = [
        sys.executable,
        "-m",
        "frozenlake_ift.cli",
        "sweep",
        *SET_ARGS,
        "--out",
        str(out),
        "--no-progress",
        "--engine",
        "per-cell",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ})
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline and not list((out / "cells").glob("*.json")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    saved = {p.name for p in (out / "cells").iterdir()}
    assert all(name.endswith(".json") and not name.startswith(".") for name in saved)
    if proc.returncode == 130:  # killed mid-sweep (the usual case); 0 if it had already finished
        assert "interrupted" in err and 1 <= len(saved) < 4
    else:
        assert proc.returncode == 0
    assert cli.main(["sweep", *SET_ARGS, "--out", str(out), "--json"]) == 0
    _close(saved_cells(out), saved_cells(full[0]))


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_local_workers_start_either_way_and_return_every_result(start_method):
    from frozenlake_ift import executors

    ex = executors.LocalExecutor(2, start_method)
    assert sorted(ex.map(math.factorial, [3, 5, 7])) == [6, 120, 5040]
    assert executors.default_start_method(gpus=True) == "spawn"  # a forked child cannot use CUDA
    with pytest.raises(ValueError, match="start_method must be one of"):
        executors.LocalExecutor(2, "thread")
