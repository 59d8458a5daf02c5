"""Peak extra memory of token_logps as a multiple of the logits tensor's own size, B x T x V = 4 x 1024 x 50257.

Each measurement runs in a fresh process (so ru_maxrss, the peak resident memory, is its own): the
logits are allocated, the resident size is read, token_logps runs (forward only, or forward +
backward of sum(logps)), and the extra peak is (peak RSS - RSS before) / logits bytes. The baseline,
measured in the same run, is the former implementation: upcast the whole (B, T-1, V) slice to
float32, then gather and logsumexp. Forward + backward includes the logits' gradient itself, a
tensor of the logits' size (1.0x) that any implementation must produce. Target: forward <= 1.1x
(the issue's bound); we also print the time of each. CPU, one thread.

    python benchmarks/bench_llm_logps.py [--batch 4 --seq-len 1024 --vocab 50257] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

TARGET = 1.1
VARIANTS = [
    (impl, dtype, mode)
    for dtype in ("float32", "bfloat16")
    for mode in ("forward", "backward")
    for impl in ("former", "chunked")
]


def former_token_logps(logits, labels, ignore_index=-100):
    """The implementation before the chunked one (kept here as the baseline)."""
    import torch

    targets = labels[:, 1:]
    mask = targets != ignore_index
    lg = logits[:, :-1].to(torch.promote_types(logits.dtype, torch.float32))  # (B, T-1, V) float32 copy
    picked = lg.gather(-1, targets.masked_fill(~mask, 0).unsqueeze(-1)).squeeze(-1)
    return (picked - torch.logsumexp(lg, dim=-1)).masked_fill(~mask, 0.0), mask


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def child(impl: str, dtype: str, mode: str, B: int, T: int, V: int) -> dict:
    import torch

    from frozenlake_ift import llm

    torch.set_num_threads(1)
    fn = llm.token_logps if impl == "chunked" else former_token_logps
    small = torch.randn(2, 8, 16, requires_grad=True)  # warm-up: load every kernel before measuring
    fn(small, torch.randint(0, 16, (2, 8)))[0].sum().backward()
    logits = torch.empty(B, T, V, dtype=getattr(torch, dtype)).normal_()  # (B, T, V)
    labels = torch.randint(0, V, (B, T))
    labels[:, : T // 4] = -100  # a prompt
    logits.requires_grad_(mode == "backward")
    before = rss_bytes()
    t0 = time.perf_counter()
    logps, _ = fn(logits, labels)
    if mode == "backward":
        logps.sum().backward()
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    size = logits.numel() * logits.element_size()
    return {
        "impl": impl,
        "dtype": dtype,
        "mode": mode,
        "extra_x": (peak - before) / size,
        "logits_mib": size / 2**20,
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", nargs=3, metavar=("IMPL", "DTYPE", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    shape = (args.batch, args.seq_len, args.vocab)
    if args.child:
        print(json.dumps(child(*args.child, *shape)))
        return []
    rows = []
    for impl, dtype, mode in VARIANTS:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            impl,
            dtype,
            mode,
            "--batch",
            str(shape[0]),
            "--seq-len",
            str(shape[1]),
            "--vocab",
            str(shape[2]),
        ]
        rows.append(json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout))
    if args.json:
        print(json.dumps(rows))
        return rows
    print(
        f"token_logps, B x T x V = {' x '.join(map(str, shape))}, peak extra memory / logits size "
        f"(fresh process each, 1 thread)"
    )
    for dtype in ("float32", "bfloat16"):
        for mode in ("forward", "backward"):
            f, c = (
                next(r for r in rows if r["impl"] == i and r["dtype"] == dtype and r["mode"] == mode)
                for i in ("former", "chunked")
            )
            label = "forward" if mode == "forward" else "forward+backward (incl. the 1.0x gradient)"
            ok = "" if mode == "backward" else f"  target <= {TARGET}x: {'ok' if c['extra_x'] <= TARGET else 'MISSED'}"
            print(
                f"  {dtype:8s} ({c['logits_mib']:.0f} MiB) {label:44s} former {f['extra_x']:5.2f}x "
                f"({f['seconds']:.2f} s) | chunked {c['extra_x']:5.2f}x ({c['seconds']:.2f} s){ok}"
            )
    return rows


if __name__ == "__main__":
    main()
