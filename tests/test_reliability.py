"""Issue 15, faults: broken pipes and full streams, output places checked before computing, write
failures, a SIGKILL mid-write, orphan cleanup, one run's files per folder, strict JSON, sizes."""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from frozenlake_ift import cli, results, safety

BASE = ["reproduce", "--seeds", "1", "--steps", "1", "--set", "fit_steps=5"]


def _strict(text: str):
    def bad(token):
        raise AssertionError(f"non-strict JSON token {token}")

    return json.loads(text, parse_constant=bad)


def _one_error_line(err: str, needle: str = "") -> None:
    assert err.count("\n") == 1 and ": error: " in err and "Traceback" not in err, err
    assert needle in err, err


@pytest.fixture(scope="module")
def tiny():
    """One tiny real study (two methods, two seeds, two steps), shared by every test that writes a run."""
    import torch

    from frozenlake_ift.study import StudyConfig, run_study

    torch.set_num_threads(1)
    return run_study(StudyConfig(seeds=2, steps=2, eval_every=1, fit_steps=5, methods=("sft", "dpo"), device="cpu"))


@pytest.fixture
def fake_study(monkeypatch, tiny):
    """reproduce runs the shared tiny study instead of training; counts the calls."""
    calls = []

    def run_study(config, progress=False):
        calls.append(config)
        return tiny

    monkeypatch.setattr("frozenlake_ift.study.run_study", run_study)
    return calls


def _cmd():
    return [sys.executable, "-m", "frozenlake_ift.cli"]


