"""The on-policy objectives on a causal LM (grpo / rloo / dpo_online / ppo): Rollouts -> loss + metrics.

Each turns the model's per-token log-probs of its own completions (``token_logps`` on the rollouts'
labels: the model's tokens, never an environment's) into a loss with the same ``losses.py`` functions
as the grid path's methods (``methods/online.py``):

    grpo        group-relative advantages (``group_advantages``), ``clipped_token_losses`` averaged by
                ``aggregate_token_losses`` (loss_type), k3 KL to the reference when beta > 0   (TRL's GRPOTrainer)
    rloo        leave-one-out advantages of the rewards minus beta x the summed log-ratio to the
                reference (``rloo_advantages``), ``sequence_clipped_loss``                 (TRL's RLOOTrainer)
    dpo_online  two completions per prompt, the higher reward chosen, ``dpo_loss`` against the reference;
                a tie carries no preference (weight 0), as on the grid path
    ppo         per-token rewards -beta x (log pi - log pi_ref) plus the completion's reward on its last
                token, returns to go (gamma 1) whitened over the batch's tokens as advantages (no value
                head: the grid path subtracts the exact value of the sampling policy instead),
                ``clipped_surrogate_loss``. TRL 1.16 has no PPOTrainer to compare with
"""

from __future__ import annotations

import torch

from .. import losses
from ..config import field_default
from .logps import model_logits, token_logps
from .objectives import LMLoss, Metric
from .rollouts import Rollouts


