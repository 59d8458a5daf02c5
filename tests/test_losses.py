"""Tests for frozenlake_ift.losses: golden values, hypothesis properties, reference formulas.

The reference implementations below are re-derived from the published formulas with plain
Python loops and the math module; none is copied from TRL or the IFT authors' code.
"""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from frozenlake_ift.losses import (
    aggregate_token_losses,
    clipped_token_losses,
    dpo_loss,
    grpo_loss,
    ift_loss,
    ipo_loss,
    kto_loss,
    kto_reference_point,
    log1mexp,
    mix_inputs,
    orpo_loss,
    relation_weights,
    rloo_advantages,
    sequence_clipped_loss,
    sequence_logps,
    sft_loss,
    simpo_loss,
)

D64 = torch.float64


# --------------------------------------------------------------------------- strategies


@st.composite
def step_batches(draw, max_b=4, max_t=10, lo=-20.0, hi=0.0, contiguous=False):
    """(values, mask): values Shape (B, T) float64 in [lo, hi]; each row has >= 1 unmasked step.

    contiguous=True gives masks that are one run [start, end) per row (prompt / answer / padding).
    """
    b = draw(st.integers(1, max_b))
    t = draw(st.integers(1, max_t))
    flat = draw(st.lists(st.floats(lo, hi), min_size=b * t, max_size=b * t))
    values = torch.tensor(flat, dtype=D64).reshape(b, t)
    rows = []
    for _ in range(b):
        if contiguous:
            start = draw(st.integers(0, t - 1))
            end = draw(st.integers(start + 1, t))
            rows.append([start <= k < end for k in range(t)])
        else:
            row = draw(st.lists(st.booleans(), min_size=t, max_size=t))
            row[draw(st.integers(0, t - 1))] = True
            rows.append(row)
    return values, torch.tensor(rows)


gammas = st.one_of(st.sampled_from([0.0, 0.5, 0.95, 1.0]), st.floats(0.0, 1.0))
extreme = st.one_of(st.just(0.0), st.just(-1e4), st.floats(-1e4, 0.0, width=32))


def grad_of(fn, x):
    x = x.clone().requires_grad_(True)
    value = fn(x)
    (grad,) = torch.autograd.grad(value.sum(), x)
    return value.detach(), grad


# --------------------------------------------------------------------------- naive references


def naive_relation_weights(losses, mask, gamma):
    """IFT authors' relation propagation from its formula: loss-type items l_j / n, future-side
    discounted sum over unmasked j >= i, zero at masked steps, L1-normalised and scaled to n."""
    out = []
    for l_row, m_row in zip(losses.tolist(), mask.tolist(), strict=True):
        n = sum(m_row)
        t = len(l_row)
        w = [0.0] * t
        for i in range(t):
            if m_row[i]:
                w[i] = sum(gamma ** (j - i) * l_row[j] / n for j in range(i, t) if m_row[j])
        total = sum(w)
        out.append([wi * n / total for wi in w])
    return torch.tensor(out, dtype=D64)


def py_logsigmoid(z):
    return -math.log1p(math.exp(-z)) if z >= 0 else z - math.log1p(math.exp(z))


def naive_dpo_sigmoid(pc, pr, rc, rr, beta, eps):
    """DPO Eq. 7 with cDPO label smoothing (TRL's "sigmoid" loss), one example at a time."""
    out = []
    for a, b, c, d in zip(pc, pr, rc, rr, strict=True):
        h = (a - b) - (c - d)
        out.append(-(1 - eps) * py_logsigmoid(beta * h) - eps * py_logsigmoid(-beta * h))
    return out


def naive_orpo(ac, ar, nll, beta):
    """ORPO Eq. 4-7 literally: P = exp(avg logp), odds = P / (1 - P), L = nll - beta log sigma(log OR)."""
    out = []
    for a, r, x in zip(ac, ar, nll, strict=True):
        odds_c = math.exp(a) / (1 - math.exp(a))
        odds_r = math.exp(r) / (1 - math.exp(r))
        out.append(x - beta * py_logsigmoid(math.log(odds_c / odds_r)))
    return out


# --------------------------------------------------------------------------- golden values


