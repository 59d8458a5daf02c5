"""The study's optimisers: ``torch.optim`` Adam / RMSprop / SGD over an ensemble, with one learning rate per member.

``make_optimizer(name, params, lr, blocks)`` is the one place the study, the theta* fit and the
batched sweep get an optimiser from; lr is a float or a Tensor of Shape (E,), one per member.
Defaults are torch's (Adam betas (0.9, 0.999), eps 1e-8; RMSprop alpha 0.99, eps 1e-8; SGD
without momentum).

The updates are made by ``torch.optim`` itself, with its fused kernel where torch has one for the
optimiser, device and dtype (Adam and SGD; one pass over each tensor, several times faster than the
default loop on the study's many small steps), else its ``foreach`` kernels (RMSprop; bit-equal to
the default loop). Its parameters are views of *blocks*, ranges of consecutive members [lo, hi)
(default: the whole ensemble). A fused kernel's rounding depends on where an element sits in the
tensor it is given (vector lanes against the scalar tail: measured on float32), so a member's update
is the same, bit for bit, wherever its block sits: the batched sweep gives each cell's run its own
block, shaped as the per-cell study's whole ensemble, and so gets the per-cell numbers exactly
(tested). Adjacent blocks with one lr share a kernel call where that keeps every block's bits
(``_spans``: sizes in whole multiples of LANES elements), which saves most of the per-step cost of
many blocks.
"""

from __future__ import annotations

import torch

OPTIMIZER_NAMES = ("adam", "rmsprop", "sgd")
OPTIMIZERS = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop, "sgd": torch.optim.SGD}


def _check_name(name: str) -> None:
    if name not in OPTIMIZER_NAMES:
        raise ValueError(f"optimizer must be one of {list(OPTIMIZER_NAMES)}, got {name!r}")


def _torch_optimizer(name: str, groups: list[dict]) -> torch.optim.Optimizer:
    """torch's optimiser over ``groups``: fused where this torch, device and dtype have the kernel, else foreach."""
    cls = OPTIMIZERS[name]
    if name != "rmsprop":
        try:
            return cls(groups, lr=groups[0]["lr"], fused=True)
        except (RuntimeError, TypeError, ValueError):  # no fused kernel here (older torch, another device)
            pass
    return cls(groups, lr=groups[0]["lr"], foreach=True)


def make_optimizer(name: str, params: dict, lr, blocks=None) -> EnsembleOptimizer:
    """The optimiser of ``params`` ({name: leaf Tensor (E, ...)}): lr a float, or a Tensor (E,), one per member."""
    _check_name(name)
    E = next(iter(params.values())).shape[0]
    if not isinstance(lr, torch.Tensor):
        lr = torch.full((E,), float(lr), dtype=torch.float64)
    return EnsembleOptimizer(params, name, lr, blocks)


LANES = 64  # elements: a multiple of every CPU vector width a fused kernel uses (16 floats with AVX-512)


def _spans(blocks: list[tuple[int, int]], lr: list[float], per_member: int) -> list[tuple[int, int]]:
    """Blocks joined into spans one kernel call may update as one tensor with the same result, bit for bit.

    Consecutive blocks with equal lr join when each but the last holds a multiple of LANES elements of
    the tensor (members x ``per_member``): then every block starts on a vector lane boundary and its
    scalar tail, if any, is the span's tail, so each element takes the path it takes in its own block.
    """
    spans: list[tuple[int, int]] = []
    aligned = False  # whether the last block holds a multiple of LANES elements
    for a, b in blocks:
        if spans and aligned and lr[a] == lr[spans[-1][0]]:
            spans[-1] = (spans[-1][0], b)
        else:
            spans.append((a, b))
        aligned = (b - a) * per_member % LANES == 0
    return spans


class EnsembleOptimizer(torch.optim.Optimizer):
    """Adam / RMSprop / SGD on a dict of (E, ...) leaf tensors, member e with learning rate lr[e].

    params: {name: Tensor (E, ...)} with ``.grad`` set by backward. lr: Shape (E,), a sequence of
    floats or a float64 Tensor (a float32 one has already lost digits), one value within each block.
    blocks: [(lo, hi), ...] member ranges that cover 0..E in order (default: runs of consecutive
    members with equal lr). A ``torch.optim`` subclass with one parameter group whose "lr" is a
    multiplier (1.0), so learning-rate schedulers (``LambdaLR``) scale every member's lr as they
    scale a float lr. The updates are made by an inner torch optimiser over views of the blocks.
    """

    def __init__(self, params: dict, name: str, lr, blocks=None) -> None:
        _check_name(name)
        tensors = list(params.values())
        super().__init__(tensors, {"lr": 1.0})
        E = tensors[0].shape[0]
        lr = torch.as_tensor(lr, dtype=torch.float64)
        if tuple(lr.shape) != (E,) or not bool((lr > 0).all()) or not bool(torch.isfinite(lr).all()):
            raise ValueError(f"lr must be one positive finite value per member, Shape ({E},), got {lr.tolist()}")
        values = lr.tolist()
        if blocks is None:
            starts = [e for e in range(E) if e == 0 or values[e] != values[e - 1]]
            blocks = list(zip(starts, starts[1:] + [E], strict=True))
        blocks = [(int(a), int(b)) for a, b in blocks]
        ends = [0] + [b for _, b in blocks]
        if not blocks or ends[-1] != E or any(a != end or a >= b for (a, b), end in zip(blocks, ends, strict=False)):
            raise ValueError(f"blocks must be ranges [lo, hi) that cover members 0..{E} in order, got {blocks}")
        if any(len(set(values[a:b])) != 1 for a, b in blocks):
            raise ValueError("every block's members must share one lr")
        self.name = name
        # lr -> [(tensor, view of its span, lo, hi)]: the views are leaves on the tensor's storage, updated in place
        self.views: dict[float, list[tuple[torch.Tensor, torch.Tensor, int, int]]] = {}
        for p in tensors:
            for a, b in _spans(blocks, values, p[0].numel()):
                self.views.setdefault(values[a], []).append((p, p.detach()[a:b], a, b))
        groups = [{"params": [view for _, view, _, _ in vs], "lr": v} for v, vs in self.views.items()]
        self.inner = _torch_optimizer(name, groups)

    @torch.no_grad()
    def step(self, closure=None) -> None:  # type: ignore[override]  # no closure form: one full-batch step
        if closure is not None:
            raise ValueError("EnsembleOptimizer.step takes no closure")
        factor = self.param_groups[0]["lr"]  # the schedule's multiplier
        for group, (value, vs) in zip(self.inner.param_groups, self.views.items(), strict=True):
            group["lr"] = value * factor  # as LambdaLR sets a float lr: base lr x factor
            for p, view, a, b in vs:
                view.grad = None if p.grad is None else p.grad[a:b]
        self.inner.step()
