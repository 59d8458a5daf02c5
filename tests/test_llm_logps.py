"""token_logps (the chunked selective log-softmax) against a float64 reference: values, gradients,
bf16 logits, chunk sizes from one position to the whole batch, and masks with prompt, gaps and padding."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from frozenlake_ift import llm


def reference(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 log_softmax + gather: logps (B, T-1), 0 where masked, and the mask."""
    targets = labels[:, 1:]
    mask = targets != llm.IGNORE_INDEX
    lp = torch.log_softmax(logits[:, :-1].double(), -1).gather(-1, targets.clamp_min(0)[..., None])[..., 0]
    return lp.masked_fill(~mask, 0.0), mask


def make(B: int, T: int, V: int, seed: int, scale: float = 4.0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(B, T, V, generator=g) * scale).to(dtype)  # (B, T, V)
    labels = torch.randint(0, V, (B, T), generator=g)  # (B, T)
    for b in range(B):  # a prompt, an answer, padding, and sometimes a masked gap inside the answer
        p = int(torch.randint(0, T - 1, (1,), generator=g))
        e = int(torch.randint(p + 2, T + 1, (1,), generator=g))
        labels[b, : p + 1] = llm.IGNORE_INDEX
        labels[b, e:] = llm.IGNORE_INDEX
        if e - p > 3 and b % 2:
            labels[b, p + 2] = llm.IGNORE_INDEX
    return logits, labels


@settings(max_examples=25, deadline=None)
@given(
    B=st.integers(1, 4),
    T=st.integers(2, 40),
    V=st.integers(2, 300),
    seed=st.integers(0, 2**16),
    chunk_bytes=st.sampled_from([1, 4 * 7, 4 * 300 * 5, llm.CHUNK_BYTES]),
)
def test_float32_values_and_gradients_match_float64(B, T, V, seed, chunk_bytes):
    logits, labels = make(B, T, V, seed)
    logits.requires_grad_(True)
    lp, mask = llm.token_logps(logits, labels, chunk_bytes=chunk_bytes)
    ref, ref_mask = reference(logits, labels)
    assert torch.equal(mask, ref_mask) and lp.dtype == torch.float32
    torch.testing.assert_close(lp.double(), ref, rtol=0, atol=1e-6 * (1 + ref.abs()).max().item())
    assert lp[~mask].eq(0).all()
    w = torch.randn(lp.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)  # (B, T-1)
    (g,) = torch.autograd.grad((lp.double() * w).sum(), logits)
    x = logits.detach().double().requires_grad_(True)
    (g_ref,) = torch.autograd.grad((reference(x, labels)[0] * w).sum(), x)
    torch.testing.assert_close(g.double(), g_ref, rtol=1e-6, atol=1e-6)
    assert g.dtype == logits.dtype and g[:, -1].eq(0).all()  # the last position predicts nothing


def test_float64_logits_stay_float64_and_exact():
    logits, labels = make(3, 17, 50, 1, dtype=torch.float64)
    lp, _ = llm.token_logps(logits, labels, chunk_bytes=64)
    assert lp.dtype == torch.float64
    torch.testing.assert_close(lp, reference(logits, labels)[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_logits_are_upcast_per_chunk(dtype):
    logits, labels = make(2, 33, 1000, 2, dtype=dtype)
    logits.requires_grad_(True)
    lp, _mask = llm.token_logps(logits, labels, chunk_bytes=4 * 1000 * 8)
    assert lp.dtype == torch.float32
    ref, _ = reference(logits.detach(), labels)  # the same half-precision values, read in float64
    torch.testing.assert_close(lp.double(), ref, rtol=0, atol=1e-5)
    lp.sum().backward()
    assert logits.grad.dtype == dtype and torch.isfinite(logits.grad.float()).all()
    x = logits.detach().double().requires_grad_(True)
    reference(x, labels)[0].sum().backward()
    torch.testing.assert_close(logits.grad.double(), x.grad, rtol=0, atol=1e-2)  # bf16 has 8 bits of mantissa


def test_extreme_logits_stay_finite():
    logits = torch.tensor([[[1e4, -1e4, 0.0], [-1e38, 1e38, 0.0], [0.0, 0.0, 0.0]]])  # (1, 3, 3)
    labels = torch.tensor([[0, 1, 0]])
    lp, _ = llm.token_logps(logits, labels)
    assert torch.isfinite(lp).all()
    torch.testing.assert_close(lp, torch.tensor([[-2e4, -2e38]]), rtol=1e-6, atol=0)


def test_chunk_rows_and_bad_input():
    assert llm.chunk_rows(50257) == llm.CHUNK_BYTES // (4 * 50257) and llm.chunk_rows(10**9) == 1
    with pytest.raises(ValueError, match="chunk_bytes"):
        llm.chunk_rows(10, chunk_bytes=0)
    with pytest.raises(ValueError, match=r"\[0, V=5\)"):
        llm.token_logps(torch.zeros(1, 3, 5), torch.tensor([[0, 7, 1]]))
    with pytest.raises(TypeError, match="floating-point"):
        llm.token_logps(torch.zeros(1, 3, 5, dtype=torch.long), torch.tensor([[0, 1, 1]]))