def test_sft_golden():
    logps = torch.tensor([[-1.0, -2.0, -3.0], [-4.0, -100.0, float("-inf")]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    # row 0: (1 + 2 + 3) / 3 = 2; row 1: 4 / 1 = 4 (masked -100 and -inf ignored)
    assert sft_loss(logps, mask, reduction="none").tolist() == [2.0, 4.0]
    assert sft_loss(logps, mask).item() == 3.0
    assert sft_loss(logps, mask, reduction="sum").item() == 6.0
    assert sequence_logps(logps, mask).tolist() == [-6.0, -4.0]
    assert sequence_logps(logps, mask, average=True).tolist() == [-2.0, -4.0]


def test_ift_three_step_golden():
    # l = (1, 2, 4), n = 3, gamma = 0.5. Unnormalised weights, from the back:
    #   W_3 = 4/3
    #   W_2 = 2/3 + 0.5 * 4/3 = 4/3
    #   W_1 = 1/3 + 0.5 * 4/3 = 1
    # sum W = 11/3, so w = W * 3 / (11/3) = W * 9/11 = (9/11, 12/11, 12/11), summing to 3.
    # loss = (9/11 * 1 + 12/11 * 2 + 12/11 * 4) / 3 = (81/11) / 3 = 27/11.
    # Row 2 is row 1 plus one padded step: identical weights (0 on the pad) and loss.
    logps = torch.tensor([[-1.0, -2.0, -4.0, 0.0], [-1.0, -2.0, -4.0, -7.0]], dtype=D64)
    mask = torch.tensor([[True, True, True, False], [True, True, True, False]])
    raw = relation_weights(-logps, mask, 0.5, rescale=False)
    torch.testing.assert_close(raw[0], torch.tensor([1.0, 4 / 3, 4 / 3, 0.0], dtype=D64))
    w = relation_weights(-logps, mask, 0.5)
    expected_w = torch.tensor([9 / 11, 12 / 11, 12 / 11, 0.0], dtype=D64)
    torch.testing.assert_close(w, torch.stack([expected_w, expected_w]))
    loss = ift_loss(logps, mask, gamma=0.5, reduction="none")
    torch.testing.assert_close(loss, torch.tensor([27 / 11, 27 / 11], dtype=D64))


def test_dpo_zero_margin_is_ln2():
    z = torch.zeros(3)
    for eps in (0.0, 0.2):
        losses, rc, rr = dpo_loss(z, z, z, z, beta=0.1, label_smoothing=eps)
        torch.testing.assert_close(losses, torch.full((3,), math.log(2.0)))
        assert rc.tolist() == [0.0] * 3 and rr.tolist() == [0.0] * 3
    # rewards: beta * (policy - ref), detached
    pc = torch.tensor([-1.0], requires_grad=True)
    _, rc, rr = dpo_loss(pc, torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0]))
    torch.testing.assert_close(rc, torch.tensor([0.1]))
    torch.testing.assert_close(rr, torch.tensor([-0.1]))
    assert not rc.requires_grad


def test_orpo_worked_example():
    # chosen: P = 0.5 -> odds 1; rejected: P = 0.2 -> odds 0.25; log OR = ln 4;
    # log sigma(ln 4) = ln(4 / 5); loss = ln 2 - 0.25 * ln 0.8 = 0.748933...
    ac = torch.tensor([math.log(0.5)], dtype=D64)
    ar = torch.tensor([math.log(0.2)], dtype=D64)
    losses, log_odds = orpo_loss(ac, ar, -ac, beta=0.25)
    torch.testing.assert_close(log_odds, torch.tensor([math.log(4.0)], dtype=D64))
    torch.testing.assert_close(losses, torch.tensor([math.log(2.0) - 0.25 * math.log(0.8)], dtype=D64))
    assert abs(losses.item() - 0.748933) < 1e-6


def test_ipo_and_simpo_golden():
    z = torch.zeros(2, dtype=D64)
    # IPO at zero margin: (0 - 1 / (2 * 0.1))^2 = 25
    torch.testing.assert_close(ipo_loss(z, z, z, z, beta=0.1)[0], torch.full((2,), 25.0, dtype=D64))
    # SimPO with equal rewards: -log sigma(-margin) = log(1 + e^margin)
    torch.testing.assert_close(
        simpo_loss(z, z, beta=2.0, margin=1.0)[0], torch.full((2,), math.log1p(math.e), dtype=D64)
    )


