"""The LLM path's losses against TRL's own trainers (the optional `peer` extra): on the same batch of the grid
task, a 1-layer GPT-2 built from a config, each loss and every parameter's gradient agree within 1e-5.

DPO, IPO (DPOTrainer), ORPO (ORPOTrainer), SimPO (CPOTrainer, cpo_alpha = 0) and KTO (KTOTrainer) read the
batch TRL's own data pipeline builds from text rows; ours come from our collator on the same rows (so the
tokenisation is compared too). GRPO (each loss type, one with the KL term) and RLOO (its KL penalty in the
reward) score fixed completions: TRL's generation is replaced by a function returning them, and the rest
(rewards, advantages, log-probs, the loss) is TRL's code; GRPO's observation tokens are TRL tool-masked.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from frozenlake_ift import llm, losses
from frozenlake_ift.config import StudyConfig

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")
transformers = pytest.importorskip("transformers")

TOL = 1e-5
R, D, U = "right", "down", "up"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch.manual_seed(0)
    tok = llm.grid_tokenizer()
    cfg = transformers.GPT2Config(
        n_layer=1,
        n_embd=16,
        n_head=2,
        vocab_size=len(tok),
        n_positions=64,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    ref = transformers.GPT2LMHeadModel(cfg)
    path = tmp_path_factory.mktemp("tiny")
    ref.save_pretrained(path)
    model = copy.deepcopy(ref)  # the policy: the reference moved a little, so every KL term and ratio is live
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    model.config._name_or_path = str(path)  # GRPO / RLOO build their reference from this path: ref
    (task,) = llm.grid_tasks(StudyConfig(horizon=12))
    return tok, model, task, path, ref


def common(path, **kw) -> dict:
    base = dict(
        output_dir=str(path / "out"),
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        save_strategy="no",
        per_device_train_batch_size=2,
        bf16=False,  # TRL defaults to bf16 autocast on CPU: both sides float32
    )
    return {**base, **kw}


def rows(task) -> list[dict]:
    """Two preference rows; both chosen answers 6 moves long (ORPO's NLL: see test_orpo_matches_trl)."""
    other = llm.episode_text(task.mdp, (0, 5, 10, 15, 20, 21, 22), (1, 1, 1, 1, 2, 2))
    first = llm.grid_dataset([task], "preference")[0]
    return [first, {"prompt": task.prompt, "chosen": other, "rejected": f" {U} S"}]


def compare(trl_loss, trl_model, ours, our_model) -> None:
    """Loss and every parameter's gradient within TOL; prints the largest differences (``pytest -s``)."""
    gap = abs(trl_loss.item() - ours.item())
    assert gap <= TOL, (trl_loss.item(), ours.item())
    trl_loss.backward()
    ours.backward()
    theirs = dict(trl_model.named_parameters())
    worst = 0.0
    for name, p in our_model.named_parameters():
        g, h = p.grad, theirs[name].grad
        assert (g is None) == (h is None), name
        if g is not None:
            worst = max(worst, float((g - h).abs().max()))
    print(f"\nloss {ours.item():.6f}: |loss difference| {gap:.1e}, largest |gradient difference| {worst:.1e}")
    assert worst <= TOL, worst
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in our_model.parameters())


