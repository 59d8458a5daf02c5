"""Both sweep engines on the same cells of the default sweep, in one run: the ratio and the projection.

    python benchmarks/bench_sweep.py [--maps two-route] [--set FIELD=V1,V2] [--fix FIELD=V] [--workers 2]
                                     [--repeats 1] [--full] [--no-sampler] [--device cpu]
    python benchmarks/bench_sweep.py --no-sampler --set slippery=false --set base=random --set dpo_beta=0.1 \
        --fix seeds=8 --fix steps=150          # the 9-cell sweep (lam x lr on the two-route map)

Runs the default sweep's cells whose map is in --maps (default: the two-route map: both slippery values,
every base, lambda, lr and beta, and the sampler grids, which sweep the two-route map only) through
``sweep.run_sweep`` with ``--engine per-cell`` and ``--engine batched``, alternating, --repeats times
each, in fresh temporary folders, with the same --workers. --full runs every cell of the default sweep;
--no-sampler leaves out its sampler grids (those that sweep ``negatives``: sampled negatives, 2000-step
cells). Prints each run's wall time, the ratio (per-cell / batched, from the medians), the projection to
the full sweep (subset time x cells in the default sweep / subset cells: a rough figure, cells differ in
cost), and the estimated arithmetic floor of the batched run: its matmul FLOPs over the measured
batched-matmul throughput of this machine (an estimate for the route-pair cells; sampling is not
counted). With --device cuda (or auto on a GPU machine) the batched engine trains on the GPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch

from frozenlake_ift import lakes, sweep


def _flops(cells) -> float:
    """Matmul FLOPs of the per-cell work (forward + backward ~ 3x forward) of every method step and eval."""
    total = 0.0
    for c in cells:
        cfg = c.config
        mdp = lakes.make_lake(cfg.map if isinstance(cfg.map, str) else list(cfg.map), slippery=cfg.slippery)
        S, A, H = mdp.n_states, mdp.n_actions, cfg.hidden
        per_row = 2 * (S * H + H * A)  # one network pass for one input row
        rows_per_step = 3 * 12 * 2  # fwd + bwd, ~12 steps per trajectory, chosen + rejected (upper estimate)
        evals = cfg.steps // cfg.eval_every + 2
        per_member = cfg.steps * rows_per_step * per_row + evals * (S * per_row + 2 * S**3 / 3)
        total += len(cfg.methods) * cfg.seeds * per_member
    return total


def _throughput(device: str) -> float:
    """Measured FLOP/s of a batched matmul of the study's shapes (E = 512 members, 64 rows, 64 x 32)."""
    a = torch.randn(512, 64, 64, device=device)
    b = torch.randn(512, 64, 32, device=device)
    for _ in range(3):
        torch.bmm(a, b)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0, n = time.perf_counter(), 50
    for _ in range(n):
        torch.bmm(a, b)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return n * 2 * 512 * 64 * 64 * 32 / (time.perf_counter() - t0)


def _run(spec, engine: str, workers: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        out = sweep.run_sweep(spec, tmp, workers=workers, engine=engine)
        wall = time.perf_counter() - t0
    if out["failed"]:
        raise SystemExit(f"{engine}: {len(out['failed'])} cells failed: {out['failed'][0]['error']}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--maps", default="two-route", help="comma-separated maps of the default sweep to run")
    ap.add_argument("--full", action="store_true", help="run the whole default sweep (all maps)")
    ap.add_argument(
        "--no-sampler",
        action="store_true",
        help="leave out the default sweep's sampler grids (those sweeping negatives)",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=V1,V2",
        help="restrict a grid axis further (e.g. slippery=false), as `sweep --set`",
    )
    ap.add_argument(
        "--fix",
        action="append",
        default=[],
        metavar="FIELD=V",
        help="set a field for every cell (e.g. seeds=8), as `sweep --fix`",
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="the study's device (cpu, cuda, auto)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None, metavar="FILE", help="also write the figures to FILE")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    spec = sweep.load_spec(sweep.DEFAULT_SPEC)
    n_total = len(sweep.expand(spec))
    if args.no_sampler:
        spec = {**spec, "grids": [g for g in spec.get("grids", []) if "negatives" not in g]}
    if not args.full:
        maps = [m.strip() for m in args.maps.split(",") if m.strip()]
        spec = sweep.override(spec, grid={"map": maps})
    spec = sweep.override(spec, grid=sweep.parse_assignments(args.set, True))
    spec = sweep.override(spec, fixed={**sweep.parse_assignments(args.fix, False), "device": args.device})
    cells = sweep.expand(spec)
    walls: dict[str, list[float]] = {"per-cell": [], "batched": []}
    for r in range(args.repeats):  # alternate, so drifting load hits both engines alike
        for engine in ("per-cell", "batched") if r % 2 == 0 else ("batched", "per-cell"):
            walls[engine].append(_run(spec, engine, args.workers))
            print(
                f"repeat {r + 1}: {engine:8s} {walls[engine][-1]:8.1f} s  ({len(cells)} cells, {args.workers} workers)",
                flush=True,
            )
    per_cell, batched_ = statistics.median(walls["per-cell"]), statistics.median(walls["batched"])
    device = str(torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu"))
    flops, rate = _flops(cells), _throughput(device)
    floor = flops / rate
    report = {
        "device": device,
        "cells": len(cells),
        "cells_in_default_sweep": n_total,
        "workers": args.workers,
        "per_cell_s": walls["per-cell"],
        "batched_s": walls["batched"],
        "ratio_per_cell_over_batched": round(per_cell / batched_, 2),
        "projected_full_sweep_s": {
            "per-cell": round(per_cell * n_total / len(cells), 1),
            "batched": round(batched_ * n_total / len(cells), 1),
        },
        "arithmetic_floor_s": round(floor, 3),
        "matmul_gflops": round(rate / 1e9, 2),
        "batched_over_floor": round(batched_ / floor, 1),
    }
    print(
        f"ratio per-cell / batched: {report['ratio_per_cell_over_batched']}x   "
        "(targets: >= 10x on the full default sweep, >= 4x on the 9-cell sweep)"
    )
    print(
        f"projected full default sweep ({n_total} cells): per-cell {report['projected_full_sweep_s']['per-cell']} s, "
        f"batched {report['projected_full_sweep_s']['batched']} s"
    )
    print(
        f"arithmetic floor ~{floor:.2f} s ({flops / 1e9:.1f} GFLOP at {rate / 1e9:.1f} GFLOP/s batched matmul): "
        f"batched is {report['batched_over_floor']}x the floor"
    )
    print(json.dumps(report))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
