"""Benchmark: our value iteration against scipy.sparse value iteration and policy iteration.

    python benchmarks/bench_solve.py               # random 64x64, 256x256, 1024x1024 slippery lakes
    python benchmarks/bench_solve.py --quick       # 64x64 and 256x256 only
    python benchmarks/bench_solve.py --mdptoolbox  # also: small maps against pymdptoolbox's dense ValueIteration
    python benchmarks/bench_solve.py --memory      # also: build + solve of large maps in a child process, peak RSS

Same MDP, gamma 0.99, tol 1e-8, same stopping rule: stop at the first V_k with a sup-norm Bellman residual
max |T V_k - V_k| <= tol and return T V_k, so |V - V*| <= gamma * tol / (1 - gamma) (about 1e-6).
Peers (vectorised, as a numerically literate scipy user writes them; no Python loop over states):
  jacobi: V <- max_a (r + gamma * P @ V), P the CSR matrix of shape (S*A, S): one matrix-vector product per sweep.
  PI:     policy iteration from the all-left policy: V_pi by scipy.sparse.linalg.spsolve of
          (I - gamma P_pi) V = r_pi, greedy improvement (switching only to actions that are
          better by more than 1e-12), until the policy is stable; its V is exact up to that.
Ours: ``solve.value_iteration`` with each kernel (numba when installed, and the numpy fallback; "auto"
uses numba from solve.NUMBA_MIN_STATES states on), including the level ordering (the MDP's cache is
cleared before each run).
Peers' CSR construction ("setup") is timed apart. Times are the best of several runs on a shared
machine: read the ratios, measured in one run, rather than the seconds.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import subprocess
import sys
import time
import warnings

import numpy as np

from frozenlake_ift import solve
from frozenlake_ift.lakes import make_lake

GAMMA, TOL = 0.99, 1e-8
PEER_MAPS = ("random:64:0", "random:256:0", "random:1024:0")
COMPARE = ("8x8", "random:32:0", "random:64:0")  # --mdptoolbox (dense: small maps only)
ALONE = ("random:256:0", "random:1024:0")  # --memory


def _best(fn, repeats: int):
    best, out = np.inf, None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _ours(mdp, kernel: str, repeats: int):
    def run():
        mdp._cache.clear()
        return solve.value_iteration(mdp, GAMMA, tol=TOL)

    old, solve.KERNEL = solve.KERNEL, kernel
    try:
        return _best(run, repeats)
    finally:
        solve.KERNEL = old


def csr_model(mdp):
    """P as a CSR matrix of shape (S*A, S) and r of shape (S*A,)."""
    import scipy.sparse as sp

    S, A, K = mdp.next_states.shape
    # copies: scipy may reorder the index and data arrays it is given in place
    P = sp.csr_matrix(
        (mdp.probs.ravel().copy(), mdp.next_states.ravel().copy(), np.arange(0, S * A * K + 1, K)), shape=(S * A, S)
    )
    P.eliminate_zeros()  # the padding
    return P, mdp.R.ravel().copy()


def jacobi_vi(P, r, gamma: float, tol: float):
    """Textbook value iteration: (V = T V_k with max |T V_k - V_k| <= tol, sweeps)."""
    S = P.shape[1]
    V = np.zeros(S)
    for it in itertools.count(1):
        V_new = (r + gamma * (P @ V)).reshape(S, -1).max(1)
        residual, V = np.abs(V_new - V).max(), V_new
        if residual <= tol:
            return V, it


def policy_iteration(P, r, gamma: float):
    """Howard's policy iteration with sparse direct solves: (V, iterations)."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import spsolve

    S = P.shape[1]
    A = P.shape[0] // S
    pi, eye, idx = np.zeros(S, dtype=np.int64), sp.identity(S, format="csr"), np.arange(S)
    for it in itertools.count(1):
        rows = idx * A + pi
        V = spsolve((eye - gamma * P[rows]).tocsc(), r[rows])
        Q = (r + gamma * (P @ V)).reshape(S, A)
        best = Q.max(1)
        # switch only where another action gains more than the solve's rounding (else ties can cycle)
        new = np.where(best - Q[idx, pi] > 1e-12 * np.maximum(1.0, np.abs(best)), Q.argmax(1), pi)
        if np.array_equal(new, pi):
            return V, it
        pi = new


