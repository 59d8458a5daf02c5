"""``IFTTrainer``: a ``transformers.Trainer`` that trains with one of ``METHODS`` as configured by an IFTConfig.

transformers is imported only when ``IFTTrainer`` is first used (``build_trainer_class``).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from .config import IFT_FIELDS, loss_hparams
from .data import COMPLETION_FIELDS, PREFERENCE_FIELDS, PromptResponseCollator, validate_rows
from .inputs import scheduled_lambda
from .metrics import MetricAccumulator
from .objectives import lm_loss, method_spec

# dataset columns the collator reads: the Trainer must not drop them as "unused"
DATA_COLUMNS = [
    f"{name}{suffix}" for name in ("messages", *PREFERENCE_FIELDS, *COMPLETION_FIELDS) for suffix in ("", "_ids")
]


def prepare_deepspeed_reference(model: torch.nn.Module, accelerator: Any) -> torch.nn.Module:
    """A frozen reference model as a DeepSpeed inference engine under the trainer's DeepSpeed config.

    ZeRO-3 partitions the reference like the policy (so it must be prepared here, never moved with
    ``.to(device)``); under ZeRO-1/2 it is replicated (stage 0). Optimizer and scheduler sections are
    dropped: the reference is never trained.
    """
    import deepspeed  # type: ignore[import-not-found]  # optional: only under a DeepSpeed launch

    config = copy.deepcopy(accelerator.state.deepspeed_plugin.deepspeed_config)
    config.pop("optimizer", None)
    config.pop("scheduler", None)
    zero = config.setdefault("zero_optimization", {})
    hidden = getattr(getattr(model, "config", None), "hidden_size", None)
    if zero.get("stage") == 3 and hidden is not None:  # bucket sizes as TRL sets them for its references
        zero.update(
            {
                "reduce_bucket_size": hidden * hidden,
                "stage3_param_persistence_threshold": 10 * hidden,
                "stage3_prefetch_bucket_size": int(0.9 * hidden * hidden),
            }
        )
    elif zero.get("stage") != 3:
        zero["stage"] = 0
    engine, *_ = deepspeed.initialize(model=model, config=config)
    return engine.eval()


def build_trainer_class(config_class: Any) -> type:  # Any: isinstance against it must not narrow args
    import transformers

    class IFTTrainer(transformers.Trainer):
        """transformers.Trainer whose loss is ``METHODS[args.method]`` (sft / ift / dpo / orpo).

        ``IFTTrainer(model, args=IFTConfig(...), train_dataset=..., processing_class=tokenizer, ref_model=...)``.
        Datasets: TRL's formats (``data.py``), a list of dicts or a ``datasets.Dataset``, checked up
        front (an error names the first bad row and its missing field). Without ``data_collator`` a
        ``PromptResponseCollator`` is built from the tokenizer (pad = its pad token, else EOS, else 0).
        ``ref_model`` (DPO only) is prepared by accelerate in evaluation mode (DeepSpeed: its own
        engine, ZeRO-3 partitioned), frozen and in eval mode. Logged metrics (``METRICS``) are means
        over every example of the logging interval, over all micro-batches and processes.
        The loss is a per-batch mean, so the Trainer divides it by the accumulation steps.
        """

        loss_is_scaled_for_ga = False

        def __init__(
            self,
            model: Any = None,
            args: Any = None,
            train_dataset: Any = None,
            eval_dataset: Any = None,
            processing_class: Any = None,
            data_collator: Any = None,
            ref_model: torch.nn.Module | None = None,
            **kwargs: Any,
        ):
            if not isinstance(args, config_class):  # args: an IFTConfig from here on
                raise TypeError(
                    f"args must be an IFTConfig (got {type(args).__name__}); the method options "
                    f"{list(IFT_FIELDS)} are its fields, "
                    f"e.g. IFTConfig(output_dir=..., method='ift', lam=0.2)"
                )
            spec = method_spec(args.method)
            if spec.needs_ref and ref_model is None:
                raise ValueError(
                    f"method {args.method!r} needs a frozen reference model: pass ref_model=copy.deepcopy(model)"
                )
            if not spec.needs_ref and ref_model is not None:
                raise ValueError(f"method {args.method!r} uses no reference model; ref_model must be None")
            evals = eval_dataset.values() if isinstance(eval_dataset, dict) else [eval_dataset]
            for data in (train_dataset, *evals):
                if data is not None:
                    validate_rows(data, spec.paired)
            if data_collator is None:
                tok = processing_class
                pad = getattr(tok, "pad_token_id", None)
                pad = pad if pad is not None else getattr(tok, "eos_token_id", None)
                data_collator = PromptResponseCollator(
                    pad_token_id=pad if pad is not None else 0, tokenizer=tok, max_length=args.max_length
                )
            super().__init__(
                model=model,
                args=args,
                train_dataset=train_dataset,
                eval_dataset=eval_dataset,
                processing_class=processing_class,
                data_collator=data_collator,
                **kwargs,
            )
            self.hparams = loss_hparams(args)
            self.interval_metrics = {"train": MetricAccumulator(), "eval": MetricAccumulator()}
            self.ref_model = None
            if ref_model is not None:
                ref_model.requires_grad_(False)
                if self.is_deepspeed_enabled:
                    self.ref_model = prepare_deepspeed_reference(ref_model, self.accelerator)
                else:
                    self.ref_model = self.accelerator.prepare_model(ref_model, evaluation_mode=True).eval()

        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()
            columns: list[str] = list(self._signature_columns or [])
            self._signature_columns = list(dict.fromkeys(columns + DATA_COLUMNS))  # type: ignore[assignment]

        def current_lambda(self) -> float:
            a: Any = self.args  # an IFTConfig (checked in __init__)
            return scheduled_lambda(
                self.state.global_step, a.lam, a.lam_start, a.lam_warmup_steps, a.lam_noise_std, a.seed
            )

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            hp = dict(self.hparams, ref_model=self.ref_model)
            method = getattr(self.args, "method")  # noqa: B009  (an IFTConfig field; TrainingArguments has none)
            if method == "ift":
                hp["lam"] = self.current_lambda()
            loss, metrics = lm_loss(method, model, inputs, **hp)
            self.interval_metrics["train" if model.training else "eval"].add(metrics)
            return (loss, {"loss": loss.detach()}) if return_outputs else loss

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            mode = "train" if "loss" in logs else "eval" if "eval_loss" in logs else None
            if mode is not None:  # every process logs here (the Trainer logs on all): a collective is safe
                means = self.interval_metrics[mode].pop_means(
                    lambda t: self.accelerator.reduce(t, reduction="sum"), self.accelerator.device
                )
                prefix = "" if mode == "train" else "eval_"
                logs = {**logs, **{prefix + k: v for k, v in means.items()}}
            super().log(logs, start_time)

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            inputs = self._prepare_inputs(inputs)
            with torch.no_grad():
                loss = self.compute_loss(model, inputs)
            return loss.detach(), None, None

    IFTTrainer.__module__, IFTTrainer.__qualname__ = "frozenlake_ift.llm", "IFTTrainer"
    return IFTTrainer