def test_mix_inputs_golden():
    target = torch.tensor([1.0, 0.0, 0.0])
    predicted = torch.tensor([0.0, 1.0, 0.0])
    torch.testing.assert_close(mix_inputs(target, predicted, 0.2), torch.tensor([0.8, 0.2, 0.0]))
    assert torch.equal(mix_inputs(target, predicted, 0.0), target)
    assert torch.equal(mix_inputs(target, predicted, 1.0), predicted)


def test_log1mexp_values_and_zero():
    xs = [-1e-6, -0.01, -0.5, -math.log(2.0), -1.0, -30.0]
    got = log1mexp(torch.tensor(xs, dtype=D64))
    torch.testing.assert_close(got, torch.tensor([math.log(-math.expm1(x)) for x in xs], dtype=D64))
    x = torch.tensor([0.0, -0.0, -1e4], requires_grad=True)
    y = log1mexp(x)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    # documented policy: x = 0 is treated as x = -eps (float32 eps)
    assert y[0].item() == pytest.approx(math.log(torch.finfo(torch.float32).eps), rel=1e-4)


def test_detached_weights_gradient_is_weighted_sft():
    logps = torch.tensor([[-1.0, -2.0, -4.0]], dtype=D64)
    mask = torch.ones(1, 3, dtype=torch.bool)
    _, g_detached = grad_of(lambda x: ift_loss(x, mask, gamma=0.5, detach_weights=True), logps)
    # with constant weights, d loss / d logp_i = -w_i / n
    torch.testing.assert_close(g_detached, -torch.tensor([[9 / 11, 12 / 11, 12 / 11]], dtype=D64) / 3)
    _, g_graph = grad_of(lambda x: ift_loss(x, mask, gamma=0.5), logps)
    assert not torch.allclose(g_graph, g_detached)  # default: weights stay in the graph


@pytest.mark.parametrize("tiny", [-1e-44, -1e-38, -1e-30, -1e-18])
def test_ift_near_perfect_model_is_finite(tiny):
    # float32 totals below sqrt(tiny) ~ 1e-19 fall back to uniform weights (documented);
    # dividing by a subnormal total would otherwise give inf / NaN.
    logps = torch.tensor([[tiny, 0.0, tiny], [tiny, -0.0, -0.0]])
    mask = torch.ones(2, 3, dtype=torch.bool)
    value, grad = grad_of(lambda x: ift_loss(x, mask, gamma=0.95, reduction="none"), logps)
    assert torch.isfinite(value).all() and torch.isfinite(grad).all()
    w = relation_weights(-logps, mask, 0.95)
    torch.testing.assert_close(w.sum(-1), torch.full((2,), 3.0))
    if tiny < -1e-19:
        assert not torch.equal(w[0], torch.ones(3))  # still the relation-propagated weights
        torch.testing.assert_close(w[1], torch.tensor([3.0, 0.0, 0.0]))  # all weight on the only loss
    else:
        assert torch.equal(w, torch.ones(2, 3))


# --------------------------------------------------------------------------- properties


@given(step_batches())
def test_ift_gamma0_equals_sft(batch):
    logps, mask = batch
    v_ift, g_ift = grad_of(lambda x: ift_loss(x, mask, gamma=0.0), logps)
    v_sft, g_sft = grad_of(lambda x: sft_loss(x, mask), logps)
    torch.testing.assert_close(v_ift, v_sft)
    torch.testing.assert_close(g_ift, g_sft)


@given(step_batches(lo=0.0, hi=50.0, contiguous=True), gammas)
def test_unnormalised_weights_bellman_recursion(batch, gamma):
    # App. A.3: W_i = l_i / n + gamma * W_{i+1} along the unmasked run, W = 0 elsewhere.
    losses, mask = batch
    w = relation_weights(losses, mask, gamma, rescale=False)
    n = mask.sum(-1)
    for b in range(losses.shape[0]):
        t = losses.shape[1]
        for i in range(t):
            if not mask[b, i]:
                assert w[b, i].item() == 0.0
                continue
            nxt = w[b, i + 1].item() if i + 1 < t else 0.0
            expected = losses[b, i].item() / n[b].item() + gamma * nxt
            assert w[b, i].item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


@given(step_batches(lo=0.0, hi=50.0), gammas)
def test_weights_nonnegative_and_sum_to_n(batch, gamma):
    losses, mask = batch
    losses = torch.where(losses < 1.0, torch.zeros_like(losses), losses)  # plenty of exact zeros
    w = relation_weights(losses, mask, gamma)
    assert (w >= 0).all()
    assert (w[~mask] == 0).all()
    torch.testing.assert_close(w.sum(-1), mask.sum(-1).to(D64))


