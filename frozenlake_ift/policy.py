"""Two-layer policy networks with a leading ensemble dimension E (many seeds in one tensor op).

    x (one-hot state, or a mixture of states)  --W1, b1-->  H hidden units  --act-->  --W2, b2-->  A logits

Parameters are a plain dict of tensors, each with a leading ensemble axis:

    W1 (E, S, H)   b1 (E, H)   W2 (E, H, A)   b2 (E, A)

so that E independently seeded networks train in one batched einsum. Member e of the ensemble
depends only on seed ``seeds[e]``: the same seed gives the same network whatever E is.
``step_logps`` is the one boundary from logits to log-probs used by every training path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

SPARSE_STATES = 64  # above this many states the study feeds index-weight inputs (``mixture_logits``), not one-hots


class _NumpyTanh(torch.autograd.Function):
    """tanh of a CPU float32 tensor by NumPy's SIMD kernel; the backward is torch's ``tanh_backward``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = _numpy_tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)  # grad * (1 - y^2), as torch.tanh's own backward


def _numpy_tanh(x: torch.Tensor) -> torch.Tensor:
    x = x.detach().contiguous()
    y = torch.empty_like(x)
    np.tanh(x.numpy(), out=y.numpy())
    return y


def tanh(x: torch.Tensor) -> torch.Tensor:
    """The networks' tanh. On CPU float32 it is NumPy's vectorised tanh (within 1 ulp of the exact value,
    the same bits at every position of any array): torch's CPU tanh rounds correctly but runs element by
    element, about 7x slower (0.48 ms against 0.07 ms on the (540, 10, 32) floats of a batched sweep step,
    one thread). Elsewhere (float64, CUDA) it is ``torch.tanh``. Differentiable: the gradient is torch's.
    Shape: any -> the same."""
    if x.device.type != "cpu" or x.dtype != torch.float32:
        return torch.tanh(x)
    if x.requires_grad and torch.is_grad_enabled():
        return _NumpyTanh.apply(x)
    return _numpy_tanh(x)


ACTIVATIONS = {"tanh": tanh, "relu": torch.relu, "gelu": torch.nn.functional.gelu, "sigmoid": torch.sigmoid}
PARAM_NAMES = ("W1", "b1", "W2", "b2")


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cpu"``/``"cuda"``/``"cuda:N"`` as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available; use 'auto' or 'cpu'")
    return torch.device(device)


def check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")


