"""A first ``frozenlake-ift reproduce`` (the default study, with its figures) of this checkout against another.

    python benchmarks/bench_reproduce.py --baseline ../other-checkout [--repeats 3] [--args "--formats png,svg"]

Each run is a fresh process (imports, the study, results and figures written to a new temporary
folder), as a user's first command is; the two checkouts alternate, each with its own folder first on
PYTHONPATH. Prints each side's median wall time with its range and the ratio baseline / this checkout
(target >= 2: twice as fast as the main branch this work started from).
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def run(checkout: Path, extra: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "frozenlake_ift.cli", "reproduce", "--out", str(Path(tmp) / "run"), *extra]
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True, cwd=tmp)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", required=True, help="the other checkout's root (its frozenlake_ift is imported)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--args", default="", help="extra reproduce arguments for both sides, e.g. '--formats png,svg'")
    args = ap.parse_args()
    base = Path(args.baseline).resolve()
    if not (base / "frozenlake_ift").is_dir():
        raise SystemExit(f"--baseline {args.baseline!r} holds no frozenlake_ift package")
    extra = shlex.split(args.args)
    times: dict[str, list[float]] = {"baseline": [], "this": []}
    for r in range(args.repeats):
        order = ("baseline", "this") if r % 2 == 0 else ("this", "baseline")
        for side in order:
            times[side].append(run(base if side == "baseline" else HERE, extra))
            print(f"repeat {r + 1}: {side:<8} {times[side][-1]:6.2f} s", flush=True)
    b, t = statistics.median(times["baseline"]), statistics.median(times["this"])
    ratios = [x / y for x, y in zip(times["baseline"], times["this"], strict=True)]
    print(
        f"baseline {b:.2f} s ({min(times['baseline']):.2f}-{max(times['baseline']):.2f}), this checkout {t:.2f} s "
        f"({min(times['this']):.2f}-{max(times['this']):.2f}): {b / t:.2f}x faster "
        f"(per repeat {min(ratios):.2f}-{max(ratios):.2f}x; target >= 2x)"
    )


if __name__ == "__main__":
    main()
