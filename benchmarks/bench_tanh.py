"""The networks' tanh (``policy.tanh``: NumPy's vectorised kernel on CPU float32) against ``torch.tanh``, in one run.

    python benchmarks/bench_tanh.py                      # E = 20 and 540, SFT / IFT / DPO / ORPO, medians of 7
    python benchmarks/bench_tanh.py --sizes 540 --repeats 3

For each ensemble size E and method, ``study.train_method`` trains the default study's method (300 steps,
metrics at the first and last step only, one CPU thread) with ``policy.ACTIVATIONS["tanh"]`` set to
``torch.tanh`` and to ``policy.tanh`` in turn, alternating in one process (the same data, theta_0 and
reference), and prints each side's median time with its range and the ratio policy.tanh / torch.tanh.
torch's CPU tanh rounds correctly but runs element by element; NumPy's is within 1 ulp and vectorised,
while its autograd Function's backward is a Python call (about 30 us), which small ensembles feel.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time

import torch

from frozenlake_ift import policy
from frozenlake_ift.study import StudyConfig, base_params, build_data, reference, train_method

METHODS = ("sft", "ift", "dpo", "orpo")


def compare(E: int, method: str, repeats: int) -> dict:
    """Alternating timings of one method's training with each tanh. Returns the seconds of each side."""
    cfg = StudyConfig(seeds=E, device="cpu", methods=(method,))
    cfg = dataclasses.replace(cfg, eval_every=cfg.steps)
    data = build_data(cfg, "cpu")
    base = base_params(cfg, data, "cpu")
    ref = reference(cfg, data, base, base)  # theta_0 stands for theta*: it does not enter the training
    sides = {"torch.tanh": torch.tanh, "policy.tanh": policy.tanh}
    out: dict[str, list[float]] = {name: [] for name in sides}
    try:
        train_method(method, base, data, cfg, ref)  # first call: allocator, caches
        for r in range(repeats):
            for name in sides if r % 2 == 0 else reversed(list(sides)):
                policy.ACTIVATIONS["tanh"] = sides[name]
                t0 = time.perf_counter()
                train_method(method, base, data, cfg, ref)
                out[name].append(time.perf_counter() - t0)
    finally:
        policy.ACTIVATIONS["tanh"] = policy.tanh
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="20,540", help="ensemble sizes E, comma-separated (default: 20,540)")
    ap.add_argument("--methods", default=",".join(METHODS), help="methods, comma-separated (default: the paper's four)")
    ap.add_argument("--repeats", type=int, default=7, help="timed runs per side (default: 7)")
    ap.add_argument("--json", metavar="FILE", help="also write the timings as JSON")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error(f"--repeats must be >= 1, got {args.repeats}")
    torch.set_num_threads(1)
    rows = []
    for E in (int(x) for x in args.sizes.split(",")):
        for method in args.methods.split(","):
            t = compare(E, method, args.repeats)
            a, b = statistics.median(t["torch.tanh"]), statistics.median(t["policy.tanh"])
            print(
                f"E = {E:4d} {method:5s} torch.tanh {a:.3f} s ({min(t['torch.tanh']):.3f}-{max(t['torch.tanh']):.3f})"
                f"  policy.tanh {b:.3f} s ({min(t['policy.tanh']):.3f}-{max(t['policy.tanh']):.3f})"
                f"  policy.tanh / torch.tanh {b / a:.2f}",
                flush=True,
            )
            rows.append({"E": E, "method": method, **{f"{k}_s": v for k, v in t.items()}, "ratio": b / a})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
