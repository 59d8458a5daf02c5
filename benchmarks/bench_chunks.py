"""What splitting batched groups into chunks costs: CPU time of a sweep with and without the split.

    python benchmarks/bench_chunks.py [--maps two-route] [--workers 2] [--repeats 3]

Runs the default sweep's cells whose map is in --maps through ``sweep.run_sweep`` (batched engine,
--workers processes), alternating ``TASKS_PER_WORKER`` = 1 (groups whole where there are enough of them
for the workers) and 2 (the default: at least two tasks per worker, so an interrupt loses a chunk, not a
group), --repeats times each, in fresh temporary folders. Prints each run's CPU seconds (this process
and its workers) and wall seconds, the medians, their ranges and the CPU ratio. CPU time is compared
because wall time on a shared machine varies by 2-3x from one minute to the next.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time

from frozenlake_ift import sweep, sweep_tasks


def _cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--maps", default="two-route", help="comma-separated maps of the default sweep to run")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    spec = sweep.override(sweep.load_spec(sweep.DEFAULT_SPEC), {"map": args.maps.split(",")})
    runs: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    default = sweep_tasks.TASKS_PER_WORKER
    try:
        for r in range(args.repeats):
            for per_worker in (1, 2):
                sweep_tasks.TASKS_PER_WORKER = per_worker
                with tempfile.TemporaryDirectory() as d:
                    c0, t0 = _cpu(), time.perf_counter()
                    out = sweep.run_sweep(spec, d, workers=args.workers)
                    runs[per_worker].append((_cpu() - c0, time.perf_counter() - t0))
                cpu, wall = runs[per_worker][-1]
                print(
                    f"repeat {r + 1}: {per_worker} task(s) per worker, {out['tasks']} tasks: "
                    f"cpu {cpu:.1f} s, wall {wall:.1f} s"
                )
    finally:
        sweep_tasks.TASKS_PER_WORKER = default
    med = {k: statistics.median(c for c, _ in v) for k, v in runs.items()}
    for k, v in runs.items():
        cpus = [c for c, _ in v]
        print(f"{k} per worker: cpu median {med[k]:.1f} s (range {min(cpus):.1f}-{max(cpus):.1f})")
    print(f"cpu ratio, chunked / whole groups: {med[2] / med[1]:.2f}x")


if __name__ == "__main__":
    main()
