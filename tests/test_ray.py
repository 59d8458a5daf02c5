"""The Ray executor: a local Ray instance with 2 CPUs gives the local executor's cells, and a rerun after a
killed (SIGKILL) driver finishes the rest. Skipped when ray is not installed (the ``cluster`` extra)."""

import os
import signal
import subprocess
import sys
import time

import pytest

ray = pytest.importorskip("ray")

from frozenlake_ift import sweep  # noqa: E402
from helpers import saved_cells  # noqa: E402

TINY = dict(seeds=2, steps=6, eval_every=3, fit_steps=100, device="cpu")
SPEC = sweep.make_spec({"name": "ray", "grid": {"lam": [0.0, 0.5], "map": ["two-route", "4x4"]}, "fixed": TINY})
ARGS = ["--set", "lam=0,0.5", "--set", "map=two-route,4x4"] + [
    a for k, v in TINY.items() for a in ("--fix", f"{k}={v}")
]


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    d = tmp_path_factory.mktemp("local")
    sweep.run_sweep(SPEC, d)
    return d


@pytest.fixture(scope="module")
def ray_instance():
    from frozenlake_ift import executors

    executors.RayExecutor(None, num_cpus=2)  # the local instance a sweep without --address starts
    yield
    ray.shutdown()


def test_local_ray_listens_on_loopback_only(ray_instance):
    """Issue 25: without --address, every Ray service started here listens on the loopback interface."""
    psutil = pytest.importorskip("psutil")
    me = psutil.Process()
    bound = set()
    for proc in [me, *me.children(recursive=True)]:
        try:
            bound |= {c.laddr.ip for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
        except psutil.Error:  # a worker that ended meanwhile
            pass
    assert bound and bound <= {"127.0.0.1", "::1", "::ffff:127.0.0.1"}, bound
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}


def test_ray_executor_gives_the_local_cells(local, ray_instance, tmp_path):
    summary = sweep.run_sweep(SPEC, tmp_path, executor="ray")
    assert summary["ran"] == 4 and summary["tasks"] == 2 and not summary["failed"]  # two groups (two maps)
    assert saved_cells(tmp_path) == saved_cells(local)
    summary = sweep.run_sweep(SPEC, tmp_path / "pc", executor="ray", engine="per-cell")
    assert summary["tasks"] == 4 and saved_cells(tmp_path / "pc").keys() == saved_cells(local).keys()


def test_rerun_after_a_killed_ray_driver_finishes_the_rest(local, tmp_path):
    out = tmp_path / "killed"
    argv = [
        sys.executable,
        "-m",
        "frozenlake_ift.cli",
        "sweep",
        *ARGS,
        "--out",
        str(out),
        "--no-progress",
        "--executor",
        "ray",
        "--engine",
        "per-cell",
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and not list((out / "cells").glob("*.json")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray instance it started, with no clean-up
    proc.wait(timeout=30)
    saved = {p.name for p in (out / "cells").iterdir()}
    assert all(name.endswith(".json") and not name.startswith(".") for name in saved) and len(saved) >= 1
    summary = sweep.run_sweep(SPEC, out)  # resume (here with the local executor: the store is the same)
    assert summary["skipped"] == len(saved) and summary["ran"] == 4 - len(saved)
    assert saved_cells(out) == saved_cells(local)


def test_search_trials_run_on_ray(ray_instance):
    pytest.importorskip("optuna")
    from frozenlake_ift import search

    space = {"lr": {"low": 0.001, "high": 0.03, "log": True}, "negatives": ["fixed", "policy"]}
    out = search.run_search("dpo-beats-sft:param_mse", 2, space, TINY, storage="memory", executor="ray", workers=2)
    assert out.ran == 2 and all(t["state"] == "COMPLETE" and t["holds"] is not None for t in out.trials)
