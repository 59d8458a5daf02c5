"""Where a sweep's units of work run: in this process, in local worker processes, or on a Ray cluster.

A unit of work is a picklable task (``sweep.Task``: a group of cells under the batched engine, one
cell under the per-cell engine) and a module-level function ``fn(task) -> result`` that writes no
file: the driver alone writes the cell store, atomically, as results arrive, so resume and
``report`` work the same whatever the executor, and a lost worker costs only its tasks.

    LocalExecutor(workers)        workers == 1: in this process; > 1: worker processes, one torch thread each
                                  (forked on Linux for CPU work: they start with the driver's imports;
                                  spawned elsewhere and for CUDA, which a forked child cannot use)
    RayExecutor(address, gpus)    one Ray task per unit (retried if its worker dies); ``address`` joins a
                                  running cluster ("auto", "HOST:PORT" or "ray://host:10001"), None starts a
                                  local one whose services listen on the loopback interface only
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterable, Iterator

import torch

EXECUTOR_NAMES = ("local", "ray")
RAY_RETRIES = 3  # a task whose worker died is run again up to this many times
RAY_CONNECT_TIMEOUT = 5.0  # seconds to wait for a cluster's address to answer before refusing it
RAY_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # 0: Ray takes the loopback address as the node's


def _init_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and terminates the pool
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the CLI's handler a forked worker inherits: the pool's
    # terminate() then ends it quietly instead of printing a KeyboardInterrupt traceback
    torch.set_num_threads(1)


START_METHODS = ("fork", "spawn")


def default_start_method(gpus: bool = False) -> str:
    """How local workers start: "fork" on Linux for CPU work (no second import of torch and the package,
    about 2.5 s a worker), "spawn" on other platforms and when the tasks use CUDA."""
    return "fork" if sys.platform.startswith("linux") and not gpus else "spawn"


class LocalExecutor:
    """Run tasks here (workers == 1) or in ``workers`` processes started by ``start_method``; results in
    completion order."""

    def __init__(self, workers: int = 1, start_method: str | None = None) -> None:
        if int(workers) < 1:
            raise ValueError(f"--workers must be >= 1, got {workers}")
        start_method = default_start_method() if start_method is None else start_method
        if start_method not in START_METHODS:
            raise ValueError(f"start_method must be one of {list(START_METHODS)}, got {start_method!r}")
        self.workers, self.start_method = int(workers), start_method

    def map(self, fn: Callable, tasks: Iterable) -> Iterator:
        tasks = list(tasks)
        if self.workers == 1 or len(tasks) <= 1:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # as the workers: the results do not depend on the executor
            try:
                for t in tasks:
                    yield fn(t)
            finally:
                torch.set_num_threads(threads)
            return
        ctx = mp.get_context(self.start_method)
        with ctx.Pool(min(self.workers, len(tasks)), initializer=_init_worker) as pool:
            yield from pool.imap_unordered(fn, tasks)  # leaving the with-block (also on Ctrl-C) ends the workers


def _ray_call(fn: Callable, task):
    torch.set_num_threads(1)
    return fn(task)


def check_ray_address(address: str) -> None:
    """Refuse (ValueError) a cluster address nothing answers at, within ``RAY_CONNECT_TIMEOUT`` seconds (Ray
    itself would wait on it for minutes). "auto" (Ray finds a cluster started on this machine) is not probed."""
    if address == "auto":
        return
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--address must be auto, HOST:PORT or ray://HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise ValueError(
            f"--address {address!r}: no Ray cluster answers at {hostport} ({exc.strerror or exc}); start one "
            "(ray start --head) and give its address, or leave --address out to start a local instance"
        ) from None


def start_local_ray(ray, num_cpus: int | None) -> None:
    """Start a Ray instance on this machine whose services listen on the loopback interface only.

    Ray binds its services to the node's address, which on Linux is the address other machines reach it
    at; with ``RAY_LOOPBACK_ENV`` = 0 (read when ray is imported, and as ``ray_constants.ENABLE_RAY_CLUSTER``)
    it takes the loopback address instead. Checked after starting (``ray.nodes()``): an instance that
    is not on loopback is shut down and refused, never used.
    """
    from ray._private import ray_constants

    saved_env, saved_flag = os.environ.get(RAY_LOOPBACK_ENV), getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    os.environ[RAY_LOOPBACK_ENV] = "0"  # also for the processes Ray starts
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(RAY_LOOPBACK_ENV, None)
        else:
            os.environ[RAY_LOOPBACK_ENV] = saved_env
    hosts = {n.get("NodeManagerAddress") for n in ray.nodes()}
    if not hosts <= {"127.0.0.1", "::1", "localhost"}:
        ray.shutdown()
        raise ValueError(
            f"the local Ray instance did not start on the loopback interface (it took {sorted(map(str, hosts))}); "
            "start a cluster yourself (ray start --head --node-ip-address 127.0.0.1) and pass --address"
        )


class RayExecutor:
    """One Ray task per unit of work. ``address``: None starts a local Ray instance (``num_cpus`` CPUs, default
    all) listening on loopback only (``start_local_ray``); "auto", "HOST:PORT" or "ray://HOST:10001" joins an
    existing cluster (refused at once when nothing answers there: ``check_ray_address``). Tasks ask for one
    GPU when ``gpus`` is true (the study's device is CUDA), else one CPU. Needs the ``cluster`` extra
    (``pip install ray``)."""

    def __init__(self, address: str | None = None, gpus: bool = False, num_cpus: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise ValueError(
                "--executor ray needs Ray: pip install 'frozenlake_ift[cluster]' (or pip install ray)"
            ) from None
        self.ray, self.gpus = ray, bool(gpus)
        if not ray.is_initialized():
            if not address:
                start_local_ray(ray, num_cpus)
            else:
                check_ray_address(address)
                try:
                    ray.init(address=address, include_dashboard=False, log_to_driver=False)
                except (ConnectionError, RuntimeError, ValueError) as exc:
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    raise ValueError(f"--address {address!r}: cannot join a Ray cluster there: {first[:300]}") from None
        self.remote = ray.remote(_ray_call).options(
            num_cpus=1, num_gpus=1 if self.gpus else 0, max_retries=RAY_RETRIES, retry_exceptions=False
        )

    def map(self, fn: Callable, tasks: Iterable) -> Iterator:
        ray = self.ray
        pending = [self.remote.remote(fn, t) for t in tasks]
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                yield ray.get(ready[0])
        finally:
            for ref in pending:  # interrupted: cancel what has not run
                ray.cancel(ref, force=True)


def make_executor(name: str = "local", workers: int = 1, address: str | None = None, gpus: bool = False):
    """The executor called ``name`` (``EXECUTOR_NAMES``)."""
    if name == "local":
        if address:
            raise ValueError(f"--address {address!r} needs --executor ray")
        return LocalExecutor(workers, default_start_method(gpus))
    if name == "ray":
        return RayExecutor(address, gpus=gpus, num_cpus=None if address else max(1, int(workers)))
    raise ValueError(f"executor must be one of {list(EXECUTOR_NAMES)}, got {name!r}")
