"""Training objectives of the study as pure functions of per-step log-probs.

Both paths (grid policy networks and causal LMs) turn model output into the log-probs of the
target actions/tokens, Shape (B, T), plus a mask, Shape (B, T) (bool or 0/1; True = counted), and
call these functions. Nothing here knows about grids, vocabularies or models.

Conventions shared by every function:
- Shapes are checked at entry; a mismatch raises ValueError naming expected and actual shape.
- Masked steps contribute nothing, in value or gradient, whatever their log-prob (even -inf).
- Every sequence must have at least one unmasked step: an all-masked row raises ValueError
  (its per-sequence mean would be 0/0, and silently dropping it would bias batch means).
- ``reduction``: "mean" (batch mean, scalar), "sum" (batch sum, scalar) or "none" (Shape (B,)).
- Defaults and return values follow one rule: a loss that is a whole training objective on its
  own (``sft_loss``, ``ift_loss``) defaults to "mean" and returns the loss tensor; a loss that
  comes with per-row statistics (the preference losses ``dpo_loss``, ``ipo_loss``, ``orpo_loss``,
  ``simpo_loss``: implicit rewards or log-odds) defaults to "none" and returns a tuple
  ``(losses, statistics...)``, so the statistics stay aligned with the rows; the policy-gradient
  losses (``clipped_surrogate_loss``, ``grpo_loss``) default to "none" (one value per sequence, as
  the callers average per ensemble member) and return the tensor.

Sources: IFT = Hua et al., arXiv 2405.11870; DPO = Rafailov et al., arXiv 2305.18290;
cDPO label smoothing = Mitchell, "A note on DPO with noisy preferences" (2023);
ORPO = Hong et al., arXiv 2403.07691; IPO = Azar et al., arXiv 2310.12036;
SimPO = Meng et al., arXiv 2405.14734.
KTO = Ethayarajh et al., arXiv 2402.01306; RLOO = Ahmadian et al., arXiv 2402.14740; GRPO's loss types
(``loss_types.GRPO_LOSS_TYPES``) as TRL 1.16's GRPOTrainer averages them (DAPO = Yu et al., arXiv 2503.14476;
Dr. GRPO = Liu et al., arXiv 2503.20783). ``kto_loss`` returns (losses, rewards) like the preference losses;
``sequence_clipped_loss`` (RLOO) defaults to "none"; ``clipped_token_losses`` returns per-token terms (B, T)
that ``aggregate_token_losses`` averages as a loss type says.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import numbers

import torch
import torch.nn.functional as F

from .loss_types import GRPO_LOSS_TYPES

_REDUCTIONS = ("mean", "sum", "none")
LOGP_ATOL = 1e-4  # a log-prob above this is refused: log-probabilities are <= 0 (up to rounding)
MAX_CLIP = 1e30  # clip ranges (PPO's epsilon) beyond float32's range cannot be formed


# --------------------------------------------------------------------------- checks / helpers
_VALUES_TRUSTED = contextvars.ContextVar("frozenlake_ift_losses_values_trusted", default=False)


@contextlib.contextmanager
def trusted_values():
    """Inside this block the functions skip their *value* checks: a mask's 0/1 values and its unmasked step
    per row, log-probabilities <= 0 (IFT's step losses >= 0), per-row hyper-parameters in range. Each costs
    a tensor reduction per call, which a training loop of small tensors pays at every step. Types and shapes
    are still checked. For a loop that ran the checks on its first step and then feeds the same kind of
    inputs (the study's: its own log-softmax outputs and masks)."""
    token = _VALUES_TRUSTED.set(True)
    try:
        yield
    finally:
        _VALUES_TRUSTED.reset(token)


def _check_range(name: str, value, lo: float, hi: float, lo_open: bool = False):
    """A hyper-parameter in [lo, hi] (or (lo, hi]): a number -> float, or per-row values, a Tensor of Shape
    (B,) (e.g. one beta per ensemble member, expanded to its rows) -> float64 Tensor (B,), every entry checked."""
    allowed = f"{'(' if lo_open else '['}{lo}, {hi}]"
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, torch.Tensor)):
        raise TypeError(f"{name} must be a number in {allowed} (or a Tensor of Shape (B,)), got {type(value).__name__}")
    if isinstance(value, torch.Tensor) and value.dim() > 0:
        if value.dim() != 1:
            raise ValueError(f"{name}: per-row values must have Shape (B,), got {tuple(value.shape)}")
        v = value.detach().double()
        if _VALUES_TRUSTED.get():
            return v
        ok = torch.isfinite(v) & ((v > lo) if lo_open else (v >= lo)) & (v <= hi)
        if not bool(ok.all()):
            raise ValueError(f"{name} must lie in {allowed}, got {v[~ok][0].item()} (row {int((~ok).nonzero()[0])})")
        return v
    number = float(value)
    if not (math.isfinite(number) and (lo < number if lo_open else lo <= number) and number <= hi):
        raise ValueError(f"{name} must lie in {allowed}, got {number}")
    return number


