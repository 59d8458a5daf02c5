"""IFT's temporal residual connection (paper Eq. 17) on a path of grid states: built in one place.

    delta_0 = onehot(s*_0),     delta_i = (1 - lam) * onehot(s*_i) + lam * m_i     (i >= 1)

where m_i is what the model predicts after s*_{i-1}: the next-state distribution its greedy action
leads to (the study's input, ``residual="greedy"``), or its full one-step distribution
(``"expected"``, in ``theory``). The study (torch, ``methods.batches.path_logps``) and the theory
module (numpy, ``theory.ift_input``) both call ``temporal_residual``; it works on numpy arrays and
torch tensors alike and imports neither library's heavy parts itself.
"""

from __future__ import annotations

RESIDUALS = ("greedy", "expected")


def check_lam(lam):
    """lam must be a finite number in [0, 1] (paper default 0.2) -> float; or one lam per ensemble member,
    a torch Tensor of Shape (E,) with every entry in [0, 1] (a batched sweep's members) -> returned as is."""
    if type(lam).__module__.startswith("torch") and getattr(lam, "dim", lambda: 0)() == 1:
        if not bool(((lam >= 0) & (lam <= 1)).all()):
            raise ValueError(f"lam must lie in [0, 1] for every member, got {lam.tolist()}")
        return lam
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not 0.0 <= float(lam) <= 1.0:
        raise ValueError(f"lam must be a number in [0, 1], got {lam!r}")
    return float(lam)


def any_positive(lam) -> bool:
    """Whether the residual mixes anything in: lam > 0 (for a per-member Tensor: some member's lam > 0)."""
    return bool((lam > 0).any()) if type(lam).__module__.startswith("torch") else lam > 0


def temporal_residual(onehots, predicted, lam: float):
    """Mix each target state after the first with the model's prediction from the step before.

    onehots: Shape (..., T, S), the one-hot target states s*_0 .. s*_{T-1} (or any state inputs).
    predicted: Shape (..., T-1, S), m_1 .. m_{T-1}: the model's predicted next-state distribution
        after s*_0 .. s*_{T-2} (the caller decides greedy or expected, and whether it carries grad).
    lam: a float, or (torch only) one lam per member, Shape (E,) for onehots of Shape (E, ..., T, S);
        1 - lam is formed in lam's precision and then cast, as Python does for a float, so a member
        computes exactly what a float lam of its value computes.
    Returns Shape (..., T, S): step 0 unchanged (rho0), steps i >= 1 mixed as Eq. 17.
    """
    lam = check_lam(lam)
    if tuple(predicted.shape) != tuple(onehots.shape[:-2]) + (onehots.shape[-2] - 1, onehots.shape[-1]):
        raise ValueError(
            f"predicted must have Shape (..., T-1, S) = {tuple(onehots.shape[:-2])} + "
            f"({onehots.shape[-2] - 1}, {onehots.shape[-1]}), got {tuple(predicted.shape)}"
        )
    keep = 1.0 - lam
    if not isinstance(lam, float):  # per-member Tensor (E,): broadcast over the member's trailing axes
        if lam.shape[0] != onehots.shape[0]:
            raise ValueError(f"lam: one value per member, Shape ({onehots.shape[0]},), got {tuple(lam.shape)}")
        view = (-1,) + (1,) * (onehots.dim() - 1)
        keep, lam = keep.to(onehots.dtype).view(view), lam.to(onehots.dtype).view(view)
    mixed = keep * onehots[..., 1:, :] + lam * predicted  # (..., T-1, S)
    if type(onehots).__module__.startswith("torch"):
        import torch

        return torch.cat([onehots[..., :1, :], mixed], dim=-2)  # (..., T, S)
    import numpy as np

    return np.concatenate([onehots[..., :1, :], mixed], axis=-2)  # (..., T, S)
