"""Batches of the study's methods: trajectories as tensors, their log-probs, and the builders.

    path_logps(params, paths, data, activation, lam)   log pi_theta(a_t | x_t), Shape (E, N, T);
                                                       lam > 0: IFT's temporal residual input (Eq. 17)
    chosen_batch(params, ctx, step) -> Paths           the chosen trajectories (SFT, IFT, truly)
    pair_batch(params, ctx, step) -> PairBatch         chosen + rejected (+ reference log-probs)
    sample_paths(pi, n, ctx) -> Paths                  n trajectories per member from policies pi (E, S, A)

What the pair builders train on is set by two StudyConfig fields:
- ``chosen``: "route" (pi*'s most likely trajectory from each start, App. B.2) or "sampled" (``pairs``
  trajectories per member sampled once from pi*, for slippery maps);
- ``negatives``: a data rule (``data_rules``): a fixed one ("fixed", "second-route", "second-best",
  "file:PATH": the data's rejected trajectories), "policy" (``pairs`` trajectories sampled from the
  current policy, resampled every ``resample_every`` steps) or "base" (sampled once from theta_0).
Builders run without gradient and keep what they reuse in ``ctx.cache``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import data_rules, policy, sampling
from ..data import Paths, StudyData, policy_probs
from ..residual import any_positive, temporal_residual
from .context import StepContext


@dataclass(frozen=True)
class PairBatch:
    """Preference pairs: chosen[e, n] is preferred to rejected[e, n].

    chosen, rejected: Paths of Shape (E, N, T) (each padded on its own). ref_chosen, ref_rejected:
    Shape (E, N, T) per-step log-probs under theta_0, or None when the method needs no reference.
    weight: Shape (E, N) float, how much each pair counts (0 for pairs without a preference), or None.
    chosen_once: when ``chosen`` repeats one trajectory per member N times (one route paired with N sampled
    negatives), that trajectory, Paths of Shape (E or 1, 1, T): ``pair_logps`` computes it once, not N times.
    """

    chosen: Paths
    rejected: Paths
    ref_chosen: torch.Tensor | None = None
    ref_rejected: torch.Tensor | None = None
    weight: torch.Tensor | None = None
    chosen_once: Paths | None = None


def path_logps(params: dict, paths: Paths, data: StudyData, activation: str, lam=0.0) -> torch.Tensor:
    """log pi_theta(a_t | x_t) along every trajectory. Shape: -> (E, N, T) (masked steps hold junk).

    lam: a float, or one per member, a Tensor of Shape (E,) (a batched sweep's members); a member with
    lam = 0 then gets exactly the one-hot input.

    x_t = onehot(s_t); with lam > 0 the input is IFT's temporal residual (Eq. 17, grid form):
        x_t = (1 - lam) onehot(s_t) + lam P(. | s_{t-1}, argmax_a pi_theta(a | s_{t-1}))   (t >= 1),
    the argmax taken in a no-grad pass on the states' rows of W1 (``policy.state_logits``, equal bit for
    bit to the one-hot product); x_0 = onehot(s_0) (rho0). Paths every member shares (``Paths.shared``:
    the route pair, the chosen routes) without Eq. 17's mix select W1's rows once for all members (the
    same bits as the one-hot product, forward and backward, tested); per-member paths without the mix
    (sampled trajectories) are computed on their taken steps only (``_packed_path_logps``: the same values
    there, masked steps 0, gradients equal up to rounding); the mix uses the dense one-hot product on maps
    of at most ``policy.SPARSE_STATES`` states and the rows gathered and weighted (``_sparse_path_logps``)
    above.
    """
    E, S = params["W1"].shape[:2]
    shared = paths.shared()
    if not any_positive(lam):
        if shared.shape[0] != 1:  # per-member (sampled) paths: their taken steps only
            return _packed_path_logps(params, paths, data, activation)
        lg = policy.state_logits(params, shared.states[..., :-1], activation)  # (E, N, T, A)
        actions = shared.actions  # (E or 1, N, T)
    elif S > policy.SPARSE_STATES:
        return _sparse_path_logps(params, paths, data, activation, lam)
    else:  # Eq. 17's mix on a small MDP: the dense one-hot product
        x = data.eye[shared.states[..., :-1]].expand(E, *shared.shape[1:], -1)  # (E, N, T, S), a view when shared
        paths = paths.expand(E)
        actions = paths.actions
        with torch.no_grad():
            prev = shared.states[..., :-2]  # (E or 1, N, T-1): shared paths select W1's rows once
            a_hat = policy.state_logits(params, prev, activation).argmax(-1)  # (E, N, T-1): pi_theta's argmax
            predicted = data.P[prev, a_hat]  # (E, N, T-1, S)
        x = temporal_residual(x, predicted, lam)  # (E, N, T, S)
        lg = policy.logits(params, x, activation)  # (E, N, T, A)
    lp = policy.log_softmax_moved(lg) if S > policy.SPARSE_STATES else torch.log_softmax(lg, dim=-1)  # (E, N, T, A)
    return lp.gather(-1, actions.unsqueeze(-1).expand(*lp.shape[:-1], 1)).squeeze(-1)  # (E, N, T)


def _packed_path_logps(params: dict, paths: Paths, data: StudyData, activation: str) -> torch.Tensor:
    """``path_logps`` of per-member paths without Eq. 17's mix, on the steps taken only: each member's taken
    steps are packed to the front (K columns: the most steps any member takes), their log-probs computed and
    put back. Sampled trajectories end at different times, so most of a padded batch is masked steps (on the
    two-route map about three quarters of 8 samples from a random policy). Shape: -> (E, N, T), masked steps 0."""
    E, S = params["W1"].shape[:2]
    _, N, T = paths.shape
    mask = paths.mask.reshape(E, N * T)  # (E, NT)
    K = max(int(mask.sum(-1).max()), 1)
    pos = torch.sort((~mask).to(torch.uint8), dim=-1, stable=True).indices[:, :K]  # (E, K): taken steps first
    states = paths.states[..., :-1].reshape(E, N * T).gather(1, pos)  # (E, K)
    actions = paths.actions.reshape(E, N * T).gather(1, pos)  # (E, K)
    if S > policy.SPARSE_STATES:
        lp = policy.log_softmax_moved(policy.state_logits(params, states, activation))  # (E, K, A)
    else:
        lp = torch.log_softmax(policy.logits(params, data.eye[states], activation), dim=-1)  # (E, K, A)
    taken = torch.where(mask.gather(1, pos), lp.gather(-1, actions.unsqueeze(-1)).squeeze(-1), 0.0)  # (E, K)
    return taken.new_zeros(E, N * T).scatter(1, pos, taken).view(E, N, T)  # (E, N, T)


def _sparse_path_logps(params: dict, paths: Paths, data: StudyData, activation: str, lam) -> torch.Tensor:
    """``path_logps`` with Eq. 17's mix on an MDP of more than ``policy.SPARSE_STATES`` states: the same inputs
    as index-weight pairs (``policy.mixture_logits``: W1's rows gathered) instead of dense one-hots.
    Shape: -> (E, N, T)."""
    E = params["W1"].shape[0]
    paths = paths.expand(E)
    states = paths.states[..., :-1]  # (E, N, T) the states actions are taken in
    with torch.no_grad():
        prev = states[..., :-1]  # (E, N, T-1)
        a_hat = policy.state_logits(params, prev, activation).argmax(-1)  # (E, N, T-1): pi_theta's argmax
        assert data.succ is not None and data.succ_p is not None, "build_data stores the sparse model"
        nxt, p = data.succ[prev, a_hat], data.succ_p[prev, a_hat]  # (E, N, T-1, K): where a_hat may lead
    lam_t = lam if isinstance(lam, torch.Tensor) else torch.tensor(float(lam), dtype=torch.float64)
    keep = (1.0 - lam_t).to(p.dtype).reshape(-1, 1, 1, 1)  # (E or 1, 1, 1, 1), formed as temporal_residual does
    lam_c = lam_t.to(p.dtype).reshape(-1, 1, 1, 1)
    E_, N, T = states.shape
    first = torch.cat([states[..., :1, None], states[..., :1, None].expand(-1, -1, -1, p.shape[-1])], -1)
    later = torch.cat([states[..., 1:, None], nxt], -1)  # (E, N, T-1, 1 + K): s*_t, then the predicted ones
    idx = torch.cat([first, later], 2)  # (E, N, T, 1 + K)
    w_first = torch.cat([torch.ones_like(p[..., :1, :1]), torch.zeros_like(p[..., :1, :])], -1)  # step 0: s*_0
    w_later = torch.cat([keep.expand(E_, N, T - 1, 1), lam_c * p], -1)  # (E, N, T-1, 1 + K): Eq. 17's mix
    weights = torch.cat([w_first.expand(E_, N, 1, -1), w_later], 2)  # (E, N, T, 1 + K)
    lg = policy.mixture_logits(params, idx, weights, activation)  # (E, N, T, A)
    return policy.log_softmax_moved(lg).gather(-1, paths.actions.unsqueeze(-1)).squeeze(-1)  # (E, N, T)


def sample_paths(pi: torch.Tensor, n: int, ctx: StepContext) -> Paths:
    """n trajectories per member from the policies pi (Shape (E, S, A)), horizon ``config.horizon``."""
    ref = ctx.reference
    roll = sampling.sample_rollouts(ref.P, pi, ref.rho0, ref.terminal, ref.goal, n, ctx.config.horizon, ctx.generator)
    return Paths(roll.states, roll.actions, roll.mask).trimmed()


def _members(ctx: StepContext) -> int:
    return ctx.reference.base["W1"].shape[0]


def _chosen(ctx: StepContext) -> Paths:
    """The chosen trajectories: pi*'s most likely ones (E = 1 view) or ``pairs`` samples of pi* per member."""
    if "chosen" not in ctx.cache:
        if ctx.config.chosen == "sampled":
            E, (S, A) = _members(ctx), ctx.reference.pi_star.shape
            ctx.cache["chosen"] = sample_paths(ctx.reference.pi_star.expand(E, S, A), ctx.config.pairs, ctx)
        else:
            ctx.cache["chosen"] = ctx.data.chosen_paths
    return ctx.cache["chosen"]


def chosen_batch(params: dict, ctx: StepContext, step: int) -> Paths:
    """The chosen trajectories (``config.chosen``): what SFT, IFT and truly train on."""
    return _chosen(ctx)


def _negatives(params: dict, ctx: StepContext, step: int) -> tuple[Paths, bool]:
    """The rejected trajectories and whether they are new this step."""
    kind, cache = data_rules.sampled_from(ctx.config.negatives), ctx.cache
    if kind == "":  # a fixed rule: the data's rejected trajectories
        new = "rejected" not in cache
        if new:
            cache["rejected"] = ctx.data.rejected_paths
    elif kind == "base":
        new = "rejected" not in cache
        if new:
            cache["rejected"] = sample_paths(
                policy_probs(ctx.reference.base, ctx.data, ctx.config.activation), ctx.config.pairs, ctx
            )
    else:  # "policy": resampled from the current policy every resample_every steps
        new = "rejected" not in cache or step % ctx.config.resample_every == 0
        if new:
            cache["rejected"] = sample_paths(
                policy_probs(params, ctx.data, ctx.config.activation), ctx.config.pairs, ctx
            )
    return cache["rejected"], new


def pair_batch(params: dict, ctx: StepContext, step: int) -> PairBatch:
    """Chosen and rejected trajectories paired one to one (the default batch of a method).

    With one chosen route and N sampled negatives the route is repeated N times (and vice versa).
    Reference log-probs under theta_0 are computed when the method needs a reference.
    """
    chosen = _chosen(ctx)
    rejected, new = _negatives(params, ctx, step)
    if not new and "pair" in ctx.cache:
        return ctx.cache["pair"]
    E = _members(ctx)
    chosen, rejected = chosen.expand(E), rejected.expand(E)
    once = None  # the one chosen trajectory per member that N negatives are paired with
    nc, nr = chosen.shape[1], rejected.shape[1]
    if nc != nr:
        if min(nc, nr) != 1:
            raise ValueError(f"cannot pair {nc} chosen with {nr} rejected trajectories")
        if nc == 1:
            once = chosen.shared()
        chosen, rejected = (chosen.repeat(nr), rejected) if nc == 1 else (chosen, rejected.repeat(nc))
    ref_c = ref_r = None
    if ctx.method.needs_reference:
        base, act = ctx.reference.base, ctx.config.activation
        ref_r = path_logps(base, rejected, ctx.data, act)
        if once is None:
            ref_c = path_logps(base, chosen, ctx.data, act)
        else:
            ref_c = path_logps(base, once, ctx.data, act).expand(-1, nr, -1)  # (E, N, T): the route's log-probs N times
    ctx.cache["pair"] = PairBatch(chosen, rejected, ref_c, ref_r, chosen_once=once)
    return ctx.cache["pair"]


def pair_logps(params: dict, batch: PairBatch, ctx: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-step log-probs of chosen and rejected, in one network pass (two when ``batch.chosen_once`` holds the
    one chosen trajectory per member: it is computed once and repeated). Shape: -> (E, N, Tc), (E, N, Tr)."""
    E = params["W1"].shape[0]
    if batch.chosen_once is not None:  # one chosen trajectory per member, paired with N rejected: computed once
        n = batch.rejected.shape[1]
        lc = path_logps(params, batch.chosen_once, ctx.data, ctx.config.activation)  # (E, 1, Tc)
        return lc.expand(-1, n, -1), path_logps(params, batch.rejected, ctx.data, ctx.config.activation)
    cached = ctx.cache.get("pair paths")
    if cached is not None and cached[0] is batch:  # the same batch as the last step's (a fixed pair)
        both, n, Tc, Tr = cached[1]
    else:
        chosen, rejected = batch.chosen.shared(), batch.rejected.shared()
        if chosen.shape[0] != rejected.shape[0]:  # one side per member: both per member
            chosen, rejected = chosen.expand(E), rejected.expand(E)
        both, n, Tc, Tr = chosen.cat(rejected), chosen.shape[1], chosen.shape[2], rejected.shape[2]
        ctx.cache["pair paths"] = (batch, (both, n, Tc, Tr))
    lp = path_logps(params, both, ctx.data, ctx.config.activation)  # (E, 2N, T)
    return lp[:, :n, :Tc], lp[:, n:, :Tr]
