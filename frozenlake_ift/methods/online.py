"""Methods that estimate the model's preference on its own states (Table 1's other rows), and GRPO.

    truly       Table 1 "truly": maximise sum_n log (rho0^T T_pi^n)[s*_n] along the chosen trajectory,
                computed and differentiated exactly (no sampling)
    ppo         Table 1 "PPO" (the RLHF analogue): on-policy rollouts, the MDP's rewards (a lake: 1 on reaching
                G) minus a KL penalty to theta_0, clipped surrogate, advantages against the exact value of the
                sampling policy
    dpo_online  Table 1 "DPO online": pairs sampled from the current policy, labelled by an exact oracle, DPO
                against theta_0
    grpo        GRPO (as TRL's GRPOTrainer): G rollouts per member, group-relative advantages, clipped
                surrogate, a KL term only when grpo_beta > 0, averaged as grpo_loss_type says. Not a Table 1 row
    rloo        RLOO (as TRL's RLOOTrainer): rloo_k rollouts per member, leave-one-out baseline, a KL penalty
                in the reward, clipped surrogate on whole-rollout ratios. Not a Table 1 row

A study step is one optimiser step for every method. PPO samples fresh rollouts every ``ppo_epochs``
steps and takes ``ppo_epochs`` full-batch steps on each (its K epochs); GRPO and online DPO sample
every step (GRPO: every ``grpo_iterations`` steps; TRL's default is 1). Rollouts start from rho0 and
stop at a terminal state (a hole, G) or after ``horizon`` steps. A sampled step earns the MDP's
reward of its transition, r(s, a, s') (``Reference.reward``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import losses, metrics, solve
from ..data import Paths, policy_probs
from .batches import PairBatch, path_logps, sample_paths
from .context import LossOutput, StepContext
from .offline import dpo


# ------------------------------------------------------------------------------------ truly
def truly(params: dict, batch: Paths, ctx: StepContext) -> LossOutput:
    """-(1/N) sum_{n=1..N} log (d_0^T T_pi^n)[s*_n] for each chosen trajectory (Table 1, "truly").

    T_pi = sum_a pi(a|s) P(s'|s, a) (Eq. 2) from the network's policy on every state, in float64;
    d_0 is rho0 when every trajectory leaves from rho0's one start (a lake), else the one-hot of the
    trajectory's own start s*_0. The n-step state distribution d_0^T T_pi^n is the model's own
    probability of being at s*_n after n steps (on the deterministic two-route map the chosen route
    is the only n-step way to s*_n, so this equals the path probability of Eq. 19).
    Shape: batch (E, N, T) -> loss (E,).
    """
    ref = ctx.reference
    pi = policy_probs(params, ctx.data, ctx.config.activation)  # (E, S, A), with grad
    T_pi = torch.einsum("esa,sat->est", pi, ref.P)  # (E, S, S)
    E, N, T = batch.expand(pi.shape[0]).shape
    paths = batch.expand(E)
    targets = paths.states[..., 1:]  # (E, N, T): s*_1 .. s*_T
    starts = torch.unique(paths.states[..., 0])  # the trajectories' start states
    one_start = starts.numel() == 1 and bool(ref.rho0[starts[0]] == 1)
    logp = torch.empty(E, N, T, dtype=T_pi.dtype, device=T_pi.device)  # (E, N, T)
    for s0 in [None] if one_start else starts.tolist():
        d = ref.rho0.expand(E, -1) if s0 is None else ctx.data.eye[s0].to(T_pi.dtype).expand(E, -1)  # (E, S)
        dists = []
        for _ in range(T):
            d = torch.bmm(d.unsqueeze(1), T_pi).squeeze(1)  # (E, S): d_0^T T_pi^n
            dists.append(d)
        dist = torch.stack(dists, 1)  # (E, T, S)
        p = torch.gather(dist.unsqueeze(1).expand(E, N, T, -1), -1, targets.unsqueeze(-1)).squeeze(-1)  # (E, N, T)
        rows = torch.ones_like(targets, dtype=torch.bool) if s0 is None else (paths.states[..., :1] == s0)  # (E, N, 1)
        logp = torch.where(rows, torch.log(p.clamp_min(1e-300)), logp)
    mask = paths.mask
    per_path = -(torch.where(mask, logp, 0.0)).sum(-1) / mask.sum(-1)  # (E, N)
    return LossOutput(per_path.mean(-1).to(params["W1"].dtype), {})


# -------------------------------------------------------------------------------------- PPO
@dataclass(frozen=True)
class RolloutBatch:
    """On-policy samples: paths (E, N, T), their log-probs under the sampling policy (E, N, T),
    advantages (E, N, T) (PPO) or (E, N) (GRPO), reference log-probs (E, N, T) or None, and what the
    rollouts log per member (``_rollout_stats``: the share that reached a goal, or the mean return), {name: (E,)}."""

    paths: Paths
    old_logps: torch.Tensor
    advantages: torch.Tensor
    ref_logps: torch.Tensor | None
    stats: dict


def _rollouts(params: dict, n: int, ctx: StepContext):
    with torch.no_grad():
        pi = policy_probs(params, ctx.data, ctx.config.activation)  # (E, S, A)
        paths = sample_paths(pi, n, ctx)
        old = path_logps(params, paths, ctx.data, ctx.config.activation)  # (E, N, T)
    return pi, paths, old


def _rewards(paths: Paths, ref) -> torch.Tensor:
    """The reward of each sampled step, r(s_t, a_t, s_t+1) (a lake: 1 on the step that enters G), 0 past
    the end. Shape: -> (E, N, T) float64."""
    r = ref.reward[paths.states[..., :-1], paths.actions, paths.states[..., 1:]]  # (E, N, T)
    return torch.where(paths.mask, r, 0.0)


def _rollout_stats(paths: Paths, rewards: torch.Tensor, ref) -> dict:
    """What a batch of rollouts logs per member: the share that reached a goal (``rollout/success``), or,
    on an MDP without goals, the mean undiscounted return (``rollout/return``). Shape: -> {name: (E,)}."""
    if bool(ref.goal.any()):
        return {"rollout/success": ref.goal[paths.states].any(-1).double().mean(-1)}
    return {"rollout/return": rewards.sum(-1).mean(-1)}


def ppo_batch(params: dict, ctx: StepContext, step: int) -> RolloutBatch:
    """Every ``ppo_epochs`` steps: ``ppo_episodes`` rollouts per member and their advantages.

    Reward r_t = r(s_t, a_t, s_{t+1}) - ppo_kl * (log pi(a_t|s_t) - log pi_0(a_t|s_t)) (the KL-penalised
    reward of RLHF; on a lake r is 1 on entering G). Advantage A_t = G_t - V(s_t): the sampled
    discounted return (bootstrapped with V at a truncated end) minus the exact value V of the
    sampling policy for the same penalised reward in expectation, r(s, a) = R(s, a) - ppo_kl
    (log pi(a|s) - log pi_0(a|s)), by a linear solve; then normalised per member (mean 0, std 1
    over its steps).
    """
    cfg, ref = ctx.config, ctx.reference
    if "ppo" in ctx.cache and step % cfg.ppo_epochs != 0:
        return ctx.cache["ppo"]
    pi, paths, old = _rollouts(params, cfg.ppo_episodes, ctx)
    with torch.no_grad():
        if "pi0" not in ctx.cache:
            ctx.cache["pi0"] = policy_probs(ref.base, ctx.data, cfg.activation)  # (E, S, A)
        ref_lp = path_logps(ref.base, paths, ctx.data, cfg.activation)  # (E, N, T)
        log_ratio = torch.log(pi.clamp_min(1e-300)) - torch.log(ctx.cache["pi0"].clamp_min(1e-300))  # (E, S, A)
        V = metrics.state_values(ref.P, ref.R - cfg.ppo_kl * log_ratio, ref.terminal, pi, cfg.gamma)  # (E, S)
        mask = paths.mask
        env_r = _rewards(paths, ref)  # (E, N, T)
        r = env_r - cfg.ppo_kl * (old - ref_lp).double()  # (E, N, T)
        r = torch.where(mask, r, 0.0)
        E, N, T = paths.shape
        v_next = torch.gather(V, 1, paths.states[..., -1].reshape(E, -1)).view(E, N)  # (E, N): bootstrap
        ret = torch.where(ref.terminal[paths.states[..., -1]], 0.0, v_next)  # (E, N)
        returns = torch.empty_like(r)
        for t in range(T - 1, -1, -1):
            ret = torch.where(mask[..., t], r[..., t] + cfg.gamma * ret, ret)
            returns[..., t] = ret
        v_s = torch.gather(V, 1, paths.states[..., :-1].reshape(E, -1)).view(E, N, T)  # (E, N, T)
        adv = torch.where(mask, returns - v_s, 0.0)
        count = mask.sum((1, 2)).clamp_min(1)  # (E,)
        mean = adv.sum((1, 2)) / count
        var = torch.where(mask, (adv - mean[:, None, None]) ** 2, 0.0).sum((1, 2)) / (count - 1).clamp_min(1)
        adv = torch.where(mask, (adv - mean[:, None, None]) / (var.sqrt()[:, None, None] + 1e-8), 0.0)
    ctx.cache["ppo"] = RolloutBatch(paths, old, adv, ref_lp, _rollout_stats(paths, env_r, ref))
    return ctx.cache["ppo"]


def ppo(params: dict, batch: RolloutBatch, ctx: StepContext) -> LossOutput:
    """PPO's clipped surrogate (epsilon = ppo_clip) averaged over each member's sampled steps."""
    lp = path_logps(params, batch.paths, ctx.data, ctx.config.activation)  # (E, N, T)
    E = lp.shape[0]
    loss = losses.clipped_surrogate_loss(
        lp.reshape(E, -1),
        batch.old_logps.reshape(E, -1),
        batch.advantages.reshape(E, -1).to(lp.dtype),
        batch.paths.mask.reshape(E, -1),
        epsilon=ctx.config.ppo_clip,
    )  # (E,)
    return LossOutput(loss, dict(batch.stats))


# ------------------------------------------------------------------------------- DPO online
def _oracle_scores(paths: Paths, ctx: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact oracle: discounted return of each trajectory, and the tie-break, max_t V*(s_t). Shape (E, N)."""
    ref, gamma = ctx.reference, ctx.config.gamma
    if "v_star" not in ctx.cache:
        v = solve.value_iteration(ctx.data.mdp, gamma=gamma).V
        ctx.cache["v_star"] = torch.as_tensor(np.asarray(v), dtype=torch.float64, device=ref.P.device)
    rewards = _rewards(paths, ref)  # (E, N, T)
    T = rewards.shape[-1]
    discount = gamma ** torch.arange(T, dtype=torch.float64, device=rewards.device)  # (T,)
    ret = (rewards * discount).sum(-1)  # (E, N)
    reach = ctx.cache["v_star"][paths.states].amax(-1)  # (E, N): how close to G it came, by V*
    return ret, reach


def dpo_online_batch(params: dict, ctx: StepContext, step: int) -> PairBatch:
    """Every step, 2 x ``pairs`` trajectories per member from the current policy, paired in order.

    The oracle prefers the higher discounted return; ties (most often: both fall into a hole) are
    broken by the larger max_t V*(s_t) along the trajectory (it came closer to G); pairs still tied
    carry no preference and get weight 0 (a member whose pairs all tie gets a zero loss).
    """
    cfg = ctx.config
    with torch.no_grad():
        pi = policy_probs(params, ctx.data, cfg.activation)
        paths = sample_paths(pi, 2 * cfg.pairs, ctx)
        a, b = paths.split(cfg.pairs)
        ret, reach = _oracle_scores(paths, ctx)  # (E, 2N)
        ra, rb, ca, cb = ret[:, : cfg.pairs], ret[:, cfg.pairs :], reach[:, : cfg.pairs], reach[:, cfg.pairs :]
        a_wins = (ra > rb) | ((ra == rb) & (ca > cb))  # (E, N)
        tied = (ra == rb) & (ca == cb)

        def pick(x, y):
            w = a_wins.view(*a_wins.shape, *([1] * (x.dim() - 2)))
            return torch.where(w, x, y)

        chosen = Paths(pick(a.states, b.states), pick(a.actions, b.actions), pick(a.mask, b.mask)).trimmed()
        rejected = Paths(pick(b.states, a.states), pick(b.actions, a.actions), pick(b.mask, a.mask)).trimmed()
        base = ctx.reference.base
        ref_c = path_logps(base, chosen, ctx.data, cfg.activation)
        ref_r = path_logps(base, rejected, ctx.data, cfg.activation)
    return PairBatch(chosen, rejected, ref_c, ref_r, weight=(~tied).double())


def dpo_online(params: dict, batch: PairBatch, ctx: StepContext) -> LossOutput:
    """DPO (summed log-probs, beta = dpo_beta, reference theta_0) on the oracle-labelled sampled pairs."""
    out = dpo(params, batch, ctx)
    assert batch.weight is not None, "dpo_online_batch weights every pair"
    if ctx.logging:
        out.stats["pairs/labelled"] = batch.weight.mean(-1)
    return out


# ------------------------------------------------------------------------------------- GRPO
def grpo_batch(params: dict, ctx: StepContext, step: int) -> RolloutBatch:
    """Every ``grpo_iterations`` steps: a group of ``grpo_group`` rollouts per member from rho0, each
    scored by its undiscounted return (a lake: 1 if it reaches G), advantages (r - group mean) /
    (group std + 1e-4) (``losses.group_advantages``)."""
    cfg, ref = ctx.config, ctx.reference
    if "grpo" in ctx.cache and step % cfg.grpo_iterations != 0:
        return ctx.cache["grpo"]
    _, paths, old = _rollouts(params, cfg.grpo_group, ctx)
    with torch.no_grad():
        env_r = _rewards(paths, ref)  # (E, G, T)
        reward = env_r.sum(-1)  # (E, G): the return (on a lake 1.0 exactly when G is reached, else 0.0)
        adv = losses.group_advantages(reward)  # (E, G)
        ref_lp = path_logps(ref.base, paths, ctx.data, cfg.activation) if cfg.grpo_beta > 0 else None
    ctx.cache["grpo"] = RolloutBatch(paths, old, adv, ref_lp, _rollout_stats(paths, env_r, ref))
    return ctx.cache["grpo"]


def grpo(params: dict, batch: RolloutBatch, ctx: StepContext) -> LossOutput:
    """GRPO's clipped per-step loss (+ grpo_beta x k3 KL), averaged over each member's group as
    ``grpo_loss_type`` says (default "grpo": mean over rollouts of each rollout's step mean, the original
    formulation; "dr_grpo" divides by G x horizon). ``losses.clipped_token_losses`` / ``aggregate_token_losses``."""
    cfg = ctx.config
    lp = path_logps(params, batch.paths, ctx.data, cfg.activation)  # (E, G, T)
    E, G, T = lp.shape
    mask = batch.paths.expand(E).mask  # (E, G, T)
    ref = None if batch.ref_logps is None else batch.ref_logps.flatten(0, 1)
    token = losses.clipped_token_losses(
        lp.flatten(0, 1),
        batch.old_logps.flatten(0, 1),
        batch.advantages.flatten().to(lp.dtype),
        mask.flatten(0, 1),
        epsilon=cfg.grpo_clip,
        ref_logps=ref,
        beta=cfg.grpo_beta,
        kl_correction=cfg.grpo_kl_correction,
    )  # (E * G, T)
    loss = losses.aggregate_token_losses(token.view(E, G, T), mask, cfg.grpo_loss_type, cfg.horizon)  # (E,)
    return LossOutput(loss, dict(batch.stats))


# ------------------------------------------------------------------------------------- RLOO
def rloo_batch(params: dict, ctx: StepContext, step: int) -> RolloutBatch:
    """Every step, ``rloo_k`` rollouts per member from rho0 (TRL's RLOOTrainer: num_generations, num_iterations 1).

    Reward of a rollout: its undiscounted return (a lake: 1 if it reaches G), minus rloo_beta x its summed
    log-ratio to theta_0,
    sum_t (log pi(a_t|s_t) - log pi_0(a_t|s_t)) (RLOO's first-order KL, a penalty in the reward). Advantage:
    the reward minus the mean reward of the member's other k - 1 rollouts (``losses.rloo_advantages``).
    """
    cfg, ref = ctx.config, ctx.reference
    _, paths, old = _rollouts(params, cfg.rloo_k, ctx)  # old: (E, k, T)
    with torch.no_grad():
        mask = paths.mask  # (E, k, T)
        ref_lp = path_logps(ref.base, paths, ctx.data, cfg.activation)  # (E, k, T)
        env_r = _rewards(paths, ref)  # (E, k, T)
        log_ratio = torch.where(mask, old - ref_lp, 0.0).double()  # (E, k, T)
        reward = env_r.sum(-1) - cfg.rloo_beta * log_ratio.sum(-1)  # (E, k): the return (a lake: 1 if it reaches G)
        adv = losses.rloo_advantages(reward)  # (E, k)
    return RolloutBatch(paths, old, adv, ref_lp, _rollout_stats(paths, env_r, ref))


def rloo(params: dict, batch: RolloutBatch, ctx: StepContext) -> LossOutput:
    """RLOO's clipped surrogate on whole-rollout ratios (epsilon = rloo_clip), mean over the member's k rollouts."""
    lp = path_logps(params, batch.paths, ctx.data, ctx.config.activation)  # (E, k, T)
    E, k, _ = lp.shape
    mask = batch.paths.expand(E).mask.flatten(0, 1)  # (E * k, T)
    seq = losses.sequence_logps(lp.flatten(0, 1), mask)  # (E * k,)
    old = losses.sequence_logps(batch.old_logps.flatten(0, 1), mask)  # (E * k,)
    loss = losses.sequence_clipped_loss(
        seq, old, batch.advantages.flatten().to(lp.dtype), epsilon=ctx.config.rloo_clip
    )  # (E * k,)
    stats = dict(batch.stats)
    if ctx.logging and batch.ref_logps is not None:  # TRL's KL estimate (not the kl metric, KL(pi* || pi))
        steps = batch.paths.expand(E).mask  # (E, k, T)
        stats["objective/kl"] = torch.where(steps, batch.old_logps - batch.ref_logps, 0.0).sum((1, 2)) / steps.sum(
            (1, 2)
        )
    return LossOutput(loss.view(E, k).mean(-1), stats)