@given(step_batches(lo=0.0, hi=50.0), st.floats(0.01, 1.0))
def test_weights_match_authors_formula(batch, gamma):
    losses, mask = batch
    losses = losses + 0.1  # keep every sequence's total away from the all-zero fallback
    torch.testing.assert_close(relation_weights(losses, mask, gamma), naive_relation_weights(losses, mask, gamma))


@given(step_batches(), gammas, st.integers(1, 4), st.sampled_from([0.0, -1e4, float("-inf")]))
def test_padding_changes_nothing(batch, gamma, pad, pad_value):
    logps, mask = batch
    b, t = logps.shape
    padded = torch.cat([logps, torch.full((b, pad), pad_value, dtype=D64)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(b, pad, dtype=torch.bool)], dim=1)
    for fn in (
        lambda x, m: sft_loss(x, m, reduction="none"),
        lambda x, m: ift_loss(x, m, gamma=gamma, reduction="none"),
        lambda x, m: sequence_logps(x, m),
    ):
        v, g = grad_of(lambda x: fn(x, mask), logps)  # noqa: B023  (called within the same iteration)
        v_pad, g_pad = grad_of(lambda x: fn(x, padded_mask), padded)  # noqa: B023  (called within the same iteration)
        torch.testing.assert_close(v_pad, v)
        torch.testing.assert_close(g_pad[:, :t], g)
        assert (g_pad[:, t:] == 0).all()


@given(st.floats(-50.0, 50.0), st.floats(0.01, 2.0), st.sampled_from([0.0, 0.1, 0.3]))
def test_dpo_antisymmetry(m, beta, eps):
    # loss(m) - loss(-m) = -(1 - 2 eps) * beta * m  (= -beta * m without label smoothing)
    z = torch.zeros(1, dtype=D64)
    pos = dpo_loss(torch.tensor([m], dtype=D64), z, z, z, beta=beta, label_smoothing=eps)[0]
    neg = dpo_loss(torch.tensor([-m], dtype=D64), z, z, z, beta=beta, label_smoothing=eps)[0]
    assert (pos - neg).item() == pytest.approx(-(1 - 2 * eps) * beta * m, rel=1e-9, abs=1e-9)


@given(st.lists(st.floats(-100.0, 100.0), min_size=2, max_size=20), st.floats(0.01, 2.0))
def test_dpo_decreasing_in_margin(margins, beta):
    m = torch.tensor(sorted(margins), dtype=D64)
    z = torch.zeros_like(m)
    losses = dpo_loss(m, z, z, z, beta=beta)[0]
    assert (losses[1:] <= losses[:-1]).all()
    _, g = grad_of(lambda x: dpo_loss(x, z, z, z, beta=beta)[0], m)
    assert (g <= 0).all()


@given(
    st.lists(
        st.tuples(st.floats(-30, 30), st.floats(-30, 30), st.floats(-30, 30), st.floats(-30, 30)),
        min_size=1,
        max_size=6,
    ),
    st.floats(0.01, 1.0),
    st.floats(0.0, 0.5),
)
def test_dpo_matches_sigmoid_formula(rows, beta, eps):
    pc, pr, rc, rr = (list(col) for col in zip(*rows, strict=True))
    got = dpo_loss(*(torch.tensor(c, dtype=D64) for c in (pc, pr, rc, rr)), beta=beta, label_smoothing=eps)[0]
    torch.testing.assert_close(got, torch.tensor(naive_dpo_sigmoid(pc, pr, rc, rr, beta, eps), dtype=D64))


@given(
    st.lists(st.tuples(st.floats(-20, -1e-3), st.floats(-20, -1e-3), st.floats(0, 20)), min_size=1, max_size=6),
    st.floats(0.0, 1.0),
)
def test_orpo_matches_odds_ratio_formula(rows, beta):
    ac, ar, nll = (list(col) for col in zip(*rows, strict=True))
    got = orpo_loss(*(torch.tensor(c, dtype=D64) for c in (ac, ar, nll)), beta=beta)[0]
    torch.testing.assert_close(got, torch.tensor(naive_orpo(ac, ar, nll, beta), dtype=D64))