def _per_row(value, like: torch.Tensor, name: str = "value"):
    """A checked hyper-parameter as a factor for ``like`` (Shape (B,) or (B, ...)): a float stays a float; a
    per-row float64 Tensor (B,) (any arithmetic on it already done in float64, as Python does for a float)
    is cast to like's dtype and shaped to broadcast over like's trailing axes, so each row computes exactly
    what the scalar would."""
    if not isinstance(value, torch.Tensor):
        return value
    if value.dim() == 0:
        return value.to(like.dtype)
    if value.shape[0] != like.shape[0]:
        raise ValueError(
            f"{name}: per-row values must have Shape ({like.shape[0]},) (one per row), got {tuple(value.shape)}"
        )
    return value.to(device=like.device, dtype=like.dtype).view(-1, *([1] * (like.dim() - 1)))


def _check_flag(name: str, value) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__}")


def _check_tensor(name: str, value) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")


def _check_logps(name: str, values: torch.Tensor, mask: torch.Tensor | None = None) -> None:
    """Log-probabilities are <= 0: refuse one above ``LOGP_ATOL`` (at an unmasked step). NaN passes (a
    diverged run's values are kept and recorded, not refused)."""
    if _VALUES_TRUSTED.get():
        return
    above = values.detach() > LOGP_ATOL
    if mask is not None:
        above &= mask
    if bool(above.any()):
        raise ValueError(f"{name} must be log-probabilities (<= 0), got {values.detach()[above].max().item():.6g}")


def _check_steps(logps: torch.Tensor, mask: torch.Tensor, name: str = "logps", logp: bool = False):
    """Validate a (B, T) tensor and its mask; return (bool mask, n) with n Shape (B,).

    logp: the tensor holds log-probabilities, so unmasked values above ``LOGP_ATOL`` are refused."""
    _check_tensor(name, logps)
    _check_tensor("mask", mask)
    if logps.dim() != 2:
        raise ValueError(f"{name}: expected Shape (B, T), got {tuple(logps.shape)}")
    if not logps.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {logps.dtype}")
    if tuple(mask.shape) != tuple(logps.shape):
        raise ValueError(f"mask: expected Shape {tuple(logps.shape)} (as {name}), got {tuple(mask.shape)}")
    trusted = _VALUES_TRUSTED.get()
    if mask.dtype != torch.bool:
        if not trusted and not ((mask == 0) | (mask == 1)).all():
            raise ValueError("mask: expected bool or 0/1 values")
        mask = mask != 0
    n = mask.sum(-1)
    if not trusted and (n == 0).any():
        rows = torch.nonzero(n == 0).flatten().tolist()
        raise ValueError(f"mask: every sequence needs at least one unmasked step; rows {rows[:10]} have none")
    if logp:
        _check_logps(name, logps, mask)
    return mask, n.to(logps.dtype)


def _check_vectors(**tensors: torch.Tensor) -> None:
    """All arguments must be 1-D with one common Shape (B,)."""
    for name, t in tensors.items():
        _check_tensor(name, t)
    first_name, first = next(iter(tensors.items()))
    if first.dim() != 1:
        raise ValueError(f"{first_name}: expected Shape (B,), got {tuple(first.shape)}")
    for name, t in tensors.items():
        if tuple(t.shape) != tuple(first.shape):
            raise ValueError(f"{name}: expected Shape {tuple(first.shape)} (as {first_name}), got {tuple(t.shape)}")


def _reduce(losses: torch.Tensor, reduction: str) -> torch.Tensor:
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return losses.mean() if reduction == "mean" else losses.sum() if reduction == "sum" else losses


