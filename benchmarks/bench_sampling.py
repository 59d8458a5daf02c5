"""Benchmark: batched torch rollouts (what PPO / GRPO will call every step) against per-episode loops.

    python benchmarks/bench_sampling.py [--members 20] [--episodes 64] [--horizon 50] [--calls 300]
                                        [--naive-episodes 8] [--scale-episodes 512] [--device cpu]

On the two-route map, for three kinds of policy, times ``sample_rollouts`` (E members x N episodes,
tensors built once) over ``--calls`` calls and prints seconds per call. Baselines measured in the
same run on the same policies: (1) a naive per-episode Python loop (inverse-CDF draws with
``bisect`` on precomputed cumulative rows, one episode and one step at a time) over
``--naive-episodes`` episodes per member, and (2) the numpy sampler ``sample_episodes`` called
once per member. Ratios are per episode (same policy, so the same distribution of episode lengths):
baseline seconds per episode / batched seconds per episode. Each timing is the best of 3 repeats
of process CPU time on CPU (torch on 1 thread; a busy shared machine inflates wall time), wall time
on CUDA. Shared machines are noisy: compare ratios within one run, repeat the run. Finally the
batched sampler at a larger N (``--scale-episodes``, calls / 10 calls): its cost per episode
against N = ``--episodes``.

Policies: ``init`` (policy networks at their seeded initialisation: most episodes fall into a
hole within a few steps), ``route`` (0.9 on the chosen route's moves: about 6 steps), ``wall``
(mostly 'up' and 'left', bumping the walls: episodes run the whole horizon, the worst case).
"""

from __future__ import annotations

import argparse
import bisect
import random
import time

import numpy as np
import torch

from frozenlake_ift import lakes, policy, routes
from frozenlake_ift.sampling import mdp_tensors, sample_episodes, sample_rollouts


def policies(mdp, E: int) -> dict[str, np.ndarray]:
    """The three benchmark policies, each Shape (E, S, A)."""
    S = mdp.n_states
    with torch.no_grad():
        init = policy.policy_table(policy.init_params(S, 4, 32, seeds=range(E), dtype=torch.float64), S).numpy()
    chosen = routes.routes(mdp)[0]
    route = np.full((S, 4), 0.25)
    route[list(chosen.states[:-1])] = 0.1 / 3
    route[list(chosen.states[:-1]), list(chosen.actions)] = 0.9
    wall = np.tile([0.49, 0.01, 0.01, 0.49], (S, 1))  # left / up: stays in the top-left corner
    return {
        "init": init,
        "route": np.broadcast_to(route, (E, S, 4)).copy(),
        "wall": np.broadcast_to(wall, (E, S, 4)).copy(),
    }


def naive(
    P: np.ndarray,
    pi: np.ndarray,
    rho0: np.ndarray,
    terminal: np.ndarray,
    goal: np.ndarray,
    n_episodes: int,
    horizon: int,
    seed: int,
) -> list[tuple[list[int], list[int], list[float]]]:
    """One episode, one step at a time, in pure Python. pi Shape (E, S, A); returns E * n_episodes episodes."""
    rng = random.Random(seed)
    cP, cpi, crho = np.cumsum(P, -1).tolist(), np.cumsum(pi, -1).tolist(), np.cumsum(rho0).tolist()
    term, gl = terminal.tolist(), goal.tolist()
    out = []
    for e in range(pi.shape[0]):
        for _ in range(n_episodes):
            s = min(bisect.bisect_right(crho, rng.random()), len(crho) - 1)
            states, actions, rewards = [s], [], []
            for _ in range(horizon):
                if term[s]:
                    break
                row = cpi[e][s]
                a = min(bisect.bisect_right(row, rng.random()), len(row) - 1)
                row = cP[s][a]
                s = min(bisect.bisect_right(row, rng.random()), len(row) - 1)
                states.append(s)
                actions.append(a)
                rewards.append(1.0 if gl[s] else 0.0)
            out.append((states, actions, rewards))
    return out


