"""Benchmark: the batched ensemble (E seeds in one tensor op) against a per-seed loop, same work.

    python benchmarks/bench_study.py [--seeds 32] [--steps 200] [--device auto]

Prints seconds, the speed-up ratio of the batched ensemble over the loop (target >= 10x at 32
seeds), fine-tuning steps per second, and the time of the default `reproduce` study (target
< 60 s on 2 CPU cores). Both sides run in this process, one after the other, on the same device.
"""

from __future__ import annotations

import argparse
import time

import torch

from frozenlake_ift.study import StudyConfig, run_study


def timed(config: StudyConfig) -> float:
    t0 = time.perf_counter()
    run_study(config)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=32)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest for these tiny nets)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    common = dict(steps=args.steps, device=args.device)
    run_study(StudyConfig(seeds=2, steps=5, device=args.device))  # warm-up: imports, allocator, kernels

    batched = timed(StudyConfig(seeds=args.seeds, **common))
    loop = sum(timed(StudyConfig(seeds=1, seed=k, **common)) for k in range(args.seeds))
    n_methods = len(StudyConfig().methods)
    print(
        f"device {torch.device('cuda' if args.device != 'cpu' and torch.cuda.is_available() else 'cpu')}, "
        f"threads {args.threads}, {args.seeds} seeds x {n_methods} methods x {args.steps} steps (+ theta* fit, evals)"
    )
    print(f"batched ensemble : {batched:8.2f} s  ({args.seeds * n_methods * args.steps / batched:10.0f} seed-steps/s)")
    print(f"per-seed loop    : {loop:8.2f} s  ({args.seeds * n_methods * args.steps / loop:10.0f} seed-steps/s)")
    print(f"speed-up (loop / batched): {loop / batched:.1f}x   (target >= 10x)")
    default = timed(StudyConfig(device=args.device))
    print(
        f"default reproduce study ({StudyConfig().seeds} seeds, {StudyConfig().steps} steps): {default:.1f} s   "
        f"(target < 60 s)"
    )


if __name__ == "__main__":
    main()
