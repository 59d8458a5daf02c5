"""The four training objectives on a causal LM (sft / ift / dpo / orpo): batch -> loss + metrics.

Each objective turns a collated batch into per-step log-probs with ``token_logps`` and calls the very
functions of ``losses.py`` that the grid study uses. ``METHODS`` is the one table of methods: which
batch each needs, whether it needs a frozen reference model, and its default beta. ``METRICS``
names every logged metric (TRL's names where TRL has one) and says what it averages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from .. import losses
from .inputs import greedy_next_tokens, ift_inputs_embeds
from .logps import IGNORE_INDEX, model_logits, token_logps

PAIR_SIDES = ("chosen", "rejected")
DPO_BETA = 0.1  # as the authors ran it (and TRL's default)
ORPO_BETA = 0.25  # as the authors ran it (TRL's default is 0.1)

METRICS: dict[str, str] = {  # name -> what it is; each is a mean over the examples (or tokens) of a logging interval
    "rewards/chosen": "DPO: beta * (log pi - log ref) of the chosen response, summed over its tokens; "
    "ORPO: beta * its average token log-prob",
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
}


@dataclass(frozen=True)
class Metric:
    """A metric of one batch as a sum and the number of items (examples or tokens) it sums over."""

    total: torch.Tensor  # 0-dim, detached
    count: int

    @staticmethod
    def mean_of(values: torch.Tensor) -> Metric:
        """Metric whose mean is values.mean(); values: Shape (N,)."""
        return Metric(values.detach().float().sum(), int(values.numel()))

    @property
    def mean(self) -> float:
        return float(self.total) / self.count


class LMLoss(NamedTuple):
    """What an objective returns: the scalar loss (in the graph) and its metrics by ``METRICS`` name."""

    loss: torch.Tensor
    metrics: dict[str, Metric]


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


@dataclass(frozen=True)
class MethodSpec:
    """One training method of the LLM path."""

    name: str
    loss: Callable[..., LMLoss]
    paired: bool  # needs prompt/chosen/rejected rows (else prompt/completion)
    needs_ref: bool  # needs a frozen reference model
    beta: float | None  # default beta (None: the method has no beta)


METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec("sft", sft_lm_loss, paired=False, needs_ref=False, beta=None),
        MethodSpec("ift", ift_lm_loss, paired=False, needs_ref=False, beta=None),
        MethodSpec("dpo", dpo_lm_loss, paired=True, needs_ref=True, beta=DPO_BETA),
        MethodSpec("orpo", orpo_lm_loss, paired=True, needs_ref=False, beta=ORPO_BETA),
    )
}
LOSSES: dict[str, Callable[..., LMLoss]] = {name: spec.loss for name, spec in METHODS.items()}


def method_spec(method: str) -> MethodSpec:
    """METHODS[method]; ValueError naming the allowed methods otherwise."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; allowed: {sorted(METHODS)}")
    return METHODS[method]


def lm_loss(method: str, model: torch.nn.Module, batch: dict, **hparams: object) -> LMLoss:
    """Dispatch: METHODS[method].loss(model, batch, **hparams) -> LMLoss(loss, metrics)."""
    return method_spec(method).loss(model, batch, **hparams)