def trl_trainer(cls, config, model, path, data, ref=None, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        extra = {} if ref is None else {"ref_model": ref}
        trainer = cls(model=model, args=config, train_dataset=data, **extra, **kw)
    trainer.model.train()
    return trainer


@pytest.mark.parametrize("method", ["dpo", "ipo", "simpo"])
def test_preference_losses_match_trl(setup, method):
    tok, base, task, path, ref = setup
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    data = rows(task)
    model = copy.deepcopy(base)
    hp = {"beta": {"dpo": 0.1, "ipo": 0.1, "orpo": 0.25, "simpo": 2.0}[method]}
    if method in ("dpo", "ipo"):
        config = trl.DPOConfig(**common(path, beta=hp["beta"], loss_type=[{"dpo": "sigmoid"}.get(method, method)]))
        trainer = trl_trainer(
            trl.DPOTrainer,
            config,
            model,
            path,
            datasets.Dataset.from_list(data),
            copy.deepcopy(ref),
            processing_class=tok,
        )
        hp["ref_model"] = copy.deepcopy(ref)
    else:
        hp["simpo_gamma"] = 0.5
        config = CPOConfig(**common(path, beta=hp["beta"], loss_type="simpo", cpo_alpha=0.0, simpo_gamma=0.5))
        trainer = trl_trainer(CPOTrainer, config, model, path, datasets.Dataset.from_list(data), processing_class=tok)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    trl_loss = trainer.compute_loss(trainer.model, batch)
    ours_model = copy.deepcopy(base)
    ours = llm.lm_loss(method, ours_model, llm.PromptResponseCollator(tok.pad_token_id, tokenizer=tok)(data), **hp)
    compare(trl_loss, trainer.model, ours.loss, ours_model)


def test_orpo_odds_ratio_term_matches_trl(setup):
    """TRL's ORPOTrainer adds the NLL of the chosen answer over prompt *and* answer tokens ("orpo chosen nll loss
    is computed over the full prompt and response"); ours is the answer's, as the ORPO paper and the IFT
    authors write it. The odds-ratio terms (what the two share) agree, value and gradients."""
    tok, base, task, path, _ref = setup
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    data = rows(task)
    trainer = trl_trainer(
        ORPOTrainer,
        ORPOConfig(**common(path, beta=0.25)),
        copy.deepcopy(base),
        path,
        datasets.Dataset.from_list(data),
        processing_class=tok,
    )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    chosen, rejected = trainer.concatenated_forward(trainer.model, batch)[:2]
    trl_term = -trainer.odds_ratio_loss(chosen, rejected)[0].mean()
    ours_model = copy.deepcopy(base)
    ours_batch = llm.PromptResponseCollator(tok.pad_token_id, tokenizer=tok)(data)
    ours = (
        llm.lm_loss("orpo", ours_model, ours_batch, beta=0.25).loss
        - llm.lm_loss("orpo", ours_model, ours_batch, beta=0.0).loss
    )
    compare(trl_term, trainer.model, ours, ours_model)


def test_kto_matches_trl(setup):
    tok, base, task, path, ref = setup
    others = llm.grid_tasks([StudyConfig(map="4x4", horizon=8), StudyConfig(map=("SFF", "FFF", "FFG"), horizon=8)])
    data = [rows(task)[0], *llm.grid_dataset(others, "preference")]  # three prompts: the KL rotation shows
    config = trl.KTOConfig(**common(path, beta=0.1, per_device_train_batch_size=6))
    trainer = trl_trainer(
        trl.KTOTrainer,
        config,
        copy.deepcopy(base),
        path,
        datasets.Dataset.from_list(data),
        copy.deepcopy(ref),
        processing_class=tok,
    )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(6)])  # one block: its KL rotation
    trl_loss = trainer.compute_loss(trainer.model, batch)
    ours_model = copy.deepcopy(base)
    unpaired = llm.unpair_rows(data)
    assert [r["label"] for r in unpaired] == batch["label"].tolist()
    ours = llm.lm_loss(
        "kto",
        ours_model,
        llm.PromptResponseCollator(tok.pad_token_id, tokenizer=tok)(unpaired),
        ref_model=copy.deepcopy(ref),
        beta=0.1,
    )
    assert ours.metrics["kl"].mean > 0  # a live reference point z0
    compare(trl_loss, trainer.model, ours.loss, ours_model)


def episodes(task, tok):
    """Four closed-loop episodes of the two-route map (G, a hole, a stop, G the long way), as completions."""
    plans = [
        ([R, R, R, R, D, D], False),
        ([D, D, R], False),
        ([R], True),
        ([D, D, D, D, R, R, R, R, U, U], False),
    ]
    mdp, out = task.mdp, []
    moves = {a: i for i, a in enumerate(llm.grid.ACTION_NAMES)}
    for plan, stop in plans:
        states = [0]
        for a in plan:
            states.append(int(mdp.next_states[states[-1], moves[a], 0]))
        words = llm.episode_text(mdp, states, [moves[a] for a in plan]).split() + (["<eos>"] if stop else [])
        ids = tok.convert_tokens_to_ids(words)
        trained = [w not in "SFHG" for w in words]
        out.append((ids, trained, states))
    return out


