"""Adapter: the losses of ``losses.py`` on a causal language model (Hugging Face transformers).

A prefix is a state and the next token an action (IFT paper, Sec. 3), so a causal LM turns into the
per-step log-probs (B, T) + mask (B, T) that ``losses.py`` consumes, exactly as the grid path does:

    token_logps(logits, labels)          logits (B, T, V), labels (B, T) -> logps, mask (B, T-1)
    ift_inputs_embeds(model, ids, ...)   IFT temporal residual connection (Eq. 17) on input embeddings
    LOSSES[method](model, batch, ...)    sft / ift / dpo / orpo -> (loss, metrics)
    IFTTrainer                           transformers.Trainer subclass running one of LOSSES
    PromptResponseCollator               pads pairs (or preference triples), masks the prompt with -100

transformers is imported lazily: ``IFTTrainer`` is built on first access (PEP 562 module __getattr__),
so ``import frozenlake_ift.llm`` needs torch only. Any module with ``get_input_embeddings()`` whose
forward takes ``input_ids`` / ``inputs_embeds`` / ``attention_mask`` and returns ``.logits`` works.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Sequence

import torch

from . import losses

IGNORE_INDEX = -100
PAIR_SIDES = ("chosen", "rejected")


# ----------------------------------------------------------------------------- log-probs

def token_logps(logits: torch.Tensor, labels: torch.Tensor,
                ignore_index: int = IGNORE_INDEX) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of each target token under the causal shift: position t predicts token t + 1.

    Shape: logits (B, T, V), labels (B, T) -> logps (B, T-1) (0 where masked; float32 or wider), mask (B, T-1) bool.
    Raises ValueError when a row has no target token (all labels ignore_index after the shift).
    """
    if logits.dim() != 3 or labels.dim() != 2 or tuple(labels.shape) != tuple(logits.shape[:2]):
        raise ValueError(f"logits must have shape (B, T, V) and labels (B, T) with the same B, T; "
                         f"got logits {tuple(logits.shape)}, labels {tuple(labels.shape)}")
    if labels.shape[1] < 2:
        raise ValueError(f"sequences need at least 2 tokens for the causal shift, got T={labels.shape[1]}")
    targets = labels[:, 1:]  # (B, T-1)
    mask = targets != ignore_index  # (B, T-1)
    empty = (~mask.any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"labels are all ignore_index={ignore_index} (after the causal shift) in batch rows "
                         f"{empty[:10]}: every sequence needs at least one response token to train on")
    lg = logits[:, :-1].to(torch.promote_types(logits.dtype, torch.float32))  # (B, T-1, V), fp16/bf16 -> fp32
    picked = lg.gather(-1, targets.masked_fill(~mask, 0).unsqueeze(-1)).squeeze(-1)  # (B, T-1)
    logps = (picked - torch.logsumexp(lg, dim=-1)).masked_fill(~mask, 0.0)  # (B, T-1)
    return logps, mask


def _logits(model: torch.nn.Module, **inputs: Any) -> torch.Tensor:
    """model(**inputs).logits, Shape (B, T, V); no KV cache for HF models (training needs none)."""
    inputs = {k: v for k, v in inputs.items() if v is not None}
    if getattr(getattr(model, "config", None), "use_cache", None) is not None:
        inputs["use_cache"] = False
    out = model(**inputs)
    return out.logits if hasattr(out, "logits") else out["logits"] if isinstance(out, dict) else out[0]


# ----------------------------------------------------------------------------- IFT inputs

def check_lambda(lam: float) -> float:
    lam = float(lam)
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam (the IFT temporal-residual weight, Eq. 17) must lie in [0, 1], got {lam}")
    return lam


def scheduled_lambda(step: int, lam: float = 0.2, lam_start: float | None = None, warmup_steps: int = 0,
                     noise_std: float = 0.0, seed: int = 0) -> float:
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


