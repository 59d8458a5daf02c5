"""Benchmark: the default study on other MDPs against the default two-route study, in one run.

    python benchmarks/bench_envs.py [--envs gym:Taxi-v4 ...] [--repeats 3] [--steps 300]

Runs ``run_study`` with StudyConfig's defaults (20 seeds, 300 steps, the paper's four methods) on the
lake (the two-route map) and on each --env, alternating, ``--repeats`` times, in this process; prints
each time's median with its range and the ratio env / two-route. Target: gym:Taxi-v4 (500 states,
6 actions, 300 starts, of which ``max_starts`` = 16 give trajectories) within 10x the two-route study.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from frozenlake_ift.study import StudyConfig, run_study

TARGET = {"gym:Taxi-v4": 10.0}


def timed(config: StudyConfig) -> float:
    t0 = time.perf_counter()
    run_study(config)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", nargs="+", default=["gym:Taxi-v4"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=StudyConfig().steps)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1, as reproduce's default)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    envs = ["lake", *args.envs]
    for env in envs:  # warm-up: imports, gymnasium, kernels
        run_study(StudyConfig(env=env, seeds=2, steps=5))
    times: dict[str, list[float]] = {env: [] for env in envs}
    for _ in range(args.repeats):
        for env in envs:  # alternating, so that a slow moment of a shared machine hits every env alike
            times[env].append(timed(StudyConfig(env=env, steps=args.steps)))
    base = statistics.median(times["lake"])
    print(
        f"default study ({StudyConfig().seeds} seeds, {args.steps} steps, {','.join(StudyConfig().methods)}), "
        f"{args.repeats} alternating repeats, threads {args.threads}"
    )
    for env, ts in times.items():
        med = statistics.median(ts)
        ratio = "" if env == "lake" else f"   {med / base:5.1f}x the two-route study"
        target = f" (target <= {TARGET[env]:g}x)" if env in TARGET else ""
        label = "lake (two-route)" if env == "lake" else env
        print(f"{label:<22} median {med:7.2f} s  (range {min(ts):.2f}-{max(ts):.2f}){ratio}{target}")


if __name__ == "__main__":
    main()