@pytest.mark.parametrize("loss_type,beta", [("grpo", 0.0), ("bnpo", 0.0), ("dapo", 0.04), ("dr_grpo", 0.0)])
def test_grpo_loss_types_match_trl(setup, loss_type, beta):
    tok, base, task, path, ref = setup
    eps = episodes(task, tok)
    prompt_ids = tok(task.prompt, add_special_tokens=False)["input_ids"]
    reward = llm.grid_reward([task])

    def fake_generate(prompts):
        return (
            [prompt_ids] * 4,
            [e[0] for e in eps],
            [[int(t) for t in e[1]] for e in eps],
            [tok.decode(e[0]) for e in eps],
            None,
            {"states": [e[2] for e in eps]},
            None,
            None,
        )

    config = trl.GRPOConfig(
        **common(
            path,
            per_device_train_batch_size=4,
            num_generations=2,
            max_completion_length=24,
            beta=beta,
            loss_type=loss_type,
            logging_steps=1,
        )
    )
    trainer = trl_trainer(
        trl.GRPOTrainer,
        config,
        copy.deepcopy(base),
        path,
        datasets.Dataset.from_list([{"prompt": task.prompt}] * 4),
        reward_funcs=[reward],
        processing_class=tok,
    )
    trainer._generate = fake_generate
    trainer.current_gradient_accumulation_steps = 1
    inputs = trainer._generate_and_score_completions([{"prompt": task.prompt} for _ in range(4)])
    samples = llm.Samples(
        [task.prompt] * 4,
        [prompt_ids] * 4,
        [e[0] for e in eps],
        [e[1] for e in eps],
        [tok.decode(e[0]) for e in eps],
        2,
        {"states": [e[2] for e in eps]},
    )
    rewards, _ = llm.score_completions([reward], samples)
    # sampled by another policy (the reference): ratios away from 1, some clipped, on both sides
    rollouts = llm.make_rollouts(
        samples, rewards, tok.pad_token_id, sampling_model=ref, ref_model=ref if beta else None
    )
    P = len(prompt_ids) - 1
    inputs["old_per_token_logps"] = rollouts.old_logps[:, P : P + inputs["completion_ids"].shape[1]]
    trl_loss = trainer.compute_loss(trainer.model, inputs)
    torch.testing.assert_close(  # TRL's advantages come from the same rewards
        losses.group_advantages(rewards.view(2, 2)).flatten(), inputs["advantages"], atol=TOL, rtol=0
    )
    ours_model = copy.deepcopy(base)
    ours = llm.grpo_lm_loss(ours_model, rollouts, beta=beta, epsilon=0.2, loss_type=loss_type, max_completion_length=24)
    assert ours.metrics["clip_ratio/region_mean"].mean > 0
    compare(trl_loss, trainer.model, ours.loss, ours_model)


def test_rloo_matches_trl(setup):
    tok, base, task, path, ref = setup
    texts = [" right F right F down H", " down F", " up S up S right F <eos>", " right F"]
    comps = [tok.convert_tokens_to_ids(t.split()) for t in texts]
    prompt_ids = tok(task.prompt, add_special_tokens=False)["input_ids"]

    def rights(prompts, completions, completion_ids, **kw):  # a text reward: the number of "right" moves
        return [float(c.count("right")) for c in completions]

    config = trl.RLOOConfig(**common(path, per_device_train_batch_size=4, num_generations=2, beta=0.05))
    trainer = trl_trainer(
        trl.RLOOTrainer,
        config,
        copy.deepcopy(base),
        path,
        datasets.Dataset.from_list([{"prompt": task.prompt}] * 4),
        reward_funcs=[rights],
        processing_class=tok,
    )
    trainer._generate = lambda prompts: ([prompt_ids] * 4, comps, [tok.decode(c) for c in comps])
    inputs = trainer._generate_and_score_completions([{"prompt": task.prompt} for _ in range(4)])
    trl_loss = trainer.compute_loss(trainer.model, inputs)

    samples = llm.Samples(
        [task.prompt] * 4, [prompt_ids] * 4, comps, [[True] * len(c) for c in comps], [tok.decode(c) for c in comps], 2
    )
    rewards, _ = llm.score_completions([rights], samples)
    ours_model = copy.deepcopy(base)
    rollouts = llm.make_rollouts(samples, rewards, tok.pad_token_id, ref_model=ref)
    ours = llm.rloo_lm_loss(ours_model, rollouts, beta=0.05, epsilon=0.2)
    assert abs(ours.metrics["kl"].mean) > 0.01  # a live KL penalty in the rewards
    compare(trl_loss, trainer.model, ours.loss, ours_model)
