"""Functional optimisers over the ensemble axis with one learning rate per member.

``torch.optim`` takes one learning rate per parameter group; a batched sweep (``batched.py``) trains
members of many cells in one ensemble, each with its own lr. ``EnsembleOptimizer`` applies Adam,
RMSprop or SGD to parameter tensors whose leading axis is the member (Shape (E, ...)), with
``lr`` of Shape (E,), and otherwise the defaults of ``torch.optim`` (Adam betas (0.9, 0.999), eps
1e-8; RMSprop alpha 0.99, eps 1e-8; SGD without momentum).

The update follows torch's single-tensor (CPU) implementations operation by operation: the step
size lr / (1 - beta1^t) is formed in float64 and cast to the parameters' dtype, as torch casts its
Python-float ``value``, and p + (value * m) / d keeps ``addcdiv``'s order. So Adam and RMSprop
reproduce ``torch.optim`` bit for bit on CPU for the same lr (tested); SGD agrees to rounding
(torch's add with ``alpha`` may fuse the multiply-add). On CUDA torch uses its foreach kernels:
agreement is then to rounding.
"""

from __future__ import annotations

import torch

OPTIMIZER_NAMES = ("adam", "rmsprop", "sgd")
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8
RMSPROP_ALPHA, RMSPROP_EPS = 0.99, 1e-8


class EnsembleOptimizer(torch.optim.Optimizer):
    """Adam / RMSprop / SGD on a dict of (E, ...) leaf tensors, member e with learning rate lr[e].

    params: {name: Tensor (E, ...)} with ``.grad`` set by backward. lr: Shape (E,), a sequence of
    floats or a float64 Tensor (a float32 one has already lost digits). A ``torch.optim`` subclass
    with one parameter group whose "lr" is a multiplier (1.0), so learning-rate schedulers
    (``LambdaLR``) scale every member's lr as they scale a float lr.
    """

    def __init__(self, params: dict, name: str, lr) -> None:
        if name not in OPTIMIZER_NAMES:
            raise ValueError(f"optimizer must be one of {list(OPTIMIZER_NAMES)}, got {name!r}")
        tensors = list(params.values())
        super().__init__(tensors, {"lr": 1.0})
        E = tensors[0].shape[0]
        lr = torch.as_tensor(lr, dtype=torch.float64, device=tensors[0].device)
        if tuple(lr.shape) != (E,) or not bool((lr > 0).all()) or not bool(torch.isfinite(lr).all()):
            raise ValueError(f"lr must be one positive finite value per member, Shape ({E},), got {lr.tolist()}")
        self.name, self.member_lr, self.t = name, lr, 0
        self.moments = [
            (
                torch.zeros_like(p, memory_format=torch.preserve_format),
                torch.zeros_like(p, memory_format=torch.preserve_format),
            )
            for p in tensors
        ]

    def _per_member(self, values: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """A float64 (E,) factor cast to p's dtype and shaped (E, 1, ...) to broadcast over p."""
        return values.to(p.dtype).view(-1, *([1] * (p.dim() - 1)))

    @torch.no_grad()
    def step(self, closure=None) -> None:  # type: ignore[override]  # no closure form: one full-batch step
        if closure is not None:
            raise ValueError("EnsembleOptimizer.step takes no closure")
        self.t += 1
        lr = self.member_lr * self.param_groups[0]["lr"]  # (E,) float64: base lr x the schedule's factor
        for p, (m, v) in zip(self.param_groups[0]["params"], self.moments, strict=True):
            g = p.grad
            if g is None:
                continue
            if self.name == "adam":
                beta1, beta2 = ADAM_BETAS
                m.lerp_(g, 1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                step = float(self.t)
                step_size = lr / (1 - beta1**step)  # (E,) float64, as torch's Python float
                denom = (v.sqrt() / ((1 - beta2**step) ** 0.5)).add_(ADAM_EPS)
                p.add_(self._per_member(-step_size, p) * m / denom)  # addcdiv: p + (value * m) / denom
            elif self.name == "rmsprop":
                v.mul_(RMSPROP_ALPHA).addcmul_(g, g, value=1 - RMSPROP_ALPHA)
                avg = v.sqrt().add_(RMSPROP_EPS)
                p.add_(self._per_member(-lr, p) * g / avg)
            else:  # sgd
                p.add_(self._per_member(-lr, p) * g)
