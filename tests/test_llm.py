"""The LLM adapter: token log-probs, IFT input embeddings, the four losses, and the
"one loss, two paths" check against the grid path of study.py (tiny models built from configs)."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from frozenlake_ift import llm, policy

transformers = pytest.importorskip("transformers")

from helpers import tiny_gpt2  # noqa: E402

VOCAB = 24


def tiny_llama(seed: int = 0, vocab: int = VOCAB):
    """Untied input/output embeddings: the input table gets gradient only through the inputs."""
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(
        num_hidden_layers=2,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=vocab,
        max_position_embeddings=32,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    return transformers.LlamaForCausalLM(cfg)


def examples(n: int = 8, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        k = int(torch.randint(2, 6, (1,), generator=g))
        digits = (torch.randint(3, VOCAB, (k,), generator=g)).tolist()
        out.append({"prompt_ids": digits + [1], "response_ids": digits[::-1] + [2]})
    return out


def pair_examples(n: int = 6) -> list[dict]:
    return [
        {"prompt_ids": ex["prompt_ids"], "chosen_ids": ex["response_ids"], "rejected_ids": ex["response_ids"][1:]}
        for ex in examples(n)
    ]


@pytest.fixture(scope="module")
def batch():
    return llm.PromptResponseCollator()(examples())


# ------------------------------------------------------------------------------ basics
def test_import_does_not_pull_transformers():
    code = "import sys, frozenlake_ift.llm; print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_collator_masks_prompt_and_padding(batch):
    ex = examples()
    for b, e in enumerate(ex):
        p, r = len(e["prompt_ids"]), len(e["response_ids"])
        assert batch["input_ids"][b, : p + r].tolist() == e["prompt_ids"] + e["response_ids"]
        assert batch["labels"][b, :p].eq(-100).all() and batch["labels"][b, p : p + r].tolist() == e["response_ids"]
        assert batch["labels"][b, p + r :].eq(-100).all() and batch["attention_mask"][b].sum() == p + r


def test_token_logps_matches_cross_entropy(batch):
    torch.manual_seed(0)
    logits = torch.randn(*batch["input_ids"].shape, VOCAB)  # (B, T, V)
    logps, mask = llm.token_logps(logits, batch["labels"])  # (B, T-1)
    ce = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, VOCAB), batch["labels"][:, 1:].reshape(-1), reduction="none"
    ).view_as(logps)
    assert mask.tolist() == batch["labels"][:, 1:].ne(-100).tolist()
    torch.testing.assert_close(logps[mask], -ce[mask])
    assert logps[~mask].eq(0).all()


def test_ift_inputs_embeds_mixes_only_response_positions(batch):
    model = tiny_gpt2().eval()
    ids, labels, lam = batch["input_ids"], batch["labels"], 0.3
    emb = model.get_input_embeddings().weight  # (V, D)
    out = llm.ift_inputs_embeds(model, ids, labels, lam, batch["attention_mask"])  # (B, T, D)
    with torch.no_grad():
        pred = model(input_ids=ids, attention_mask=batch["attention_mask"]).logits.argmax(-1)  # (B, T)
    resp = labels != -100
    guess = torch.where(resp, torch.cat([ids[:, :1], pred[:, :-1]], 1), ids)  # (B, T)
    torch.testing.assert_close(out[resp], ((1 - lam) * emb[ids] + lam * emb[guess])[resp])
    assert torch.equal(out[~resp], emb[ids][~resp])  # prompt and padding: their own embedding, bit for bit
    assert torch.equal(llm.ift_inputs_embeds(model, ids, labels, 0.0), emb[ids])


def test_scheduled_lambda():
    assert llm.scheduled_lambda(7, lam=0.2) == 0.2
    ramp = [llm.scheduled_lambda(s, lam=0.4, lam_start=0.0, warmup_steps=4) for s in (0, 2, 4, 9)]
    assert ramp == [0.0, 0.2, 0.4, 0.4]
    noisy = [llm.scheduled_lambda(s, lam=0.2, noise_std=0.5, seed=3) for s in range(20)]
    assert noisy == [llm.scheduled_lambda(s, lam=0.2, noise_std=0.5, seed=3) for s in range(20)]  # reproducible
    assert len(set(noisy)) > 10 and all(0 <= v <= 1 for v in noisy)


# ------------------------------------------------------------------------------ losses on a tiny LM
@pytest.mark.parametrize("make", [tiny_gpt2, tiny_llama], ids=["gpt2-tied", "llama-untied"])
def test_ift_loss_finite_and_gradients_reach_every_parameter(make, batch):
    model = make()
    loss, metrics = llm.lm_loss("ift", model, batch, lam=0.2, gamma=0.95)
    assert torch.isfinite(loss) and metrics["ift/lambda"].mean == pytest.approx(0.2)
    loss.backward()
    missing = [
        n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)
    ]
    assert missing == []


@pytest.mark.parametrize("make", [tiny_gpt2, tiny_llama], ids=["gpt2-tied", "llama-untied"])
def test_ift_with_lam0_gamma0_is_exactly_sft(make, batch):
    model = make()
    sft, _ = llm.lm_loss("sft", model, batch)
    ift, _ = llm.lm_loss("ift", model, batch, lam=0.0, gamma=0.0)
    assert torch.equal(sft, ift)
    g_sft = torch.autograd.grad(sft, list(model.parameters()))
    g_ift = torch.autograd.grad(ift, list(model.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(g_sft, g_ift, strict=True))
    hf = model(**batch).loss  # HF's token-mean equals the per-sequence mean only for equal lengths: compare per row
    row = [model(**{k: v[b : b + 1] for k, v in batch.items()}).loss for b in range(batch["labels"].shape[0])]
    torch.testing.assert_close(sft, torch.stack(row).mean())
    assert torch.isfinite(hf)


def test_preference_losses_on_tiny_lm():
    model = tiny_gpt2()
    pb = llm.PromptResponseCollator()(pair_examples())
    dpo, m = llm.lm_loss("dpo", model, pb, ref_model=copy.deepcopy(model))
    assert math.isclose(dpo.item(), math.log(2), rel_tol=1e-6) and m["rewards/margins"].mean == 0  # policy == reference
    orpo, m = llm.lm_loss("orpo", model, pb)
    assert torch.isfinite(orpo) and math.isfinite(m["log_odds_chosen"].mean)
    orpo.backward()
    assert all(p.grad is not None for p in model.parameters())


# ------------------------------------------------------------------------------ bad input
def test_bad_inputs_raise_clear_errors(batch):
    model = tiny_gpt2()
    dead = {**batch, "labels": torch.full_like(batch["labels"], -100)}
    with pytest.raises(ValueError, match="all ignore_index"):
        llm.lm_loss("sft", model, dead)
    with pytest.raises(ValueError, match="all ignore_index"):
        llm.token_logps(torch.zeros(2, 5, VOCAB), torch.full((2, 5), -100))
    for lam in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"lam .*\[0, 1\]"):
            llm.lm_loss("ift", model, batch, lam=lam)
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            llm.scheduled_lambda(0, lam=lam)
    pb = llm.PromptResponseCollator()(pair_examples())
    short = {**pb, **{k: v[:-1] for k, v in pb.items() if k.startswith("rejected")}}
    for method, kw in (("dpo", {"ref_model": model}), ("orpo", {})):
        with pytest.raises(ValueError, match="same batch size"):
            llm.lm_loss(method, model, short, **kw)
    with pytest.raises(ValueError, match="reference model"):
        llm.lm_loss("dpo", model, pb)
    with pytest.raises(ValueError, match="unknown method"):
        llm.lm_loss("ppo2", model, batch)
    with pytest.raises(ValueError, match="method 'truly' is not on the LLM path"):
        llm.lm_loss("truly", model, batch)
    with pytest.raises(TypeError, match="on-policy method 'grpo' trains on Rollouts"):
        llm.lm_loss("grpo", model, batch)
    with pytest.raises(ValueError, match=r"shape \(B, T, V\)"):
        llm.token_logps(torch.zeros(2, 5, VOCAB), torch.zeros(2, 4, dtype=torch.long))


# ------------------------------------------------------------------------------ one loss, two paths
class GridLM(torch.nn.Module):
    """A "language model" over the states of a deterministic Frozen-Lake map.

    Vocabulary = states; the input embedding table is the one-hot state table (frozen); the body is the
    two-layer policy network of policy.py (E = 1); the next-token logit of state s' is the logit of the
    action leading from the current state to s' (logsumexp over actions that lead to the same s';
    unreachable states get -1e4, whose exp underflows to exactly 0). The current state is the largest
    component of the input, i.e. s*_i for IFT's (1 - lam) onehot(s*_i) + lam onehot(s_hat) when lam < 0.5.
    """

    def __init__(self, params: dict, P: torch.Tensor, activation: str):
        super().__init__()
        S = P.shape[0]
        assert P.max(-1).values.eq(1).all(), "GridLM needs a deterministic map"
        self.activation = activation
        self.embed = torch.nn.Embedding(S, S, dtype=P.dtype)
        self.embed.weight.data.copy_(torch.eye(S, dtype=P.dtype))
        self.embed.weight.requires_grad_(False)
        self.net = torch.nn.ParameterDict({k: torch.nn.Parameter(v.detach().clone()) for k, v in params.items()})
        routes = torch.nn.functional.one_hot(P.argmax(-1), S).bool()  # (S, A, S'): action a leads from s to s'
        self.register_buffer("log_route", torch.where(routes, 0.0, -1e4).to(P.dtype))  # (S, A, S')

    def get_input_embeddings(self):
        return self.embed

    def forward(self, input_ids=None, inputs_embeds=None, attention_mask=None):
        x = self.embed(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, S)
        act = policy.logits(dict(self.net), x[None], self.activation)[0]  # (B, T, A)
        here = x.argmax(-1)  # (B, T)
        return SimpleNamespace(logits=torch.logsumexp(act[..., None] + self.log_route[here], dim=-2))  # (B, T, S')


# A deterministic map ringed by holes: from every frozen tile the four actions lead to four different
# states, so the greedy next *state* is the state of the greedy *action* (no wall bumps merging two
# actions into "stay"). The study's "two-route" map has such merges in its corners: there per-step
# log-probs and the SFT / DPO / ORPO losses still agree (every target state is reached by one action),
# but IFT's greedy guess from a corner can differ (logsumexp of two "stay" actions beats a third).
MOAT = ("HHHHHH", "HSFFFH", "HFHHFH", "HFHHGH", "HFFFFH", "HHHHHH")
MAPS = {"moat": MOAT, "two-route": "two-route"}


def _grid_setup(map_name: str, seed: int, lam: float = 0.2):
    study = pytest.importorskip("frozenlake_ift.study")
    cfg = study.StudyConfig(map=MAPS[map_name], dtype="float64", seeds=1, seed=seed, lam=lam)
    data = study.build_data(cfg)
    S, A = data.mdp.n_states, data.mdp.n_actions
    theta = policy.init_params(S, A, cfg.hidden, [seed], dtype=torch.float64)  # the model being trained
    ref = policy.init_params(S, A, cfg.hidden, [seed + 100], dtype=torch.float64)  # DPO's frozen reference
    chosen, rejected = (list(t.states) for t in (data.chosen, data.rejected))
    assert chosen[0] == rejected[0]
    col = llm.PromptResponseCollator(pad_token_id=chosen[0])  # prompt = s_0 (rho0), response = the states reached
    sft_batch = col([{"prompt_ids": chosen[:1], "response_ids": chosen[1:]}])
    pair_batch = col([{"prompt_ids": chosen[:1], "chosen_ids": chosen[1:], "rejected_ids": rejected[1:]}])
    return study, cfg, data, theta, ref, sft_batch, pair_batch


@pytest.mark.parametrize("map_name", ["two-route", "moat"])
def test_one_loss_two_paths_step_logps(map_name):
    study, cfg, data, theta, _ref, _sft_batch, pair_batch = _grid_setup(map_name, seed=0)
    lm = GridLM(theta, data.P, cfg.activation)
    mask = data.pair_mask  # (2, T)
    grid = study.pair_step_logps(theta, data, cfg.activation)[0]  # (2, T)
    pc, mc, pr, mr = llm.pair_token_logps(lm, pair_batch)  # each (1, T)
    assert torch.equal(torch.cat([mc, mr]), mask)
    torch.testing.assert_close(torch.cat([pc, pr])[mask], grid[mask], rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_loss_two_paths_ift_inputs(seed):
    """lam > 0: the adapter's E(greedy next token) is the grid's P(. | s*_{i-1}, argmax_a pi(a | s*_{i-1}))."""
    study, cfg, data, theta, _ref, sft_batch, _pair_batch = _grid_setup("moat", seed, lam=0.3)
    lm = GridLM(theta, data.P, cfg.activation)
    ids, labels = sft_batch["input_ids"], sft_batch["labels"]  # (1, n + 1)
    n = ids.shape[1] - 1
    with torch.no_grad():
        a_hat = policy.log_probs(theta, data.eye[ids[:, :-1]], cfg.activation)[0].argmax(-1)  # (n,)
        grid_pred = data.P[ids[0, :-1], a_hat]  # (n, S): P(. | s*_{i-1}, a_hat), i = 1..n
    guess = llm.greedy_next_tokens(lm, ids)[0, 1:]  # (n,)
    torch.testing.assert_close(lm.get_input_embeddings()(guess), grid_pred, rtol=0, atol=0)
    assert guess[: n - 1].tolist() != ids[0, 1:n].tolist()  # the greedy guesses differ from the target somewhere
    mixed = llm.ift_inputs_embeds(lm, ids, labels, cfg.lam)  # (1, n + 1, S)
    grid_x = torch.cat([data.eye[ids[:, :1]], (1 - cfg.lam) * data.eye[ids[:, 1:]] + cfg.lam * grid_pred[None]], 1)
    torch.testing.assert_close(mixed, grid_x, rtol=0, atol=1e-15)
    lm_ift, m = llm.token_logps(lm(inputs_embeds=mixed).logits, labels)  # (1, n)
    grid_ift = study.pair_step_logps(theta, data, cfg.activation, lam=cfg.lam)[0, 0]  # (T,)
    torch.testing.assert_close(lm_ift[m], grid_ift[data.pair_mask[0]], rtol=0, atol=1e-12)
    lam0 = study.pair_step_logps(theta, data, cfg.activation)[0, 0]  # (T,)
    assert not torch.allclose(grid_ift, lam0)  # lam really changed the inputs


CASES = [
    (m, meth)
    for m in ("moat", "two-route")
    for meth in ("sft", "ift", "dpo", "orpo", "ipo", "simpo", "kto")
    if (m, meth) != ("two-route", "ift")
]


def unpaired_batch(pair_batch: dict) -> dict:
    """KTO's rows of one pair: the chosen answer desirable, the rejected one not, each other's KL row."""
    ids = {k: pair_batch[f"{k}_input_ids"][0].tolist() for k in ("chosen", "rejected")}
    labels = {k: pair_batch[f"{k}_labels"][0].tolist() for k in ("chosen", "rejected")}
    n = {k: sum(1 for t in labels[k] if t != -100) for k in labels}
    prompt = ids["chosen"][: ids["chosen"].index(ids["chosen"][0]) + 1]
    rows = [
        {"prompt_ids": prompt, "completion_ids": labels[k][len(prompt) : len(prompt) + n[k]], "label": k == "chosen"}
        for k in ("chosen", "rejected")
    ]
    return llm.PromptResponseCollator(pad_token_id=prompt[0])(rows)


@pytest.mark.parametrize("map_name,method", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_one_loss_two_paths_loss_and_gradient(map_name, method, seed):
    study, cfg, data, theta, ref, sft_batch, pair_batch = _grid_setup(map_name, seed)
    theta = policy.clone_params(theta)
    grid_loss = study.method_loss(method, theta, data, cfg, base=ref).loss  # (1,): the registry's method, theta_0 = ref
    lm = GridLM(theta, data.P, cfg.activation)
    ref_lm = GridLM(ref, data.P, cfg.activation)
    hp = {
        "sft": {},
        "ift": {"lam": cfg.lam, "gamma": cfg.prop_gamma},
        "dpo": {"beta": cfg.dpo_beta, "ref_model": ref_lm},
        "orpo": {"beta": cfg.orpo_beta},
        "ipo": {"beta": cfg.ipo_beta, "ref_model": ref_lm},
        "simpo": {"beta": cfg.simpo_beta, "simpo_gamma": cfg.simpo_margin},
        "kto": {"beta": cfg.kto_beta, "ref_model": ref_lm},
    }[method]
    batch = {"sft": sft_batch, "ift": sft_batch, "kto": unpaired_batch(pair_batch)}.get(method, pair_batch)
    lm_loss, _ = llm.lm_loss(method, lm, batch, **hp)
    torch.testing.assert_close(lm_loss, grid_loss[0], rtol=0, atol=1e-12)
    grid_grads = torch.autograd.grad(grid_loss.sum(), [theta[k] for k in policy.PARAM_NAMES])
    lm_grads = torch.autograd.grad(lm_loss, [lm.net[k] for k in policy.PARAM_NAMES])
    for k, g, h in zip(policy.PARAM_NAMES, grid_grads, lm_grads, strict=True):
        torch.testing.assert_close(h, g, rtol=0, atol=1e-10, msg=f"gradient of {k}")
