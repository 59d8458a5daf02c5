"""relation_weights at scale: the blocked O(B T) scan against the plain recursion (float64) and against the
former dense T x T implementation, for random T up to a few thousand and gamma in {0, 0.5, 0.95, 1}."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from frozenlake_ift.losses import ift_loss, relation_weights

GAMMAS = (0.0, 0.5, 0.95, 1.0)


def recursion(x: torch.Tensor, gamma: float) -> torch.Tensor:
    """y_i = x_i + gamma * y_{i+1}, y_T = 0, one position at a time (App. A.3). x: (B, T)."""
    y = torch.zeros_like(x)
    acc = torch.zeros_like(x[:, 0])
    for i in range(x.shape[1] - 1, -1, -1):
        acc = x[:, i] + gamma * acc
        y[:, i] = acc
    return y


def dense_weights(losses: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """The former implementation: x @ D^T with the T x T matrix D[i, j] = gamma^(j - i), then the rescale."""
    n = mask.sum(-1).to(losses.dtype)  # (B,)
    if gamma == 0.0:
        return mask.to(losses.dtype)
    T = losses.shape[1]
    steps = torch.arange(T)
    lag = (steps[None, :] - steps[:, None]).clamp_min(0).to(losses.dtype)
    D = torch.tensor(gamma, dtype=losses.dtype).pow(lag).triu()  # (T, T)
    W = torch.where(mask, (torch.where(mask, losses, 0.0) / n[:, None]) @ D.T, 0.0)  # (B, T)
    return W * (n / W.sum(-1))[:, None]


def batch(B: int, T: int, seed: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    losses = torch.rand(B, T, generator=g, dtype=dtype) * 3  # (B, T) >= 0
    start = torch.randint(0, max(1, T // 3), (B,), generator=g)
    length = torch.randint(1, T + 1, (B,), generator=g)
    steps = torch.arange(T)
    mask = (steps >= start[:, None]) & (steps < (start + length).clamp(max=T)[:, None])  # contiguous, non-empty
    return losses, mask


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("T,seed", [(1, 0), (63, 1), (64, 2), (65, 3), (1000, 4), (4097, 5)])
def test_unscaled_weights_equal_the_recursion(gamma, T, seed):
    losses, mask = batch(3, T, seed)
    W = relation_weights(losses, mask, gamma, rescale=False)  # (B, T)
    n = mask.sum(-1, keepdim=True).double()
    expected = torch.where(mask, recursion(torch.where(mask, losses, 0.0) / n, gamma), 0.0)
    torch.testing.assert_close(W, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("gamma", GAMMAS)
@settings(max_examples=12, deadline=None)
@given(T=st.integers(1, 3000), seed=st.integers(0, 2**16))
def test_weights_equal_the_dense_implementation(gamma, T, seed):
    losses, mask = batch(2, T, seed, dtype=torch.float32)
    torch.testing.assert_close(
        relation_weights(losses, mask, gamma), dense_weights(losses, mask, gamma), rtol=1e-6, atol=1e-9
    )


def test_float32_at_32k_is_finite_exact_and_sums_to_n():
    T = 32768
    for gamma in GAMMAS:
        losses, mask = batch(2, T, 7, dtype=torch.float32)
        w = relation_weights(losses, mask, gamma)  # (B, T)
        assert torch.isfinite(w).all()
        torch.testing.assert_close(w.sum(-1).double(), mask.sum(-1).double(), rtol=1e-5, atol=0)
        W64 = relation_weights(losses.double(), mask, gamma, rescale=False)
        W32 = relation_weights(losses, mask, gamma, rescale=False)
        rel = ((W32.double() - W64).abs() / W64.abs().clamp_min(1e-300))[mask]
        assert float(rel.max()) < 1e-5, (gamma, float(rel.max()))


def test_gamma_zero_discontinuity_is_kept():
    """gamma = 0 switches propagation off (uniform weights); gamma -> 0+ tends to n l_i / sum(l)."""
    losses, mask = batch(2, 200, 8)
    assert torch.equal(relation_weights(losses, mask, 0.0), mask.double())
    n = mask.sum(-1, keepdim=True).double()
    limit = torch.where(mask, n * losses / torch.where(mask, losses, 0.0).sum(-1, keepdim=True), 0.0)
    torch.testing.assert_close(relation_weights(losses, mask, 1e-12), limit, rtol=1e-9, atol=1e-9)


def test_gradient_flows_through_the_weights_and_matches_dense():
    losses, mask = batch(2, 300, 9)
    logps = (-losses).requires_grad_(True)
    (g_blocked,) = torch.autograd.grad(ift_loss(logps, mask, gamma=0.95), logps)
    lp = (-losses).requires_grad_(True)
    step_losses = -torch.where(mask, lp, 0.0)
    n = mask.sum(-1).double()
    dense = ((dense_weights(step_losses, mask, 0.95) * step_losses).sum(-1) / n).mean()
    (g_dense,) = torch.autograd.grad(dense, lp)
    torch.testing.assert_close(g_blocked, g_dense, rtol=1e-10, atol=1e-12)
    assert math.isfinite(float(g_blocked.abs().sum()))


def test_the_kept_discount_matrix_serves_inference_mode_and_autograd_alike():
    """The (K, K) discount matrix is built once per (K, gamma, dtype, device) and kept: one first built under
    torch.inference_mode still enters a later autograd graph, and the weights equal a fresh build's."""
    from frozenlake_ift import losses

    losses._discount_matrix.cache_clear()
    step = torch.rand(3, 7, dtype=torch.float64) + 0.1
    mask = torch.ones(3, 7, dtype=torch.bool)
    with torch.inference_mode():
        first = losses.relation_weights(step, mask, 0.9)
    x = step.clone().requires_grad_()
    again = losses.relation_weights(x, mask, 0.9)  # the kept matrix, now in a graph
    again.sum().backward()
    assert x.grad is not None and torch.equal(again.detach(), first)
    losses._discount_matrix.cache_clear()
    assert torch.equal(losses.relation_weights(step, mask, 0.9), first)