def rollout_token_logps(
    model: torch.nn.Module, rollouts: Rollouts, method: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The current model's log-probs of the rollouts' trained tokens, their mask, and the sampling log-probs.
    Shape: -> (N, L-1) each; old = rollouts.old_logps, or the current ones detached (one step per sample)."""
    if not isinstance(rollouts, Rollouts):
        raise TypeError(
            f"on-policy method {method!r} trains on Rollouts (IFTTrainer samples them: llm.sample_completions, "
            f"llm.make_rollouts), got {type(rollouts).__name__}"
        )
    logits = model_logits(model, input_ids=rollouts.input_ids, attention_mask=rollouts.attention_mask)  # (N, L, V)
    logps, mask = token_logps(logits, rollouts.labels)  # (N, L-1)
    old = rollouts.old_logps if rollouts.old_logps is not None else logps.detach()
    return logps, mask, old


def _needs_ref(rollouts: Rollouts, beta: float, method: str) -> torch.Tensor:
    if rollouts.ref_logps is None:
        raise ValueError(f"method {method!r} with beta={beta} > 0 needs reference log-probs: pass ref_model")
    return rollouts.ref_logps


def _reward_metrics(rollouts: Rollouts, mask: torch.Tensor) -> dict[str, Metric]:
    r = rollouts.rewards.float()
    grouped = r.view(-1, rollouts.num_generations)  # (P, G)
    zero_std = grouped.std(-1) == 0 if rollouts.num_generations > 1 else torch.ones(grouped.shape[0], dtype=torch.bool)
    return {
        "reward": Metric.mean_of(r),
        "reward_std": Metric(r.std().detach() if r.numel() > 1 else torch.zeros(()), 1),
        "frac_reward_zero_std": Metric.mean_of(zero_std.float()),
        "completions/mean_length": Metric.mean_of(mask.sum(-1).float()),
    }


def grpo_lm_loss(
    model: torch.nn.Module,
    rollouts: Rollouts,
    beta: float = 0.0,
    epsilon: float = 0.2,
    loss_type: str = "grpo",
    max_completion_length: int | None = None,
    num_items: float | None = None,
    use_bias_correction_kl: bool = field_default("grpo_kl_correction"),
    **_: object,
) -> LMLoss:
    """GRPO. rewards -> (r - group mean) / (group std + 1e-4) per prompt; per-token clipped ratio loss (+ beta k3,
    times the ratio with ``use_bias_correction_kl``); averaged as ``loss_type`` says (num_items: dapo's token
    count over all processes, per process)."""
    logps, mask, old = rollout_token_logps(model, rollouts, "grpo")  # (N, L-1)
    adv = losses.group_advantages(rollouts.rewards.view(-1, rollouts.num_generations).float()).flatten()  # (N,)
    ref = _needs_ref(rollouts, beta, "grpo") if beta > 0 else None
    token = losses.clipped_token_losses(
        logps, old, adv.to(logps.dtype), mask, epsilon, ref_logps=ref, beta=beta, kl_correction=use_bias_correction_kl
    )
    loss = losses.aggregate_token_losses(token, mask, loss_type, max_completion_length, num_items)
    metrics = _reward_metrics(rollouts, mask)
    with torch.no_grad():
        ratio = torch.exp(logps.detach() - old)  # (N, L-1)
        a = adv[:, None].to(ratio.dtype)
        clipped = ((ratio < 1 - epsilon) & (a < 0)) | ((ratio > 1 + epsilon) & (a > 0))
        metrics["clip_ratio/region_mean"] = Metric.mean_of(clipped[mask].float())
        if ref is not None:
            metrics["kl"] = Metric.mean_of(losses.kl_k3(logps.detach(), ref)[mask])
    return LMLoss(loss, metrics)


def rloo_lm_loss(
    model: torch.nn.Module, rollouts: Rollouts, beta: float = 0.05, epsilon: float = 0.2, **_: object
) -> LMLoss:
    """RLOO. rewards - beta * sum_t (log pi_old - log pi_ref) -> leave-one-out advantages per prompt;
    the clipped surrogate on whole-completion ratios, averaged over the completions."""
    logps, mask, old = rollout_token_logps(model, rollouts, "rloo")  # (N, L-1)
    seq = losses.sequence_logps(logps, mask)  # (N,)
    old_seq = losses.sequence_logps(old, mask)  # (N,)
    rewards = rollouts.rewards.to(seq.dtype)
    metrics = _reward_metrics(rollouts, mask)
    if beta > 0:
        log_ratio = torch.where(mask, old - _needs_ref(rollouts, beta, "rloo"), 0.0).sum(-1)  # (N,): summed log-ratios
        rewards = rewards - beta * log_ratio
        metrics["kl"] = Metric(log_ratio.sum().detach(), int(mask.sum()))  # per-token mean, as TRL logs it
    adv = losses.rloo_advantages(rewards.view(-1, rollouts.num_generations)).flatten()  # (N,)
    loss = losses.sequence_clipped_loss(seq, old_seq, adv, epsilon).mean()
    return LMLoss(loss, metrics)


def dpo_online_lm_loss(model: torch.nn.Module, rollouts: Rollouts, beta: float = 0.1, **_: object) -> LMLoss:
    """Online DPO: completions 2k and 2k+1 of a prompt form a pair, the higher reward chosen; DPO on summed
    log-probs against the reference; the loss is the mean over the pairs with a preference (ties weigh 0)."""
    logps, mask, _old = rollout_token_logps(model, rollouts, "dpo_online")
    if rollouts.num_generations != 2:
        raise ValueError(f"dpo_online pairs two completions per prompt; got num_generations={rollouts.num_generations}")
    seq = losses.sequence_logps(logps, mask).view(-1, 2)  # (P, 2)
    ref = losses.sequence_logps(_needs_ref(rollouts, beta, "dpo_online"), mask).view(-1, 2)  # (P, 2)
    r = rollouts.rewards.view(-1, 2)  # (P, 2)
    first = (r[:, 0] > r[:, 1])[:, None]  # (P, 1): the first completion is the chosen one
    pick = torch.cat([first, ~first], 1).long()  # (P, 2): column of the chosen, then of the rejected
    pol, rf = seq.gather(1, pick), ref.gather(1, pick)  # (P, 2)
    rows, chosen_r, rejected_r = losses.dpo_loss(pol[:, 0], pol[:, 1], rf[:, 0], rf[:, 1], beta=beta)  # (P,)
    weight = (r[:, 0] != r[:, 1]).to(rows.dtype)  # (P,)
    loss = (rows * weight).sum() / weight.sum().clamp_min(1.0)
    metrics = _reward_metrics(rollouts, mask)
    labelled = weight > 0
    metrics.update(
        {
            "pairs/labelled": Metric.mean_of(weight),
            "rewards/chosen": Metric.mean_of(chosen_r[labelled]),
            "rewards/rejected": Metric.mean_of(rejected_r[labelled]),
            "rewards/margins": Metric.mean_of((chosen_r - rejected_r)[labelled]),
        }
    )
    return LMLoss(loss, metrics)


def ppo_lm_loss(
    model: torch.nn.Module, rollouts: Rollouts, beta: float = 0.05, epsilon: float = 0.2, **_: object
) -> LMLoss:
    """PPO with a KL-penalised reward and whitened returns to go as advantages (no value head)."""
    logps, mask, old = rollout_token_logps(model, rollouts, "ppo")  # (N, L-1)
    with torch.no_grad():
        m = mask.to(logps.dtype)
        reward = torch.zeros_like(logps)  # (N, L-1)
        if beta > 0:
            reward = reward - beta * (old - _needs_ref(rollouts, beta, "ppo")) * m
        last = (torch.cumsum(m, -1) == m.sum(-1, keepdim=True)) & mask  # (N, L-1): the last trained token
        reward = reward + last * rollouts.rewards.to(logps.dtype)[:, None]
        returns = torch.flip(torch.cumsum(torch.flip(reward, [-1]), -1), [-1])  # (N, L-1): sum over t' >= t
        values = returns[mask]
        adv = (returns - values.mean()) / (values.std() + 1e-8 if values.numel() > 1 else 1.0)  # (N, L-1)
    loss = losses.clipped_surrogate_loss(logps, old, adv, mask, epsilon).mean()
    metrics = _reward_metrics(rollouts, mask)
    if beta > 0:
        metrics["kl"] = Metric.mean_of((old - rollouts.ref_logps)[mask])  # type: ignore[operator]
    return LMLoss(loss, metrics)
