"""The study's optimisers: Adam / RMSprop / SGD over an ensemble, with one learning rate per member.

``make_optimizer(name, params, lr, blocks)`` is the one place the study, the theta* fit and the
batched sweep get an optimiser from; lr is a float or a Tensor of Shape (E,), one per member.
Defaults are torch's (Adam betas (0.9, 0.999), eps 1e-8; RMSprop alpha 0.99, eps 1e-8; SGD
without momentum).

The updates are torch's own kernels, called directly (``OPTIMIZERS``): the fused Adam and SGD
kernels (one pass over each tensor) where torch has them for the device and dtype, else the
``foreach`` sequence ``torch.optim`` runs; RMSprop is ``torch.optim``'s foreach sequence. So a
step moves the parameters exactly as ``torch.optim.Adam(fused=True)`` (``RMSprop(foreach=True)``,
``SGD(fused=True)``) moves them (tested), without building a ``torch.optim.Optimizer``: the first
one imports torch's compiler stack (``torch._dynamo``, about 1 s of a fresh process) and wraps
every step in profiling hooks. Learning-rate schedules are a factor given to ``step``.

Its parameters are views of *blocks*, ranges of consecutive members [lo, hi) (default: runs of
members with one lr). A fused kernel's rounding depends on where an element sits in the tensor it
is given (vector lanes against the scalar tail: measured on float32), so a member's update is the
same, bit for bit, wherever its block sits: the batched sweep gives each cell's run its own block,
shaped as the per-cell study's whole ensemble, and so gets the per-cell numbers exactly (tested).
Adjacent blocks with one lr share a kernel call where that keeps every block's bits (``_spans``:
sizes in whole multiples of LANES elements), which saves most of the per-step cost of many blocks.
One optimiser may step several ensembles (``EnsembleOptimizer.add``: the study's methods, trained
side by side); every view of one lr goes to one kernel call.
"""

from __future__ import annotations

import math

import torch

OPTIMIZER_NAMES = ("adam", "rmsprop", "sgd")
BETAS, EPS, ALPHA = (0.9, 0.999), 1e-8, 0.99  # torch's defaults: Adam's betas and eps, RMSprop's alpha


class _State:
    """The optimiser state of the views of one lr: each view's moments and step count (as torch keeps them)."""

    def __init__(self, name: str, views: list[torch.Tensor]) -> None:
        scalar = torch.float32  # the dtype torch keeps the fused kernels' step counts in
        self.steps = [torch.zeros((), dtype=scalar, device=v.device) for v in views]
        self.first = [torch.zeros_like(v) for v in views] if name == "adam" else []  # exp_avg
        self.second = [torch.zeros_like(v) for v in views] if name != "sgd" else []  # exp_avg_sq / square_avg
        self.fused = True  # until the device or dtype turns out to have no fused kernel


def _adam(params, grads, st: _State, lr: float) -> None:
    """torch.optim.Adam's step: the fused kernel, else its foreach sequence (not capturable)."""
    torch._foreach_add_(st.steps, 1)
    beta1, beta2 = BETAS
    if st.fused:
        try:
            torch._fused_adam_(
                params,
                grads,
                st.first,
                st.second,
                [],
                st.steps,
                lr=lr,
                beta1=beta1,
                beta2=beta2,
                weight_decay=0.0,
                eps=EPS,
                amsgrad=False,
                maximize=False,
            )
            return
        except (RuntimeError, NotImplementedError):  # no fused kernel for this device or dtype
            st.fused = False
    step = float(st.steps[0])
    torch._foreach_lerp_(st.first, grads, 1 - beta1)
    torch._foreach_mul_(st.second, beta2)
    torch._foreach_addcmul_(st.second, grads, grads, 1 - beta2)
    denom = torch._foreach_sqrt(st.second)
    torch._foreach_div_(denom, math.sqrt(1 - beta2**step))
    torch._foreach_add_(denom, EPS)
    torch._foreach_addcdiv_(params, st.first, denom, value=-lr / (1 - beta1**step))


def _rmsprop(params, grads, st: _State, lr: float) -> None:
    """torch.optim.RMSprop's foreach step (no momentum, not centred)."""
    torch._foreach_add_(st.steps, 1)
    torch._foreach_mul_(st.second, ALPHA)
    torch._foreach_addcmul_(st.second, grads, grads, value=1 - ALPHA)
    avg = torch._foreach_sqrt(st.second)
    torch._foreach_add_(avg, EPS)
    torch._foreach_addcdiv_(params, grads, avg, value=-lr)