def _masked(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # torch.where (not a product with the mask) so that -inf/NaN at masked steps stay out of both
    # the value and the gradient.
    return torch.where(mask, logps, torch.zeros((), dtype=logps.dtype, device=logps.device))


# --------------------------------------------------------------------------- SFT / IFT


def sequence_logps(logps: torch.Tensor, mask: torch.Tensor, average: bool = False) -> torch.Tensor:
    """Sum (or mean, if ``average``) of the unmasked per-step log-probs of each sequence.

    logps: Shape (B, T). mask: Shape (B, T). Returns Shape (B,).
    Summed log-probs feed DPO/IPO (log pi(y|x)); averaged ones feed ORPO/SimPO.
    """
    mask, n = _check_steps(logps, mask, logp=True)
    total = _masked(logps, mask).sum(-1)
    return total / n if average else total


def sft_loss(logps: torch.Tensor, mask: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """SFT: per-sequence mean NLL over unmasked steps, then reduced over the batch.

    logps: Shape (B, T). mask: Shape (B, T). Returns a scalar, or Shape (B,) for "none".
    Teacher forcing on the target's states s*_i (IFT paper Table 1; the authors' SFT baseline).
    """
    return _reduce(-sequence_logps(logps, mask, average=True), reduction)


@functools.lru_cache(maxsize=32)
def _discount_matrix(K: int, gamma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """D[r, c] = gamma^(c - r) for c >= r, else 0: Shape (K, K). Kept per (K, gamma, dtype, device): IFT's
    loss asks for the same one every step. Never written to; built outside inference mode, so that the
    autograd graph of a later call may hold it."""
    with torch.inference_mode(False):
        r = torch.arange(K, device=device)
        g = torch.tensor(gamma, dtype=dtype, device=device)
        return g.pow((r[None, :] - r[:, None]).clamp_min(0).to(dtype)).triu()


def _discounted_future_sum(x: torch.Tensor, gamma: float, block: int = 64) -> torch.Tensor:
    """y_i = sum_{j >= i} gamma^(j - i) * x_j along the last axis. x: Shape (..., T) -> Shape (..., T).

    A blocked scan, O(T * block) work and O(T + block^2) memory per row (no T x T matrix):
    1. cut the row into blocks of ``block`` positions (zero-padded at the end, which changes no
       future sum) and sum within each block with the small matrix D[r, c] = gamma^(c - r), c >= r;
    2. the full sums at the blocks' first positions obey the same recursion with gamma^block
       (H_b = local_b + gamma^block * H_{b+1}), solved by calling this function on them;
    3. add each block's carry, gamma^(block - r) * H_{b+1}, to its local sums.
    Every factor is a power of gamma in [0, 1] (large powers underflow harmlessly to 0;
    gamma = 0 gives D = identity as 0^0 = 1), so nothing overflows for any gamma in [0, 1] and
    any T, unlike cumsum(gamma^-j * x), which overflows (0.95^-4096 ~ e^210); all terms are
    added with the same sign, so the rounding error stays relative (about block * eps).
    Equals the recursion y_i = x_i + gamma * y_{i+1}, y_T = 0 (App. A.3), and keeps autograd.
    """
    T = x.shape[-1]
    K = min(block, T)
    discount = _discount_matrix(K, gamma, x.dtype, x.device)  # (K, K), D[r, c] = gamma^(c - r)
    if T <= K:
        return x @ discount.T  # (..., T)
    n_blocks = -(-T // K)
    xb = F.pad(x, (0, n_blocks * K - T)).unflatten(-1, (n_blocks, K))  # (..., nb, K)
    local = xb @ discount.T  # (..., nb, K): sums inside each block
    heads = _discounted_future_sum(local[..., 0], gamma**K, block)  # (..., nb): y at each block's start
    carry = F.pad(heads[..., 1:], (0, 1))  # (..., nb): y at the next block's start, 0 past the end
    r = torch.arange(K, device=x.device)
    tail = torch.tensor(gamma, dtype=x.dtype, device=x.device).pow((K - r).to(x.dtype))  # (K,): gamma^(K - r)
    y = local + carry[..., None] * tail  # (..., nb, K)
    return y.flatten(-2)[..., :T]  # (..., T)


def relation_weights(
    step_losses: torch.Tensor,
    mask: torch.Tensor,
    gamma: float,
    detach: bool = False,
    rescale: bool = True,
) -> torch.Tensor:
    """IFT dynamic relation propagation weights (Algorithm 1). Returns Shape (B, T).

    step_losses: Shape (B, T), l_i = -log p(a*_i | delta(s*_i)) >= 0 at unmasked steps.
    mask: Shape (B, T). gamma: discount in [0, 1].
    detach: cut the weights out of the autograd graph (the authors keep them in: default False).
    rescale: False returns the unnormalised weights W_i = sum_{unmasked j >= i} gamma^(j-i) l_j / n,
        which satisfy W_i = l_i / n + gamma * W_{i+1} along an unmasked run (App. A.3).

    With rescale (default) each sequence's weights are multiplied by n / sum_i W_i so that they
    sum to n, its number of unmasked steps (the authors' L1 normalisation). Weights are 0 at
    masked steps. The distance j - i counts positions (masked gaps included), as in the authors'
    code; with the usual contiguous masks (prompt, answer, padding) this makes no difference.

    Two deliberate special cases, both giving uniform weights (1 at unmasked steps):
    - gamma == 0 switches propagation off, as in the authors' code, so IFT with lambda = 0 and
      gamma = 0 is exactly SFT. Note the discontinuity: gamma -> 0+ gives w_i = n l_i / sum(l).
    - a sequence whose total sum_i W_i is below sqrt(tiny) of the dtype (~1e-19 in float32),
      i.e. a model already perfect on it: normalising would divide ~0 by ~0 (loss ~0 either way).
    """
    mask, n = _check_steps(step_losses, mask, name="step_losses")
    gamma = _check_range("gamma", gamma, 0.0, 1.0)
    _check_flag("detach", detach)
    _check_flag("rescale", rescale)
    if detach:
        step_losses = step_losses.detach()
    losses = _masked(step_losses, mask)
    if not _VALUES_TRUSTED.get() and (losses < 0).any():
        raise ValueError("step_losses must be >= 0 at unmasked steps (i.e. every log-prob <= 0)")
    uniform = mask.to(step_losses.dtype)
    if rescale and gamma == 0.0:
        return uniform

    # IFT Algorithm 1: W_i = sum_{j >= i} gamma^(j - i) * l_j / N (future-side discounted sum).
    weights = _discounted_future_sum(losses / n[:, None], gamma)
    weights = torch.where(mask, weights, torch.zeros_like(weights))
    if not rescale:
        return weights
    # Rescale so that sum_i w_i = N (the authors' L1 normalisation, then * N).
    total = weights.sum(-1)
    ok = total > math.sqrt(torch.finfo(total.dtype).tiny)
    safe_total = torch.where(ok, total, torch.ones_like(total))
    rescaled = weights * (n / safe_total)[:, None]
    return torch.where(ok[:, None], rescaled, uniform)


def ift_loss(
    logps: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 0.95,
    detach_weights: bool = False,
    reduction: str = "mean",
) -> torch.Tensor:
    """IFT objective (Eq. 18, Algorithm 1): per sequence sum_i w_i * l_i / n, reduced over the batch.

    logps: Shape (B, T), log-probs of the target actions given the *mixed* input states
        delta(s*_i) of Eq. 17 (build those with ``mix_inputs`` before the forward pass).
    mask: Shape (B, T). gamma: relation-propagation discount in [0, 1] (paper default 0.95).
    detach_weights: False keeps the weights in the graph, as in the authors' code.
    Returns a scalar, or Shape (B,) for "none". gamma = 0 gives ``sft_loss`` exactly.
    """
    mask, n = _check_steps(logps, mask, logp=True)
    _check_flag("detach_weights", detach_weights)
    losses = -_masked(logps, mask)  # l_i = -log p_theta(a*_i | delta(s*_i))
    weights = relation_weights(losses, mask, gamma, detach=detach_weights)
    return _reduce((weights * losses).sum(-1) / n, reduction)


def mix_inputs(target: torch.Tensor, predicted: torch.Tensor, lam: float) -> torch.Tensor:
    """IFT temporal residual connection (Eq. 17): (1 - lam) * target + lam * predicted.

    target, predicted: any common Shape (e.g. (B, T, S) one-hot states or (B, T, H) embeddings).
    lam: mixing weight in [0, 1] (paper default 0.2), or one per row, Shape (B,). Returns the common Shape. The caller
    decides whether ``predicted`` carries gradient (the authors compute it without).
    """
    _check_tensor("target", target)
    _check_tensor("predicted", predicted)
    if tuple(target.shape) != tuple(predicted.shape):
        raise ValueError(f"predicted: expected Shape {tuple(target.shape)} (as target), got {tuple(predicted.shape)}")
    lam = _check_range("lam", lam, 0.0, 1.0)
    return _per_row(1.0 - lam, target, "lam") * target + _per_row(lam, target, "lam") * predicted


# --------------------------------------------------------------------------- preference losses


def _pairwise(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta):
    """Check four Shape (B,) tensors; return the DPO margin h and the detached implicit rewards.

    h = log pi(y_w)/ref(y_w) - log pi(y_l)/ref(y_l); reward = beta * (policy - ref) (DPO Eq. 5).
    """
    _check_vectors(
        policy_chosen=policy_chosen, policy_rejected=policy_rejected, ref_chosen=ref_chosen, ref_rejected=ref_rejected
    )
    chosen, rejected = policy_chosen - ref_chosen, policy_rejected - ref_rejected
    b = _per_row(beta, chosen, "beta")
    return chosen - rejected, b * chosen.detach(), b * rejected.detach()


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    reduction: str = "none",
):
    """DPO on summed sequence log-probs. All inputs Shape (B,); the reference ones carry no grad.

    Returns (losses, chosen_rewards, rejected_rewards): losses reduced per ``reduction``
    (default Shape (B,)); rewards = beta * (policy - ref), Shape (B,), detached.
    beta > 0; label_smoothing in [0, 0.5] (assumed probability that a label is flipped). Each may be
    one value per row instead, a Tensor of Shape (B,) (per-member hyper-parameters of a batched sweep).
    """
    beta = _check_range("beta", beta, 0.0, math.inf, lo_open=True)
    eps = _check_range("label_smoothing", label_smoothing, 0.0, 0.5)
    h, chosen_rewards, rejected_rewards = _pairwise(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)
    # DPO Eq. 7: -log sigma(beta * h); cDPO (Mitchell 2023, Eq. 3) with flip probability eps:
    # -(1 - eps) log sigma(beta h) - eps log sigma(-beta h).
    b = _per_row(beta, h, "beta")
    keep, flip = _per_row(1.0 - eps, h, "label_smoothing"), _per_row(eps, h, "label_smoothing")
    losses = -keep * F.logsigmoid(b * h) - flip * F.logsigmoid(-b * h)
    return _reduce(losses, reduction), chosen_rewards, rejected_rewards


def ipo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
    reduction: str = "none",
):
    """IPO: the DPO margin regressed onto 1 / (2 beta). Inputs and outputs as ``dpo_loss``."""
    beta = _check_range("beta", beta, 0.0, math.inf, lo_open=True)
    h, chosen_rewards, rejected_rewards = _pairwise(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)
    losses = (h - _per_row(1.0 / (2.0 * beta), h, "beta")) ** 2  # IPO paper Eq. 17 (tau = beta)
    return _reduce(losses, reduction), chosen_rewards, rejected_rewards


def log1mexp(x: torch.Tensor, eps: float | None = None) -> torch.Tensor:
    """log(1 - exp(x)) for x <= 0, elementwise; any Shape.

    Mächler's two branches: log(-expm1(x)) for x > -ln 2, log1p(-exp(x)) otherwise. x is first
    clamped to at most -eps (default: the dtype's machine epsilon, 1.2e-7 in float32), so x = 0
    (probability 1) gives log(eps) (about -15.9 in float32) with a finite gradient instead of
    -inf; values above -eps get zero gradient. Each branch sees only inputs where it is safe,
    so the branch torch.where discards cannot leak a NaN into the gradient.
    """
    if eps is None:
        eps = torch.finfo(x.dtype).eps
    x = x.clamp(max=-eps)
    cut = -math.log(2.0)
    near_zero = torch.log(-torch.expm1(x.clamp(min=cut)))
    far = torch.log1p(-torch.exp(x.clamp(max=cut)))
    return torch.where(x > cut, near_zero, far)


def orpo_loss(
    chosen_avg_logps: torch.Tensor,
    rejected_avg_logps: torch.Tensor,
    chosen_nll: torch.Tensor,
    beta: float = 0.25,
    reduction: str = "none",
):
    """ORPO: NLL of the chosen answer minus beta * log sigmoid(log odds ratio).

    chosen_avg_logps, rejected_avg_logps: Shape (B,), average per-step log-probs a in [-inf, 0]
        (P = exp(a) is ORPO's length-normalised likelihood). chosen_nll: Shape (B,), the SFT term
        (usually -chosen_avg_logps). beta >= 0 (ORPO's lambda; the IFT authors used 0.25), or one per
        row, Shape (B,).
    Returns (losses, log_odds_ratio), both Shape (B,) before reduction; log_odds_ratio is
    detached (for logging). At a = 0 exactly, see ``log1mexp``: the odds are capped, not inf.
    """
    _check_vectors(chosen_avg_logps=chosen_avg_logps, rejected_avg_logps=rejected_avg_logps, chosen_nll=chosen_nll)
    _check_logps("chosen_avg_logps", chosen_avg_logps)
    _check_logps("rejected_avg_logps", rejected_avg_logps)
    beta = _check_range("beta", beta, 0.0, math.inf)
    # log odds(y) = log P - log(1 - P) = a - log(1 - exp(a))      (ORPO Eq. 4, in log space)
    log_odds = (chosen_avg_logps - log1mexp(chosen_avg_logps)) - (rejected_avg_logps - log1mexp(rejected_avg_logps))
    # ORPO Eq. 6-7: L = L_SFT + lambda * L_OR,  L_OR = -log sigma(log(odds(y_w) / odds(y_l)))
    losses = chosen_nll - _per_row(beta, log_odds, "beta") * F.logsigmoid(log_odds)
    return _reduce(losses, reduction), log_odds.detach()


def simpo_loss(
    chosen_avg_logps: torch.Tensor,
    rejected_avg_logps: torch.Tensor,
    beta: float = 2.0,
    margin: float = 1.0,
    reduction: str = "none",
):
    """SimPO: reference-free DPO on average log-probs with a target reward margin.

    chosen_avg_logps, rejected_avg_logps: Shape (B,). beta > 0 and margin >= 0 (floats, or one per
    row, Shape (B,)); margin is the paper's
    gamma (absolute; TRL's gamma_beta_ratio = margin / beta). Returns (losses, chosen_rewards,
    rejected_rewards); rewards = beta * avg log-prob, Shape (B,), detached.
    """
    _check_vectors(chosen_avg_logps=chosen_avg_logps, rejected_avg_logps=rejected_avg_logps)
    beta = _check_range("beta", beta, 0.0, math.inf, lo_open=True)
    margin = _check_range("margin", margin, 0.0, math.inf)
    # SimPO Eq. 6: -log sigma(beta/|y_w| log pi(y_w) - beta/|y_l| log pi(y_l) - gamma)
    b = _per_row(beta, chosen_avg_logps, "beta")
    losses = -F.logsigmoid(b * (chosen_avg_logps - rejected_avg_logps) - _per_row(margin, chosen_avg_logps, "margin"))
    return _reduce(losses, reduction), b * chosen_avg_logps.detach(), b * rejected_avg_logps.detach()


# --------------------------------------------------------------------------- policy-gradient losses


def clipped_surrogate_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    epsilon: float = 0.2,
    reduction: str = "none",
) -> torch.Tensor:
    """PPO's clipped surrogate (Schulman et al., arXiv 1707.06347, Eq. 7), as a loss to minimise.

    logps: Shape (B, T), log pi_theta(a_t | s_t) of the sampled actions (with grad). old_logps:
    Shape (B, T), the same under the sampling policy (no grad). advantages: Shape (B, T) (or (B,),
    one per sequence, as GRPO). Per step, with ratio r = exp(logps - old_logps):
        l_t = -min(r A_t, clip(r, 1 - epsilon, 1 + epsilon) A_t);
    each row's loss is the mean of l_t over its unmasked steps, Shape (B,), then ``reduction``.
    epsilon >= 0.
    """
    mask, n = _check_steps(logps, mask, logp=True)
    _check_steps(old_logps, mask, "old_logps", logp=True)
    _check_tensor("advantages", advantages)
    if advantages.dim() == 1:
        _check_vectors(advantages=advantages, rows=logps[:, 0])
        advantages = advantages[:, None].expand_as(logps)
    else:
        _check_steps(advantages, mask, "advantages")
    epsilon = _check_range("epsilon", epsilon, 0.0, MAX_CLIP)
    ratio = torch.exp(_masked(logps, mask) - _masked(old_logps.detach(), mask))  # (B, T), 1 on masked steps
    adv = _masked(advantages.detach(), mask)  # (B, T)
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1.0 - epsilon, 1.0 + epsilon) * adv)  # (B, T)
    return _reduce(-_masked(surrogate, mask).sum(-1) / n, reduction)


