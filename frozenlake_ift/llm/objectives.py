"""The training objectives on a causal LM: batch -> loss + metrics, and ``METHODS``, the LLM path's methods.

The offline objectives (sft / ift / dpo / orpo / ipo / simpo / kto) turn a collated batch into per-step
log-probs with ``token_logps`` and call the very functions of ``losses.py`` that the grid study uses;
the on-policy ones (grpo / rloo / dpo_online / ppo) live in ``online.py`` and take ``Rollouts``.
``METHODS`` is the one table of methods: the rows each trains on, whether it needs a frozen
reference model, its default beta (the grid study's own defaults, ``StudyConfig``), and for on-policy
methods the completions per prompt and the clip range. ``METRICS`` names every logged metric
(TRL's names where TRL has one) and says what it averages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .. import losses
from ..config import field_default
from ..methods import method_names
from .inputs import greedy_next_tokens, ift_inputs_embeds
from .logps import IGNORE_INDEX, model_logits, token_logps
from .metrics import LMLoss, Metric
from .online import dpo_online_lm_loss, grpo_lm_loss, ppo_lm_loss, rloo_lm_loss

PAIR_SIDES = ("chosen", "rejected")
DPO_BETA = field_default("dpo_beta")  # 0.1: as the authors ran it (and TRL's default)
ORPO_BETA = field_default("orpo_beta")  # 0.25: as the authors ran it (TRL's default is 0.1)
FORMS = ("completion", "preference", "unpaired", "prompt")  # the rows a method trains on (MethodSpec.form)
PPO_GENERATIONS = 4  # ppo: completions per prompt (the grid path's ppo_episodes = 64 is per ensemble member)

METRICS: dict[str, str] = {  # name -> what it is; each is a mean over the examples (or tokens) of a logging interval
    "rewards/chosen": "DPO, KTO: beta * (log pi - log ref) of the chosen (desirable) response, summed over its "
    "tokens; IPO: the same with average log-probs; ORPO, SimPO: beta * its average token log-prob",
    "rewards/rejected": "the same for the rejected response",
    "rewards/margins": "rewards/chosen - rewards/rejected",
    "rewards/accuracies": "fraction of pairs with rewards/chosen > rewards/rejected",
    "logps/chosen": "log-prob of the chosen response: summed over its tokens (DPO), averaged (ORPO)",
    "logps/rejected": "the same for the rejected response",
    "nll_loss": "mean token NLL of the target (SFT, IFT: per sequence, uniform weights, on the inputs trained on) "
    "or of the chosen response (ORPO)",
    "log_odds_ratio": "ORPO: mean log sigmoid(log odds(chosen) - log odds(rejected))",
    "log_odds_chosen": "ORPO: mean log odds(chosen) - log odds(rejected)",
    "mean_token_accuracy": "fraction of target tokens equal to the model's argmax under teacher forcing "
    "(per token; IFT: from its greedy pass on the target prefix)",
    "ift/lambda": "IFT: lambda (temporal-residual weight, Eq. 17) of the batch",
    "ift/weight_max": "IFT: largest relation-propagation weight of a sequence (1 = uniform, as SFT)",
    "kl": "KTO: the batch's KL estimate z0 (the reference point); on-policy methods with beta > 0: the mean "
    "per-token KL to the reference (GRPO: k3; RLOO, PPO: log pi - log ref)",
    "reward": "on-policy: mean reward of the completions (the weighted sum of the reward functions)",
    "reward_std": "on-policy: standard deviation of the rewards of a batch",
    "rewards/<name>/mean": "on-policy: mean reward of the reward function <name>",
    "frac_reward_zero_std": "on-policy: fraction of prompts whose completions all got the same reward",
    "completions/mean_length": "on-policy: mean number of the model's own tokens per completion",
    "clip_ratio/region_mean": "GRPO: fraction of tokens whose ratio was clipped",
    "pairs/labelled": "online DPO: fraction of pairs with a preference (different rewards)",
}


def _check_batch(batch: dict, keys: Sequence[str]) -> None:
    missing = [k for k in keys if k not in batch]
    if missing:
        raise ValueError(f"batch lacks the keys {missing}; it has {sorted(batch)}")


def _pad_to(x: torch.Tensor, length: int, value: int) -> torch.Tensor:
    return torch.nn.functional.pad(x, (0, length - x.shape[1]), value=value)  # (B, length)


def pair_token_logps(
    model: torch.nn.Module, batch: dict, ignore_index: int = IGNORE_INDEX, pad_token_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token log-probs of the chosen and rejected responses in one concatenated forward pass.

    batch: chosen_/rejected_ input_ids, labels (B, T_c) / (B, T_r), optional attention_mask.
    Shape: -> chosen logps, chosen mask, rejected logps, rejected mask, each (B, max(T_c, T_r) - 1).
    """
    _check_batch(batch, [f"{s}_{k}" for s in PAIR_SIDES for k in ("input_ids", "labels")])
    B_c, B_r = batch["chosen_input_ids"].shape[0], batch["rejected_input_ids"].shape[0]
    if B_c != B_r:
        raise ValueError(
            f"chosen and rejected must have the same batch size (one pair per row), got {B_c} chosen and {B_r} rejected"
        )
    T = max(batch["chosen_input_ids"].shape[1], batch["rejected_input_ids"].shape[1])
    ids = torch.cat([_pad_to(batch[f"{s}_input_ids"], T, pad_token_id) for s in PAIR_SIDES])  # (2B, T)
    labels = torch.cat([_pad_to(batch[f"{s}_labels"], T, ignore_index) for s in PAIR_SIDES])  # (2B, T)
    att = None
    if "chosen_attention_mask" in batch:
        att = torch.cat([_pad_to(batch[f"{s}_attention_mask"], T, 0) for s in PAIR_SIDES])  # (2B, T)
    logps, mask = token_logps(model_logits(model, input_ids=ids, attention_mask=att), labels, ignore_index)  # (2B, T-1)
    return logps[:B_c], mask[:B_c], logps[B_c:], mask[B_c:]


