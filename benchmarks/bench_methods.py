"""Cost of the on-policy methods against the offline ones, measured in one run.

    python benchmarks/bench_methods.py                 # PPO (N = 64) and GRPO (G = 8), 20 members, 300 steps
    python benchmarks/bench_methods.py --steps 100     # a shorter run

Each line times one method trained alone on the default map with ``run_study`` (1 torch thread, CPU)
and prints the ratio against SFT trained in the same run (the offline baseline: a fixed batch). The
targets of the on-policy methods: PPO under 30 s and GRPO likewise for 20 members x 300 steps.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from frozenlake_ift.study import StudyConfig, run_study


def timed(cfg: StudyConfig) -> tuple[float, float]:
    t0 = time.perf_counter()
    r = run_study(cfg)
    return time.perf_counter() - t0, float(r.curves[cfg.methods[0]]["success"][-1].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--episodes", type=int, default=64, help="PPO rollouts per member per sample")
    ap.add_argument("--group", type=int, default=8, help="GRPO group size")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    base = dict(seeds=args.seeds, steps=args.steps, device="cpu", ppo_episodes=args.episodes, grpo_group=args.group)
    timed(StudyConfig(seeds=2, steps=5, device="cpu", methods=("sft", "ppo")))  # warm-up: imports, allocator
    rows = {}
    for method in ("sft", "dpo", "truly", "ppo", "grpo", "dpo_online"):
        seconds, success = timed(StudyConfig(**base, methods=(method,)))
        rows[method] = {"seconds": seconds, "final_success": success}
    ref = rows["sft"]["seconds"]
    if args.json:
        print(json.dumps({"config": base, "rows": rows}, indent=1))
        return
    print(
        f"{args.seeds} members x {args.steps} steps on the default map, CPU, 1 thread "
        f"(PPO N = {args.episodes} episodes per member, GRPO G = {args.group})"
    )
    for method, row in rows.items():
        print(
            f"  {method:<11} {row['seconds']:7.2f} s   {row['seconds'] / ref:6.1f}x SFT   "
            f"final success {row['final_success']:.3f}"
        )
    for method, target in (("ppo", 30.0), ("grpo", 30.0)):
        verdict = "meets" if rows[method]["seconds"] < target else "MISSES"
        print(f"  {method}: {rows[method]['seconds']:.1f} s {verdict} the < {target:.0f} s target")


if __name__ == "__main__":
    main()