def init_params(
    n_inputs: int,
    n_actions: int,
    hidden: int,
    seeds: Sequence[int],
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """Seeded initialisation of E = len(seeds) networks (PyTorch's nn.Linear default: U(-1/sqrt(fan_in), +)).

    Returns W1 (E, S, H), b1 (E, H), W2 (E, H, A), b2 (E, A), all leaf tensors with requires_grad.
    Initialisation runs on CPU in float64 and is then cast, so a seed gives the same network on every device.
    """
    if hidden < 1 or n_inputs < 1 or n_actions < 1:
        raise ValueError(f"sizes must be >= 1, got n_inputs={n_inputs}, n_actions={n_actions}, hidden={hidden}")
    if len(seeds) < 1:
        raise ValueError("at least one seed is needed")
    members = []
    for seed in seeds:
        g = torch.Generator().manual_seed(int(seed))
        b_in, b_hid = 1 / math.sqrt(n_inputs), 1 / math.sqrt(hidden)
        members.append(
            {
                "W1": (torch.rand(n_inputs, hidden, generator=g, dtype=torch.float64) * 2 - 1) * b_in,
                "b1": (torch.rand(hidden, generator=g, dtype=torch.float64) * 2 - 1) * b_in,
                "W2": (torch.rand(hidden, n_actions, generator=g, dtype=torch.float64) * 2 - 1) * b_hid,
                "b2": (torch.rand(n_actions, generator=g, dtype=torch.float64) * 2 - 1) * b_hid,
            }
        )
    return {
        k: torch.stack([m[k] for m in members]).to(device=device, dtype=dtype).requires_grad_(True) for k in PARAM_NAMES
    }


def clone_params(params: dict[str, torch.Tensor], requires_grad: bool = True) -> dict[str, torch.Tensor]:
    """Detached copies of every tensor (new leaves)."""
    return {k: v.detach().clone().requires_grad_(requires_grad) for k, v in params.items()}


def check_params(params: dict[str, torch.Tensor]) -> tuple[int, int, int, int]:
    """Validate the parameter dict and return (E, S, H, A)."""
    if set(params) != set(PARAM_NAMES):
        raise ValueError(f"params must have exactly the keys {PARAM_NAMES}, got {sorted(params)}")
    E, S, H = params["W1"].shape
    A = params["W2"].shape[-1]
    expected = {"W1": (E, S, H), "b1": (E, H), "W2": (E, H, A), "b2": (E, A)}
    for k, shape in expected.items():
        if tuple(params[k].shape) != shape:
            raise ValueError(f"params[{k!r}] must have shape {shape}, got {tuple(params[k].shape)}")
    return E, S, H, A


def logits(params: dict[str, torch.Tensor], x: torch.Tensor, activation: str = "tanh") -> torch.Tensor:
    """Action logits. Shape: x (E, ..., S) -> (E, ..., A)."""
    check_activation(activation)
    E, S, _, A = check_params(params)
    if x.shape[0] != E or x.shape[-1] != S:
        raise ValueError(f"x must have shape (E={E}, ..., S={S}), got {tuple(x.shape)}")
    lead = x.shape[1:-1]
    x2 = x.reshape(E, -1, S)  # (E, N, S)
    out = _head(params, torch.baddbmm(params["b1"][:, None, :], x2, params["W1"]), activation)  # (E, N, A)
    return out.reshape(E, *lead, A)


def _head(params: dict[str, torch.Tensor], pre: torch.Tensor, activation: str) -> torch.Tensor:
    """The hidden activation and the output layer on first-layer pre-activations. Shape: (E, N, H) -> (E, N, A)."""
    h = ACTIVATIONS[activation](pre)  # (E, N, H)
    return torch.baddbmm(params["b2"][:, None, :], h, params["W2"])  # (E, N, A)


def log_softmax_moved(logits: torch.Tensor) -> torch.Tensor:
    """``torch.log_softmax(logits, -1)`` taken along the leading axis of a view with the action axis moved there:
    torch's kernel for a short last axis is about 10x slower on 4-6 actions (0.57 ms against 0.06 ms on
    (20, 16, 20, 6) floats, one CPU thread). Equal up to rounding, but not always bit for bit, so the study uses
    it only on MDPs above ``SPARSE_STATES`` states, whose forms equal the dense ones up to rounding anyway; the
    maps of the saved results keep ``torch.log_softmax``. Shape: (..., A) -> (..., A)."""
    return torch.log_softmax(logits.movedim(-1, 0), 0).movedim(0, -1)


def log_probs(params: dict[str, torch.Tensor], x: torch.Tensor, activation: str = "tanh") -> torch.Tensor:
    """Log pi(. | x). Shape: x (E, ..., S) -> (E, ..., A)."""
    return torch.log_softmax(logits(params, x, activation), dim=-1)


def step_logps(
    params: dict[str, torch.Tensor], inputs: torch.Tensor, actions: torch.Tensor, activation: str = "tanh"
) -> torch.Tensor:
    """Log-probability of the given action at each step: the boundary from logits to log-probs.

    Shape: inputs (E, ..., S) float, actions (E, ...) int64 -> (E, ...).
    """
    if tuple(actions.shape) != tuple(inputs.shape[:-1]):
        raise ValueError(
            f"actions must have shape {tuple(inputs.shape[:-1])} (inputs without the state axis), "
            f"got {tuple(actions.shape)}"
        )
    lp = log_probs(params, inputs, activation)  # (E, ..., A)
    return lp.gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # (E, ...)


def table_logits(params: dict[str, torch.Tensor], activation: str = "tanh") -> torch.Tensor:
    """Action logits of every one-hot state: ``logits(params, eye(S))`` without the (E, S, S) product.

    The one-hot rows select W1's rows, so the first layer is W1 + b1 with the same single rounding
    as the product (every other term is an exact zero): equal to ``logits`` bit for bit. Shape: -> (E, S, A).
    """
    check_activation(activation)
    check_params(params)
    return _head(params, params["W1"] + params["b1"][:, None, :], activation)  # (E, S, A)


def state_logits(params: dict[str, torch.Tensor], states: torch.Tensor, activation: str = "tanh") -> torch.Tensor:
    """Action logits of one-hot states given by index: ``logits(params, onehot(states))`` with W1's rows
    gathered instead of multiplied (one rounding, W1 + b1, as ``table_logits``). Shape: states (E, ...) int64,
    or (1, ...): the same states for every member (their rows selected once) -> (E, ..., A)."""
    check_activation(activation)
    E, _, _, A = check_params(params)
    if states.dim() < 1 or states.shape[0] not in (1, E):
        raise ValueError(f"states must have shape (E={E}, ...) or (1, ...), got {tuple(states.shape)}")
    if states.shape[0] == 1:
        rows = params["W1"].index_select(1, states.reshape(-1))  # (E, M, H)
    else:
        rows = _member_rows(params["W1"], states)  # (E, M, H)
    out = _head(params, rows + params["b1"][:, None, :], activation)  # (E, M, A)
    return out.reshape(E, *states.shape[1:], A)


def _member_rows(W1: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """Each member's rows of W1 at its own states: ``W1.gather(1, ...)`` as one ``index_select`` on the
    members' stacked rows (about 13x faster forward on CPU; the same values). Shape: W1 (E, S, H),
    states (E, ...) int64 -> (E, M, H), M the states per member."""
    E, S, H = W1.shape
    if states.numel() and (int(states.min()) < 0 or int(states.max()) >= S):  # else another member's row
        raise ValueError(f"states must lie in [0, {S}), got values from {int(states.min())} to {int(states.max())}")
    flat = states.reshape(E, -1) + torch.arange(0, E * S, S, device=states.device)[:, None]  # (E, M)
    return W1.reshape(E * S, H).index_select(0, flat.reshape(-1)).view(E, -1, H)  # (E, M, H)


def mixture_logits(
    params: dict[str, torch.Tensor], states: torch.Tensor, weights: torch.Tensor, activation: str = "tanh"
) -> torch.Tensor:
    """Action logits of inputs that mix a few states: x = sum_j weights[..., j] onehot(states[..., j]),
    with W1's rows gathered and weighted instead of multiplying the dense x (the study's inputs on MDPs
    of more than ``SPARSE_STATES`` states; equal to ``logits`` of the dense x up to rounding).

    Shape: states (E, ..., J) int64, weights (E, ..., J) float -> (E, ..., A).
    """
    check_activation(activation)
    E, _, H, A = check_params(params)
    if states.shape != weights.shape or states.dim() < 2 or states.shape[0] != E:
        raise ValueError(
            f"states and weights must have the same shape (E={E}, ..., J), got {tuple(states.shape)} "
            f"and {tuple(weights.shape)}"
        )
    lead, J = states.shape[1:-1], states.shape[-1]
    rows = _member_rows(params["W1"], states).view(E, -1, J, H)  # (E, M, J, H)
    pre = (rows * weights.reshape(E, -1, J, 1).to(rows.dtype)).sum(2) + params["b1"][:, None, :]  # (E, M, H)
    return _head(params, pre, activation).reshape(E, *lead, A)


def policy_table(params: dict[str, torch.Tensor], n_states: int, activation: str = "tanh") -> torch.Tensor:
    """pi_theta(a | s) for every one-hot state. Shape: -> (E, S, A)."""
    if params["W1"].shape[1] != n_states:
        raise ValueError(f"params have {params['W1'].shape[1]} inputs, not n_states = {n_states}")
    return torch.softmax(table_logits(params, activation), dim=-1)  # (E, S, A)


def flatten_params(params: dict[str, torch.Tensor]) -> torch.Tensor:
    """All parameters of each member in one vector. Shape: -> (E, n_params)."""
    E = params["W1"].shape[0]
    return torch.cat([params[k].reshape(E, -1) for k in PARAM_NAMES], dim=1)
