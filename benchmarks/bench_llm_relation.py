"""relation_weights at long T: the blocked O(B T) scan, time and memory, against the former T x T matrix.

Times relation_weights (float32, gamma 0.95, rescaled) at T = 4096 for the former dense implementation
(x @ D^T with the T x T discount matrix, rebuilt here as the baseline) and the current one, then the
current one alone at T = 32768 (the dense matrix would take 4 GiB there). Memory: the largest tensor
each allocates, computed from the shapes (dense: T x T; blocked: a few (B, T) tensors). Median of
``--repeats``; CPU, one thread. Target: T = 32768 well under a second, O(T) memory.

    python benchmarks/bench_llm_relation.py [--batch 8] [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from frozenlake_ift.losses import relation_weights


def dense_weights(losses: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """The former implementation (T x T discount matrix), the baseline."""
    n = mask.sum(-1).to(losses.dtype)
    T = losses.shape[1]
    steps = torch.arange(T)
    lag = (steps[None, :] - steps[:, None]).clamp_min(0).to(losses.dtype)  # (T, T)
    D = torch.tensor(gamma, dtype=losses.dtype).pow(lag).triu()  # (T, T)
    W = torch.where(mask, (torch.where(mask, losses, 0.0) / n[:, None]) @ D.T, 0.0)
    return W * (n / W.sum(-1))[:, None]


def median_seconds(fn, repeats: int) -> float:
    fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    B, res = args.batch, {}
    for T in (4096, 32768):
        losses = torch.rand(B, T) * 3
        mask = torch.ones(B, T, dtype=torch.bool)
        res[f"blocked_{T}_s"] = median_seconds(lambda: relation_weights(losses, mask, 0.95), args.repeats)  # noqa: B023  (called within the same iteration)
        res[f"blocked_{T}_mib"] = 4 * B * T * 4 / 2**20  # ~4 live (B, T) float32 tensors
        res[f"dense_{T}_mib"] = T * T * 4 / 2**20
        if T == 4096:
            res["dense_4096_s"] = median_seconds(lambda: dense_weights(losses, mask, 0.95), args.repeats)  # noqa: B023  (called within the same iteration)
            err = (relation_weights(losses, mask, 0.95) - dense_weights(losses, mask, 0.95)).abs().max()
            res["max_abs_diff_4096"] = float(err)
    res["ok"] = res["blocked_32768_s"] < 1.0
    if args.json:
        print(json.dumps(res))
        return res
    print(f"relation_weights, B = {B}, float32, gamma 0.95, median of {args.repeats}, 1 thread")
    print(
        f"  T = 4096 : dense {1e3 * res['dense_4096_s']:.1f} ms ({res['dense_4096_mib']:.0f} MiB matrix) | "
        f"blocked {1e3 * res['blocked_4096_s']:.2f} ms (~{res['blocked_4096_mib']:.1f} MiB) | "
        f"{res['dense_4096_s'] / res['blocked_4096_s']:.0f}x faster | max |diff| {res['max_abs_diff_4096']:.1e}"
    )
    print(
        f"  T = 32768: blocked {1e3 * res['blocked_32768_s']:.1f} ms (~{res['blocked_32768_mib']:.0f} MiB; "
        f"dense would need a {res['dense_32768_mib'] / 1024:.0f} GiB matrix) | target < 1 s: "
        f"{'ok' if res['ok'] else 'MISSED'}"
    )
    return res


if __name__ == "__main__":
    main()
