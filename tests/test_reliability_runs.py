"""Issue 25, classes 1, 2, 8 and 9 (files): a planted commit journal never touches a file outside its
folder; a commit killed at any point never lets a reader pair two runs' files; a forged or foreign
params.pt is refused in one line."""

import json
import os
from pathlib import Path

import pytest
import torch

from frozenlake_ift import agents, cli, results, safety

DEAD = 2**22 + 12345  # above the default pid_max: no such process
RUN_FILES = ("results.json", "summary.csv", "steps.csv", results.PARAMS_FILE, "curves.png")


@pytest.fixture(scope="module")
def tiny():
    from frozenlake_ift.study import StudyConfig, run_study

    torch.set_num_threads(1)
    return run_study(StudyConfig(seeds=2, steps=2, eval_every=1, fit_steps=5, methods=("sft", "dpo"), device="cpu"))


def _one_error_line(err: str, needle: str = "") -> None:
    assert err.count("\n") == 1 and ": error: " in err and "Traceback" not in err, err
    assert needle in err, err


# ------------------------------------------------------------ class 1: a planted journal
def _plant(folder: Path, outside: Path) -> None:
    """Five hostile journals of dead writers in ``folder``: paths out of the folder, a linked stage, a
    linked journal, names that are not plain file names."""
    folder.mkdir(parents=True, exist_ok=True)
    plans = [
        {"stage": f"../{outside.name}", "files": ["v.txt"], "remove": []},  # a stage outside
        {
            "stage": f".staging-{DEAD + 1}-a",
            "files": ["../escape.txt"],
            "remove": ["../victim.txt", str(outside / "v.txt")],
        },
        {"stage": f".staging-{DEAD + 2}-l", "files": ["v.txt"], "remove": [".."]},  # a stage that is a link
        {"stage": f".staging-{DEAD}-z", "files": [], "remove": []},  # another pid's stage
    ]
    (folder / f".staging-{DEAD + 1}-a").mkdir()
    (folder / f".staging-{DEAD + 1}-a" / "x").write_text("staged")
    (folder / "escape.txt").write_text("inside")  # stage/../escape.txt names this file
    (folder / f".staging-{DEAD + 2}-l").symlink_to(outside, target_is_directory=True)
    (folder / f".staging-{DEAD + 3}-z").mkdir()
    for i, plan in enumerate(plans):
        (folder / f".commit-{DEAD + i}.json").write_text(json.dumps(plan))
    bad = outside.parent / "plan.json"  # a journal that is a link to a plan outside
    bad.write_text(json.dumps({"stage": f".staging-{DEAD + 4}-q", "files": [], "remove": ["../victim.txt"]}))
    (folder / f".commit-{DEAD + 4}.json").symlink_to(bad)


def _outside_state(root: Path) -> dict:
    files = [p for p in sorted(root.rglob("*")) if p.is_file() and p.relative_to(root).parts[0] != "run"]
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


@pytest.mark.parametrize("command", ["plot", "report", "reproduce", "sweep"])
def test_planted_journal_touches_nothing_outside(tmp_path, capsys, monkeypatch, tiny, command):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "v.txt").write_text("victim in a folder")
    (tmp_path / "victim.txt").write_text("victim beside the run")
    run = tmp_path / "run"
    if command == "plot":  # a file plot refuses, after cleaning the folder it would write into (no drawing)
        run.mkdir()
        (run / "results.json").write_text("{}")
        argv = ["plot", str(run)]
    elif command == "report":
        from frozenlake_ift import sweep

        spec = sweep.make_spec({"grid": {"lam": [0.2]}, "fixed": {"seeds": 2, "steps": 2, "fit_steps": 5}})
        cells = sweep.expand(spec, check_maps=False)
        (run / "cells").mkdir(parents=True)
        (run / "sweep.json").write_text(json.dumps(sweep._manifest(spec, cells)))
        (run / "cells" / f"{cells[0].key}.json").write_text(json.dumps(sweep.compact(tiny, cells[0])))
        argv = ["report", str(run), "--no-figures"]
    elif command == "reproduce":
        monkeypatch.setattr("frozenlake_ift.study.run_study", lambda config, progress=False: tiny)
        argv = ["reproduce", "--seeds", "2", "--steps", "2", "--no-figures", "--out", str(run)]
    else:  # the sweep itself is not run: its folders are cleaned before it starts
        done = {"ran": 0, "seconds": 0.0, "cell_seconds": [], "skipped": 0, "failed": []}
        monkeypatch.setattr("frozenlake_ift.sweep.run_sweep", lambda *a, **k: done)
        _plant(run / "cells", outside)
        argv = ["sweep", "--set", "lam=0", "--fix", "seeds=1", "--fix", "steps=1", "--out", str(run), "--json"]
    _plant(run, outside)
    before = _outside_state(tmp_path)
    status = cli.main(argv)
    capsys.readouterr()
    assert status == (2 if command == "plot" else 0)
    assert _outside_state(tmp_path) == before  # nothing outside the folder moved, removed or written
    assert (run / "escape.txt").read_text() == "inside" and outside.is_dir()
    assert not list(run.glob(".commit-*")), sorted(p.name for p in run.iterdir())  # refused journals are gone


