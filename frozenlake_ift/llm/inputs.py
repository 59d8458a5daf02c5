"""IFT's temporal residual connection (paper Eq. 17) on a causal LM's input embeddings, and lambda schedules."""

from __future__ import annotations

import inspect
import random
from typing import Any

import torch

from .. import losses
from .logps import IGNORE_INDEX, model_logits, unwrap_model


def check_lambda(lam: float) -> float:
    """lam as a float in [0, 1]; ValueError naming the value otherwise."""
    lam = float(lam)
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam (the IFT temporal-residual weight, Eq. 17) must lie in [0, 1], got {lam}")
    return lam


def scheduled_lambda(
    step: int,
    lam: float = 0.2,
    lam_start: float | None = None,
    warmup_steps: int = 0,
    noise_std: float = 0.0,
    seed: int = 0,
) -> float:
    """lambda at optimiser step ``step``, the options of the authors' code (config/loss/ift.yaml).

    Constant ``lam`` by default; with ``lam_start`` a linear warm-up from lam_start to lam over
    ``warmup_steps``; with ``noise_std`` > 0 a relative Gaussian disturbance lam * (1 + noise_std * z),
    z ~ N(0, 1) drawn from (seed, step) only, so reruns are identical. The result is clipped to [0, 1].
    """
    check_lambda(lam)
    if lam_start is not None:
        check_lambda(lam_start)
    if warmup_steps < 0 or noise_std < 0:
        raise ValueError(f"warmup_steps and noise_std must be >= 0, got {warmup_steps}, {noise_std}")
    value = lam
    if lam_start is not None and step < warmup_steps:
        value = lam_start + (lam - lam_start) * step / warmup_steps
    if noise_std > 0:
        value += value * noise_std * random.Random(f"{seed}:{step}").gauss(0.0, 1.0)
    return min(max(value, 0.0), 1.0)


def _accepts_logits_to_keep(model: torch.nn.Module) -> bool:
    return "logits_to_keep" in inspect.signature(unwrap_model(model).forward).parameters


@torch.no_grad()
def greedy_next_tokens(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """The model's greedy guess of each token from its prefix, shifted right by one (position 0 keeps its own).

    Shape: input_ids (B, T) -> (B, T); out[:, t] = argmax p(. | input_ids[:, :t]) for t >= 1.
    With ``labels`` (B, T), only the guesses at answer positions are needed: for a model whose forward
    takes ``logits_to_keep`` (Hugging Face causal LMs) the output head runs only from the first answer
    position of the batch on (the prompt's logits are never computed), and earlier positions keep
    their own token.
    """
    T = input_ids.shape[1]
    keep = T
    if labels is not None and _accepts_logits_to_keep(model):
        answer = (labels != ignore_index).any(dim=0).nonzero()  # (n, 1): positions holding an answer token
        if answer.numel():
            keep = T - max(int(answer[0, 0]) - 1, 0)
    extra = {"logits_to_keep": keep} if keep < T else {}
    pred = model_logits(model, input_ids=input_ids, attention_mask=attention_mask, **extra).argmax(dim=-1)  # (B, keep)
    out = input_ids.clone()  # (B, T)
    out[:, T - keep + 1 :] = pred[:, :-1]
    return out


def ift_inputs_embeds(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    labels: torch.Tensor,
    lam: float,
    attention_mask: torch.Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
    guess: torch.Tensor | None = None,
) -> torch.Tensor:
    """IFT temporal residual connection (paper Eq. 17) on the input embeddings.

    At a response position t (labels[:, t] != ignore_index) the input is
    (1 - lam) * E(x*_t) + lam * E(x_hat_t), x_hat_t the greedy prediction of token t from the target
    prefix x*_{<t} (a no-grad forward pass; pass ``guess`` = greedy_next_tokens(...) to reuse one).
    Prompt and padding positions keep E(x_t) exactly. E(x*) goes through the live embedding layer
    (so lam = 0 is SFT, gradients included); E(x_hat) through the same layer without gradient, i.e.
    a frozen copy of the current table. (The authors' code embeds both through a copy frozen at the
    start of training; the difference is that our embedding table keeps training, as under SFT.)
    Works on a wrapped model (DDP, DeepSpeed): the embedding layer is taken from the inner module.

    Shape: input_ids (B, T), labels (B, T) -> (B, T, D).
    """
    lam = check_lambda(lam)
    if tuple(labels.shape) != tuple(input_ids.shape) or input_ids.dim() != 2:
        raise ValueError(
            f"input_ids and labels must both have shape (B, T), got {tuple(input_ids.shape)} and {tuple(labels.shape)}"
        )
    inner: Any = unwrap_model(model)  # a transformers model: get_input_embeddings() is its API
    embed = inner.get_input_embeddings()
    target = embed(input_ids)  # (B, T, D)
    if lam == 0.0:
        return target  # plain SFT inputs; skips the extra forward pass
    response = labels != ignore_index  # (B, T)
    if guess is None:
        guess = greedy_next_tokens(model, input_ids, attention_mask, labels, ignore_index)  # (B, T)
    guess = torch.where(response, guess, input_ids)  # (B, T)
    with torch.no_grad():
        predicted = embed(guess)  # (B, T, D), no gradient: the frozen copy
    mixed = losses.mix_inputs(target, predicted, lam)  # (B, T, D)
    return torch.where(response.unsqueeze(-1), mixed, target)  # (B, T, D)
