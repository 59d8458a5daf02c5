"""Issue 15, bad input: malformed plot/report files, Python API types, messages and help."""

import json

import pytest

from frozenlake_ift import cli
from frozenlake_ift.config import StudyConfig

GOOD_MAP = {
    "desc": ["SF", "FG"],
    "shape": [2, 2],
    "pi_star": [[0, 0, 1, 0]] * 4,
    "terminal": [0, 0, 0, 1],
    "chosen": {"states": [0, 1, 3], "actions": [2, 1]},
    "rejected": {"states": [], "actions": []},
}
GOOD = {
    "config": {"gamma": 0.9},
    "steps": [0, 1],
    "curves": {"sft": {"success": [[0.5], [1.0]]}},
    "summary": {},
    "map": GOOD_MAP,
}


def _bad(tmp_path, capsys, argv, needle):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and needle in err, err
    return err


def test_good_minimal_results_plot(tmp_path, capsys):
    (tmp_path / "results.json").write_text(json.dumps(GOOD))
    assert cli.main(["plot", str(tmp_path), "--out", str(tmp_path / "f")]) == 0
    assert (tmp_path / "f" / "curves.png").is_file()


@pytest.mark.parametrize(
    "content, needle",
    [
        (b"null", "the file's top level must be a non-empty mapping, got null"),
        (b"[1, 2]", "got list of length 2"),
        (b"\x89PNG\r\n\x1a\n\x00\xff", "binary data"),
        (b'{"config": {}', "is not valid JSON"),
        (json.dumps({**GOOD, "steps": [0, 1, 2]}).encode(), "'curves.sft.success' has 2 rows, expected 3"),
        (json.dumps({**GOOD, "steps": "0,1"}).encode(), "'steps' must be a non-empty list of numbers"),
        (json.dumps({**GOOD, "curves": {"sft": {"success": [[0.5], ["1"]]}}}).encode(), "not a number"),
        (json.dumps({**GOOD, "curves": {"sft": {"success": [[0.5], [1.0, 2.0]]}}}).encode(), "rows of 2 values"),
        (json.dumps({**GOOD, "map": {**GOOD_MAP, "pi_star": [[1, 0, 0, 0]]}}).encode(), "'map.pi_star' has 1 rows"),
        (json.dumps({**GOOD, "map": {**GOOD_MAP, "desc": ["SF", "FX"]}}).encode(), "only the letters"),
        (json.dumps({**GOOD, "final_occupancy": {"sft": [[1, 0]]}}).encode(), "'final_occupancy.sft' has rows of 2"),
        (json.dumps({**GOOD, "config": {"gamma": None}}).encode(), "'config.gamma' must be a number"),
        (json.dumps({"format": 1, "key": "k", "values": {}, "summary": {}}).encode(), "missing keys"),  # a sweep cell
    ],
)
def test_malformed_results_refused(tmp_path, capsys, content, needle):
    path = tmp_path / "results.json"
    path.write_bytes(content)
    err = _bad(tmp_path, capsys, ["plot", str(path), "--out", str(tmp_path / "figs")], needle)
    assert str(path) in err and not (tmp_path / "figs").exists()


def _sweep(tmp_path, manifest, cell):
    (tmp_path / "cells").mkdir()
    (tmp_path / "sweep.json").write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    (tmp_path / "cells" / "k1.json").write_bytes(cell)


MAN = {"format": 1, "fields": ["lam"], "cells": {"k1": {"lam": 0.0}}}


@pytest.mark.parametrize(
    "manifest, cell, needle",
    [
        ("null", b"{}", "sweep.json manifest: the file's top level"),
        ({"fields": "lam", "cells": {}}, b"{}", "'fields' must be a list"),
        (MAN, b"\x00\x01", "binary data"),
        (MAN, b'{"key": ', "is not valid JSON"),
        (MAN, json.dumps({"key": "k1"}).encode(), "missing keys"),
        (
            MAN,
            json.dumps(
                {
                    "key": "k1",
                    "values": {},
                    "config": {"nonsense": 1},
                    "summary": {},
                    "ranking": {},
                    "claims": [],
                    "seconds": 1,
                }
            ).encode(),
            "fields this version does not know: ['nonsense']",
        ),
        (
            MAN,
            json.dumps(
                {
                    "key": "k1",
                    "values": {},
                    "config": {"lam": 0.0},
                    "summary": {},
                    "ranking": {"x": ["sft"]},
                    "claims": [],
                    "seconds": 1,
                }
            ).encode(),
            "'ranking.x' must list methods",
        ),
        (
            MAN,
            json.dumps(
                {
                    "key": "k1",
                    "values": {},
                    "config": {"lam": 0.0},
                    "summary": {},
                    "ranking": {},
                    "claims": [{"claim": "c"}],
                    "seconds": 1,
                }
            ).encode(),
            "'claims' must be a list",
        ),
    ],
)
def test_malformed_sweep_files_refused(tmp_path, capsys, manifest, cell, needle):
    _sweep(tmp_path, manifest, cell)
    _bad(tmp_path, capsys, ["report", str(tmp_path), "--no-figures"], needle)
    assert not (tmp_path / "report.md").exists()


