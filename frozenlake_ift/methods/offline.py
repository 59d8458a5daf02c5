"""Offline methods: they train on fixed (or pre-sampled) trajectories, not on their own rollouts.

Each loss is ``loss(params, batch, ctx) -> LossOutput`` with a per-member loss of Shape (E,): the
loss of each of the member's N trajectories (or pairs), averaged over N. A hyper-parameter read
from ``ctx.config`` may be a float or, in a batched sweep (``batched.py``), one value per member,
a Tensor of Shape (E,): it is then repeated for each member's N rows (``_rows``). The loss math
itself is ``losses.py``; this module only turns the network's output into per-step log-probs and masks.

    sft    Table 1 "SFT": mean NLL of the chosen trajectory, teacher-forced
    ift    Table 1 "IFT": the same on the temporal-residual input (Eq. 17) with relation propagation (Eq. 18)
    dpo    Table 1 "DPO offline": summed log-probs against the frozen theta_0, beta = dpo_beta
    orpo   ORPO: chosen NLL + odds-ratio term on average log-probs, beta = orpo_beta
    ipo    IPO: the DPO margin (of average log-probs, as TRL computes it) regressed onto 1 / (2 ipo_beta)
    simpo  SimPO: reference-free, average log-probs, beta = simpo_beta, target margin simpo_margin
    kto    KTO: chosen desirable, rejected undesirable (unpaired), summed log-probs against theta_0, reference
           point = the member's batch KL estimate, beta = kto_beta (TRL's KTOTrainer)
"""

from __future__ import annotations

import torch

from .. import losses
from ..data import Paths
from .batches import PairBatch, pair_logps, path_logps
from .context import LossOutput, StepContext


def _per_member(values: torch.Tensor, E: int, weight: torch.Tensor | None = None) -> torch.Tensor:
    """(E * N,) per-trajectory values -> (E,) mean over N (weighted, if given: Shape (E, N))."""
    v = values.view(E, -1)  # (E, N)
    if weight is None:
        return v.mean(-1)
    w = weight.to(v.dtype)
    return (v * w).sum(-1) / w.sum(-1).clamp_min(1.0)


