"""policy: the networks' numerical building blocks (tanh, the log-softmax over actions, W1's rows per member)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from frozenlake_ift import policy


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 9), min_size=0, max_size=3),
    actions=st.integers(1, 12),
    scale=st.sampled_from([1e-3, 1.0, 30.0]),
    double=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_log_softmax_moved_equals_torchs_up_to_rounding(shape, actions, scale, double, seed):
    """policy.log_softmax_moved (the sparse path's log-softmax) against torch.log_softmax over the last axis:
    values and gradients within a few ulps of the result."""
    dtype = torch.float64 if double else torch.float32
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(*shape, actions, generator=gen, dtype=dtype) * scale).requires_grad_()
    g = torch.randn(*shape, actions, generator=gen, dtype=dtype)
    ours, theirs = policy.log_softmax_moved(x), torch.log_softmax(x, -1)
    tol = 8 * torch.finfo(dtype).eps
    torch.testing.assert_close(ours, theirs, rtol=tol, atol=tol)
    (g_ours,), (g_theirs,) = torch.autograd.grad(ours, x, g), torch.autograd.grad(theirs, x, g)
    torch.testing.assert_close(g_ours, g_theirs, rtol=tol, atol=tol * float(g.abs().sum()))


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 40), min_size=1, max_size=3),
    scale=st.sampled_from([1e-30, 1e-4, 1.0, 9.0, 60.0]),
    start=st.integers(0, 39),
    seed=st.integers(0, 2**16),
)
def test_tanh_is_within_an_ulp_and_the_same_bits_at_any_position(shape, scale, start, seed):
    """policy.tanh (NumPy's SIMD tanh on CPU float32): within 1 ulp of float64's tanh, its gradient torch's
    tanh_backward of its output, and an element's bits independent of where it lies in the array (what makes a
    batched sweep's members equal to per-cell runs)."""
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(*shape, generator=gen) * scale).requires_grad_()
    y = policy.tanh(x)
    exact = torch.tanh(x.detach().double())
    ulp = torch.finfo(torch.float32).eps * exact.abs().clamp_min(torch.finfo(torch.float32).tiny)
    assert bool(((y.detach().double() - exact).abs() <= ulp).all())
    g = torch.randn(*shape, generator=gen)
    (grad,) = torch.autograd.grad(y, x, g)
    assert torch.equal(grad, torch.ops.aten.tanh_backward(g, y.detach()))
    flat = x.detach().flatten()
    part = flat[start % flat.numel() :]
    assert torch.equal(policy.tanh(part), y.detach().flatten()[start % flat.numel() :])
    with torch.inference_mode():
        assert torch.equal(policy.tanh(x.detach().transpose(0, -1)), y.detach().transpose(0, -1))  # strided too
    assert torch.equal(policy.tanh(x.detach().double()), torch.tanh(x.detach().double()))  # float64: torch's own


def test_member_rows_select_what_gather_selects_forward_and_backward():
    """state_logits on per-member states (one index_select over the members' stacked rows) against W1.gather."""
    params = policy.init_params(7, 4, 5, seeds=range(3))
    states = torch.randint(0, 7, (3, 4, 6), generator=torch.Generator().manual_seed(0))
    ours = policy.state_logits(params, states)
    E, _, H = params["W1"].shape
    rows = params["W1"].gather(1, states.reshape(E, -1, 1).expand(-1, -1, H))
    hidden = policy.tanh(rows + params["b1"][:, None, :])  # (E, M, H)
    theirs = torch.baddbmm(params["b2"][:, None, :], hidden, params["W2"]).reshape(3, 4, 6, 4)
    assert torch.equal(ours, theirs)
    g = torch.randn_like(ours)
    leaves = list(params.values())
    ours_grad, theirs_grad = torch.autograd.grad(ours, leaves, g), torch.autograd.grad(theirs, leaves, g)
    assert all(torch.equal(a, b) for a, b in zip(ours_grad, theirs_grad, strict=True))
    for bad in (7, -1):  # one index_select over all members' rows: an out-of-range state is refused, not read
        with pytest.raises(ValueError, match=r"states must lie in \[0, 7\)"):
            policy.state_logits(params, torch.full((3, 2), bad))
        with pytest.raises(ValueError, match=r"states must lie in \[0, 7\)"):
            policy.mixture_logits(params, torch.full((3, 2, 2), bad), torch.ones(3, 2, 2))