CLOCK = time.process_time  # CPU seconds of this process (robust on a busy machine); wall time on CUDA


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        t0 = CLOCK()
        fn()
        times.append(CLOCK() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=20)
    ap.add_argument("--episodes", type=int, default=64)
    ap.add_argument("--horizon", type=int, default=50)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--naive-episodes", type=int, default=8, help="episodes per member for the naive loop")
    ap.add_argument("--scale-episodes", type=int, default=512, help="also time N this large (0: skip)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = policy.resolve_device(args.device)
    if dev.type != "cpu":
        global CLOCK
        CLOCK = time.perf_counter
    mdp = lakes.make_lake("two-route")
    m = mdp_tensors(mdp, dev)
    E, N, T = args.members, args.episodes, args.horizon
    P, rho0, term, goal = mdp.dense_P(), mdp.rho0, mdp.terminal, mdp.goal
    print(
        f"two-route map, device {dev}, E={E} members x N={N} episodes, horizon {T}, {args.calls} calls, "
        f"torch threads {torch.get_num_threads()}; seconds are {'CPU' if dev.type == 'cpu' else 'wall'} seconds"
    )
    print(
        f"{'policy':<7} {'mean len':>8} {'s/call':>9} {'calls/s':>8} {'naive s/ep':>11} {'x naive':>8} "
        f"{'numpy s/ep':>11} {'x numpy':>8}"
    )
    per_ep_by_n: dict[str, float] = {}
    for name, pis in policies(mdp, E).items():
        pi = torch.as_tensor(pis, dtype=torch.float32, device=dev)  # what policy_table gives in training
        g = torch.Generator(device=dev).manual_seed(0)

        def batched(pi=pi, g=g):
            for _ in range(args.calls):
                ro = sample_rollouts(m.P, pi, m.rho0, m.terminal, m.goal, N, T, g)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            return ro

        ro = batched()  # warm-up
        t_batched = best_of(3, batched) / args.calls
        mean_len = ro.lengths.double().mean().item()
        n_naive = max(1, args.naive_episodes)
        t_naive = best_of(3, lambda pis=pis, n=n_naive: naive(P, pis, rho0, term, goal, n, T, 0)) / (E * n_naive)
        t_numpy = best_of(3, lambda pis=pis: [sample_episodes(mdp, pis[e], N, T, seed=e) for e in range(E)]) / (E * N)
        per_ep = t_batched / (E * N)
        print(
            f"{name:<7} {mean_len:>8.2f} {t_batched:>9.5f} {1 / t_batched:>8.1f} {t_naive:>11.2e} "
            f"{t_naive / per_ep:>7.1f}x {t_numpy:>11.2e} {t_numpy / per_ep:>7.1f}x",
            flush=True,
        )
        per_ep_by_n[name] = per_ep
    if args.scale_episodes:  # per-op overheads dominate at E * N = 1280: what a bigger batch costs per episode
        n_big, calls = args.scale_episodes, max(1, args.calls // 10)
        print(f"scaling: N={n_big} episodes per member, {calls} calls")
        for name, pis in policies(mdp, E).items():
            pi = torch.as_tensor(pis, dtype=torch.float32, device=dev)
            g = torch.Generator(device=dev).manual_seed(0)

            def big(pi=pi, g=g):
                for _ in range(calls):
                    sample_rollouts(m.P, pi, m.rho0, m.terminal, m.goal, n_big, T, g)
                if dev.type == "cuda":
                    torch.cuda.synchronize()

            big()
            t = best_of(3, big) / calls
            print(
                f"{name:<7} {t:>9.5f} s/call, {t / (E * n_big):.2e} s/episode: "
                f"{per_ep_by_n[name] / (t / (E * n_big)):.1f}x cheaper per episode than at N={N}",
                flush=True,
            )


if __name__ == "__main__":
    main()