def _agreement(mdp, sol, V_peer, bound_peer: float) -> str:
    """Greedy policy of the peer's V (our tie rule) vs ours: all states, and the states whose top two
    Q-values are further apart than both solvers' error (there the optimal action is certain)."""
    Q_peer = mdp.q_from_v(V_peer, GAMMA)
    theirs = solve.greedy_policy(Q_peer)
    top2 = np.sort(sol.Q, 1)[:, -2:]
    decided = top2[:, 1] - top2[:, 0] > 2 * GAMMA * (sol.error_bound + bound_peer)
    same = theirs == sol.policy
    return f"{int(same.sum())}/{mdp.n_states} all, {int(same[decided].sum())}/{int(decided.sum())} decided"


def _row(label: str, seconds: float, count: str, residual: float, sol, V, bound: float, agree: str) -> None:
    print(
        f"  {label:<22} {seconds:9.3f} {count:>11} {residual:9.1e} {np.abs(V - sol.V).max():9.1e} "
        f"{sol.error_bound + bound:9.1e}  {agree}",
        flush=True,
    )


def peers(spec: str, slippery: bool = True) -> None:
    mdp = make_lake(spec, slippery)
    S, reps = mdp.n_states, 1 if mdp.n_states > 300_000 else 3
    kernels = ("numba", "numpy") if solve.numba_available() else ("numpy",)
    ours = {k: _ours(mdp, k, reps if k == kernels[0] else 1) for k in kernels}
    t_ours, sol = ours[kernels[0]]
    t_setup, (P, r) = _best(lambda: csr_model(mdp), 1)
    t_jac, (V_jac, sweeps) = _best(lambda: jacobi_vi(P, r, GAMMA, TOL), 1 if S > 300_000 else 2)
    b_jac = GAMMA * TOL / (1 - GAMMA)
    print(f"\n{mdp.name} ({S:,} states): max |dV| against ours ({kernels[0]}); bound = sum of both error bounds")
    print(
        f"  {'solver':<22} {'seconds':>9} {'sweeps':>11} {'residual':>9} {'max|dV|':>9} {'bound':>9}  "
        f"greedy policy (our tie rule) = ours"
    )
    for k, (t, s) in ours.items():
        _row(
            f"ours ({k} kernel)",
            t,
            f"{s.iterations}",
            s.residual,
            sol,
            s.V,
            s.error_bound,
            _agreement(mdp, sol, s.V, s.error_bound),
        )
    _row("scipy jacobi VI", t_jac, f"{sweeps}", TOL, sol, V_jac, b_jac, _agreement(mdp, sol, V_jac, b_jac))
    speed = [f"{t_jac / t:.3g}x over jacobi ({k})" for k, (t, _) in ours.items()]
    if S <= 300_000:
        t_pi, (V_pi, iters) = _best(lambda: policy_iteration(P, r, GAMMA), 1)
        res_pi = float(np.abs(mdp.q_from_v(V_pi, GAMMA).max(1) - V_pi).max())
        b_pi = GAMMA * res_pi / (1 - GAMMA)
        _row("scipy PI (spsolve)", t_pi, f"{iters} iters", res_pi, sol, V_pi, b_pi, _agreement(mdp, sol, V_pi, b_pi))
        speed += [f"{t_pi / t:.3g}x over PI ({k})" for k, (t, _) in ours.items()]
    else:  # one evaluation (a sparse LU of S unknowns) bounds PI's time from below
        import scipy.sparse as sp
        from scipy.sparse.linalg import spsolve

        rows = np.arange(S) * mdp.n_actions
        t_one, _ = _best(lambda: spsolve((sp.identity(S, format="csr") - GAMMA * P[rows]).tocsc(), r[rows]), 1)
        print(
            f"  scipy PI (spsolve)     not run: one policy evaluation takes {t_one:.1f} s, PI needs many "
            f"(182 at 256x256)",
            flush=True,
        )
        speed += [f">= {t_one / t:.3g}x over PI ({k})" for k, (t, _) in ours.items()]
    print(f"  speed-up: {', '.join(speed)}; jacobi + CSR setup ({t_setup:.3f} s): {(t_jac + t_setup) / t_ours:.3g}x")