def test_read_journal_accepts_only_its_own_layout(tmp_path):
    stage = tmp_path / f".staging-{DEAD}-ok"
    stage.mkdir()
    journal = tmp_path / f".commit-{DEAD}.json"
    good = {"stage": stage.name, "files": ["results.json", safety.RUN_LIST], "remove": ["curves.png"]}
    journal.write_text(json.dumps(good))
    plan = safety.read_journal(tmp_path, journal)
    assert plan is not None and plan.stage == stage and plan.files == ("results.json", safety.RUN_LIST)
    for bad in (
        {**good, "extra": 1},
        {**good, "stage": "../x"},
        {**good, "files": ["a/b"]},
        {**good, "files": [".hidden"]},
        {**good, "remove": ["/etc/passwd"]},
        {**good, "remove": "curves.png"},
        [good],
    ):
        journal.write_text(json.dumps(bad))
        assert safety.read_journal(tmp_path, journal) is None, bad
    journal.write_text('{"stage": NaN}')
    assert safety.read_journal(tmp_path, journal) is None


# ------------------------------------------------------------ class 2: a kill at every commit point
class _Killed(BaseException):
    """A SIGKILL, in process: the writer stops at an operation and does nothing more."""


def _commit(out: Path, result, extra: bool, kill_at: int | None, monkeypatch) -> int:
    """Commit a run's files (and a stale figure when ``extra``) into ``out``, killed before operation
    ``kill_at`` (a rename or a removal; None: not killed); return the operations done."""
    stage = safety.Stage(out)
    results.save(result, stage.path)
    if extra:
        (stage.path / "curves.png").write_bytes(b"figure of this run")
    done = [0]
    real_replace, real_unlink = os.replace, os.unlink

    def op(real):
        def call(*a, **k):
            if kill_at is not None and done[0] >= kill_at:
                raise _Killed
            done[0] += 1
            return real(*a, **k)

        return call

    with monkeypatch.context() as m:
        m.setattr(os, "replace", op(real_replace))
        m.setattr(os, "unlink", op(real_unlink))
        try:
            stage.commit(RUN_FILES)
        except _Killed:
            pass
    return done[0]


def _run_id(folder: Path) -> str:
    return results.load(folder)[results.RUN_ID]


def test_a_kill_at_every_commit_point_never_pairs_two_runs(tmp_path, monkeypatch, tiny):
    _commit(tmp_path / "count", tiny, True, None, monkeypatch)
    points = _commit(tmp_path / "count", tiny, False, None, monkeypatch)  # the operations of the commit below
    assert points == 8  # the journal, a removal, five renames, the journal's removal
    mixed = 0
    for k in range(points + 1):
        out = tmp_path / f"k{k}"
        _commit(out, tiny, True, None, monkeypatch)  # run A, whole, with a figure
        a = _run_id(out)
        _commit(out, tiny, False, k, monkeypatch)  # run B, killed before operation k
        rid = _run_id(out)  # results.json is always whole: A's or B's
        assert rid != a or k < points
        try:  # every reader that combines files pairs one run's, or refuses in one line
            saved = results.load_params(out)
            assert saved.run_id == rid
            agent = agents.Agent.from_run(out, "sft")
            assert agent.n_states == saved.n_states
        except ValueError as exc:
            assert "two different runs" in str(exc) and "\n" not in str(exc)
            with pytest.raises(ValueError, match="two different runs"):
                agents.Agent.from_run(out, "sft")
            mixed += 1
        with monkeypatch.context() as m:
            m.setattr(safety, "_alive", lambda pid: False)  # the killed writer is gone
            safety.clean_orphans(out)  # what the next writer (reproduce, plot) does first
        final = _run_id(out)
        assert results.load_params(out).run_id == final
        assert (final == a) == (k == 0)  # once the journal is written, the commit is finished forward
        assert not (out / "curves.png").exists() or k == 0
        assert not [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != safety.RUN_LIST]
    assert mixed >= 1  # the interesting point was reached: params.pt renamed in, results.json not yet