@given(st.lists(st.tuples(extreme, extreme, st.floats(0, 1e4)), min_size=1, max_size=6))
def test_orpo_beta0_is_nll(rows):
    ac, ar, nll = (torch.tensor(col) for col in zip(*rows, strict=True))
    torch.testing.assert_close(orpo_loss(ac, ar, nll, beta=0.0)[0], nll)


@given(st.data(), gammas)
def test_all_losses_finite_for_extreme_logps(data, gamma):
    b = data.draw(st.integers(1, 3))
    t = data.draw(st.integers(1, 8))

    def draw_vec(k):
        return torch.tensor(data.draw(st.lists(extreme, min_size=k, max_size=k)))

    logps = draw_vec(b * t).reshape(b, t)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[:, 1:] = torch.tensor(data.draw(st.lists(st.booleans(), min_size=b * (t - 1), max_size=b * (t - 1)))).reshape(
        b, t - 1
    )
    vecs = [draw_vec(b) for _ in range(4)]
    checks = [
        (lambda x: sft_loss(x, mask), logps),
        (lambda x: ift_loss(x, mask, gamma=gamma), logps),
        (lambda x: ift_loss(x, mask, gamma=gamma, detach_weights=True), logps),
        (lambda x: sequence_logps(x, mask, average=True), logps),
        (lambda x: dpo_loss(x * t, *(v * t for v in vecs[1:]), label_smoothing=0.1)[0], vecs[0]),
        (lambda x: ipo_loss(x, *vecs[1:])[0], vecs[0]),
        (lambda x: orpo_loss(x, vecs[1], -x)[0], vecs[0]),
        (lambda x: orpo_loss(vecs[1], x, -vecs[1])[0], vecs[0]),
        (lambda x: simpo_loss(x, vecs[1])[0], vecs[0]),
    ]
    for fn, x in checks:
        value, grad = grad_of(fn, x)
        assert torch.isfinite(value).all() and torch.isfinite(grad).all()


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.95, 1.0])
def test_relation_weights_stable_at_4096(gamma):
    gen = torch.Generator().manual_seed(0)
    t = 4096
    losses = torch.rand(2, t, generator=gen) * 10.0
    losses[0, :5] = 1e4  # extreme losses
    losses[1, -100:] = 0.0  # perfect tail
    mask = torch.ones(2, t, dtype=torch.bool)
    mask[1, 3000:] = False  # padding
    losses.requires_grad_(True)
    w = relation_weights(losses, mask, gamma)
    assert torch.isfinite(w).all() and (w >= 0).all()
    torch.testing.assert_close(w.sum(-1), mask.sum(-1).float(), rtol=1e-4, atol=1e-3)
    (w * losses).sum().backward()
    assert torch.isfinite(losses.grad).all()
    # the unnormalised recursion holds at full length (checked in float64)
    l64 = losses.detach().to(D64)
    raw = relation_weights(l64, mask, gamma, rescale=False)
    n = mask.sum(-1, keepdim=True).to(D64)
    lhs = raw[:, :-1] - gamma * raw[:, 1:] * mask[:, 1:]
    torch.testing.assert_close(torch.where(mask[:, :-1], lhs, 0.0), torch.where(mask, l64 / n, 0.0)[:, :-1])


# --------------------------------------------------------------------------- KTO, RLOO, GRPO's loss types
# Independent re-derivations from the papers' formulas, one row at a time with the math module.


def py_sigmoid(z):
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


def naive_kto(policy, ref, desirable, kl_policy, kl_ref, beta, w_d, w_u):
    """KTO Eq. 7-8: z0 = max(0, mean KL estimate); v = w_D sigma(beta (r - z0)) or w_U sigma(beta (z0 - r));
    the loss of a row is w_y - v(x, y); the batch loss their mean."""
    z0 = max(0.0, sum(a - b for a, b in zip(kl_policy, kl_ref, strict=True)) / len(kl_policy))
    out = []
    for p, r, good in zip(policy, ref, desirable, strict=True):
        if good:
            out.append(w_d - w_d * py_sigmoid(beta * (p - r - z0)))
        else:
            out.append(w_u - w_u * py_sigmoid(beta * (z0 - (p - r))))
    return out, z0