# ------------------------------------------------------------------ pymdptoolbox (dense, small maps)
def _mdptoolbox(mdp, repeats: int):
    import mdptoolbox.mdp

    P = mdp.dense_P().transpose(1, 0, 2).copy()  # (A, S, S)
    best_setup = best_run = np.inf
    for _ in range(repeats):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            # mdptoolbox stops when span(V_k+1 - V_k) < epsilon * (1 - gamma) / gamma: the same threshold
            vi = mdptoolbox.mdp.ValueIteration(P, mdp.R, GAMMA, epsilon=TOL * GAMMA / (1 - GAMMA), max_iter=1_000_000)
            t_setup = time.perf_counter() - t
            t = time.perf_counter()
            vi.run()
            t_run = time.perf_counter() - t
        best_setup, best_run = min(best_setup, t_setup), min(best_run, t_run)
    return best_setup, best_run, vi


def compare(spec: str, slippery: bool) -> None:
    mdp = make_lake(spec, slippery)
    t_ours, sol = _ours(mdp, solve.KERNEL, 5)
    t_setup, t_run, vi = _mdptoolbox(mdp, 3 if mdp.n_states <= 1024 else 1)
    print(
        f"{mdp.name:<22} {mdp.n_states:>6} {t_ours:>10.5f} {sol.iterations:>6} {t_run:>10.4f} {t_setup:>8.2f} "
        f"{vi.iter:>6} {t_run / t_ours:>9.3g}x {(t_run + t_setup) / t_ours:>9.3g}x  "
        f"{np.abs(np.asarray(vi.V) - sol.V).max():8.1e}  "
        f"{_agreement(mdp, sol, np.asarray(vi.V), GAMMA * TOL / (1 - GAMMA))}",
        flush=True,
    )


# ------------------------------------------------------------------ large maps alone: time and memory
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
    print(
        json.dumps(
            {
                "name": mdp.name,
                "S": mdp.n_states,
                "build": t_build,
                "solve": t_solve,
                "sweeps": sol.iterations,
                "residual": sol.residual,
                "rss_build": rss_build,
                "rss_peak": _peak_rss_gib(),
            }
        )
    )


def alone(spec: str, slippery: bool) -> None:
    out = subprocess.run(
        [sys.executable, __file__, "--child", spec] + (["--slippery"] if slippery else []),
        capture_output=True,
        text=True,
        check=True,
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"{r['name']:<26} {r['S']:>8} {r['build']:>9.1f} {r['solve']:>9.2f} {r['sweeps']:>7} {r['residual']:>9.1e} "
        f"{r['rss_build']:>10.2f} {r['rss_peak']:>9.2f}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="peers on 64x64 and 256x256 only")
    ap.add_argument("--mdptoolbox", action="store_true", help="also compare with pymdptoolbox on small maps")
    ap.add_argument("--memory", action="store_true", help="also build + solve large maps alone (peak RSS)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--slippery", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    if args.child:
        return child(args.child, args.slippery)
    import scipy

    t = time.perf_counter()
    _ours(
        make_lake("4x4", True), "numba" if solve.numba_available() else "numpy", 1
    )  # loads (or compiles) the numba kernels
    print(
        f"numpy {np.__version__}, scipy {scipy.__version__}; numba kernel: {solve.numba_available()} "
        f"(first call, load/compile: {time.perf_counter() - t:.2f} s, not in the timings); gamma {GAMMA}, tol {TOL:g}"
    )
    for spec in PEER_MAPS[:2] if args.quick else PEER_MAPS:
        peers(spec)
    if args.mdptoolbox:
        print("\npymdptoolbox ValueIteration (dense), same threshold")
        print(
            f"{'map':<22} {'S':>6} {'ours [s]':>10} {'sweeps':>6} {'mdp [s]':>10} {'+setup':>8} {'iters':>6} "
            f"{'speed-up':>10} {'(w/ setup)':>10} {'max|dV|':>8}  policy agrees"
        )
        for slippery, spec in itertools.product((False, True), COMPARE):
            compare(spec, slippery)
    if args.memory:
        print("\nours alone (child process per map; peak RSS = whole process incl. map building)")
        print(
            f"{'map':<26} {'S':>8} {'build[s]':>9} {'solve[s]':>9} {'sweeps':>7} {'residual':>9} "
            f"{'RSS@build':>10} {'peak RSS':>9}  (GiB)"
        )
        for slippery, spec in itertools.product((False, True), ALONE):
            alone(spec, slippery)


if __name__ == "__main__":
    main()
