"""Time a sample of a sweep's cells and project the whole sweep's wall time.

    python benchmarks/bench_sweep.py [--spec SPEC] [--sample-shard 27] [--workers 2] [--keep DIR]

Runs shard 1/N of the spec (a deterministic ~1/N sample of its cells, by sorted cell key) through
the real ``sweep.run_sweep`` path with --workers processes in a temporary folder, then prints the
per-cell seconds (mean, max, per map), the CPU seconds, and the projected wall time of the full
sweep: sample wall time x N. Compare with the 30-minute budget of the default sweep on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

from frozenlake_ift import sweep


def _cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", default=str(sweep.DEFAULT_SPEC))
    ap.add_argument("--sample-shard", type=int, default=27, help="run shard 1/N of the spec")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", default=None, metavar="DIR", help="run the sample in DIR and keep it (e.g. to try `report`)")
    args = ap.parse_args()
    spec = sweep.load_spec(args.spec)
    n_cells = len(sweep.expand(spec))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = args.keep or tmp
        c0, t0 = _cpu_seconds(), time.perf_counter()
        out = sweep.run_sweep(spec, tmp, workers=args.workers, shard=(1, args.sample_shard), progress=True)
        wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
        recs = [json.loads(p.read_text()) for p in Path(tmp, "cells").glob("*.json")]
    per_map: dict = {}
    for r in recs:
        key = f"{sweep._label(r['config']['map'])}{' slippery' if r['config']['slippery'] else ''}"
        per_map.setdefault(key, []).append(r["seconds"])
    secs = [r["seconds"] for r in recs]
    report = {
        "spec": args.spec, "cells_in_spec": n_cells, "sampled_cells": len(recs), "workers": args.workers,
        "failed": len(out["failed"]), "sample_wall_s": round(wall, 2), "sample_cpu_s": round(cpu, 2),
        "cell_seconds_mean": round(statistics.mean(secs), 3), "cell_seconds_max": round(max(secs), 3),
        "cell_seconds_by_map": {k: round(statistics.mean(v), 3) for k, v in sorted(per_map.items())},
        "projected_total_wall_min": round(wall * n_cells / max(1, len(recs) + len(out["failed"])) / 60, 2),
        "projected_total_cpu_min": round(cpu * n_cells / max(1, len(recs) + len(out["failed"])) / 60, 2),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