# ------------------------------------------------------------ class 3: broken pipes, closed streams
def test_broken_pipe_exits_quietly():
    """`solve --json | head -c 10`: the reader leaves early; no traceback, status 141 (128 + SIGPIPE).
    The JSON of a 120x120 map is larger than a pipe buffer, so the writer does meet the closed pipe."""
    p1 = subprocess.Popen(
        _cmd() + ["solve", "--map", "random:120:0", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    head = subprocess.run(["head", "-c", "10"], stdin=p1.stdout, capture_output=True, timeout=120, check=False)
    p1.stdout.close()
    err = p1.stderr.read().decode()
    assert p1.wait(timeout=120) == cli.EXIT_PIPE and err == "" and len(head.stdout) == 10


def test_dev_full_is_one_line_and_nonzero():
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            _cmd() + ["solve", "--map", "8x8", "--json"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == cli.EXIT_FAULT
    _one_error_line(done.stderr, "cannot write to standard output: No space left on device")


class _Broken:
    def __init__(self, exc):
        self.exc = exc

    def write(self, text):
        raise self.exc

    def flush(self):
        raise self.exc


@pytest.mark.parametrize(
    "exc, status",
    [
        (BrokenPipeError(errno.EPIPE, "Broken pipe"), cli.EXIT_PIPE),
        (OSError(errno.ENOSPC, "No space left on device"), cli.EXIT_FAULT),
    ],
)
def test_stdout_faults_in_process(monkeypatch, capsys, exc, status):
    monkeypatch.setattr(sys, "stdout", _Broken(exc))
    assert cli.main(["methods"]) == status
    err = capsys.readouterr().err
    assert err == "" if status == cli.EXIT_PIPE else "standard output" in err


def test_sweep_dry_run_into_head(tmp_path):
    p1 = subprocess.Popen(
        _cmd()
        + ["sweep", "--set", "lam=0,0.1,0.2,0.3", "--fix", "seeds=1", "--dry-run", "--out", str(tmp_path / "sw")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    head = subprocess.run(["head", "-1"], stdin=p1.stdout, capture_output=True, text=True, timeout=120, check=False)
    p1.stdout.close()
    assert p1.wait(timeout=120) in (0, cli.EXIT_PIPE) and p1.stderr.read() == b""
    assert "would run 4" in head.stdout and not (tmp_path / "sw").exists()


# ------------------------------------------------------------ class 2: output places
def _ro_tmpfs(path: Path):
    """A read-only tmpfs at path (root only), or None."""
    path.mkdir()
    if os.geteuid() != 0:
        return None
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)], capture_output=True, check=False
    )
    return path if done.returncode == 0 else None


@pytest.mark.parametrize("kind", ["file", "under-file", "read-only"])
def test_unwritable_out_refused_before_computing(tmp_path, capsys, monkeypatch, fake_study, kind):
    (tmp_path / "f").write_text("x")
    out = {"file": tmp_path / "f", "under-file": tmp_path / "f" / "run", "read-only": tmp_path / "ro" / "run"}[kind]
    mounted = None
    if kind == "read-only":
        mounted = _ro_tmpfs(tmp_path / "ro")
        if mounted is None:  # no mount here: simulate the file system's refusal

            def refuse(*a, **k):
                raise OSError(errno.EROFS, "Read-only file system")

            monkeypatch.setattr(safety.tempfile, "mkstemp", refuse)
    try:
        assert cli.main(BASE + ["--out", str(out)]) == 2
        _one_error_line(capsys.readouterr().err, repr(str(out)))
        assert fake_study == []  # refused before the study ran
        assert not out.exists() or kind == "file"
    finally:
        if mounted:
            subprocess.run(["umount", str(mounted)], check=True)


def test_full_disk_during_write_keeps_previous_run(tmp_path, capsys, monkeypatch, fake_study):
    out = tmp_path / "run"
    assert cli.main(BASE + ["--out", str(out), "--no-figures"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(results.os, "fsync", full)
    assert cli.main(BASE + ["--out", str(out), "--no-figures"]) == 1
    _one_error_line(capsys.readouterr().err, "No space left on device")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temp file, no staging folder


def test_small_tmpfs_full_disk(tmp_path, capsys, fake_study):
    """A real full file system (a 48 KiB tmpfs) where mount works: one line, no temporary files left."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mnt)], capture_output=True, check=False
        ).returncode
    ):
        pytest.skip("cannot mount a tmpfs here (the simulated full disk test covers this)")
    try:
        status = cli.main(BASE + ["--out", str(mnt / "run")])
        err = capsys.readouterr().err
        assert status == 1
        _one_error_line(err, "No space left on device")
        left = sorted(p.name for p in (mnt / "run").iterdir()) if (mnt / "run").exists() else []
        assert not [n for n in left if n.startswith(".") and n != safety.RUN_LIST], left
        if "results were kept" in err:  # the figures did not fit: the run's results are whole
            _strict((mnt / "run" / "results.json").read_text())
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_one_run_per_folder(tmp_path, capsys, fake_study):
    out = tmp_path / "run"
    assert cli.main(BASE + ["--out", str(out)]) == 0
    assert (out / "curves.png").is_file()
    assert cli.main(BASE + ["--out", str(out), "--no-figures"]) == 0  # the second run writes no figures
    names = {p.name for p in out.iterdir()}
    assert not any(n.endswith((".png", ".svg")) for n in names), names  # the first run's figures are gone
    assert {"results.json", "summary.csv", "params.pt"} <= names
    assert json.loads((out / safety.RUN_LIST).read_text()) == sorted(n for n in names if not n.startswith("."))


_CHILD = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from frozenlake_ift import results, safety
    out, mode = Path(sys.argv[1]), sys.argv[2]
    def stall(*a, **k):
        print("ready", flush=True)
        time.sleep(60)
    if mode == "write":  # killed between writing the temporary file and the rename
        results.os.fsync = stall
        results.atomic_write(out / "results.json", "new")
    else:  # killed in a staged run: before the commit ("stage") or after its journal ("commit")
        with safety.staged_run(out) as stage:
            (stage.path / "results.json").write_text("new")
            (stage.path / "summary.csv").write_text("new")
            if mode == "stage":
                stall()
            safety._apply = lambda *a: stall()
            stage.commit(("results.json", "summary.csv", "curves.png"))
""")


@pytest.mark.parametrize("mode", ["write", "stage", "commit"])
def test_sigkill_mid_write(tmp_path, mode):
    out = tmp_path / "run"
    out.mkdir()
    for name in ("results.json", "summary.csv", "curves.png"):
        (out / name).write_text("old")
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(out), mode], stdout=subprocess.PIPE)
    assert child.stdout.readline().strip() == b"ready"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    hidden = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert hidden  # the killed run left its temporary file, staging folder or journal
    assert (out / "results.json").read_text() == "old"  # whole: the old file
    safety.clean_orphans(out)  # what the next run does first
    names = sorted(p.name for p in out.iterdir())
    if mode == "commit":  # the journal was written: the commit is finished, the old figure removed
        assert names == [safety.RUN_LIST, "results.json", "summary.csv"]
        assert (out / "results.json").read_text() == "new" == (out / "summary.csv").read_text()
    else:
        assert names == ["curves.png", "results.json", "summary.csv"]
        assert all((out / n).read_text() == "old" for n in names)


def test_orphans_of_live_processes_are_kept(tmp_path):
    mine = tmp_path / f".results.json.{os.getpid()}.abc.tmp"
    dead_pid = 2**22 + 12345  # above the default pid_max: no such process
    dead = tmp_path / f".results.json.{dead_pid}.abc.tmp"
    stage = tmp_path / f".staging-{dead_pid}-xyz"
    for p in (mine, dead):
        p.write_text("partial")
    stage.mkdir()
    (stage / "results.json").write_text("x")
    (tmp_path / "results.json").write_text("kept")
    removed = safety.clean_orphans(tmp_path)
    assert sorted(removed) == sorted([dead.name, stage.name])
    assert mine.exists() and (tmp_path / "results.json").read_text() == "kept"


# ------------------------------------------------------------ class 5: strict JSON
def test_strict_json_replaces_non_finite():
    text, where = safety.strict_json({"a": [1.0, float("nan")], "b": {"c": float("inf")}, "d": 2})
    assert _strict(text) == {"a": [1.0, None], "b": {"c": None}, "d": 2} and where == ["a", "b.c"]


def test_nan_metric_written_as_null_with_note(tmp_path, tiny):
    res = results.to_dict(tiny)
    res["curves"]["sft"]["param_mse"][-1][0] = float("nan")  # as a diverged run would leave it
    results.save(res, tmp_path)
    back = _strict((tmp_path / "results.json").read_text())
    assert back["curves"]["sft"]["param_mse"][-1][0] is None
    assert any("curves.sft.param_mse" in n for n in back["notes"])
    assert results.load(tmp_path)["notes"] == back["notes"]  # and it reads back


def test_nan_in_printed_json_is_null(monkeypatch, capsys, tiny, tmp_path, fake_study):
    curves = {m: dict(mc) for m, mc in tiny.curves.items()}
    curves["dpo"]["param_mse"] = np.full_like(np.asarray(curves["dpo"]["param_mse"], dtype=float), np.nan)
    monkeypatch.setattr(tiny, "curves", curves)  # every value of one metric diverged
    assert cli.main(BASE + ["--out", str(tmp_path / "r"), "--no-figures", "--json"]) == 0
    printed = _strict(capsys.readouterr().out)
    _strict((tmp_path / "r" / "results.json").read_text())
    assert printed["notes"] and "curves.dpo.param_mse" in printed["notes"][0]
    assert printed["summary"]["dpo"]["param_mse"]["final_mean"] is None


# ------------------------------------------------------------ class 1: sizes
@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--map", "random:100000:0"], "10000000000 states"),
        (["--set", "horizon=1000000000"], "horizon 1000000000"),
        (["--seeds", "100000", "--map", "8x8"], "100000 seeds"),
    ],
)
def test_studies_that_cannot_fit_are_refused(capsys, fake_study, tmp_path, extra, needle):
    t0 = time.perf_counter()
    assert cli.main(BASE + extra + ["--out", str(tmp_path / "r")]) == 2
    _one_error_line(capsys.readouterr().err, needle)
    assert fake_study == [] and not (tmp_path / "r").exists() and time.perf_counter() - t0 < 30


def test_size_estimate_scales_and_force_overrides(capsys, fake_study, tmp_path):
    small, big = safety.study_bytes(640, 20, 32), safety.study_bytes(6400, 20, 32)
    assert big / small > 90  # dense: S^2 per member
    assert cli.main(BASE + ["--map", "8x8", "--max-memory", "1e-6", "--out", str(tmp_path / "r")]) == 2
    assert "--force" in capsys.readouterr().err
    assert (
        cli.main(
            BASE + ["--map", "8x8", "--max-memory", "1e-6", "--force", "--no-figures", "--out", str(tmp_path / "r")]
        )
        == 0
        and len(fake_study) == 1
    )
