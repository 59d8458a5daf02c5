"""The study's own task on a language model, closed loop, judged exactly, beside the tabular study.

A tiny GPT-2 (2 layers x 64, built from a config, no download) answers a Frozen-Lake prompt one move at a
time; after each move the lake appends the tile reached (``llm.GridEnvironment``). Every method starts
from the same weights, a *base* model: the random GPT-2 fine-tuned with SFT on random walks of the lake
(uniform moves, closed loop), so it writes well-formed answers with a near-uniform policy, the language
model's counterpart of the tabular study's random theta_0. Then each method trains a copy of it:

    sft, ift        the chosen route (prompt / completion)            dpo   chosen vs rejected route, ref = base
    dpo_online      pairs sampled from the model, the higher exact return chosen, ref = base
    grpo            groups of completions sampled from the model, rewards = the exact return (grid_reward),
                    averaged as TRL's default loss type "dapo" on both paths (--loss-type)

``llm.judge`` scores each model exactly over all its episodes (success, value, the occupancy-weighted
pi(a|s) and T_pi against pi*), and the tabular study (``run_study``) trains the same methods on policy
networks for its own table, same map, same metrics. One seed, one run: a demonstration, not a study.

    python examples/llm_grid.py                                   # two-route map, a few minutes on a CPU
    python examples/llm_grid.py --steps 30 --online-steps 30 --json
    python examples/llm_grid.py --map 4x4 --slippery --horizon 10
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time

import numpy as np
import torch

from frozenlake_ift import llm
from frozenlake_ift.config import StudyConfig

N_POSITIONS = 128
METRICS = ("success", "value", "policy_mse_opt", "tmatrix_mse_opt")


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


def random_walks(tasks, n: int, seed: int) -> list[dict]:
    """n closed-loop episodes per task with uniformly random moves, as prompt / completion rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for task in tasks:
        mdp = task.mdp
        for _ in range(n):
            states, actions = [int(rng.choice(mdp.n_states, p=mdp.rho0))], []
            while not mdp.terminal[states[-1]] and len(actions) < task.horizon:
                a = int(rng.integers(mdp.n_actions))
                s = states[-1]
                states.append(int(rng.choice(mdp.next_states[s, a], p=mdp.probs[s, a])))
                actions.append(a)
            rows.append({"prompt": task.prompt, "completion": llm.episode_text(mdp, states, actions)})
    return rows