def _sgd(params, grads, st: _State, lr: float) -> None:
    """torch.optim.SGD's step without momentum: the fused kernel, else its foreach form."""
    if st.fused:
        try:
            torch._fused_sgd_(
                params,
                grads,
                [],
                weight_decay=0.0,
                momentum=0.0,
                lr=lr,
                dampening=0.0,
                nesterov=False,
                maximize=False,
                is_first_step=False,
            )
            return
        except (RuntimeError, NotImplementedError):
            st.fused = False
    torch._foreach_add_(params, grads, alpha=-lr)


OPTIMIZERS = {"adam": _adam, "rmsprop": _rmsprop, "sgd": _sgd}  # name -> step(params, grads, state, lr)


def _check_name(name: str) -> None:
    if name not in OPTIMIZER_NAMES:
        raise ValueError(f"optimizer must be one of {list(OPTIMIZER_NAMES)}, got {name!r}")


def make_optimizer(name: str, params: dict, lr, blocks=None) -> EnsembleOptimizer:
    """The optimiser of ``params`` ({name: leaf Tensor (E, ...)}): lr a float, or a Tensor (E,), one per member."""
    _check_name(name)
    return EnsembleOptimizer(params, name, lr, blocks)


def _member_lr(params: dict, lr):
    """lr as one value per member: a Tensor (E,) or a sequence as given; a number repeated E times (float64)."""
    if isinstance(lr, (int, float)) and not isinstance(lr, bool):
        return torch.full((next(iter(params.values())).shape[0],), float(lr), dtype=torch.float64)
    return lr


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


class EnsembleOptimizer:
    """Adam / RMSprop / SGD on a dict of (E, ...) leaf tensors, member e with learning rate lr[e].

    params: {name: Tensor (E, ...)} with ``.grad`` set by backward. lr: Shape (E,), a sequence of
    floats or a float64 Tensor (a float32 one has already lost digits), one value within each block.
    blocks: [(lo, hi), ...] member ranges that cover 0..E in order (default: runs of consecutive
    members with equal lr). ``step(factor)`` multiplies every lr by a schedule's factor, as
    ``torch.optim.lr_scheduler.LambdaLR`` scales a float lr. ``add`` puts another ensemble under
    the same steps. A tensor whose ``.grad`` is None is skipped (its step count too), as torch does.
    """

    def __init__(self, params: dict, name: str, lr, blocks=None) -> None:
        _check_name(name)
        self.name = name
        # lr -> [(tensor, view of its span, lo, hi)]: the views share the tensor's storage, updated in place
        self.views: dict[float, list[tuple[torch.Tensor, torch.Tensor, int, int]]] = {}
        self._states: dict[float, _State] = {}
        self.add(params, lr, blocks)

    def add(self, params: dict, lr, blocks=None) -> None:
        """Step another ensemble ({name: leaf Tensor (E', ...)}, lr a float or (E',), blocks) with this one
        (before any step)."""
        if self._states:
            raise RuntimeError("add ensembles to an optimiser before its first step")
        tensors = list(params.values())
        E = tensors[0].shape[0]
        lr = torch.as_tensor(_member_lr(params, lr), dtype=torch.float64)
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
        for p in tensors:
            for a, b in _spans(blocks, values, p[0].numel()):
                self.views.setdefault(values[a], []).append((p, p.detach()[a:b], a, b))

    def zero_grad(self) -> None:
        """Forget every tensor's gradient (``.grad = None``, as torch's default)."""
        for vs in self.views.values():
            for p, _, _, _ in vs:
                p.grad = None

    @torch.no_grad()
    def step(self, factor: float = 1.0) -> None:
        """One update of every tensor that has a gradient, member e with lr[e] * factor."""
        update = OPTIMIZERS[self.name]
        for value, vs in self.views.items():
            if value not in self._states:
                self._states[value] = _State(self.name, [view for _, view, _, _ in vs])
            st = self._states[value]
            if all(p.grad is not None for p, _, _, _ in vs):
                grads = [p.grad[a:b] for p, _, a, b in vs]  # type: ignore[index]
                update([view for _, view, _, _ in vs], grads, st, value * factor)
                continue
            live = [i for i, (p, _, _, _) in enumerate(vs) if p.grad is not None]
            if live:  # only the views with a gradient, each with its own state
                part = _State.__new__(_State)
                part.steps, part.fused = [st.steps[i] for i in live], st.fused
                part.first, part.second = ([xs[i] for i in live] if xs else [] for xs in (st.first, st.second))
                grads = [vs[i][0].grad[vs[i][2] : vs[i][3]] for i in live]  # type: ignore[index]
                update([vs[i][1] for i in live], grads, part, value * factor)
                st.fused = part.fused