def kl_k3(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """Per-step estimate of KL(pi_theta || pi_ref) from samples of pi_theta (Schulman's k3, as GRPO uses):
    exp(ref - logp) - (ref - logp) - 1 >= 0. Any common Shape."""
    d = ref_logps - logps
    return torch.exp(d) - d - 1.0


def grpo_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ref_logps: torch.Tensor | None = None,
    beta: float = 0.0,
    epsilon: float = 0.2,
    reduction: str = "none",
) -> torch.Tensor:
    """GRPO (Shao et al., arXiv 2402.03300, Eq. 3): the clipped surrogate with one advantage per
    sequence, minus beta times the k3 KL estimate to a reference, averaged over each sequence's steps.

    logps, old_logps, mask: Shape (B, T); advantages: Shape (B,) (``group_advantages``); ref_logps:
    Shape (B, T), needed when beta > 0. Returns Shape (B,) before ``reduction``.
    """
    loss = clipped_surrogate_loss(logps, old_logps, advantages, mask, epsilon, reduction="none")  # (B,)
    beta = _check_range("beta", beta, 0.0, math.inf)
    if beta > 0:
        if ref_logps is None:
            raise ValueError("grpo_loss with beta > 0 needs ref_logps, Shape (B, T)")
        mask, n = _check_steps(logps, mask)
        _check_steps(ref_logps, mask, "ref_logps", logp=True)
        kl = _masked(kl_k3(logps, ref_logps.detach()), mask).sum(-1) / n  # (B,)
        loss = loss + beta * kl
    return _reduce(loss, reduction)


