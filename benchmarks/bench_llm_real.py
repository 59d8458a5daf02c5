"""IFT vs SFT at a realistic size: a GPT-2-small-sized model (12 layers, 768 wide, V = 50257; built from
a config, random weights, no download), batch B = 2 of T = 1024 tokens (half prompt, half answer), CPU.

Each method runs in its own fresh process: build the model and AdamW, one warm-up step, then
``--steps`` timed steps (zero_grad + loss + backward + step). Reported: the median step time, and the
peak resident memory of the process above its resident size right after building the model (so
weights count once, while gradients, AdamW's state, activations and logits count), each as a
multiple of SFT's, measured in the same run. Targets: IFT <= 1.4x SFT's time, <= 1.15x its peak memory.
IFT costs one extra no-grad forward pass (its greedy predictions), so ~1.3x time is expected.

    python benchmarks/bench_llm_real.py [--steps 2] [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

TIME_TARGET, MEMORY_TARGET = 1.4, 1.15


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def child(method: str, steps: int, threads: int, B: int, T: int) -> dict:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from frozenlake_ift import llm

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(
            n_layer=12,
            n_embd=768,
            n_head=12,
            vocab_size=50257,
            n_positions=T,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 50257, (B, T), generator=g)
    labels = ids.clone()
    labels[:, : T // 2] = llm.IGNORE_INDEX
    batch = {"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids)}
    hp = {"sft": {}, "ift": {"lam": 0.2, "gamma": 0.95}}[method]
    before = rss_bytes()
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = llm.lm_loss(method, model, batch, **hp).loss
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "method": method,
        "step_s": statistics.median(times),
        "peak_extra_gib": (peak - before) / 2**30,
        "peak_gib": peak / 2**30,
        "loss": float(loss),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.threads, args.batch, args.seq_len)))
        return {}
    res = {}
    for method in ("sft", "ift"):
        cmd = [
            sys.executable,
            __file__,
            "--child",
            method,
            "--steps",
            str(args.steps),
            "--threads",
            str(args.threads),
            "--batch",
            str(args.batch),
            "--seq-len",
            str(args.seq_len),
        ]
        res[method] = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    t = res["ift"]["step_s"] / res["sft"]["step_s"]
    m = res["ift"]["peak_extra_gib"] / res["sft"]["peak_extra_gib"]
    res.update(time_ratio=t, memory_ratio=m, ok=t <= TIME_TARGET and m <= MEMORY_TARGET)
    if args.json:
        print(json.dumps(res))
        return res
    s, i = res["sft"], res["ift"]
    print(
        f"GPT-2-small-sized (124M parameters), B x T = {args.batch} x {args.seq_len}, CPU, {args.threads} thread(s), "
        f"median of {args.steps} steps after 1 warm-up"
    )
    print(
        f"  step time : SFT {s['step_s']:.1f} s | IFT {i['step_s']:.1f} s | IFT/SFT = {t:.2f}x "
        f"(target <= {TIME_TARGET}x: {'ok' if t <= TIME_TARGET else 'MISSED'})"
    )
    print(
        f"  peak extra memory (above the built model): SFT {s['peak_extra_gib']:.2f} GiB | "
        f"IFT {i['peak_extra_gib']:.2f} GiB"
        f" | IFT/SFT = {m:.2f}x (target <= {MEMORY_TARGET}x: {'ok' if m <= MEMORY_TARGET else 'MISSED'}); "
        f"whole process: SFT {s['peak_gib']:.2f} GiB, IFT {i['peak_gib']:.2f} GiB"
    )
    return res


if __name__ == "__main__":
    main()
