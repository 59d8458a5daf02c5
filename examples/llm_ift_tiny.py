"""SFT vs IFT on a tiny causal LM, CPU, well under a minute: sort (or reverse, or running-sum) a digit string.

A 2-layer GPT-2 (64 dims, 16-token vocabulary) is built from a config, randomly initialised, and
fine-tuned twice from the same weights with ``frozenlake_ift.llm.IFTTrainer`` (a transformers
Trainer): once with method="sft", once with method="ift" (lam = 0.2, gamma = 0.95). Printed per
method: the last logged training loss of its own objective (SFT's and IFT's are different numbers),
the held-out token NLL under teacher forcing (the same measure for both), the held-out exact-match
accuracy of greedy decoding, and the training time. One seed, one run: a demo, not a benchmark.

    python examples/llm_ift_tiny.py                              # tiny model from a config, no download
    python examples/llm_ift_tiny.py --task reverse --digits 10 --steps 200 --lam 0.3

A real model: ``--model-id`` takes any Hugging Face causal-LM id or local folder (loaded with
AutoModelForCausalLM / AutoTokenizer, so it needs network access or a local copy). The task then
becomes text ("sort 3 1 4 1 5:" -> " 1 1 3 4 5" + EOS) tokenised by the model's tokenizer; the
Trainer runs on the GPU when there is one. For example

    python examples/llm_ift_tiny.py --model-id Qwen/Qwen2.5-0.5B --steps 200 --batch-size 8 --lr 1e-5

Several processes (DDP through accelerate; gloo on CPU, NCCL on GPUs): ``--global-batch-size`` is
split over the processes, so the loss curve is that of one process with the same global batch.

    accelerate launch --cpu --num_processes 2 examples/llm_ift_tiny.py --methods ift --steps 6 \
        --global-batch-size 8 --no-eval --log-json curve.json

Needs the `llm` extra (transformers and accelerate).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import tempfile
import time

import torch

from frozenlake_ift import llm

PAD, SEP, EOS, DIGIT0 = 0, 1, 2, 3  # tiny vocabulary: specials, then the digits 0-9 at 3..12


TASKS = {  # digit list -> answer digit list
    "reverse": lambda ds: ds[::-1],
    "sort": sorted,
    "cumsum": lambda ds: [sum(ds[: i + 1]) % 10 for i in range(len(ds))],  # running sum mod 10
}


def make_examples(n: int, digits: int, seed: int, task: str = "reverse", tokenizer=None) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ds = [rng.randrange(10) for _ in range(digits)]
        ans = TASKS[task](ds)
        if tokenizer is None:
            out.append(
                {"prompt_ids": [DIGIT0 + d for d in ds] + [SEP], "response_ids": [DIGIT0 + d for d in ans] + [EOS]}
            )
        else:
            out.append({"prompt": f"{task} " + " ".join(map(str, ds)) + ":", "response": " " + " ".join(map(str, ans))})
    return out


def tiny_model(vocab: int = 16, seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(
        n_layer=2,
        n_embd=64,
        n_head=2,
        vocab_size=vocab,
        n_positions=32,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=SEP,
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    return GPT2LMHeadModel(cfg)


@torch.no_grad()
def evaluate(model, collator, test: list[dict], eos_id: int) -> tuple[float, float]:
    """Held-out token NLL (teacher forcing) and exact match of greedy decoding (one example at a time)."""
    model.eval()
    batch = {k: v.to(model.device) for k, v in collator(test).items()}
    nll = llm.lm_loss("sft", model, batch)[0].item()
    hits = 0
    for b in range(len(test)):
        n_prompt = int((batch["labels"][b] == llm.IGNORE_INDEX).logical_and(batch["attention_mask"][b] == 1).sum())
        target = batch["input_ids"][b, n_prompt : int(batch["attention_mask"][b].sum())].tolist()
        ids = batch["input_ids"][b : b + 1, :n_prompt]  # (1, P)
        for _ in range(len(target)):
            nxt = model(input_ids=ids).logits[:, -1].argmax(-1, keepdim=True)  # (1, 1)
            ids = torch.cat([ids, nxt], dim=1)
            if nxt.item() == eos_id:
                break
        hits += ids[0, n_prompt:].tolist() == target
    model.train()
    return nll, hits / len(test)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--model-id",
        default=None,
        help="Hugging Face causal-LM id or folder (default: a tiny GPT-2 built from a config)",
    )
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--task", choices=sorted(TASKS), default="sort")
    ap.add_argument("--digits", type=int, default=8)
    ap.add_argument("--lam", type=float, default=0.2)
    ap.add_argument("--gamma", type=float, default=0.95)
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default="sft,ift", help="comma-separated, from sft, ift")
    ap.add_argument(
        "--global-batch-size",
        type=int,
        default=None,
        help="examples per optimiser step over all processes (overrides --batch-size)",
    )
    ap.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation")
    ap.add_argument("--log-json", default=None, help="write each method's logged loss curve to this JSON file")
    args = ap.parse_args(argv)
    world = int(os.environ.get("WORLD_SIZE", "1"))  # set by accelerate launch / torchrun
    if args.global_batch_size is not None:
        if args.global_batch_size % world:
            raise SystemExit(
                f"--global-batch-size {args.global_batch_size} must be a multiple of the {world} processes"
            )
        args.batch_size = args.global_batch_size // world
    import transformers

    if args.model_id is None:
        torch.set_num_threads(1)  # a model this small runs fastest on one thread (2 on a busy 2-core box crawl)
        tokenizer, base = None, tiny_model(seed=args.seed)
        collator, eos_id = llm.PromptResponseCollator(pad_token_id=PAD), EOS
    else:
        tokenizer = transformers.AutoTokenizer.from_pretrained(args.model_id)
        base = transformers.AutoModelForCausalLM.from_pretrained(args.model_id)
        eos_id = tokenizer.eos_token_id
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
        collator = llm.PromptResponseCollator(pad_token_id=pad, tokenizer=tokenizer, eos_token_id=eos_id)
    train = make_examples(args.n_train, args.digits, args.seed, args.task, tokenizer)
    test = make_examples(args.n_test, args.digits, args.seed + 1, args.task, tokenizer)
    if int(os.environ.get("RANK", "0")) == 0:
        print(
            f"task: {args.task} {args.digits} digits | model: {args.model_id or 'tiny GPT-2 from a config'} "
            f"({sum(p.numel() for p in base.parameters()):,} parameters) | "
            f"{args.steps} steps x batch {args.batch_size}"
        )
    results = {}
    for method in args.methods.split(","):
        model = copy.deepcopy(base)
        with tempfile.TemporaryDirectory() as out:
            cfg = llm.IFTConfig(
                output_dir=out,
                method=method,
                lam=args.lam,
                gamma=args.gamma,
                per_device_train_batch_size=args.batch_size,
                max_steps=args.steps,
                learning_rate=args.lr,
                lr_scheduler_type="cosine",
                warmup_steps=max(1, args.steps // 20),
                logging_steps=1 if args.log_json else max(1, args.steps // 10),
                report_to="none",
                save_strategy="no",
                seed=args.seed,
                disable_tqdm=True,
                dataloader_num_workers=0,
                use_cpu=args.model_id is None,
            )
            trainer = llm.IFTTrainer(model=model, args=cfg, train_dataset=train, data_collator=collator)
            trainer.remove_callback(transformers.PrinterCallback)  # keep the output to one line per method
            t0 = time.perf_counter()
            trainer.train()
            seconds = time.perf_counter() - t0
        curve = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        results[method] = {"train_loss": curve[-1], "curve": curve, "seconds": seconds, "processes": world}
        line = f"{method.upper():4s} train loss {curve[-1]:.4f}"
        if not args.no_eval and trainer.is_world_process_zero():
            nll, em = evaluate(trainer.accelerator.unwrap_model(trainer.model), collator, test, eos_id)
            results[method].update(test_nll=nll, exact_match=em)
            line += f" | test NLL {nll:.4f} | exact match {em:6.1%}"
        if trainer.is_world_process_zero():
            print(f"{line} | {seconds:.1f} s ({world} process{'es' if world > 1 else ''})")
    if args.log_json and int(os.environ.get("RANK", "0")) == 0:
        with open(args.log_json, "w") as f:
            json.dump(results, f)
    return results


if __name__ == "__main__":
    main()
