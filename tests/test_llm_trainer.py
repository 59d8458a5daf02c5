"""IFTConfig and IFTTrainer: the four methods train, per-method defaults, bad options, TRL metric names,
metrics that are exact means over the logging interval under gradient accumulation, text datasets."""

from __future__ import annotations

import copy

import pytest
import torch

from frozenlake_ift import llm

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")  # transformers.Trainer needs it (the `llm` extra)

from helpers import tiny_gpt2  # noqa: E402

VOCAB = 24


def examples(n: int = 8, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        k = int(torch.randint(2, 6, (1,), generator=g))
        digits = torch.randint(3, VOCAB, (k,), generator=g).tolist()
        out.append({"prompt_ids": digits + [1], "completion_ids": digits[::-1] + [2]})
    return out


def pair_examples(n: int = 8) -> list[dict]:
    return [
        {"prompt_ids": e["prompt_ids"], "chosen_ids": e["completion_ids"], "rejected_ids": e["completion_ids"][1:]}
        for e in examples(n)
    ]


def config(tmp_path, method: str, **kw):
    opts = dict(
        output_dir=str(tmp_path / method),
        per_device_train_batch_size=8,
        max_steps=8,
        learning_rate=5e-3,
        lr_scheduler_type="constant",
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
        dataloader_num_workers=0,
        method=method,
    )
    return llm.IFTConfig(**{**opts, **kw})


@pytest.mark.parametrize("method", ["ift", "sft", "orpo", "dpo"])
def test_trainer_steps_lower_the_training_loss_and_log_trl_names(tmp_path, method):
    model = tiny_gpt2()
    ref = {"ref_model": copy.deepcopy(model)} if method == "dpo" else {}
    data = pair_examples() if method in ("dpo", "orpo") else examples()
    args = config(tmp_path, method, lam_start=0.0, lam_warmup_steps=5)
    trainer = llm.IFTTrainer(model, args=args, train_dataset=data, **ref)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    curve = [h["loss"] for h in logs]
    assert len(curve) == 8 and curve[-1] < curve[0], curve
    names = set(logs[0]) - {"loss", "grad_norm", "learning_rate", "epoch", "step"}
    assert names and names <= set(llm.METRICS), names - set(llm.METRICS)
    want = {
        "dpo": {"rewards/margins", "rewards/accuracies", "logps/chosen"},
        "orpo": {"nll_loss", "log_odds_ratio"},
        "sft": {"nll_loss", "mean_token_accuracy"},
        "ift": {"ift/lambda", "ift/weight_max", "nll_loss"},
    }[method]
    assert want <= names
    assert trainer.evaluate(eval_dataset=data)["eval_loss"] < curve[0]
    assert all(f"eval_{n}" in trainer.state.log_history[-1] for n in want)  # logged, as TRL does
    if method == "ift":
        assert [h["ift/lambda"] for h in logs[:3]] == pytest.approx([0.0, 0.04, 0.08])  # the warm-up, as logged
    if method == "sft":  # SFT's loss is its nll_loss
        assert all(h["nll_loss"] == pytest.approx(h["loss"], rel=1e-5) for h in logs)
    assert not any((tmp_path / method).glob("checkpoint-*"))


def test_config_defaults_and_bad_options(tmp_path):
    assert config(tmp_path, "dpo").beta == llm.DPO_BETA == 0.1
    assert config(tmp_path, "orpo").beta == llm.ORPO_BETA == 0.25
    assert config(tmp_path, "orpo", beta=0.5).beta == 0.5 and config(tmp_path, "ift").beta is None
    assert config(tmp_path, "ift").remove_unused_columns is False
    for kw, match in (
        ({"method": "ppo2"}, "unknown method"),
        ({"lam": 1.2}, r"\[0, 1\]"),
        ({"gamma": -1}, "gamma"),
        ({"method": "sft", "beta": 0.1}, "not used by method 'sft'"),
        ({"method": "orpo", "label_smoothing": 0.1}, "dpo' only"),
        ({"method": "dpo", "beta": 0.0}, "> 0"),
        ({"max_length": 1}, "max_length"),
    ):
        with pytest.raises(ValueError, match=match):
            config(tmp_path, **{"method": "ift", **kw})
    (parsed,) = transformers.HfArgumentParser(llm.IFTConfig).parse_args_into_dataclasses(
        ["--output_dir", str(tmp_path), "--method", "dpo", "--lam", "0.3"]
    )
    assert (parsed.method, parsed.lam, parsed.beta) == ("dpo", 0.3, 0.1)
    model = tiny_gpt2()
    with pytest.raises(TypeError, match="args must be an IFTConfig"):
        llm.IFTTrainer(model, args=transformers.TrainingArguments(output_dir=str(tmp_path)), train_dataset=examples())
    with pytest.raises(ValueError, match="reference model"):
        llm.IFTTrainer(model, args=config(tmp_path, "dpo"), train_dataset=pair_examples())
    with pytest.raises(ValueError, match="uses no reference model"):
        llm.IFTTrainer(model, args=config(tmp_path, "sft"), train_dataset=examples(), ref_model=model)
    with pytest.raises(ValueError, match=r"row 0 lacks the field\(s\) \['rejected'\]"):
        llm.IFTTrainer(model, args=config(tmp_path, "orpo"), train_dataset=[{"prompt": "a", "chosen": "b"}])


def _interval_run(tmp_path, name, batch, accumulation, lr):
    model = tiny_gpt2()
    args = config(
        tmp_path / name,
        "dpo",
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=accumulation,
        max_steps=4,
        logging_steps=2,
        learning_rate=lr,
        train_sampling_strategy="sequential",
    )
    trainer = llm.IFTTrainer(model, args=args, train_dataset=pair_examples(16), ref_model=tiny_gpt2(seed=1))
    trainer.train()
    return trainer, [h for h in trainer.state.log_history if "loss" in h]


def test_metrics_are_means_over_the_logging_interval_under_accumulation(tmp_path):
    """lr = 0: each log covers 2 steps x 2 micro-batches x 2 pairs = 8 pairs, in order; its metrics are their means."""
    trainer, logs = _interval_run(tmp_path, "frozen", batch=2, accumulation=2, lr=0.0)
    data = pair_examples(16)
    col = llm.PromptResponseCollator()
    assert len(logs) == 2
    for k, log in enumerate(logs):
        batch = col(data[8 * k : 8 * k + 8])
        with torch.no_grad():
            out = llm.lm_loss("dpo", trainer.model, batch, ref_model=trainer.ref_model, beta=0.1)
        for name in ("rewards/chosen", "rewards/margins", "rewards/accuracies", "logps/chosen", "logps/rejected"):
            assert log[name] == pytest.approx(out.metrics[name].mean, rel=1e-5, abs=1e-6), name
        assert log["loss"] == pytest.approx(out.loss.item(), rel=1e-5)
    # training for real: the same global batch split into micro-batches gives the same logs
    _, one = _interval_run(tmp_path, "ga1", batch=4, accumulation=1, lr=5e-3)
    _, two = _interval_run(tmp_path, "ga2", batch=2, accumulation=2, lr=5e-3)
    for a, b in zip(one, two, strict=True):
        for name in ("loss", "rewards/margins", "logps/chosen"):
            assert a[name] == pytest.approx(b[name], rel=1e-4, abs=1e-5), name


def test_text_dataset_with_a_tokenizer_builds_its_collator(tmp_path):
    datasets = pytest.importorskip("datasets")
    from frozenlake_ift.config import StudyConfig

    tok = llm.grid_tokenizer()
    rows = llm.grid_dataset(StudyConfig(), "completion") * 4
    model = tiny_gpt2(vocab=len(tok), n_positions=64)
    trainer = llm.IFTTrainer(
        model,
        args=config(tmp_path, "ift", max_steps=3, per_device_train_batch_size=2),
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tok,
    )
    assert isinstance(trainer.data_collator, llm.PromptResponseCollator)
    trainer.train()
    assert len([h for h in trainer.state.log_history if "loss" in h]) == 3


# ------------------------------------------------------------------------------ every method on the grid task
@pytest.fixture(scope="module")
def grid():
    from frozenlake_ift.config import StudyConfig

    tok = llm.grid_tokenizer()
    tasks = llm.grid_tasks(StudyConfig(horizon=8))
    return tok, tasks, llm.GridEnvironment(tasks, tok, seed=0)


def moves_made(prompts, completions, **_):
    """A reward that varies on a random model (the grid return is 0 on nearly every episode of one)."""
    return [0.1 * len(llm.parse_moves(c)) for c in completions]


FORM = {"completion": "completion", "preference": "preference", "unpaired": "unpaired", "prompt": "prompt"}


@pytest.mark.parametrize("method", ["ipo", "simpo", "kto", "grpo", "rloo", "dpo_online", "ppo"])
def test_every_method_trains_on_the_closed_loop_grid_task(tmp_path, grid, method):
    tok, tasks, env = grid
    spec = llm.method_spec(method)
    model = tiny_gpt2(vocab=len(tok), n_positions=64)
    before = [p.detach().clone() for p in model.parameters()]
    args = config(tmp_path, method, max_steps=2, per_device_train_batch_size=2, logging_steps=1)
    kw = {"ref_model": copy.deepcopy(model)} if spec.needs_reference(args.beta) else {}
    if spec.online:
        kw["reward_funcs"] = [llm.grid_reward(tasks), moves_made]
    rows = llm.grid_dataset(tasks, FORM[spec.form]) * 4
    trainer = llm.IFTTrainer(model, args=args, train_dataset=rows, processing_class=tok, environment=env, **kw)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 2 and all(torch.isfinite(torch.tensor(h["loss"])) for h in logs)
    names = {n.replace("grid_return", "<name>").replace("moves_made", "<name>") for n in logs[0]}
    assert names - {"loss", "grad_norm", "learning_rate", "epoch", "step"} <= set(llm.METRICS)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))  # it trained
    if spec.online:
        assert "rewards/grid_return/mean" in logs[0] and "completions/mean_length" in logs[0]