def naive_clipped_tokens(logps, old, adv, mask, eps, beta=0.0, ref=None, correction=False):
    """Per-token -min(r A, clip(r) A) + beta k3 (times r with the correction), with
    k3 = exp(ref - logp) - (ref - logp) - 1; 0 when masked."""
    out = []
    for b, row in enumerate(logps):
        cells = []
        for t, lp in enumerate(row):
            if not mask[b][t]:
                cells.append(0.0)
                continue
            ratio = math.exp(lp - old[b][t])
            clipped = min(max(ratio, 1 - eps), 1 + eps)
            value = -min(ratio * adv[b], clipped * adv[b])
            if beta:
                d = ref[b][t] - lp
                value += beta * (math.exp(d) - d - 1) * (ratio if correction else 1.0)
            cells.append(value)
        out.append(cells)
    return out


def naive_aggregate(cells, mask, loss_type, max_len):
    n = [sum(m) for m in mask]
    if loss_type == "grpo":
        return sum(sum(row) / k for row, k in zip(cells, n, strict=True)) / len(cells)
    total = sum(sum(row) for row in cells)
    return total / (len(cells) * max_len) if loss_type == "dr_grpo" else total / sum(n)


def test_kto_golden():
    # r = z0: every loss is w * (1 - sigmoid(0)) = w / 2; rewards = beta * r
    p, r = torch.tensor([-1.0, -2.0], dtype=D64), torch.tensor([-1.5, -2.5], dtype=D64)
    z0 = kto_reference_point(p, r)
    assert z0.item() == pytest.approx(0.5)
    losses, rewards = kto_loss(p, r, torch.tensor([True, False]), z0, beta=0.1, desirable_weight=2.0)
    torch.testing.assert_close(losses, torch.tensor([1.0, 0.5], dtype=D64))
    torch.testing.assert_close(rewards, torch.tensor([0.05, 0.05], dtype=D64))
    # a negative KL estimate is clamped to 0
    assert kto_reference_point(r, p).item() == 0.0


@given(
    st.lists(st.tuples(st.floats(-30, 0), st.floats(-30, 0), st.booleans()), min_size=1, max_size=6),
    st.floats(0.01, 2.0),
    st.floats(0.0, 2.0),
    st.floats(0.0, 2.0),
)
def test_kto_matches_the_paper_formula(rows, beta, w_d, w_u):
    policy, ref, good = (list(c) for c in zip(*rows, strict=True))
    kl_policy, kl_ref = policy[::-1], ref  # any mismatched batch
    want, z0 = naive_kto(policy, ref, good, kl_policy, kl_ref, beta, w_d, w_u)
    t = lambda v: torch.tensor(v, dtype=D64)  # noqa: E731
    point = kto_reference_point(t(kl_policy), t(kl_ref))
    assert point.item() == pytest.approx(z0, abs=1e-12)
    got, _ = kto_loss(t(policy), t(ref), torch.tensor(good), point, beta, w_d, w_u)
    torch.testing.assert_close(got, t(want), rtol=1e-10, atol=1e-12)


def test_rloo_advantages_golden_and_formula():
    torch.testing.assert_close(rloo_advantages(torch.tensor([1.0, 0.0, 0.0])), torch.tensor([1.0, -0.5, -0.5]))
    rewards = torch.randn(3, 5, dtype=D64, generator=torch.Generator().manual_seed(0))
    want = [[r[i] - sum(r[j] for j in range(5) if j != i) / 4 for i in range(5)] for r in rewards.tolist()]
    torch.testing.assert_close(rloo_advantages(rewards), torch.tensor(want, dtype=D64))
    with pytest.raises(ValueError, match="k >= 2"):
        rloo_advantages(torch.zeros(3, 1))


