"""Each method's training step on the LLM path against TRL's corresponding trainer, same batch, GPT-2-small size.

The model: 12 layers, 768 wide, V = 50257 (built from a config, random weights, no download); a batch of
B = 2 rows of T = 512 tokens (half prompt, half answer; preference methods: a chosen and a rejected
answer per row; KTO: its KL rows too); CPU, float32 on both sides (TRL's configs default to bf16
autocast on CPU: switched off). The step is loss + backward, nothing else (the optimiser's update is
the same AdamW on both sides):

    ours   llm.lm_loss(method, model, batch, ...).loss.backward()
    TRL    trainer.compute_loss(trainer.model, batch).backward()   (SFTTrainer, DPOTrainer sigmoid / ipo,
           ORPOTrainer, CPOTrainer simpo, KTOTrainer, GRPOTrainer loss_type "grpo", RLOOTrainer)

GRPO and RLOO score a fixed batch of completions (the step after sampling; beta = 0 on both sides, so
neither builds a reference: RLOO's KL penalty lives in the rewards, computed before the step). Each
(method, side) runs in a fresh process: build, one warm-up step, ``--steps`` timed steps; reported
are the median step time and the peak resident memory during the steps above the resident size just
before them (weights and the built trainer excluded; gradients, activations, logits included),
sampled every 2 ms. Time is measured twice: wall clock and the process's CPU time (user + system; with
one thread, the work done, much less sensitive to other processes on a shared machine, which stretch
the wall clock). ``--repeats`` alternates the sides; the ratios ours / TRL are medians over the
repeats, with their range. Target: <= 1.1x time and memory.

    python benchmarks/bench_llm_peer.py [--methods dpo,kto] [--repeats 3] [--steps 2] [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import threading
import time

TARGET = 1.1
METHODS = ("sft", "dpo", "ipo", "orpo", "simpo", "kto", "grpo", "rloo")
V = 50257


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


class PeakRSS:
    """The largest resident size seen by a 2 ms sampler thread while the block runs."""

    def __enter__(self):
        self.peak, self._stop = rss_bytes(), False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop:
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._stop = True
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def gpt2_small(T: int):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(
        n_layer=12,
        n_embd=768,
        n_head=12,
        vocab_size=V,
        n_positions=T,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=1,
        eos_token_id=1,
        pad_token_id=0,
    )
    return GPT2LMHeadModel(cfg)


def batches(method: str, B: int, T: int):
    """(ours, TRL's) batch of the same token ids for ``method``."""
    import torch

    from frozenlake_ift import llm, losses

    g = torch.Generator().manual_seed(1)
    P = T // 2
    prompt = torch.randint(2, V, (B, P), generator=g)
    answers = [torch.randint(2, V, (B, T - P), generator=g) for _ in range(2)]
    ones = torch.ones(B, T, dtype=torch.long)
    comp = torch.cat([torch.zeros(B, P, dtype=torch.long), torch.ones(B, T - P, dtype=torch.long)], 1)  # (B, T)
    seqs = [torch.cat([prompt, a], 1) for a in answers]  # (B, T) each
    labels = [s.masked_fill(comp == 0, llm.IGNORE_INDEX) for s in seqs]
    if method == "sft":
        return {"input_ids": seqs[0], "attention_mask": ones, "labels": labels[0]}, {
            "input_ids": seqs[0],
            "attention_mask": ones,
            "labels": labels[0],
        }
    if method in ("dpo", "ipo", "orpo", "simpo"):
        ours = {}
        for side, s, lab in zip(("chosen", "rejected"), seqs, labels, strict=True):
            ours.update({f"{side}_input_ids": s, f"{side}_attention_mask": ones, f"{side}_labels": lab})
        if method in ("dpo", "ipo"):
            return ours, {
                "input_ids": torch.cat(seqs),
                "attention_mask": torch.cat([ones, ones]),
                "completion_mask": torch.cat([comp, comp]),
            }
        return ours, {**ours, "prompt_input_ids": prompt, "prompt_attention_mask": torch.ones_like(prompt)}
    if method == "kto":
        label = torch.tensor([True, False] * (B // 2) + [True] * (B % 2))
        kl = torch.cat([prompt, answers[1].roll(1, 0)], 1)
        ours = {
            "input_ids": seqs[0],
            "attention_mask": ones,
            "labels": labels[0],
            "label": label,
            "kl_input_ids": kl,
            "kl_attention_mask": ones,
            "kl_labels": kl.masked_fill(comp == 0, llm.IGNORE_INDEX),
        }
        return ours, {
            "input_ids": seqs[0],
            "attention_mask": ones,
            "completion_mask": comp,
            "label": label,
            "KL_input_ids": kl,
            "KL_attention_mask": ones,
            "KL_completion_mask": comp,
        }
    # grpo / rloo: B completions of one prompt (num_generations = B), rewards 0, 1, 0, 1, ...
    prompt = prompt[:1].expand(B, -1)
    seq = torch.cat([prompt, answers[0]], 1)
    rewards = torch.tensor([float(i % 2) for i in range(B)])
    samples = llm.Samples(["p"] * B, prompt.tolist(), answers[0].tolist(), [[True] * (T - P)] * B, [""] * B, B)
    ours = llm.make_rollouts(samples, rewards, 0)
    assert torch.equal(ours.input_ids, seq)
    adv = losses.group_advantages(rewards.view(1, B)).flatten() if method == "grpo" else None
    theirs = {
        "prompt_ids": prompt,
        "prompt_mask": torch.ones_like(prompt),
        "completion_ids": answers[0],
        "completion_mask": torch.ones_like(answers[0]),
        "num_items_in_batch": torch.tensor(float(B * (T - P))),
    }
    if method == "grpo":
        theirs["advantages"] = adv
    else:
        theirs["advantages"] = losses.rloo_advantages(rewards.view(1, B)).flatten()
        theirs["old_logps"] = None  # filled by the child from the model (TRL computes it at generation)
    return ours, theirs


def trl_trainer(method: str, model, ref, B: int, T: int, out: str):
    import datasets
    import trl

    from frozenlake_ift import llm

    tok = llm.grid_tokenizer()
    common = dict(
        output_dir=out,
        report_to="none",
        use_cpu=True,
        bf16=False,
        per_device_train_batch_size=B,
        save_strategy="no",
        disable_tqdm=True,
    )
    pref = datasets.Dataset.from_list([{"prompt": "map :", "chosen": " up", "rejected": " down"}] * B)
    prompts = datasets.Dataset.from_list([{"prompt": "map :"}] * B)
    if method == "sft":
        data = datasets.Dataset.from_list([{"prompt": "map :", "completion": " up"}] * B)
        return trl.SFTTrainer(model=model, args=trl.SFTConfig(**common), train_dataset=data, processing_class=tok)
    if method in ("dpo", "ipo"):
        cfg = trl.DPOConfig(**common, loss_type=["sigmoid" if method == "dpo" else "ipo"])
        return trl.DPOTrainer(model=model, ref_model=ref, args=cfg, train_dataset=pref, processing_class=tok)
    if method == "orpo":
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        return ORPOTrainer(model=model, args=ORPOConfig(**common, beta=0.25), train_dataset=pref, processing_class=tok)
    if method == "simpo":
        from trl.experimental.cpo import CPOConfig, CPOTrainer

        cfg = CPOConfig(**common, loss_type="simpo", cpo_alpha=0.0, beta=2.0, simpo_gamma=0.5)
        return CPOTrainer(model=model, args=cfg, train_dataset=pref, processing_class=tok)
    if method == "kto":
        return trl.KTOTrainer(
            model=model, ref_model=ref, args=trl.KTOConfig(**common), train_dataset=pref, processing_class=tok
        )
    reward = [lambda prompts, completions, **kw: [0.0] * len(prompts)]
    if method == "grpo":
        cfg = trl.GRPOConfig(**common, num_generations=B, beta=0.0, loss_type="grpo", max_completion_length=T // 2)
        trainer = trl.GRPOTrainer(
            model=model, reward_funcs=reward, args=cfg, train_dataset=prompts, processing_class=tok
        )
        trainer.current_gradient_accumulation_steps = 1
        return trainer
    cfg = trl.RLOOConfig(**common, num_generations=B, beta=0.0, max_completion_length=T // 2)
    return trl.RLOOTrainer(model=model, reward_funcs=reward, args=cfg, train_dataset=prompts, processing_class=tok)


def child(method: str, side: str, steps: int, threads: int, B: int, T: int) -> dict:
    import copy
    import tempfile
    import warnings

    import torch

    from frozenlake_ift import llm, losses

    warnings.filterwarnings("ignore")
    torch.set_num_threads(threads)
    model = gpt2_small(T)
    needs_ref = method in ("dpo", "ipo", "kto")
    ref = copy.deepcopy(model).eval().requires_grad_(False) if needs_ref else None
    ours_batch, trl_batch = batches(method, B, T)
    hp = {
        "dpo": {"beta": 0.1},
        "ipo": {"beta": 0.1},
        "orpo": {"beta": 0.25},
        "simpo": {"beta": 2.0, "simpo_gamma": 0.5},
        "kto": {"beta": 0.1},
        "grpo": {"beta": 0.0, "loss_type": "grpo", "max_completion_length": T // 2},
        "rloo": {"beta": 0.0},
    }.get(method, {})
    if needs_ref:
        hp["ref_model"] = ref
    with tempfile.TemporaryDirectory() as out:
        if side == "trl":
            trainer = trl_trainer(method, model, ref, B, T, out)
            run_model = trainer.model
            run_model.train()
            if method == "rloo":  # the sampling policy's summed log-probs, as TRL's generation step stores them
                with torch.no_grad():
                    trl_batch["old_logps"] = losses.sequence_logps(
                        *llm.token_logps(run_model(input_ids=ours_batch.input_ids).logits, ours_batch.labels)
                    )

            def step():
                return trainer.compute_loss(run_model, trl_batch)
        else:
            run_model = model.train()

            def step():
                return llm.lm_loss(method, run_model, ours_batch, **hp).loss

        times, cpu, before = [], [], None
        for i in range(steps + 1):
            run_model.zero_grad(set_to_none=True)
            if i == 1:
                before = rss_bytes()
                meter = PeakRSS().__enter__()
            t0, c0 = time.perf_counter(), time.process_time()
            loss = step()
            loss.backward()
            if i:
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
        meter.__exit__(None, None, None)
    return {
        "method": method,
        "side": side,
        "step_s": statistics.median(times),
        "cpu_s": statistics.median(cpu),
        "peak_extra_gib": (meter.peak - before) / 2**30,
        "loss": float(loss),
    }


def run_child(method: str, side: str, args) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        f"{method}:{side}",
        "--steps",
        str(args.steps),
        "--threads",
        str(args.threads),
        "--batch",
        str(args.batch),
        "--seq-len",
        str(args.seq_len),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"{method} / {side} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        method, side = args.child.split(":")
        print(json.dumps(child(method, side, args.steps, args.threads, args.batch, args.seq_len)))
        return {}
    res: dict = {}
    for method in args.methods.split(","):
        runs = []
        for r in range(args.repeats):
            sides = ("ours", "trl") if r % 2 == 0 else ("trl", "ours")
            got = {s: run_child(method, s, args) for s in sides}
            runs.append(got)
        t = [g["ours"]["step_s"] / g["trl"]["step_s"] for g in runs]
        c = [g["ours"]["cpu_s"] / g["trl"]["cpu_s"] for g in runs]
        m = [g["ours"]["peak_extra_gib"] / g["trl"]["peak_extra_gib"] for g in runs]
        res[method] = {
            "cpu_ratio": statistics.median(c),
            "cpu_range": [min(c), max(c)],
            "ours_cpu_s": statistics.median(g["ours"]["cpu_s"] for g in runs),
            "trl_cpu_s": statistics.median(g["trl"]["cpu_s"] for g in runs),
            "time_ratio": statistics.median(t),
            "time_range": [min(t), max(t)],
            "memory_ratio": statistics.median(m),
            "memory_range": [min(m), max(m)],
            "ours_s": statistics.median(g["ours"]["step_s"] for g in runs),
            "trl_s": statistics.median(g["trl"]["step_s"] for g in runs),
            "ours_gib": statistics.median(g["ours"]["peak_extra_gib"] for g in runs),
            "trl_gib": statistics.median(g["trl"]["peak_extra_gib"] for g in runs),
            "loss": [runs[0]["ours"]["loss"], runs[0]["trl"]["loss"]],
        }
        if not args.json:
            x = res[method]
            print(
                f"{method:6s} CPU time {x['ours_cpu_s']:6.2f} s vs TRL {x['trl_cpu_s']:6.2f} s: {x['cpu_ratio']:.2f}x "
                f"[{x['cpu_range'][0]:.2f}, {x['cpu_range'][1]:.2f}] | wall {x['ours_s']:6.2f} s vs "
                f"{x['trl_s']:6.2f} s: {x['time_ratio']:.2f}x [{x['time_range'][0]:.2f}, {x['time_range'][1]:.2f}] "
                f"| peak extra memory {x['ours_gib']:.2f} GiB "
                f"vs {x['trl_gib']:.2f} GiB: {x['memory_ratio']:.2f}x "
                f"[{x['memory_range'][0]:.2f}, {x['memory_range'][1]:.2f}]"
                f" | target <= {TARGET}x: {'ok' if max(x['cpu_ratio'], x['memory_ratio']) <= TARGET else 'MISSED'}",
                flush=True,
            )
    if args.json:
        print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