def train(model, method: str, rows, tok, env, steps: int, lr: float, seed: int, **extra):
    import transformers

    with tempfile.TemporaryDirectory() as out:
        cfg = llm.IFTConfig(
            output_dir=out,
            method=method,
            per_device_train_batch_size=extra.get("batch_size", 8),
            max_steps=steps,
            learning_rate=lr,
            lr_scheduler_type="constant",
            logging_steps=max(1, steps // 5),
            report_to="none",
            save_strategy="no",
            seed=seed,
            disable_tqdm=True,
            dataloader_num_workers=0,
            use_cpu=True,
            **{k: v for k, v in extra.items() if k in ("num_generations", "beta", "loss_type")},
        )
        kw = {k: v for k, v in extra.items() if k in ("ref_model", "reward_funcs")}
        trainer = llm.IFTTrainer(model, args=cfg, train_dataset=rows, processing_class=tok, environment=env, **kw)
        trainer.remove_callback(transformers.PrinterCallback)
        trainer.train()
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


def rows_for(method: str, tasks, repeat: int = 8) -> list[dict]:
    form = {"completion": "completion", "preference": "preference", "unpaired": "unpaired", "prompt": "prompt"}
    return llm.grid_dataset(tasks, form[llm.method_spec(method).form]) * repeat


def tabular(config: StudyConfig, methods: list[str], seeds: int, steps: int) -> dict[str, dict[str, float]]:
    from frozenlake_ift.study import run_study

    result = run_study(StudyConfig(**{**config.to_dict(), "methods": tuple(methods), "seeds": seeds, "steps": steps}))
    return {m: {k: float(np.mean(result.curves[m][k][-1])) for k in METRICS} for m in methods}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--map", default="two-route", help="a make_lake map name (default two-route)")
    ap.add_argument("--slippery", action="store_true")
    ap.add_argument("--horizon", type=int, default=12, help="longest episode in moves")
    ap.add_argument("--methods", default="sft,ift,dpo,dpo_online,grpo")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--base-steps", type=int, default=60, help="SFT steps on random walks (the base model)")
    ap.add_argument("--steps", type=int, default=60, help="steps of the offline methods")
    ap.add_argument("--online-steps", type=int, default=150, help="steps of the on-policy methods")
    ap.add_argument("--generations", type=int, default=16, help="grpo: completions per prompt (both paths)")
    ap.add_argument("--loss-type", default="dapo", help="grpo's averaging (both paths; TRL's default: dapo)")
    ap.add_argument("--online-batch", type=int, default=32, help="on-policy: completions per step")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--online-lr", type=float, default=1e-3)
    ap.add_argument("--max-histories", type=int, default=20_000, help="the judge's cap per depth")
    ap.add_argument("--tabular-seeds", type=int, default=5)
    ap.add_argument("--tabular-steps", type=int, default=300, help="the tabular study's steps (its default)")
    ap.add_argument("--no-tabular", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    config = StudyConfig(
        map=args.map,
        slippery=args.slippery,
        horizon=args.horizon,
        grpo_group=args.generations,
        grpo_loss_type=args.loss_type,
    )
    tok = llm.grid_tokenizer()
    tasks = llm.grid_tasks(config)
    env = llm.GridEnvironment(tasks, tok, seed=args.seed)
    methods = args.methods.split(",")

    base = tiny_model(tok, args.seed)
    train(base, "sft", random_walks(tasks, 64, args.seed), tok, env, args.base_steps, args.lr, args.seed)
    judged: dict[str, llm.GridJudgement] = {}
    losses = {}
    for method in methods:
        spec = llm.method_spec(method)
        model = copy.deepcopy(base)
        extra: dict = {}
        if spec.needs_reference(spec.beta):
            extra["ref_model"] = copy.deepcopy(base)
        if spec.online:
            extra["reward_funcs"] = [llm.grid_reward(tasks)]
            G = args.generations if method == "grpo" else llm.method_spec(method).num_generations
            extra.update(num_generations=G, batch_size=max(1, args.online_batch // G))
            if method == "grpo":
                extra["loss_type"] = args.loss_type
        steps, lr = (args.online_steps, args.online_lr) if spec.online else (args.steps, args.lr)
        curve = train(model, method, rows_for(method, tasks), tok, env, steps, lr, args.seed, **extra)
        losses[method] = curve[-1] if curve else float("nan")
        judged[method] = llm.judge(model, tok, tasks[0], max_histories=args.max_histories)
        if not args.json:
            print(f"  {method}: trained and judged ({time.perf_counter() - t0:.0f} s)", flush=True)
    table = tabular(config, methods, args.tabular_seeds, args.tabular_steps) if not args.no_tabular else {}
    results = {
        "llm": {m: {**j.metrics, "pruned": j.pruned, "unfinished": j.unfinished} for m, j in judged.items()},
        "tabular": table,
        "loss": losses,
        "seconds": time.perf_counter() - t0,
    }
    if args.json:
        print(json.dumps(results))
        return results
    print(
        f"map {args.map}{' (slippery)' if args.slippery else ''}, horizon {args.horizon} | tiny GPT-2 2x64 | base: "
        f"{args.base_steps} SFT steps on random walks | offline {args.steps} steps (lr {args.lr}), on-policy "
        f"{args.online_steps} (lr {args.online_lr}, {args.online_batch} completions a step) | "
        f"tabular: run_study, {args.tabular_seeds} seeds (mean of the final values)"
    )
    head = "".join(f"{k:>17s}" for k in METRICS)
    print(f"{'':12s}{'LLM, exact judge':>{17 * len(METRICS)}s}  |{'tabular study':>{17 * len(METRICS)}s}")
    print(f"{'method':12s}{head}  |{head}")
    for m, j in judged.items():
        row = "".join(f"{j.metrics[k]:17.4g}" for k in METRICS)
        tab = "".join(f"{table[m][k]:17.4g}" for k in METRICS) if m in table else ""
        print(f"{m:12s}{row}  |{tab}")
    worst = max(j.pruned for j in judged.values())
    inexact = [m for m, j in judged.items() if not j.exact]
    print(
        f"(exact up to a pruned mass <= {worst:.1e}"
        + (f"; the history cap was hit for {', '.join(inexact)}" if inexact else "")
        + f"; {statistics.mean(j.histories for j in judged.values()):.0f} histories per model on average; "
        f"{results['seconds']:.0f} s)"
    )
    return results


if __name__ == "__main__":
    main()
