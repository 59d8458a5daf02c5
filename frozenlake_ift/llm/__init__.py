"""Adapter: the losses of ``losses.py`` on a causal language model (Hugging Face transformers).

A prefix is a state and the next token an action (IFT paper, Sec. 3), so a causal LM turns into the
per-step log-probs (B, T) + mask (B, T) that ``losses.py`` consumes, exactly as the grid path does:

    token_logps(logits, labels)          logits (B, T, V), labels (B, T) -> logps, mask (B, T-1); chunked,
                                         no float32 copy of the logits                      (logps.py)
    ift_inputs_embeds(model, ids, ...)   IFT temporal residual connection (Eq. 17) on input embeddings (inputs.py)
    METHODS / lm_loss(method, ...)       every method -> LMLoss(loss, metrics): sft ift dpo orpo ipo simpo kto
                                         (objectives.py); grpo rloo dpo_online ppo on Rollouts (online.py)
    sample_completions, score_completions, make_rollouts   on-policy data, TRL's reward_funcs     (rollouts.py)
    PromptResponseCollator               TRL's dataset formats -> padded batches, prompt masked (data.py)
    IFTConfig, IFTTrainer                transformers.TrainingArguments / Trainer subclasses (config.py, trainer.py)
    grid_dataset, GridEnvironment, ...   the Frozen-Lake study's own task, closed loop      (grid.py)
    judge(model, tokenizer, task)        its exact closed-loop score: the study's metrics    (judge.py)

transformers is imported lazily: ``IFTConfig`` and ``IFTTrainer`` are built on first access
(PEP 562 module __getattr__), so ``import frozenlake_ift.llm`` needs torch only. Any module with
``get_input_embeddings()`` whose forward takes ``input_ids`` / ``inputs_embeds`` / ``attention_mask``
and returns ``.logits`` works. The long form is docs/llm.md.
"""

from __future__ import annotations

from typing import Any

from .config import IFT_FIELDS, build_config_class, loss_hparams, resolve_beta
from .data import (
    COMPLETION_FIELDS,
    PREFERENCE_FIELDS,
    ROW_FORMS,
    EncodedRow,
    PromptResponseCollator,
    row_error,
    unpair_rows,
    validate_rows,
)
from .grid import (
    FORMS,
    VOCAB,
    GridEnvironment,
    GridEpisode,
    GridReward,
    GridTask,
    decode_moves,
    episode_text,
    grid_dataset,
    grid_prompt,
    grid_reward,
    grid_tasks,
    grid_tokenizer,
    moves_success,
    moves_text,
    parse_moves,
    tile,
)
from .inputs import check_lambda, greedy_next_tokens, ift_inputs_embeds, scheduled_lambda
from .judge import GridJudgement, judge
from .logps import CHUNK_BYTES, IGNORE_INDEX, chunk_rows, context_length, model_logits, token_logps, unwrap_model
from .metrics import LMLoss, Metric, MetricAccumulator
from .objectives import (
    DPO_BETA,
    LOSSES,
    METHODS,
    METRICS,
    ORPO_BETA,
    PAIR_SIDES,
    MethodSpec,
    dpo_lm_loss,
    ift_lm_loss,
    ipo_lm_loss,
    kto_lm_loss,
    lm_loss,
    method_spec,
    orpo_lm_loss,
    pair_token_logps,
    sft_lm_loss,
    simpo_lm_loss,
)
from .online import dpo_online_lm_loss, grpo_lm_loss, ppo_lm_loss, rloo_lm_loss
from .rollouts import Rollouts, Samples, make_rollouts, sample_completions, score_completions

__all__ = [
    "CHUNK_BYTES",
    "COMPLETION_FIELDS",
    "DPO_BETA",
    "FORMS",
    "IFT_FIELDS",
    "IGNORE_INDEX",
    "LOSSES",
    "METHODS",
    "METRICS",
    "ORPO_BETA",
    "PAIR_SIDES",
    "PREFERENCE_FIELDS",
    "ROW_FORMS",
    "VOCAB",
    "EncodedRow",
    "GridEnvironment",
    "GridEpisode",
    "GridJudgement",
    "GridReward",
    "GridTask",
    "IFTConfig",
    "IFTTrainer",
    "LMLoss",
    "MethodSpec",
    "Metric",
    "MetricAccumulator",
    "PromptResponseCollator",
    "Rollouts",
    "Samples",
    "build_config_class",
    "check_lambda",
    "chunk_rows",
    "context_length",
    "decode_moves",
    "dpo_lm_loss",
    "dpo_online_lm_loss",
    "episode_text",
    "greedy_next_tokens",
    "grid_dataset",
    "grid_prompt",
    "grid_reward",
    "grid_tasks",
    "grid_tokenizer",
    "grpo_lm_loss",
    "ift_inputs_embeds",
    "ift_lm_loss",
    "ipo_lm_loss",
    "judge",
    "kto_lm_loss",
    "lm_loss",
    "loss_hparams",
    "make_rollouts",
    "method_spec",
    "model_logits",
    "moves_success",
    "moves_text",
    "orpo_lm_loss",
    "pair_token_logps",
    "parse_moves",
    "ppo_lm_loss",
    "resolve_beta",
    "rloo_lm_loss",
    "row_error",
    "sample_completions",
    "scheduled_lambda",
    "score_completions",
    "sft_lm_loss",
    "simpo_lm_loss",
    "tile",
    "token_logps",
    "unpair_rows",
    "unwrap_model",
    "validate_rows",
]


def __getattr__(name: str) -> Any:  # PEP 562: build the transformers subclasses on first access only
    if name == "IFTConfig":
        cls = build_config_class()
        globals()["IFTConfig"] = cls
        return cls
    if name == "IFTTrainer":
        from .trainer import build_trainer_class

        cls = build_trainer_class(__getattr__("IFTConfig") if "IFTConfig" not in globals() else globals()["IFTConfig"])
        globals()["IFTTrainer"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
