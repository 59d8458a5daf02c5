"""The names of the loss variants that ``losses`` offers, without torch (``config`` validates against them).

GRPO_LOSS_TYPES: how a GRPO-style loss averages its per-token terms over a batch, as TRL's
``GRPOConfig.loss_type`` names them (``losses.aggregate_token_losses`` documents each):

    "grpo"     mean over sequences of each sequence's token mean (the original GRPO; this package's default)
    "bnpo"     token mean over the batch (every token of every sequence weighs the same)
    "dapo"     token sum over the batch divided by the token count of the whole batch over all processes
               (TRL 1.16's default; equal to "bnpo" on one full batch in one process)
    "dr_grpo"  token sum divided by (number of sequences x the longest allowed completion), Dr. GRPO
"""

from __future__ import annotations

GRPO_LOSS_TYPES = ("grpo", "bnpo", "dapo", "dr_grpo")
TRL_GRPO_DEFAULT = "dapo"  # TRL 1.16's GRPOConfig.loss_type default (ours is "grpo": StudyConfig.grpo_loss_type)
