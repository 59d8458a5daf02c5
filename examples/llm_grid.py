"""The study's own task on a language model: a tiny causal LM learns to write the move sequence of a
Frozen-Lake map, trained with IFTTrainer by SFT, IFT and DPO; the exact MDP judges its greedy answer.

The data is ``frozenlake_ift.llm.grid_dataset(StudyConfig(...))``: the map in the prompt, the study's
chosen route as the completion (SFT, IFT) or as chosen against its rejected route (DPO, reference =
the initial model, as in the study). After training, the answer is decoded greedily from the prompt,
parsed into actions and played open loop in the exact MDP (``moves_success``: the probability of
reaching G, 0 or 1 on a deterministic map). Each seed is a fresh randomly initialised model (a 2-layer
GPT-2 built from a config, no download); printed per method: on how many seeds the decoded moves reach
G, the mean success probability, and the mean final training loss. CPU, about a minute by default.

    python examples/llm_grid.py                                   # the study's two-route map, 5 seeds
    python examples/llm_grid.py --map 4x4 --map two-route --seeds 3 --steps 80
    python examples/llm_grid.py --map 4x4 --slippery              # success is then a probability
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time

import torch

from frozenlake_ift import llm
from frozenlake_ift.config import StudyConfig

N_POSITIONS = 256  # an 8x8 prompt (80 tokens) plus 2 * 64 moves fits


def tiny_model(tok, seed: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(
        n_layer=2,
        n_embd=64,
        n_head=2,
        vocab_size=len(tok),
        n_positions=N_POSITIONS,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    return GPT2LMHeadModel(cfg)


def train_one(method: str, tasks: list, tok, seed: int, args) -> dict:
    import transformers

    paired = llm.method_spec(method).paired
    rows = llm.grid_dataset(tasks, "preference" if paired else "completion")
    rows = rows * max(1, -(-args.batch_size // len(rows)))  # at least one full batch
    model = tiny_model(tok, seed)
    ref = {"ref_model": copy.deepcopy(model)} if llm.method_spec(method).needs_ref else {}
    with tempfile.TemporaryDirectory() as out:
        cfg = llm.IFTConfig(
            output_dir=out,
            method=method,
            lam=args.lam,
            gamma=args.gamma,
            per_device_train_batch_size=args.batch_size,
            max_steps=args.steps,
            learning_rate=args.lr,
            lr_scheduler_type="constant",
            logging_steps=args.steps,
            report_to="none",
            save_strategy="no",
            seed=seed,
            disable_tqdm=True,
            dataloader_num_workers=0,
            use_cpu=True,
        )
        trainer = llm.IFTTrainer(model, args=cfg, train_dataset=rows, processing_class=tok, **ref)
        trainer.remove_callback(transformers.PrinterCallback)
        trainer.train()
    model.eval()
    successes = [llm.moves_success(t.mdp, llm.decode_moves(model, tok, t, max_moves=2 * t.mdp.n_states)) for t in tasks]
    loss = [h["loss"] for h in trainer.state.log_history if "loss" in h][-1]
    return {"success": statistics.mean(successes), "loss": loss}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--map", action="append", default=None, help="a make_lake map (repeatable); default two-route")
    ap.add_argument("--slippery", action="store_true")
    ap.add_argument("--methods", default="sft,ift,dpo")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--lam", type=float, default=0.2)
    ap.add_argument("--gamma", type=float, default=0.95)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    tok = llm.grid_tokenizer()
    tasks = llm.grid_tasks([StudyConfig(map=m, slippery=args.slippery) for m in (args.map or ["two-route"])])
    t0 = time.perf_counter()
    results = {}
    for method in args.methods.split(","):
        runs = [train_one(method, tasks, tok, seed, args) for seed in range(args.seeds)]
        results[method] = {
            "reached_goal": sum(r["success"] == 1.0 for r in runs) if not args.slippery else None,
            "mean_success": statistics.mean(r["success"] for r in runs),
            "mean_loss": statistics.mean(r["loss"] for r in runs),
            "seeds": args.seeds,
        }
    if args.json:
        print(json.dumps(results))
        return results
    maps = ", ".join(f"{t.config.map}{' (slippery)' if args.slippery else ''}" for t in tasks)
    print(
        f"maps: {maps} | tiny GPT-2 2x64 | {args.steps} steps x batch {args.batch_size}, lr {args.lr} | "
        f"{args.seeds} seeds | greedy decoding judged by the exact MDP"
    )
    for t in tasks:
        print(f"  {t.config.map}: chosen{llm.moves_text(t.chosen)} | rejected{llm.moves_text(t.rejected)}")
    for method, r in results.items():
        reached = f"reaches G on {r['reached_goal']}/{r['seeds']} seeds | " if r["reached_goal"] is not None else ""
        print(
            f"{method.upper():4s} {reached}mean success probability {r['mean_success']:.3f} | "
            f"final training loss {r['mean_loss']:.4f}"
        )
    print(f"({time.perf_counter() - t0:.0f} s)")
    return results


if __name__ == "__main__":
    main()