def test_rollouts_are_reused_for_num_iterations_steps(tmp_path, grid, monkeypatch):
    tok, tasks, env = grid
    model = tiny_gpt2(vocab=len(tok), n_positions=64)
    args = config(tmp_path, "ppo", max_steps=4, per_device_train_batch_size=1, num_iterations=2, beta=0.0)
    trainer = llm.IFTTrainer(
        model,
        args=args,
        train_dataset=llm.grid_dataset(tasks, "prompt") * 4,
        processing_class=tok,
        environment=env,
        reward_funcs=[moves_made],
    )
    calls = []
    original = trainer.sample_rollouts
    monkeypatch.setattr(trainer, "sample_rollouts", lambda m, i: calls.append(1) or original(m, i))
    trainer.train()
    assert len(calls) == 2  # steps 0 and 2 sample, steps 1 and 3 reuse (PPO's second epoch)


def test_llm_path_bad_input_is_one_clear_error(tmp_path, grid):
    tok, tasks, env = grid
    model = tiny_gpt2(vocab=len(tok), n_positions=64)
    prompts = llm.grid_dataset(tasks, "prompt") * 2
    with pytest.raises(ValueError, match="method 'truly' is not on the LLM path"):
        config(tmp_path, "truly")
    with pytest.raises(ValueError, match="unknown method 'ppo2'"):
        config(tmp_path, "ppo2")
    with pytest.raises(ValueError, match="loss_type='dapo' is used by method 'grpo' only"):
        config(tmp_path, "rloo", loss_type="dapo")
    with pytest.raises(ValueError, match="num_generations must be 2"):
        config(tmp_path, "dpo_online", num_generations=3)
    with pytest.raises(ValueError, match="needs reward_funcs"):
        llm.IFTTrainer(model, args=config(tmp_path, "grpo"), train_dataset=prompts, processing_class=tok)
    with pytest.raises(ValueError, match="reward_funcs is for on-policy methods"):
        llm.IFTTrainer(model, args=config(tmp_path, "sft"), train_dataset=examples(), reward_funcs=[moves_made])
    with pytest.raises(ValueError, match=r"row 0 lacks the field\(s\) \['prompt'\]"):
        llm.IFTTrainer(model, args=config(tmp_path, "grpo"), train_dataset=[{"x": 1}], reward_funcs=[moves_made])

    def run(reward):
        args = config(tmp_path, "grpo", max_steps=1, per_device_train_batch_size=1, num_generations=2)
        trainer = llm.IFTTrainer(
            model, args=args, train_dataset=prompts, processing_class=tok, environment=env, reward_funcs=[reward]
        )
        trainer.train()

    def too_few(prompts, completions, **_):
        return [1.0]

    def not_a_number(prompts, completions, **_):
        return [float("nan")] * len(completions)

    with pytest.raises(ValueError, match=r"reward function 'too_few' returned 1 rewards for 2 completions"):
        run(too_few)
    with pytest.raises(ValueError, match=r"reward function 'not_a_number' returned nan for completion 0"):
        run(not_a_number)
    with pytest.raises(ValueError, match=r"example 0 of the batch: the completion is empty"):
        llm.PromptResponseCollator()([{"prompt_ids": [3, 4], "completion_ids": []}])
    empty = llm.Samples(["p"], [[3]], [[11]], [[False]], ["F"], 1)
    with pytest.raises(ValueError, match=r"completions \[0\] are empty"):
        llm.make_rollouts(empty, torch.zeros(1), 0)