@torch.no_grad()
def greedy_next_tokens(model: torch.nn.Module, input_ids: torch.Tensor,
                       attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The model's greedy guess of each token from its prefix, shifted right by one (position 0 keeps its own).

    Shape: input_ids (B, T) -> (B, T); out[:, t] = argmax p(. | input_ids[:, :t]) for t >= 1.
    """
    pred = _logits(model, input_ids=input_ids, attention_mask=attention_mask).argmax(dim=-1)  # (B, T)
    return torch.cat([input_ids[:, :1], pred[:, :-1]], dim=1)  # (B, T)


def ift_inputs_embeds(model: torch.nn.Module, input_ids: torch.Tensor, labels: torch.Tensor, lam: float,
                      attention_mask: torch.Tensor | None = None, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """IFT temporal residual connection (paper Eq. 17) on the input embeddings.

    At a response position t (labels[:, t] != ignore_index) the input is
    (1 - lam) * E(x*_t) + lam * E(x_hat_t), x_hat_t the greedy prediction of token t from the target
    prefix x*_{<t} (a no-grad forward pass). Prompt and padding positions keep E(x_t) exactly.
    E(x*) goes through the live embedding layer (so lam = 0 is SFT, gradients included);
    E(x_hat) through the same layer without gradient, i.e. a frozen copy of the current table.
    (The authors' code embeds both through a copy frozen at the start of training; the difference
    is that our embedding table keeps training, as under SFT.) Schedules of lam: ``scheduled_lambda``.

    Shape: input_ids (B, T), labels (B, T) -> (B, T, D).
    """
    lam = check_lambda(lam)
    if tuple(labels.shape) != tuple(input_ids.shape) or input_ids.dim() != 2:
        raise ValueError(f"input_ids and labels must both have shape (B, T), got {tuple(input_ids.shape)} "
                         f"and {tuple(labels.shape)}")
    embed = model.get_input_embeddings()
    target = embed(input_ids)  # (B, T, D)
    if lam == 0.0:
        return target  # plain SFT inputs; skips the extra forward pass
    response = labels != ignore_index  # (B, T)
    guess = torch.where(response, greedy_next_tokens(model, input_ids, attention_mask), input_ids)  # (B, T)
    with torch.no_grad():
        predicted = embed(guess)  # (B, T, D), no gradient: the frozen copy
    mixed = losses.mix_inputs(target, predicted, lam)  # (B, T, D)
    return torch.where(response.unsqueeze(-1), mixed, target)  # (B, T, D)


# ----------------------------------------------------------------------------- losses

def _check_batch(batch: dict, keys: Sequence[str]) -> None:
    missing = [k for k in keys if k not in batch]
    if missing:
        raise ValueError(f"batch lacks the keys {missing}; it has {sorted(batch)}")


def _pad_to(x: torch.Tensor, length: int, value: int) -> torch.Tensor:
    return torch.nn.functional.pad(x, (0, length - x.shape[1]), value=value)  # (B, length)


def pair_token_logps(model: torch.nn.Module, batch: dict, ignore_index: int = IGNORE_INDEX,
                     pad_token_id: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token log-probs of the chosen and rejected responses in one concatenated forward pass.

    batch: chosen_/rejected_ input_ids, labels (B, T_c) / (B, T_r), optional attention_mask.
    Shape: -> chosen logps, chosen mask, rejected logps, rejected mask, each (B, max(T_c, T_r) - 1).
    """
    keys = [f"{s}_{k}" for s in PAIR_SIDES for k in ("input_ids", "labels")]
    _check_batch(batch, keys)
    B_c, B_r = batch["chosen_input_ids"].shape[0], batch["rejected_input_ids"].shape[0]
    if B_c != B_r:
        raise ValueError(f"chosen and rejected must have the same batch size (one pair per row), "
                         f"got {B_c} chosen and {B_r} rejected")
    T = max(batch["chosen_input_ids"].shape[1], batch["rejected_input_ids"].shape[1])
    ids = torch.cat([_pad_to(batch[f"{s}_input_ids"], T, pad_token_id) for s in PAIR_SIDES])  # (2B, T)
    labels = torch.cat([_pad_to(batch[f"{s}_labels"], T, ignore_index) for s in PAIR_SIDES])  # (2B, T)
    att = None
    if "chosen_attention_mask" in batch:
        att = torch.cat([_pad_to(batch[f"{s}_attention_mask"], T, 0) for s in PAIR_SIDES])  # (2B, T)
    logps, mask = token_logps(_logits(model, input_ids=ids, attention_mask=att), labels, ignore_index)  # (2B, T-1)
    return logps[:B_c], mask[:B_c], logps[B_c:], mask[B_c:]


def sft_lm_loss(model, batch, ignore_index: int = IGNORE_INDEX, **_: Any) -> tuple[torch.Tensor, dict]:
    """Mean token NLL of the response. batch: input_ids, labels (B, T), optional attention_mask."""
    _check_batch(batch, ("input_ids", "labels"))
    logits = _logits(model, input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"))  # (B, T, V)
    logps, mask = token_logps(logits, batch["labels"], ignore_index)  # (B, T-1)
    return losses.sft_loss(logps, mask), {}


def ift_lm_loss(model, batch, lam: float = 0.2, gamma: float = 0.95, detach_weights: bool = False,
                ignore_index: int = IGNORE_INDEX, **_: Any) -> tuple[torch.Tensor, dict]:
    """IFT: temporal residual inputs (Eq. 17) + dynamic relation propagation (Algorithm 1)."""
    _check_batch(batch, ("input_ids", "labels"))
    att = batch.get("attention_mask")
    embeds = ift_inputs_embeds(model, batch["input_ids"], batch["labels"], lam, att, ignore_index)  # (B, T, D)
    logps, mask = token_logps(_logits(model, inputs_embeds=embeds, attention_mask=att), batch["labels"],
                              ignore_index)  # (B, T-1)
    return losses.ift_loss(logps, mask, gamma=gamma, detach_weights=detach_weights), {"lam": lam}


def dpo_lm_loss(model, batch, ref_model: torch.nn.Module | None = None, beta: float = 0.1,
                label_smoothing: float = 0.0, ignore_index: int = IGNORE_INDEX, **_: Any) -> tuple[torch.Tensor, dict]:
    """DPO with summed response log-probs and a frozen reference model (beta = 0.1 as the authors ran it)."""
    if ref_model is None:
        raise ValueError("method 'dpo' needs a frozen reference model: pass ref_model=copy.deepcopy(model)")
    pc, mc, pr, mr = pair_token_logps(model, batch, ignore_index)
    with torch.no_grad():
        rc, rmc, rr, rmr = pair_token_logps(ref_model, batch, ignore_index)
    seq = losses.sequence_logps
    out, chosen_r, rejected_r = losses.dpo_loss(seq(pc, mc), seq(pr, mr), seq(rc, rmc), seq(rr, rmr),
                                                beta=beta, label_smoothing=label_smoothing)  # (B,)
    return out.mean(), {"reward_margin": (chosen_r - rejected_r).mean().item(),
                        "reward_accuracy": (chosen_r > rejected_r).float().mean().item()}


def orpo_lm_loss(model, batch, beta: float = 0.25, ignore_index: int = IGNORE_INDEX,
                 **_: Any) -> tuple[torch.Tensor, dict]:
    """ORPO with average response log-probs (beta = 0.25 as the authors ran it); no reference model."""
    pc, mc, pr, mr = pair_token_logps(model, batch, ignore_index)
    chosen_avg = losses.sequence_logps(pc, mc, average=True)  # (B,)
    rejected_avg = losses.sequence_logps(pr, mr, average=True)  # (B,)
    out, log_odds = losses.orpo_loss(chosen_avg, rejected_avg, -chosen_avg, beta=beta)  # (B,)
    return out.mean(), {"log_odds": log_odds.mean().item()}


LOSSES: dict[str, Callable[..., tuple[torch.Tensor, dict]]] = {
    "sft": sft_lm_loss, "ift": ift_lm_loss, "dpo": dpo_lm_loss, "orpo": orpo_lm_loss,
}


def lm_loss(method: str, model: torch.nn.Module, batch: dict, **hparams: Any) -> tuple[torch.Tensor, dict]:
    """Dispatch: LOSSES[method](model, batch, **hparams) -> (scalar loss, metrics)."""
    if method not in LOSSES:
        raise ValueError(f"unknown method {method!r}; allowed: {sorted(LOSSES)}")
    return LOSSES[method](model, batch, **hparams)


# ----------------------------------------------------------------------------- data

class PromptResponseCollator:
    """Pads prompt/response examples (right padding) and masks prompt and padding with ignore_index.

    An example is ``{"prompt_ids": [...], "response_ids": [...]}`` (SFT / IFT) or
    ``{"prompt_ids": [...], "chosen_ids": [...], "rejected_ids": [...]}`` (DPO / ORPO). With a
    ``tokenizer``, string fields ``prompt`` / ``response`` / ``chosen`` / ``rejected`` work too
    (encoded without special tokens; ``eos_token_id`` is appended to responses when set).
    Returns input_ids / attention_mask / labels, prefixed ``chosen_`` / ``rejected_`` for pairs.
    ``max_length`` cuts each sequence from the right.
    """

    def __init__(self, pad_token_id: int = 0, ignore_index: int = IGNORE_INDEX, max_length: int | None = None,
                 tokenizer: Any = None, eos_token_id: int | None = None):
        self.pad_token_id, self.ignore_index, self.max_length = pad_token_id, ignore_index, max_length
        self.tokenizer, self.eos_token_id = tokenizer, eos_token_id

    def _ids(self, ex: dict, name: str, response: bool) -> list[int]:
        if f"{name}_ids" in ex:
            return list(ex[f"{name}_ids"])
        if name in ex and self.tokenizer is not None:
            ids = list(self.tokenizer(ex[name], add_special_tokens=False)["input_ids"])
            return ids + [self.eos_token_id] if response and self.eos_token_id is not None else ids
        raise ValueError(f"example needs {name}_ids (or {name} text and a tokenizer), has keys {sorted(ex)}")

    def _pad(self, prompts: list[list[int]], responses: list[list[int]], prefix: str = "") -> dict:
        rows = [(p + r, [self.ignore_index] * len(p) + r) for p, r in zip(prompts, responses)]
        if self.max_length is not None:
            rows = [(i[: self.max_length], l[: self.max_length]) for i, l in rows]
        T = max(len(i) for i, _ in rows)
        ids = torch.full((len(rows), T), self.pad_token_id, dtype=torch.long)  # (B, T)
        labels = torch.full((len(rows), T), self.ignore_index, dtype=torch.long)  # (B, T)
        att = torch.zeros((len(rows), T), dtype=torch.long)  # (B, T)
        for b, (i, l) in enumerate(rows):
            ids[b, : len(i)], labels[b, : len(l)], att[b, : len(i)] = torch.tensor(i), torch.tensor(l), 1
        return {f"{prefix}input_ids": ids, f"{prefix}attention_mask": att, f"{prefix}labels": labels}

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        if not examples:
            raise ValueError("cannot collate an empty list of examples")
        prompts = [self._ids(ex, "prompt", False) for ex in examples]
        if all("chosen_ids" in ex or "chosen" in ex for ex in examples):
            out = {}
            for side in PAIR_SIDES:
                out.update(self._pad(prompts, [self._ids(ex, side, True) for ex in examples], f"{side}_"))
            return out
        return self._pad(prompts, [self._ids(ex, "response", True) for ex in examples])


# ----------------------------------------------------------------------------- Trainer

# example fields PromptResponseCollator reads: the Trainer must not drop them as "unused columns"
_EXAMPLE_KEYS = [f"{name}{suffix}" for name in ("prompt", "response", *PAIR_SIDES) for suffix in ("_ids", "")]


def _build_trainer_class() -> type:
    import transformers

    class IFTTrainer(transformers.Trainer):
        """transformers.Trainer whose loss is ``LOSSES[method]`` (sft / ift / dpo / orpo).

        Extra init arguments (all keyword): method="ift"; lam=0.2, gamma=0.95, detach_weights=False and the
        lambda schedule lam_start=None, lam_warmup_steps=0, lam_noise_std=0.0 (IFT, see scheduled_lambda);
        beta (DPO 0.1, ORPO 0.25 when None), label_smoothing (DPO); ref_model (DPO: frozen reference, put
        in eval mode on the trainer's device). Batches come from ``PromptResponseCollator``.
        The loss is a per-batch mean, so the Trainer divides it by the gradient-accumulation steps
        (num_items_in_batch is not used). Training logs also carry the latest batch's metrics (lam, ...).
        """

        loss_is_scaled_for_ga = False

        def __init__(self, *args: Any, method: str = "ift", ref_model: torch.nn.Module | None = None,
                     lam: float = 0.2, gamma: float = 0.95, detach_weights: bool = False,
                     lam_start: float | None = None, lam_warmup_steps: int = 0, lam_noise_std: float = 0.0,
                     beta: float | None = None, label_smoothing: float = 0.0,
                     **kwargs: Any):
            if method not in LOSSES:
                raise ValueError(f"unknown method {method!r}; allowed: {sorted(LOSSES)}")
            if method == "dpo" and ref_model is None:
                raise ValueError("method 'dpo' needs a frozen reference model: pass ref_model=copy.deepcopy(model)")
            scheduled_lambda(0, lam, lam_start, lam_warmup_steps, lam_noise_std)  # validates the options
            super().__init__(*args, **kwargs)
            self.method = method
            self.lam_options = dict(lam=lam, lam_start=lam_start, warmup_steps=lam_warmup_steps,
                                    noise_std=lam_noise_std, seed=self.args.seed)
            self.hparams = {"sft": {}, "ift": dict(gamma=gamma, detach_weights=detach_weights),
                            "dpo": dict(beta=0.1 if beta is None else beta, label_smoothing=label_smoothing),
                            "orpo": dict(beta=0.25 if beta is None else beta)}[method]
            self.ref_model = None
            if ref_model is not None:
                self.ref_model = ref_model.to(self.args.device).eval().requires_grad_(False)

        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()
            self._signature_columns = list(dict.fromkeys(self._signature_columns + _EXAMPLE_KEYS))

        def current_lambda(self) -> float:
            return scheduled_lambda(self.state.global_step, **self.lam_options)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            hp = dict(self.hparams, ref_model=self.ref_model)
            if self.method == "ift":
                hp["lam"] = self.current_lambda()
            loss, metrics = lm_loss(self.method, model, inputs, **hp)
            if model.training:
                self._last_metrics = metrics
            return (loss, {"loss": loss.detach(), **metrics}) if return_outputs else loss

        def log(self, logs: dict, *args: Any, **kwargs: Any) -> None:
            if "loss" in logs:  # a training log: add lam / rewards / log-odds of the latest batch
                logs = {**logs, **getattr(self, "_last_metrics", {})}
            super().log(logs, *args, **kwargs)

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            inputs = self._prepare_inputs(inputs)
            with torch.no_grad():
                loss = self.compute_loss(model, inputs)
            return loss.detach(), None, None

    IFTTrainer.__module__, IFTTrainer.__qualname__ = __name__, "IFTTrainer"
    return IFTTrainer


def __getattr__(name: str) -> Any:  # PEP 562: build the Trainer subclass on first access only
    if name == "IFTTrainer":
        cls = _build_trainer_class()
        globals()["IFTTrainer"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