@given(st.lists(st.tuples(st.floats(-5, 0), st.floats(-5, 0), st.floats(-3, 3)), min_size=1, max_size=6))
def test_sequence_clipped_loss_matches_formula(rows):
    lp, old, adv = (torch.tensor(c, dtype=D64) for c in zip(*rows, strict=True))
    want = []
    for a, b, c in rows:
        ratio = math.exp(a - b)
        want.append(-min(ratio * c, min(max(ratio, 0.8), 1.2) * c))
    torch.testing.assert_close(sequence_clipped_loss(lp, old, adv, 0.2), torch.tensor(want, dtype=D64))


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dapo", "dr_grpo"])
@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_grpo_loss_types_match_their_formulas(loss_type, beta):
    g = torch.Generator().manual_seed(1)
    B, T = 4, 6
    logps = -torch.rand(B, T, dtype=D64, generator=g) * 3 - 0.5
    old = (logps + 0.3 * torch.randn(B, T, dtype=D64, generator=g)).clamp(max=0)  # ratios outside the clip range too
    ref = (logps + 0.5 * torch.randn(B, T, dtype=D64, generator=g)).clamp(max=0)  # log-probabilities: <= 0
    adv = torch.randn(B, dtype=D64, generator=g)
    mask = torch.arange(T)[None, :] < torch.tensor([6, 2, 4, 1])[:, None]
    cells = naive_clipped_tokens(logps.tolist(), old.tolist(), adv.tolist(), mask.tolist(), 0.2, beta, ref.tolist())
    token = clipped_token_losses(logps, old, adv, mask, 0.2, ref_logps=ref, beta=beta)
    torch.testing.assert_close(token, torch.tensor(cells, dtype=D64))
    got = aggregate_token_losses(token, mask, loss_type, max_completion_length=8)
    assert got.item() == pytest.approx(naive_aggregate(cells, mask.tolist(), loss_type, 8), rel=1e-12)
    if loss_type == "grpo":  # the second implementation: the per-sequence GRPO loss, averaged
        torch.testing.assert_close(got, grpo_loss(logps, old, adv, mask, ref, beta=beta).mean())
    # leading axes (an ensemble) are reduced per index
    stacked = aggregate_token_losses(torch.stack([token, 2 * token]), torch.stack([mask, mask]), loss_type, 8)
    torch.testing.assert_close(stacked, torch.stack([got, 2 * got]))
    # "dapo" with the batch's token count over all processes (here: twice ours) halves the loss
    if loss_type == "dapo":
        half = aggregate_token_losses(token, mask, "dapo", num_items=2 * int(mask.sum()))
        torch.testing.assert_close(half, got / 2)


def test_grpo_loss_type_errors():
    x, m = torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="loss_type must be one of"):
        aggregate_token_losses(x, m, "sapo")
    with pytest.raises(ValueError, match="max_completion_length"):
        aggregate_token_losses(x, m, "dr_grpo")
    with pytest.raises(ValueError, match="ref_logps"):
        clipped_token_losses(x, x, torch.zeros(2), m, beta=0.1)


def test_grpo_kl_correction_multiplies_k3_by_the_ratio():
    g = torch.Generator().manual_seed(3)
    logps = -torch.rand(2, 4, dtype=D64, generator=g)
    old = logps + 0.2 * torch.randn(2, 4, dtype=D64, generator=g)
    ref = logps + 0.5 * torch.randn(2, 4, dtype=D64, generator=g)
    adv, mask = torch.tensor([0.5, -1.0], dtype=D64), torch.ones(2, 4, dtype=torch.bool)
    cells = naive_clipped_tokens(
        logps.tolist(), old.tolist(), adv.tolist(), mask.tolist(), 0.2, 0.1, ref.tolist(), True
    )
    got = clipped_token_losses(logps, old, adv, mask, ref_logps=ref, beta=0.1, kl_correction=True)
    torch.testing.assert_close(got, torch.tensor(cells, dtype=D64))
    # on-policy (old = logps): the same value, yet a different gradient (the ratio's own)
    plain, corrected = (
        grad_of(
            lambda x, c=c: clipped_token_losses(x, x.detach(), adv, mask, ref_logps=ref, beta=0.1, kl_correction=c),
            logps,
        )
        for c in (False, True)
    )
    torch.testing.assert_close(plain[0], corrected[0])
    assert not torch.allclose(plain[1], corrected[1])


def test_trusted_values_skips_only_the_value_checks():
    from frozenlake_ift import losses

    lp, mask = torch.tensor([[0.5, -1.0]]), torch.tensor([[True, True]])  # a log-prob above 0
    with pytest.raises(ValueError, match="log-probabilities"):
        losses.sft_loss(lp, mask)
    with losses.trusted_values():
        assert torch.isfinite(losses.sft_loss(lp, mask))  # the value check is skipped
        with pytest.raises(ValueError, match="expected Shape"):
            losses.sft_loss(lp, mask[:, :1])  # shapes are still checked
    with pytest.raises(ValueError, match="log-probabilities"):
        losses.sft_loss(lp, mask)  # and the checks are back after the block