@pytest.mark.parametrize(
    "kw, error, needle",
    [
        ({"slippery": "no"}, TypeError, "slippery must be bool"),
        ({"seeds": 2.5}, TypeError, "seeds must be an int"),
        ({"device": 5}, TypeError, "device must be a str"),
        ({"gamma": None}, TypeError, "gamma must be a finite float"),
        ({"lr": float("inf")}, ValueError, "lr must be a finite number"),
        ({"orpo_beta": float("nan")}, ValueError, "orpo_beta must be a finite number"),
        ({"seeds": True}, TypeError, "seeds must be an int"),
        ({"methods": "sft"}, TypeError, "methods must be a list"),
    ],
)
def test_python_api_type_checks(kw, error, needle):
    with pytest.raises(error, match=needle.replace("(", r"\(")):
        StudyConfig(**kw)


def test_numpy_numbers_are_accepted_as_python_numbers():
    import numpy as np

    c = StudyConfig(seeds=np.int64(3), lr=np.float32(0.5))
    assert type(c.seeds) is int and c.seeds == 3 and type(c.lr) is float


@pytest.mark.parametrize(
    "setting, needle",
    [
        ("lr=inf", "lr must be a finite number"),
        ("orpo_beta=nan", "orpo_beta must be a finite number"),
        ("gamma=1.0", "gamma=1 (no discount)"),
        ("seeds=x", "expects an integer"),
        ("nope=1", "allowed: env, map, slippery"),
    ],
)
def test_reproduce_messages_before_anything(tmp_path, capsys, monkeypatch, setting, needle):
    monkeypatch.setattr("frozenlake_ift.study.run_study", lambda *a, **k: pytest.fail("the study ran"))
    captured = _bad(tmp_path, capsys, ["reproduce", "--set", setting, "--out", str(tmp_path / "r")], needle)
    assert captured.startswith("frozenlake-ift reproduce: error: ") and not (tmp_path / "r").exists()


def test_argparse_errors_are_one_line(capsys):
    assert cli.main(["solve", "--gamma", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid float value: 'x'" in err and "usage:" not in err


@pytest.mark.parametrize("command", ["solve", "reproduce", "plot", "sweep", "report", "methods", "fields"])
def test_help_answers(capsys, command):
    assert cli.main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text and "(default: False)" not in text and "(default: [])" not in text
    if command in ("solve", "reproduce", "sweep"):
        assert "rows joined by commas, e.g. SFF,FHF,FFG" in text
    if command in ("reproduce", "sweep"):
        assert "frozenlake-ift fields" in text
    if command == "reproduce":
        assert "--slippery" in text and "--force" in text


def test_fields_lists_every_field(capsys):
    assert cli.main(["fields", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(StudyConfig.field_names())
    by = {r["name"]: r for r in rows}
    assert by["base"]["allowed"] == ["random", "uniform", "suboptimal"] and by["seeds"]["default"] == 20
    assert "dpo" in by["methods"]["allowed"] and by["gamma"]["type"] == "float"


def test_sweep_dry_run_would_run_and_engine_flags(tmp_path, capsys, monkeypatch):
    assert cli.main(["sweep", "--set", "lam=0,0.2", "--fix", "seeds=1", "--dry-run", "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "would run 2" in out and "nothing is run or written" in out and not (tmp_path / "s").exists()
    seen = {}

    def run_sweep(
        spec, out_dir, *, workers=1, shard=None, progress=False, engine="batched", executor="local", address=None
    ):
        seen.update(engine=engine, executor=executor, address=address)
        return {"ran": 0, "seconds": 0.0, "cell_seconds": [], "skipped": 0, "failed": []}

    monkeypatch.setattr("frozenlake_ift.sweep.run_sweep", run_sweep)
    monkeypatch.setattr("frozenlake_ift.executors.check_ray_address", lambda address: None)  # no cluster here
    argv = [
        "sweep",
        "--set",
        "lam=0,0.2",
        "--fix",
        "seeds=1",
        "--out",
        str(tmp_path / "s"),
        "--no-progress",
        "--engine",
        "per-cell",
        "--executor",
        "ray",
        "--address",
        "ray://h:1",
    ]
    assert cli.main(argv) == 0 and seen == {"engine": "per-cell", "executor": "ray", "address": "ray://h:1"}
    capsys.readouterr()
    _bad(tmp_path, capsys, argv[:-4] + ["--address", "h:1"], "--address 'h:1' needs --executor ray")