def _rows(value, E: int, rows: torch.Tensor):
    """A hyper-parameter for the E * N rows of ``rows`` (Shape (E * N,)): a float as is; a per-member
    Tensor (E,) (a batched sweep's config view) repeated for each member's N trajectories."""
    if isinstance(value, torch.Tensor) and value.dim() == 1:
        return value.repeat_interleave(rows.shape[0] // E)  # (E * N,)
    return value


def _flat(lp: torch.Tensor, paths: Paths) -> tuple[torch.Tensor, torch.Tensor]:
    """(E, N, T) log-probs and the paths' mask as (E * N, T) rows for ``losses``."""
    return lp.flatten(0, 1), paths.expand(lp.shape[0]).mask.flatten(0, 1)


def sft(params: dict, batch: Paths, ctx: StepContext) -> LossOutput:
    """Mean NLL of the chosen trajectory's actions, teacher-forced (Table 1, SFT)."""
    lp = path_logps(params, batch, ctx.data, ctx.config.activation)  # (E, N, T)
    flat, mask = _flat(lp, batch)
    nll = losses.sft_loss(flat, mask, reduction="none")  # (E * N,)
    stats = {"nll_loss": _per_member(nll.detach(), lp.shape[0])} if ctx.logging else {}
    return LossOutput(_per_member(nll, lp.shape[0]), stats)


def ift(params: dict, batch: Paths, ctx: StepContext) -> LossOutput:
    """IFT: NLL on the temporal-residual input (Eq. 17), steps weighted by relation propagation (Eq. 18)."""
    cfg = ctx.config
    lp = path_logps(params, batch, ctx.data, cfg.activation, lam=cfg.lam)  # (E, N, T)
    flat, mask = _flat(lp, batch)
    loss = losses.ift_loss(flat, mask, gamma=cfg.prop_gamma, reduction="none")  # (E * N,)
    if not ctx.logging:
        return LossOutput(_per_member(loss, lp.shape[0]))
    nll = losses.sft_loss(flat.detach(), mask, reduction="none")  # (E * N,) unweighted, for the log
    return LossOutput(_per_member(loss, lp.shape[0]), {"nll_loss": _per_member(nll, lp.shape[0])})


def _pair_stats(chosen_rewards, rejected_rewards, E, weight) -> dict:
    """TRL's DPO statistics per member (mean over pairs): rewards/chosen, /rejected, /margins, /accuracies."""
    margins = chosen_rewards - rejected_rewards
    return {
        "rewards/chosen": _per_member(chosen_rewards, E, weight),
        "rewards/rejected": _per_member(rejected_rewards, E, weight),
        "rewards/margins": _per_member(margins, E, weight),
        "rewards/accuracies": _per_member((margins > 0).to(margins.dtype), E, weight),
    }


def _sequence(batch: PairBatch, lc, lr, average: bool):
    """Sequence log-probs (summed or averaged) of chosen and rejected. Shape: -> (E * N,), (E * N,)."""
    fc, mc = _flat(lc, batch.chosen)
    fr, mr = _flat(lr, batch.rejected)
    return losses.sequence_logps(fc, mc, average=average), losses.sequence_logps(fr, mr, average=average)


def _reference(batch: PairBatch, average: bool, ctx: StepContext | None = None):
    """Sequence log-probs of the reference (theta_0) on the batch; kept in ``ctx.cache`` while the batch is reused."""
    if batch.ref_chosen is None or batch.ref_rejected is None:
        raise ValueError("this method needs reference log-probs: register it with needs_reference=True")
    key = ("reference sequences", average)
    if ctx is not None and key in ctx.cache and ctx.cache[key][0] is batch:
        return ctx.cache[key][1]
    value = _sequence(batch, batch.ref_chosen, batch.ref_rejected, average)
    if ctx is not None:
        ctx.cache[key] = (batch, value)
    return value


def _preference_output(
    loss, chosen, rejected, chosen_rewards, rejected_rewards, E: int, weight, logging: bool = True
) -> LossOutput:
    """A reward-based preference loss (E * N,) as the member loss (E,) with TRL's statistics per member
    (computed only on a step whose statistics are recorded: ``logging``)."""
    if not logging:
        return LossOutput(_per_member(loss, E, weight))
    stats = {
        "logps/chosen": _per_member(chosen.detach(), E, weight),
        "logps/rejected": _per_member(rejected.detach(), E, weight),
        **_pair_stats(chosen_rewards, rejected_rewards, E, weight),
    }
    return LossOutput(_per_member(loss, E, weight), stats)


def dpo(params: dict, batch: PairBatch, ctx: StepContext) -> LossOutput:
    """DPO on summed log-probs against the frozen theta_0 (as the IFT authors ran it), beta = dpo_beta."""
    lc, lr = pair_logps(params, batch, ctx)  # (E, N, Tc), (E, N, Tr)
    E = lc.shape[0]
    pc, pr = _sequence(batch, lc, lr, average=False)  # (E * N,)
    rc, rr = _reference(batch, average=False, ctx=ctx)
    loss, cr, rj = losses.dpo_loss(pc, pr, rc, rr, beta=_rows(ctx.config.dpo_beta, E, pc))  # (E * N,)
    return _preference_output(loss, pc, pr, cr, rj, E, batch.weight, ctx.logging)


def ipo(params: dict, batch: PairBatch, ctx: StepContext) -> LossOutput:
    """IPO on average log-probs against theta_0 (TRL's loss_type="ipo"), beta = ipo_beta."""
    lc, lr = pair_logps(params, batch, ctx)
    E = lc.shape[0]
    pc, pr = _sequence(batch, lc, lr, average=True)
    rc, rr = _reference(batch, average=True, ctx=ctx)
    loss, cr, rj = losses.ipo_loss(pc, pr, rc, rr, beta=_rows(ctx.config.ipo_beta, E, pc))
    return _preference_output(loss, pc, pr, cr, rj, E, batch.weight, ctx.logging)


def orpo(params: dict, batch: PairBatch, ctx: StepContext) -> LossOutput:
    """ORPO on average log-probs with the chosen NLL as its SFT term, beta = orpo_beta (the authors' 0.25)."""
    lc, lr = pair_logps(params, batch, ctx)
    E = lc.shape[0]
    ac, ar = _sequence(batch, lc, lr, average=True)  # (E * N,)
    loss, log_odds = losses.orpo_loss(ac, ar, -ac, beta=_rows(ctx.config.orpo_beta, E, ac))
    if not ctx.logging:
        return LossOutput(_per_member(loss, E, batch.weight))
    stats = {
        "logps/chosen": _per_member(ac.detach(), E, batch.weight),
        "logps/rejected": _per_member(ar.detach(), E, batch.weight),
        "nll_loss": _per_member(-ac.detach(), E, batch.weight),
        "log_odds_ratio": _per_member(log_odds, E, batch.weight),
    }
    return LossOutput(_per_member(loss, E, batch.weight), stats)


def simpo(params: dict, batch: PairBatch, ctx: StepContext) -> LossOutput:
    """SimPO: reference-free, average log-probs, beta = simpo_beta, target margin simpo_margin."""
    lc, lr = pair_logps(params, batch, ctx)
    E = lc.shape[0]
    ac, ar = _sequence(batch, lc, lr, average=True)
    loss, cr, rj = losses.simpo_loss(
        ac, ar, beta=_rows(ctx.config.simpo_beta, E, ac), margin=_rows(ctx.config.simpo_margin, E, ac)
    )
    return _preference_output(loss, ac, ar, cr, rj, E, batch.weight, ctx.logging)


def kto(params: dict, batch: PairBatch, ctx: StepContext) -> LossOutput:
    """KTO (TRL's KTOTrainer, loss_type="kto"), unpaired: every chosen trajectory is desirable, every rejected
    one undesirable, summed log-probs against the frozen theta_0; the reference point z0 is each member's
    batch estimate of KL(pi || pi_0): the mean log-ratio of all its 2N trajectories (every trajectory starts
    at S, so each one is a "mismatched" completion of the one prompt), detached and clamped at 0. The member
    loss is the mean over its 2N rows, as TRL averages over its unpaired batch. beta = kto_beta."""
    cfg = ctx.config
    lc, lr = pair_logps(params, batch, ctx)  # (E, N, Tc), (E, N, Tr)
    E = lc.shape[0]
    pc, pr = _sequence(batch, lc, lr, average=False)  # (E * N,)
    rc, rr = _reference(batch, average=False, ctx=ctx)
    N = pc.shape[0] // E
    policy_rows = torch.cat([pc.view(E, N), pr.view(E, N)], 1)  # (E, 2N): N desirable, then N undesirable
    ref_rows = torch.cat([rc.view(E, N), rr.view(E, N)], 1)  # (E, 2N)
    z0 = losses.kto_reference_point(policy_rows, ref_rows)  # (E,)
    desirable = torch.arange(2 * N, device=pc.device).expand(E, -1) < N  # (E, 2N)
    flat = policy_rows.flatten()  # (E * 2N,)
    loss, rewards = losses.kto_loss(
        flat,
        ref_rows.flatten(),
        desirable.flatten(),
        z0.repeat_interleave(2 * N),
        beta=_rows(cfg.kto_beta, E, flat),
        desirable_weight=_rows(cfg.kto_desirable_weight, E, flat),
        undesirable_weight=_rows(cfg.kto_undesirable_weight, E, flat),
    )  # (E * 2N,)
    weight = None if batch.weight is None else torch.cat([batch.weight, batch.weight], 1)  # (E, 2N)
    if not ctx.logging:
        return LossOutput(_per_member(loss, E, weight))
    rewards = rewards.view(E, 2 * N)
    stats = {
        "logps/chosen": _per_member(pc.detach(), E, batch.weight),
        "logps/rejected": _per_member(pr.detach(), E, batch.weight),
        **_pair_stats(rewards[:, :N].flatten(), rewards[:, N:].flatten(), E, batch.weight),
        "objective/kl": z0,  # TRL's "kl" (the reference point z0); not the kl metric, KL(pi* || pi)
    }
    return LossOutput(_per_member(loss, E, weight), stats)