def group_advantages(rewards: torch.Tensor, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """GRPO's group-relative advantages: (r - mean of the group) / (std of the group + eps).

    rewards: Shape (..., G), one group per leading index. scale=False keeps r - mean (Dr. GRPO).
    The std is the unbiased one, as TRL computes it. A group whose rewards all tie gets 0.
    Returns Shape (..., G).
    """
    centred = rewards - rewards.mean(-1, keepdim=True)
    if not scale:
        return centred
    std = rewards.std(-1, keepdim=True) if rewards.shape[-1] > 1 else torch.zeros_like(rewards[..., :1])
    return centred / (std + eps)


# --------------------------------------------------------------------------- KTO, RLOO, GRPO's loss types


def kto_reference_point(policy_logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """KTO's reference point z0: the batch estimate of KL(pi || ref), as TRL's KTOTrainer computes it.

    policy_logps, ref_logps: Shape (B,) (or (E, B), one batch per leading index), summed log-probs of
    *mismatched* completions (completion j under prompt i, j != i: TRL rotates the completions by one
    within the batch; with a single prompt every completion is mismatched with itself). Returns
    mean_b (policy - ref), detached and clamped at 0 (KTO Eq. 7's z0), Shape () (or (E,)).
    """
    if tuple(policy_logps.shape) != tuple(ref_logps.shape) or policy_logps.dim() not in (1, 2):
        raise ValueError(
            f"policy_logps and ref_logps must share Shape (B,) or (E, B), got {tuple(policy_logps.shape)} "
            f"and {tuple(ref_logps.shape)}"
        )
    return (policy_logps - ref_logps).detach().mean(-1).clamp(min=0)


def kto_loss(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    desirable: torch.Tensor,
    reference_point,
    beta=0.1,
    desirable_weight=1.0,
    undesirable_weight=1.0,
    reduction: str = "none",
):
    """KTO (Ethayarajh et al., arXiv 2402.01306, Eq. 7-8), unpaired, as TRL's KTOTrainer (loss_type="kto").

    policy_logps, ref_logps: Shape (B,), summed completion log-probs (the reference carries no grad).
    desirable: Shape (B,) bool, True for a desirable completion (TRL's ``label``). reference_point: z0
    (``kto_reference_point``), a number, a 0-dim tensor or one per row, Shape (B,) (one per ensemble
    member, repeated for its rows). With r = policy - ref:
        desirable:    desirable_weight   * (1 - sigmoid(beta (r - z0)))
        undesirable:  undesirable_weight * (1 - sigmoid(beta (z0 - r)))
    beta > 0, the weights >= 0 (numbers, or per row, Shape (B,)). Returns (losses, rewards): losses
    reduced per ``reduction`` (TRL's loss is their mean over every row), rewards = beta * r, Shape
    (B,), detached.
    """
    _check_vectors(policy_logps=policy_logps, ref_logps=ref_logps, desirable=desirable)
    if desirable.dtype != torch.bool:
        raise ValueError(f"desirable must be a bool tensor (True = desirable), got {desirable.dtype}")
    beta = _check_range("beta", beta, 0.0, math.inf, lo_open=True)
    w_d = _check_range("desirable_weight", desirable_weight, 0.0, math.inf)
    w_u = _check_range("undesirable_weight", undesirable_weight, 0.0, math.inf)
    z0 = reference_point
    if isinstance(z0, torch.Tensor):
        if z0.dim() > 1 or (z0.dim() == 1 and z0.shape[0] != policy_logps.shape[0]):
            raise ValueError(f"reference_point: expected a number or Shape (B,), got {tuple(z0.shape)}")
        z0 = z0.detach().to(policy_logps.dtype)
    logratio = policy_logps - ref_logps.detach()  # (B,)
    b = _per_row(beta, logratio, "beta")
    chosen = 1 - torch.sigmoid(b * (logratio - z0))  # (B,)
    rejected = 1 - torch.sigmoid(b * (z0 - logratio))  # (B,)
    losses = torch.where(
        desirable,
        _per_row(w_d, logratio, "desirable_weight") * chosen,
        _per_row(w_u, logratio, "undesirable_weight") * rejected,
    )
    return _reduce(losses, reduction), b * logratio.detach()


def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """RLOO's leave-one-out advantages (Ahmadian et al., arXiv 2402.14740, Eq. 5): each sample's reward minus
    the mean reward of the other k - 1 samples of its group. rewards: Shape (..., k), k >= 2 -> Shape (..., k).
    """
    k = rewards.shape[-1]
    if rewards.dim() < 1 or k < 2:
        raise ValueError(f"rewards: RLOO needs groups of k >= 2 samples on the last axis, got {tuple(rewards.shape)}")
    baseline = (rewards.sum(-1, keepdim=True) - rewards) / (k - 1)  # (..., k)
    return rewards - baseline


def sequence_clipped_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    reduction: str = "none",
) -> torch.Tensor:
    """The clipped surrogate on whole sequences, as TRL's RLOOTrainer computes it.

    logps, old_logps, advantages: Shape (B,); logps are summed completion log-probs (with grad),
    old_logps the same under the sampling policy. With r = exp(logps - old_logps):
        l = -min(r A, clip(r, 1 - epsilon, 1 + epsilon_high) A)     (epsilon_high defaults to epsilon).
    Returns Shape (B,) before ``reduction`` (TRL's loss is the mean).
    """
    _check_vectors(logps=logps, old_logps=old_logps, advantages=advantages)
    lo = _check_range("epsilon", epsilon, 0.0, math.inf)
    hi = lo if epsilon_high is None else _check_range("epsilon_high", epsilon_high, 0.0, math.inf)
    ratio = torch.exp(logps - old_logps.detach())  # (B,)
    adv = advantages.detach()
    return _reduce(-torch.minimum(ratio * adv, ratio.clamp(1.0 - lo, 1.0 + hi) * adv), reduction)


def clipped_token_losses(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    ref_logps: torch.Tensor | None = None,
    beta=0.0,
    kl_correction: bool = False,
) -> torch.Tensor:
    """GRPO's per-token loss before averaging, as TRL's GRPOTrainer builds it: Shape (B, T), 0 at masked steps.

    logps, old_logps, mask: Shape (B, T); advantages: Shape (B,) (one per sequence) or (B, T). Per step,
    r = exp(logps - old_logps), l_t = -min(r A, clip(r, 1 - epsilon, 1 + epsilon_high) A) + beta * k3_t
    (``kl_k3`` against ``ref_logps``, needed when beta > 0). Average with ``aggregate_token_losses``.
    beta: a number, or one per row, Shape (B,). kl_correction: multiply k3_t by r (in the graph, so even at
    r = 1 its gradient changes: the unbiased reverse-KL gradient, TRL 1.16's ``use_bias_correction_kl``).
    """
    mask, _ = _check_steps(logps, mask)
    _check_steps(old_logps, mask, "old_logps")
    if advantages.dim() == 1:
        _check_vectors(advantages=advantages, rows=logps[:, 0])
        advantages = advantages[:, None].expand_as(logps)
    else:
        _check_steps(advantages, mask, "advantages")
    lo = _check_range("epsilon", epsilon, 0.0, math.inf)
    hi = lo if epsilon_high is None else _check_range("epsilon_high", epsilon_high, 0.0, math.inf)
    beta = _check_range("beta", beta, 0.0, math.inf)
    ratio = torch.exp(_masked(logps, mask) - _masked(old_logps.detach(), mask))  # (B, T), 1 on masked steps
    adv = _masked(advantages.detach(), mask)  # (B, T)
    per_token = -torch.minimum(ratio * adv, ratio.clamp(1.0 - lo, 1.0 + hi) * adv)  # (B, T)
    if bool((beta > 0).any()) if isinstance(beta, torch.Tensor) else beta > 0:
        if ref_logps is None:
            raise ValueError("clipped_token_losses with beta > 0 needs ref_logps, Shape (B, T)")
        _check_steps(ref_logps, mask, "ref_logps")
        kl = kl_k3(_masked(logps, mask), _masked(ref_logps.detach(), mask))  # (B, T), 0 on masked steps
        if kl_correction:
            kl = kl * ratio
        per_token = per_token + _per_row(beta, per_token, "beta") * kl
    return _masked(per_token, mask)


def aggregate_token_losses(
    token_losses: torch.Tensor,
    mask: torch.Tensor,
    loss_type: str = "grpo",
    max_completion_length: int | None = None,
    num_items=None,
) -> torch.Tensor:
    """Average per-token losses over a batch the way one of TRL's GRPO loss types does (``loss_types``).

    token_losses, mask: Shape (..., B, T): B sequences of T steps per leading index (an ensemble
    member on the grid path; none on the LLM path). Returns Shape (...):
        "grpo"     mean_b [ sum_t l_bt / n_b ]                   (n_b: unmasked steps of sequence b)
        "bnpo"     sum_bt l_bt / sum_b n_b
        "dapo"     sum_bt l_bt / num_items   (num_items: the token count of the whole batch over all
                   processes; default sum_b n_b, which makes it "bnpo")
        "dr_grpo"  sum_bt l_bt / (B * max_completion_length)
    """
    if loss_type not in GRPO_LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {list(GRPO_LOSS_TYPES)}, got {loss_type!r}")
    if tuple(mask.shape) != tuple(token_losses.shape) or token_losses.dim() < 2:
        raise ValueError(
            f"token_losses and mask must share Shape (..., B, T), got {tuple(token_losses.shape)} "
            f"and {tuple(mask.shape)}"
        )
    flat_mask, _ = _check_steps(token_losses.flatten(0, -2), mask.flatten(0, -2), "token_losses")
    mask = flat_mask.view(mask.shape)
    masked = _masked(token_losses, mask)  # (..., B, T)
    if loss_type == "grpo":
        return (masked.sum(-1) / mask.sum(-1).to(masked.dtype)).mean(-1)
    total = masked.sum((-1, -2))  # (...)
    if loss_type == "dr_grpo":
        if max_completion_length is None or int(max_completion_length) < 1:
            raise ValueError(f"loss_type 'dr_grpo' needs max_completion_length >= 1, got {max_completion_length}")
        return total / (token_losses.shape[-2] * int(max_completion_length))
    count = mask.sum((-1, -2)).to(masked.dtype)  # (...)
    if loss_type == "dapo" and num_items is not None:
        count = torch.as_tensor(num_items, dtype=masked.dtype, device=masked.device)
        if not bool((count > 0).all()):
            raise ValueError(f"num_items must be > 0, got {count.tolist()}")
    return total / count
