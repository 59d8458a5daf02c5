"""Issue 15 acceptance: random --set pairs, maps and input files never end in a traceback.

Every run either exits 0 with strict-JSON results, or exits 2 with one line on stderr and writes
no file. Valid reproduce configs run a shared tiny study instead of training (the parsing, checks
and writing are the real ones), so the test stays fast.
"""

import json
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frozenlake_ift import cli
from frozenlake_ift.config import StudyConfig

FIELDS = list(StudyConfig.field_names())
VALUES = st.one_of(
    st.sampled_from(
        [
            "nan",
            "inf",
            "-inf",
            "-1",
            "0",
            "1",
            "2.5",
            "1e400",
            "true",
            "no",
            "",
            "x",
            "sft,dpo",
            "4x4",
            "random:3:0",
            "SFG",
            "cosine",
            "cpu",
            "1e-300",
        ]
    ),
    st.text(string.printable, max_size=8),
)
MAPS = st.one_of(
    st.sampled_from(
        [
            "4x4",
            "8x8",
            "two-route",
            "random:3:1",
            "random:0:0",
            "random:x:1",
            "random:4:0:0.5",
            "random:4:0:2",
            "SFG",
            "SF,FG",
            "SFH,HHG",
            "S",
            "G",
            ",",
            "SX",
        ]
    ),
    st.text("SFHG,:", max_size=12),
)
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


def _strict(text):
    def bad(token):
        raise AssertionError(f"non-strict JSON token {token}")

    return json.loads(text, parse_constant=bad)


def _check(status, err, written, allowed=(0, 2)):
    assert "Traceback" not in err and status in allowed, (status, err)
    if status == 2:
        assert err.count("\n") == 1 and ": error: " in err, err
        assert not written, written


@pytest.fixture(scope="module")
def tiny():
    import torch

    from frozenlake_ift.study import run_study

    torch.set_num_threads(1)
    return run_study(StudyConfig(seeds=2, steps=2, eval_every=1, fit_steps=5, methods=("sft", "dpo"), device="cpu"))


@FUZZ
@given(pairs=st.lists(st.tuples(st.sampled_from(FIELDS + ["bogus"]), VALUES), max_size=3), map_=MAPS)
def test_reproduce_fuzz(pairs, map_, tiny, tmp_path_factory, monkeypatch_module, capsys):
    out = tmp_path_factory.mktemp("run") / "out"
    argv = [
        "reproduce",
        "--seeds",
        "1",
        "--steps",
        "1",
        "--set",
        "fit_steps=5",
        "--no-figures",
        "--json",
        "--map",
        map_,
        "--out",
        str(out),
    ]
    for f, v in pairs:
        argv += ["--set", f"{f}={v}"]
    status = cli.main(argv)
    captured = capsys.readouterr()
    _check(status, captured.err, out.exists())
    if status == 0:
        _strict(captured.out)
        _strict((out / "results.json").read_text())


@FUZZ
@given(map_=MAPS, gamma=st.sampled_from(["0.9", "1", "0", "nan", "2"]), slip=st.booleans())
def test_solve_fuzz(map_, gamma, slip, capsys):
    status = cli.main(["solve", "--map", map_, "--gamma", gamma, "--json"] + (["--slippery"] if slip else []))
    captured = capsys.readouterr()
    _check(status, captured.err, False)
    if status == 0:
        _strict(captured.out)


def _json_junk():
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False), st.text(max_size=4))
    return st.recursive(
        scalars,
        lambda kids: st.one_of(st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=6), kids, max_size=3)),
        max_leaves=8,
    )


def _mutated_results(tiny):
    from frozenlake_ift import results

    base = results.to_dict(tiny)
    keys = ["config", "steps", "curves", "summary", "map", "fit", "final_occupancy", "explored"]

    @st.composite
    def mutate(draw):
        res = json.loads(results.strict_results(json.loads(json.dumps(base, default=float))))
        key = draw(st.sampled_from(keys))
        how = draw(st.sampled_from(["drop", "junk", "truncate", "shorten-steps"]))
        if how == "drop":
            res.pop(key)
        elif how == "junk":
            res[key] = draw(_json_junk())
        elif how == "truncate":
            return json.dumps(res)[: draw(st.integers(0, 2000))]
        else:
            res["steps"] = res["steps"][:-1]
        return json.dumps(res)

    return mutate()


@FUZZ
@given(data=st.data())
def test_plot_fuzz(data, tiny, tmp_path_factory, capsys):
    folder = tmp_path_factory.mktemp("plot")
    kind = data.draw(st.sampled_from(["binary", "junk", "mutated"]))
    if kind == "binary":
        content = data.draw(st.binary(max_size=64))
    elif kind == "junk":
        content = json.dumps(data.draw(_json_junk())).encode()
    else:
        content = data.draw(_mutated_results(tiny)).encode()
    (folder / "results.json").write_bytes(content)
    status = cli.main(["plot", str(folder / "results.json"), "--out", str(folder / "figs")])
    captured = capsys.readouterr()
    _check(status, captured.err, (folder / "figs").exists())
    if status == 2:
        assert str(folder / "results.json") in captured.err


@FUZZ
@given(data=st.data())
def test_report_fuzz(data, tmp_path_factory, capsys):
    folder = tmp_path_factory.mktemp("sweep")
    (folder / "cells").mkdir()
    manifest = {"format": 1, "fields": ["lam"], "cells": {"k1": {"lam": 0.0}}}
    target = data.draw(st.sampled_from(["sweep.json", "cells/k1.json"]))
    content = data.draw(st.one_of(st.binary(max_size=32), _json_junk().map(lambda x: json.dumps(x).encode())))
    (folder / "sweep.json").write_text(json.dumps(manifest))
    (folder / target).write_bytes(content)
    before = sorted(p.name for p in folder.iterdir())
    status = cli.main(["report", str(folder), "--no-figures"])
    captured = capsys.readouterr()
    _check(status, captured.err, sorted(p.name for p in folder.iterdir()) != before)
    assert status == 2  # no junk is a finished cell


@pytest.fixture(scope="module")
def monkeypatch_module(tiny):
    """reproduce runs the shared tiny study instead of training (module-wide, for hypothesis)."""
    mp = pytest.MonkeyPatch()
    mp.setattr("frozenlake_ift.study.run_study", lambda config, progress=False: tiny)
    yield mp
    mp.undo()