def _accuracy(pred: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> Metric:
    """Fraction of target tokens predicted. pred (B, T-1) next-token argmax, labels (B, T), mask (B, T-1)."""
    return Metric.mean_of((pred == labels[:, 1:])[mask])


def sft_lm_loss(model, batch, ignore_index: int = IGNORE_INDEX, **_: object) -> LMLoss:
    """Mean token NLL of the response. batch: input_ids, labels (B, T), optional attention_mask."""
    _check_batch(batch, ("input_ids", "labels"))
    logits = model_logits(model, input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"))  # (B, T, V)
    logps, mask = token_logps(logits, batch["labels"], ignore_index)  # (B, T-1)
    loss = losses.sft_loss(logps, mask)
    with torch.no_grad():
        pred = logits[:, :-1].argmax(-1)  # (B, T-1): reads the logits, copies nothing of size V
    rows = batch["labels"].shape[0]
    return LMLoss(
        loss,
        {"nll_loss": Metric(loss.detach() * rows, rows), "mean_token_accuracy": _accuracy(pred, batch["labels"], mask)},
    )


def ift_lm_loss(
    model,
    batch,
    lam: float = 0.2,
    gamma: float = 0.95,
    detach_weights: bool = False,
    ignore_index: int = IGNORE_INDEX,
    **_: object,
) -> LMLoss:
    """IFT: temporal residual inputs (Eq. 17) + dynamic relation propagation (Algorithm 1)."""
    _check_batch(batch, ("input_ids", "labels"))
    ids, labels, att = batch["input_ids"], batch["labels"], batch.get("attention_mask")
    guess = greedy_next_tokens(model, ids, att, labels, ignore_index) if lam > 0 else None  # (B, T), no-grad pass
    embeds = ift_inputs_embeds(model, ids, labels, lam, att, ignore_index, guess=guess)  # (B, T, D)
    logits = model_logits(model, inputs_embeds=embeds, attention_mask=att)  # (B, T, V)
    logps, mask = token_logps(logits, labels, ignore_index)  # (B, T-1)
    loss = losses.ift_loss(logps, mask, gamma=gamma, detach_weights=detach_weights)
    rows = labels.shape[0]
    with torch.no_grad():
        weights = losses.relation_weights(-logps.detach(), mask, gamma)  # (B, T-1)
        nll = losses.sft_loss(logps.detach(), mask, reduction="none")  # (B,)
        pred = logits[:, :-1].argmax(-1) if guess is None else guess[:, 1:]  # (B, T-1); lam = 0: target inputs
    return LMLoss(
        loss,
        {
            "nll_loss": Metric.mean_of(nll),
            "mean_token_accuracy": _accuracy(pred, labels, mask),
            "ift/lambda": Metric(torch.tensor(float(lam) * rows), rows),
            "ift/weight_max": Metric.mean_of(weights.amax(dim=1)),
        },
    )


def _pair_metrics(
    chosen_r: torch.Tensor, rejected_r: torch.Tensor, chosen_logps: torch.Tensor, rejected_logps: torch.Tensor
) -> dict[str, Metric]:
    """TRL's rewards/* and logps/* metrics; every argument Shape (B,)."""
    return {
        "rewards/chosen": Metric.mean_of(chosen_r),
        "rewards/rejected": Metric.mean_of(rejected_r),
        "rewards/margins": Metric.mean_of(chosen_r - rejected_r),
        "rewards/accuracies": Metric.mean_of((chosen_r > rejected_r).float()),
        "logps/chosen": Metric.mean_of(chosen_logps),
        "logps/rejected": Metric.mean_of(rejected_logps),
    }


def dpo_lm_loss(
    model,
    batch,
    ref_model: torch.nn.Module | None = None,
    beta: float = DPO_BETA,
    label_smoothing: float = 0.0,
    ignore_index: int = IGNORE_INDEX,
    **_: object,
) -> LMLoss:
    """DPO with summed response log-probs and a frozen reference model (beta = 0.1 as the authors ran it)."""
    if ref_model is None:
        raise ValueError("method 'dpo' needs a frozen reference model: pass ref_model=copy.deepcopy(model)")
    pc, mc, pr, mr = pair_token_logps(model, batch, ignore_index)  # each (B, T-1)
    with torch.no_grad():
        rc, rmc, rr, rmr = pair_token_logps(ref_model, batch, ignore_index)
    seq = losses.sequence_logps
    chosen, rejected = seq(pc, mc), seq(pr, mr)  # (B,)
    out, chosen_r, rejected_r = losses.dpo_loss(
        chosen, rejected, seq(rc, rmc), seq(rr, rmr), beta=beta, label_smoothing=label_smoothing
    )  # (B,)
    return LMLoss(out.mean(), _pair_metrics(chosen_r, rejected_r, chosen, rejected))


def orpo_lm_loss(model, batch, beta: float = ORPO_BETA, ignore_index: int = IGNORE_INDEX, **_: object) -> LMLoss:
    """ORPO with average response log-probs (beta = 0.25 as the authors ran it); no reference model."""
    pc, mc, pr, mr = pair_token_logps(model, batch, ignore_index)
    chosen_avg = losses.sequence_logps(pc, mc, average=True)  # (B,)
    rejected_avg = losses.sequence_logps(pr, mr, average=True)  # (B,)
    out, log_odds = losses.orpo_loss(chosen_avg, rejected_avg, -chosen_avg, beta=beta)  # (B,)
    metrics = _pair_metrics(beta * chosen_avg.detach(), beta * rejected_avg.detach(), chosen_avg, rejected_avg)
    metrics.update(
        {
            "nll_loss": Metric.mean_of(-chosen_avg),
            "log_odds_chosen": Metric.mean_of(log_odds),
            "log_odds_ratio": Metric.mean_of(torch.nn.functional.logsigmoid(log_odds)),
        }
    )
    return LMLoss(out.mean(), metrics)


def ipo_lm_loss(
    model,
    batch,
    ref_model: torch.nn.Module | None = None,
    beta: float = field_default("ipo_beta"),
    ignore_index: int = IGNORE_INDEX,
    **_: object,
) -> LMLoss:
    """IPO on average response log-probs against a frozen reference (TRL's DPOTrainer, loss_type="ipo")."""
    if ref_model is None:
        raise ValueError("method 'ipo' needs a frozen reference model: pass ref_model=copy.deepcopy(model)")
    pc, mc, pr, mr = pair_token_logps(model, batch, ignore_index)
    with torch.no_grad():
        rc, rmc, rr, rmr = pair_token_logps(ref_model, batch, ignore_index)
    seq = losses.sequence_logps
    chosen, rejected = seq(pc, mc, average=True), seq(pr, mr, average=True)  # (B,)
    out, chosen_r, rejected_r = losses.ipo_loss(
        chosen, rejected, seq(rc, rmc, average=True), seq(rr, rmr, average=True), beta=beta
    )
    return LMLoss(out.mean(), _pair_metrics(chosen_r, rejected_r, chosen, rejected))


def simpo_lm_loss(
    model,
    batch,
    beta: float = field_default("simpo_beta"),
    simpo_gamma: float = field_default("simpo_margin"),
    ignore_index: int = IGNORE_INDEX,
    **_: object,
) -> LMLoss:
    """SimPO: average response log-probs, no reference, target margin simpo_gamma (TRL's CPOTrainer,
    loss_type="simpo", cpo_alpha=0)."""
    pc, mc, pr, mr = pair_token_logps(model, batch, ignore_index)
    chosen = losses.sequence_logps(pc, mc, average=True)  # (B,)
    rejected = losses.sequence_logps(pr, mr, average=True)  # (B,)
    out, chosen_r, rejected_r = losses.simpo_loss(chosen, rejected, beta=beta, margin=simpo_gamma)
    return LMLoss(out.mean(), _pair_metrics(chosen_r, rejected_r, chosen, rejected))


def _sequence_logps(model: torch.nn.Module, batch: dict, prefix: str, ignore_index: int) -> torch.Tensor:
    """Summed response log-probs of the batch's ``prefix``input_ids / labels rows. Shape: -> (B,)."""
    logits = model_logits(
        model, input_ids=batch[f"{prefix}input_ids"], attention_mask=batch.get(f"{prefix}attention_mask")
    )
    return losses.sequence_logps(*token_logps(logits, batch[f"{prefix}labels"], ignore_index))


def kto_lm_loss(
    model,
    batch,
    ref_model: torch.nn.Module | None = None,
    beta: float = field_default("kto_beta"),
    desirable_weight: float = field_default("kto_desirable_weight"),
    undesirable_weight: float = field_default("kto_undesirable_weight"),
    gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ignore_index: int = IGNORE_INDEX,
    **_: object,
) -> LMLoss:
    """KTO (TRL's KTOTrainer, loss_type="kto") on unpaired rows: summed response log-probs against a frozen
    reference; the reference point z0 is the batch's KL estimate from the mismatched rows kl_* (the
    collator pairs prompt i with completion i - 1), gathered over processes with ``gather``."""
    if ref_model is None:
        raise ValueError("method 'kto' needs a frozen reference model: pass ref_model=copy.deepcopy(model)")
    _check_batch(batch, ("input_ids", "labels", "label", "kl_input_ids", "kl_labels"))
    desirable = batch["label"].bool()  # (B,)
    with torch.no_grad():
        kl_policy = _sequence_logps(model, batch, "kl_", ignore_index)  # (B,)
    policy = _sequence_logps(model, batch, "", ignore_index)  # (B,)
    with torch.no_grad():
        ref = _sequence_logps(ref_model, batch, "", ignore_index)
        kl_ref = _sequence_logps(ref_model, batch, "kl_", ignore_index)
    if gather is not None:
        kl_policy, kl_ref = gather(kl_policy), gather(kl_ref)
    z0 = losses.kto_reference_point(kl_policy, kl_ref)  # ()
    out, rewards = losses.kto_loss(policy, ref, desirable, z0, beta, desirable_weight, undesirable_weight)  # (B,)
    metrics = {"kl": Metric(z0.detach().float(), 1)}
    for name, rows in (("chosen", desirable), ("rejected", ~desirable)):
        if bool(rows.any()):
            metrics[f"rewards/{name}"] = Metric.mean_of(rewards[rows])
            metrics[f"logps/{name}"] = Metric.mean_of(policy.detach()[rows])
    return LMLoss(out.mean(), metrics)


@dataclass(frozen=True)
class MethodSpec:
    """One training method of the LLM path.

    form: the rows it trains on (``FORMS``): prompt / completion, prompt / chosen / rejected, unpaired
    prompt / completion / label (KTO; preference rows are unpaired first), or prompts alone (on-policy:
    the trainer samples completions and scores them with ``reward_funcs``). reference: "yes", "no", or
    "beta" (only when beta > 0). beta: the default beta (None: the method has none). num_generations,
    epsilon: on-policy defaults (completions per prompt, clip range). loss_type: GRPO's default averaging.
    """

    name: str
    loss: Callable[..., LMLoss]
    form: str
    reference: str
    beta: float | None
    num_generations: int | None = None
    epsilon: float | None = None
    loss_type: str | None = None

    @property
    def paired(self) -> bool:
        return self.form == "preference"

    @property
    def online(self) -> bool:
        return self.form == "prompt"

    def needs_reference(self, beta: float | None) -> bool:
        """Whether the method, trained with ``beta``, reads a frozen reference model."""
        return self.reference == "yes" or (self.reference == "beta" and (beta or 0.0) > 0)


def _spec(name, loss, form, reference, beta_field=None, **kw) -> MethodSpec:
    return MethodSpec(name, loss, form, reference, None if beta_field is None else field_default(beta_field), **kw)


METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        _spec("sft", sft_lm_loss, "completion", "no"),
        _spec("ift", ift_lm_loss, "completion", "no"),
        _spec("dpo", dpo_lm_loss, "preference", "yes", "dpo_beta"),
        _spec("orpo", orpo_lm_loss, "preference", "no", "orpo_beta"),
        _spec("ipo", ipo_lm_loss, "preference", "yes", "ipo_beta"),
        _spec("simpo", simpo_lm_loss, "preference", "no", "simpo_beta"),
        _spec("kto", kto_lm_loss, "unpaired", "yes", "kto_beta"),
        _spec(
            "grpo",
            grpo_lm_loss,
            "prompt",
            "beta",
            "grpo_beta",
            num_generations=field_default("grpo_group"),
            epsilon=field_default("grpo_clip"),
            loss_type=field_default("grpo_loss_type"),
        ),
        _spec(
            "rloo",
            rloo_lm_loss,
            "prompt",
            "beta",
            "rloo_beta",
            num_generations=field_default("rloo_k"),
            epsilon=field_default("rloo_clip"),
        ),
        _spec("dpo_online", dpo_online_lm_loss, "prompt", "yes", "dpo_beta", num_generations=2),
        _spec(
            "ppo",
            ppo_lm_loss,
            "prompt",
            "beta",
            "ppo_kl",
            num_generations=PPO_GENERATIONS,
            epsilon=field_default("ppo_clip"),
        ),
    )
}
LOSSES: dict[str, Callable[..., LMLoss]] = {name: spec.loss for name, spec in METHODS.items()}
GRID_ONLY = {
    "truly": "it maximises the exact n-step state probabilities of a policy table, which a language model has not"
}


def method_spec(method: str) -> MethodSpec:
    """METHODS[method]; ValueError naming the allowed methods otherwise (and why a grid-only method is)."""
    if method not in METHODS:
        if method in GRID_ONLY or method in method_names():
            why = GRID_ONLY.get(method, "it is registered for the grid path only")
            raise ValueError(f"method {method!r} is not on the LLM path ({why}); LLM methods: {sorted(METHODS)}")
        raise ValueError(f"unknown method {method!r}; allowed: {sorted(METHODS)}")
    return METHODS[method]


def lm_loss(method: str, model: torch.nn.Module, batch, **hparams: object) -> LMLoss:
    """Dispatch: METHODS[method].loss(model, batch, **hparams) -> LMLoss(loss, metrics). batch: a collated
    dict (offline methods) or ``Rollouts`` (on-policy methods)."""
    return method_spec(method).loss(model, batch, **hparams)
