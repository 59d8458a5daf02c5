"""Cost of IFT over SFT on a causal LM: time of one training step, same tiny model, same batch.

One step = zero_grad + loss + backward + AdamW step. IFT adds one no-grad forward pass (the greedy
predictions of Eq. 17) and the relation weights of Algorithm 1, so the expected ratio is about
(1 fwd + fwd + bwd) / (fwd + bwd), i.e. 1.3-1.5x; target <= 1.6x. SFT and IFT steps alternate and
the median of each is reported, so that background load hits both alike.

    python benchmarks/bench_llm.py [--repeats 60] [--batch-size 32] [--seq-len 24] [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from frozenlake_ift import llm

TARGET = 1.6


def tiny_model(vocab: int, n_embd: int, n_layer: int, seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=2,
        vocab_size=vocab,
        n_positions=128,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=1,
        eos_token_id=2,
    )
    return GPT2LMHeadModel(cfg)


def make_batch(batch_size: int, seq_len: int, vocab: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    half = seq_len // 2
    examples = [
        {
            "prompt_ids": torch.randint(3, vocab, (half,), generator=g).tolist(),
            "response_ids": torch.randint(3, vocab, (seq_len - half,), generator=g).tolist(),
        }
        for _ in range(batch_size)
    ]
    return llm.PromptResponseCollator()(examples)


def step_seconds(method: str, model, opt, batch, **hp) -> float:
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss, _ = llm.lm_loss(method, model, batch, **hp)
    loss.backward()
    opt.step()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=24)
    ap.add_argument("--vocab", type=int, default=64)
    ap.add_argument("--n-embd", type=int, default=64)
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = tiny_model(args.vocab, args.n_embd, args.n_layer)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = make_batch(args.batch_size, args.seq_len, args.vocab)
    hp = {"sft": {}, "ift": {"lam": 0.2, "gamma": 0.95}}
    times: dict[str, list[float]] = {"sft": [], "ift": []}
    for i in range(args.warmup + args.repeats):
        for method in ("sft", "ift") if i % 2 == 0 else ("ift", "sft"):
            t = step_seconds(method, model, opt, batch, **hp[method])
            if i >= args.warmup:
                times[method].append(t)
    sft_ms, ift_ms = (1e3 * statistics.median(times[m]) for m in ("sft", "ift"))
    out = {
        "sft_ms": sft_ms,
        "ift_ms": ift_ms,
        "ratio": ift_ms / sft_ms,
        "target": TARGET,
        "ok": ift_ms / sft_ms <= TARGET,
        "threads": args.threads,
        "repeats": args.repeats,
        "batch": [args.batch_size, args.seq_len],
        "model": f"GPT-2 {args.n_layer}x{args.n_embd}, V={args.vocab}",
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(
            f"{out['model']}, batch {args.batch_size}x{args.seq_len}, {args.threads} thread(s), "
            f"median of {args.repeats}: SFT step {sft_ms:.2f} ms, IFT step {ift_ms:.2f} ms, "
            f"IFT/SFT = {out['ratio']:.2f}x (target <= {TARGET}x: {'ok' if out['ok'] else 'MISSED'})"
        )
    return out


if __name__ == "__main__":
    main()
