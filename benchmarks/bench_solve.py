"""Benchmark: our value iteration vs pymdptoolbox's dense ValueIteration, then large maps alone.

    python benchmarks/bench_solve.py            # 8x8, random 32x32 / 64x64 vs mdptoolbox; 256x256, 1024x1024
    python benchmarks/bench_solve.py --quick    # the comparison sizes only
    python benchmarks/bench_solve.py --no-slippery

Same MDP, gamma 0.99, same stopping threshold: we stop when max |T V - V| <= tol; mdptoolbox stops
when span(V_k+1 - V_k) < epsilon * (1 - gamma) / gamma, so epsilon = tol * gamma / (1 - gamma)
(V_k increases from 0 and terminal states never change, so the span is the max here). mdptoolbox
may lower max_iter to its own bound; initial_value stays the scalar 0 (an array raises).
Our time includes the level ordering (the MDP's cache is cleared before each run). Big maps run
in a child process each, so that the peak resident memory (ru_maxrss) is theirs alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings

import numpy as np

from frozenlake_ift import solve
from frozenlake_ift.lakes import make_lake

GAMMA, TOL = 0.99, 1e-10
COMPARE = ("8x8", "random:32:0", "random:64:0")
ALONE = ("random:256:0", "random:1024:0")


def _ours(mdp, repeats: int):
    best, sol = np.inf, None
    for _ in range(repeats):
        mdp._cache.clear()
        t = time.perf_counter()
        sol = solve.value_iteration(mdp, GAMMA, tol=TOL)
        best = min(best, time.perf_counter() - t)
    return best, sol


def _mdptoolbox(mdp, repeats: int):
    import mdptoolbox.mdp

    P = mdp.dense_P().transpose(1, 0, 2).copy()  # (A, S, S)
    best_setup = best_run = np.inf
    for _ in range(repeats):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            vi = mdptoolbox.mdp.ValueIteration(P, mdp.R, GAMMA, epsilon=TOL * GAMMA / (1 - GAMMA), max_iter=1_000_000)
            t_setup = time.perf_counter() - t
            t = time.perf_counter()
            vi.run()
            t_run = time.perf_counter() - t
        best_setup, best_run = min(best_setup, t_setup), min(best_run, t_run)
    return best_setup, best_run, vi


def compare(spec: str, slippery: bool) -> None:
    mdp = make_lake(spec, slippery)
    small = mdp.n_states <= 1024
    t_ours, sol = _ours(mdp, 5 if small else 3)
    t_setup, t_run, vi = _mdptoolbox(mdp, 3 if small else 1)
    theirs = np.asarray(vi.policy)
    top2 = np.sort(sol.Q, 1)[:, -2:]
    decided = top2[:, 1] - top2[:, 0] > 1e-7  # gap far above both solvers' value error (~1e-8)
    agree_all = int((theirs == sol.policy).sum())
    agree_dec = int((theirs == sol.policy)[decided].sum())
    dV = float(np.abs(np.asarray(vi.V) - sol.V).max())
    print(f"{mdp.name:<22} {mdp.n_states:>6} {t_ours:>10.5f} {sol.iterations:>6} {t_run:>10.4f} {t_setup:>8.2f} "
          f"{vi.iter:>6} {t_run / t_ours:>9.3g}x {(t_run + t_setup) / t_ours:>9.3g}x  {dV:8.1e}  "
          f"{agree_all}/{mdp.n_states} all, {agree_dec}/{int(decided.sum())} untied", flush=True)


def _peak_rss_gib() -> float:
    """Peak resident memory of this process. /proc's VmHWM is per address space; ru_maxrss is
    not: Linux carries it over fork + exec, so a child would report its parent's peak."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 2**20
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB


def child(spec: str, slippery: bool) -> None:
    t = time.perf_counter()
    mdp = make_lake(spec, slippery)
    t_build = time.perf_counter() - t
    rss_build = _peak_rss_gib()
    t = time.perf_counter()
    sol = solve.value_iteration(mdp, GAMMA, tol=TOL)
    t_solve = time.perf_counter() - t
    print(json.dumps({"name": mdp.name, "S": mdp.n_states, "build": t_build, "solve": t_solve,
                      "sweeps": sol.iterations, "residual": sol.residual, "rss_build": rss_build,
                      "rss_peak": _peak_rss_gib()}))


def alone(spec: str, slippery: bool) -> None:
    out = subprocess.run([sys.executable, __file__, "--child", spec] + (["--slippery"] if slippery else []),
                         capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{r['name']:<26} {r['S']:>8} {r['build']:>9.1f} {r['solve']:>9.2f} {r['sweeps']:>7} {r['residual']:>9.1e} "
          f"{r['rss_build']:>10.2f} {r['rss_peak']:>9.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only the sizes compared with mdptoolbox")
    ap.add_argument("--no-slippery", action="store_true", help="deterministic maps only")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--slippery", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.slippery)
    variants = (False,) if args.no_slippery else (False, True)
    print(f"value iteration, gamma {GAMMA}, tol {TOL:g} (mdptoolbox epsilon {TOL * GAMMA / (1 - GAMMA):.3g}: "
          f"same threshold); numpy {np.__version__}; best of 5 (ours) / 3 (mdptoolbox, 1 at 64x64)")
    print(f"{'map':<22} {'S':>6} {'ours [s]':>10} {'sweeps':>6} {'mdp [s]':>10} {'+setup':>8} {'iters':>6} "
          f"{'speed-up':>10} {'(w/ setup)':>10} {'max|dV|':>8}  policy agrees")
    for slippery in variants:
        for spec in COMPARE:
            compare(spec, slippery)
    if args.quick:
        return
    print(f"\nours alone (child process per map; peak RSS = whole process incl. map building)")
    print(f"{'map':<26} {'S':>8} {'build[s]':>9} {'solve[s]':>9} {'sweeps':>7} {'residual':>9} "
          f"{'RSS@build':>10} {'peak RSS':>9}  (GiB)")
    for slippery in variants:
        for spec in ALONE:
            alone(spec, slippery)


if __name__ == "__main__":
    main()
