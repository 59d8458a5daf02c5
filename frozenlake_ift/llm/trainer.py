"""``IFTTrainer``: a ``transformers.Trainer`` that trains with one of ``METHODS`` as configured by an IFTConfig.

transformers is imported only when ``IFTTrainer`` is first used (``build_trainer_class``).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from .config import IFT_FIELDS, MAX_COMPLETION_LENGTH, loss_hparams
from .data import COMPLETION_FIELDS, PREFERENCE_FIELDS, PromptResponseCollator, unpair_rows, validate_rows
from .inputs import scheduled_lambda
from .logps import IGNORE_INDEX
from .metrics import Metric, MetricAccumulator
from .objectives import lm_loss, method_spec
from .rollouts import Rollouts, make_rollouts, sample_completions, score_completions

# dataset columns the collator reads: the Trainer must not drop them as "unused"
DATA_COLUMNS = [
    f"{name}{suffix}" for name in ("messages", *PREFERENCE_FIELDS, *COMPLETION_FIELDS) for suffix in ("", "_ids")
] + ["label"]


def repeat_columns(columns: dict[str, list], times: int) -> dict[str, list]:
    """Each row's value repeated for its ``times`` completions (TRL passes dataset columns to reward functions)."""
    return {k: [v for v in values for _ in range(times)] for k, values in columns.items()}


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
        """transformers.Trainer whose loss is ``METHODS[args.method]`` (every method of ``llm.METHODS``).

        ``IFTTrainer(model, args=IFTConfig(...), train_dataset=..., processing_class=tokenizer, ref_model=...,
        reward_funcs=..., environment=...)``.
        Datasets: TRL's formats (``data.py``), a list of dicts or a ``datasets.Dataset``, checked up
        front (an error names the first bad row and its missing field); KTO unpairs preference rows.
        Without ``data_collator`` a ``PromptResponseCollator`` is built from the tokenizer (pad = its
        pad token, else EOS, else 0). ``ref_model`` (the methods that read a reference, ``MethodSpec.
        needs_reference``) is prepared by accelerate in evaluation mode (DeepSpeed: its own engine,
        ZeRO-3 partitioned), frozen and in eval mode. On-policy methods (grpo, rloo, dpo_online, ppo)
        train on prompts: each step samples ``num_generations`` completions per prompt from the current
        model (closed loop with ``environment``, e.g. ``llm.GridEnvironment``, whose observation tokens
        are never trained on; offline methods use it to mask them in the data too) and scores them with
        ``reward_funcs`` (TRL's convention: ``f(prompts=, completions=, completion_ids=, **columns)`` ->
        one number per completion; their sum is the reward). Logged metrics (``METRICS``) are means
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
            reward_funcs: Any = None,
            environment: Any = None,
            **kwargs: Any,
        ):
            if not isinstance(args, config_class):  # args: an IFTConfig from here on
                raise TypeError(
                    f"args must be an IFTConfig (got {type(args).__name__}); the method options "
                    f"{list(IFT_FIELDS)} are its fields, "
                    f"e.g. IFTConfig(output_dir=..., method='ift', lam=0.2)"
                )
            spec = method_spec(args.method)
            needs_ref = spec.needs_reference(args.beta)
            if needs_ref and ref_model is None:
                raise ValueError(
                    f"method {args.method!r} (beta={args.beta}) needs a frozen reference model: "
                    f"pass ref_model=copy.deepcopy(model)"
                )
            if not needs_ref and ref_model is not None:
                raise ValueError(
                    f"method {args.method!r} (beta={args.beta}) uses no reference model; ref_model must be None"
                )
            funcs = (
                []
                if reward_funcs is None
                else list(reward_funcs)
                if isinstance(reward_funcs, (list, tuple))
                else [reward_funcs]
            )
            if spec.online and not funcs:
                raise ValueError(
                    f"on-policy method {args.method!r} needs reward_funcs: functions scoring each sampled completion "
                    f"(for the grid task, llm.grid_reward(tasks))"
                )
            if not spec.online and funcs:
                raise ValueError(f"method {args.method!r} trains on fixed data; reward_funcs is for on-policy methods")
            bad = [f for f in funcs if not callable(f)]
            if bad:
                raise TypeError(f"reward_funcs must be callables, got {type(bad[0]).__name__}")
            if spec.form == "unpaired":  # KTO: preference rows become desirable / undesirable rows (TRL's unpairing)
                train_dataset = None if train_dataset is None else unpair_rows(train_dataset)
                if isinstance(eval_dataset, dict):
                    eval_dataset = {k: unpair_rows(v) for k, v in eval_dataset.items()}
                elif eval_dataset is not None:
                    eval_dataset = unpair_rows(eval_dataset)
            evals = eval_dataset.values() if isinstance(eval_dataset, dict) else [eval_dataset]
            for data in (train_dataset, *evals):
                if data is not None:
                    validate_rows(data, form=spec.form)
            tok = processing_class
            pad = getattr(tok, "pad_token_id", None)
            pad = pad if pad is not None else getattr(tok, "eos_token_id", None)
            pad = pad if pad is not None else getattr(getattr(model, "config", None), "pad_token_id", None)
            if data_collator is None:
                data_collator = PromptResponseCollator(
                    pad_token_id=pad if pad is not None else 0,
                    tokenizer=tok,
                    max_length=args.max_length,
                    mask_token_ids=getattr(environment, "observation_token_ids", ()),
                    form="prompt" if spec.online else None,
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
            self.spec, self.reward_funcs, self.environment = spec, funcs, environment
            self.pad_id = pad if pad is not None else 0
            eos = getattr(tok, "eos_token_id", None)
            self.eos_id = eos if eos is not None else getattr(getattr(model, "config", None), "eos_token_id", None)
            self.sampler = torch.Generator().manual_seed(int(args.seed))
            self.rollout_buffer: dict[int, tuple[Rollouts, dict[str, Metric]]] = {}
            self.micro_step = 0
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

        def completion_bound(self, prompts: list) -> int:
            """max_completion_length, or the environment's bound for these prompts, else TRL's 512."""
            a: Any = self.args
            if a.max_completion_length is not None:
                return int(a.max_completion_length)
            if self.environment is not None and hasattr(self.environment, "max_new_tokens"):
                return max(int(self.environment.max_new_tokens(p)) for p in prompts)
            return MAX_COMPLETION_LENGTH

        def sample_rollouts(self, model, inputs: dict) -> tuple[Rollouts, dict[str, Metric]]:
            """Sample, score and lay out completions of the batch's prompts with the current model."""
            a: Any = self.args
            inner = self.accelerator.unwrap_model(model)
            G = int(a.num_generations)
            bound = self.completion_bound(inputs["prompts"])
            samples = sample_completions(
                inner,
                inputs["prompt_ids"],
                G,
                bound,
                self.eos_id,
                self.pad_id,
                self.sampler,
                a.temperature,
                self.environment,
                inputs["prompts"],
                self.processing_class,
            )
            samples.columns.update(repeat_columns(inputs.get("columns", {}), G))
            rewards, per_func = score_completions(self.reward_funcs, samples)
            old_model = inner if a.num_iterations > 1 else None  # else: the current log-probs, detached
            rollouts = make_rollouts(samples, rewards, self.pad_id, self.accelerator.device, old_model, self.ref_model)
            metrics = {f"rewards/{name}/mean": Metric.mean_of(v) for name, v in per_func.items()}
            return rollouts, metrics

        def online_batch(self, model, inputs: dict) -> tuple[Rollouts, dict[str, Metric]]:
            """This micro-batch's rollouts: sampled anew every num_iterations optimiser steps, else reused."""
            a: Any = self.args
            if not model.training:
                return self.sample_rollouts(model, inputs)
            slot = self.micro_step % max(1, int(a.gradient_accumulation_steps))
            self.micro_step += 1
            if self.state.global_step % a.num_iterations == 0 or slot not in self.rollout_buffer:
                self.rollout_buffer[slot] = self.sample_rollouts(model, inputs)
            return self.rollout_buffer[slot]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            hp = dict(self.hparams, ref_model=self.ref_model)
            method = getattr(self.args, "method")  # noqa: B009  (an IFTConfig field; TrainingArguments has none)
            extra: dict[str, Metric] = {}
            if method == "ift":
                hp["lam"] = self.current_lambda()
            if method == "kto" and self.accelerator.num_processes > 1:
                hp["gather"] = self.accelerator.gather
            if self.spec.online:
                inputs, extra = self.online_batch(model, inputs)
                if method == "grpo":
                    hp["max_completion_length"] = self.completion_bound(inputs.samples.prompts)
                    local = (inputs.labels[:, 1:] != IGNORE_INDEX).sum().float()
                    total = self.accelerator.reduce(local, reduction="sum")  # dapo: the tokens of all processes
                    hp["num_items"] = total / self.accelerator.num_processes
            loss, metrics = lm_loss(method, model, inputs, **hp)
            self.interval_metrics["train" if model.training else "eval"].add({**metrics, **extra})
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