def test_every_file_of_a_run_carries_its_id(tmp_path, monkeypatch, tiny):
    from frozenlake_ift import plots

    monkeypatch.setattr(plots, "FIGURES", {"explored": plots.plot_explored})  # one figure stands for all (time)

    res = results.save(tiny, tmp_path)
    rid = res[results.RUN_ID]
    assert len(rid) == 16 and results.load(tmp_path)[results.RUN_ID] == rid
    assert results.load_params(tmp_path).run_id == rid
    for name in ("summary.csv", "steps.csv"):
        lines = (tmp_path / name).read_text().splitlines()
        assert lines[0].endswith(",run_id") and all(line.endswith("," + rid) for line in lines[1:])
    paths = plots.save_figures(res, tmp_path)
    assert all(rid.encode() in p.read_bytes() for p in paths)


def test_play_refuses_two_runs_in_one_line(tmp_path, capsys, tiny):
    results.save(tiny, tmp_path / "a")
    results.save(tiny, tmp_path / "b")
    os.replace(tmp_path / "b" / results.PARAMS_FILE, tmp_path / "a" / results.PARAMS_FILE)  # a mixed folder
    assert cli.main(["play", str(tmp_path / "a"), "--method", "sft", "--out", str(tmp_path / "x.gif")]) == 2
    _one_error_line(capsys.readouterr().err, "two different runs")
    assert not (tmp_path / "x.gif").exists()


# ------------------------------------------------------------ classes 8, 9: params.pt that is not ours
class _Foreign:
    """An object torch.load(weights_only=True) will not unpickle."""


def _payload(tiny) -> dict:
    import io

    return torch.load(io.BytesIO(results.params_bytes(tiny, "abc")), weights_only=True)


@pytest.mark.parametrize(
    "forge, needle",
    [
        (lambda d: {"format": 1}, "missing keys"),
        (lambda d: {**d, "activation": "swish"}, "'activation' must be one of"),
        (lambda d: {**d, "seeds": [1.5]}, "'seeds' must be a non-empty list of integers"),
        (lambda d: {**d, "base": {"W1": torch.zeros(3)}}, "'base' must hold exactly"),
        (lambda d: {**d, "star": {**d["star"], "W2": torch.zeros(2, 5, 4)}}, "'star.W2' has shape"),
        (lambda d: {**d, "run_id": 7}, "'run_id' must be a string"),
        (lambda d: [d], "top level must be a non-empty mapping"),
    ],
)
def test_forged_params_refused_naming_the_file(tmp_path, tiny, forge, needle):
    torch.save(forge(_payload(tiny)), tmp_path / results.PARAMS_FILE)
    with pytest.raises(ValueError, match=needle) as info:
        results.load_params(tmp_path)
    assert str(tmp_path / results.PARAMS_FILE) in str(info.value)


def test_a_foreign_params_file_is_one_line_without_torch_advice(tmp_path, capsys, tiny):
    results.save(tiny, tmp_path)
    torch.save({"format": 1, "obj": _Foreign()}, tmp_path / results.PARAMS_FILE)  # a pickle weights_only refuses
    assert cli.main(["play", str(tmp_path), "--method", "sft", "--out", str(tmp_path / "x.gif")]) == 2
    err = capsys.readouterr().err
    _one_error_line(err, "is not a frozenlake-ift params.pt")
    assert "weights_only" not in err
