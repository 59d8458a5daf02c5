"""Tests for frozenlake_ift.losses: bad input gives a clear ValueError naming the value and what is allowed."""

import pytest
import torch

from frozenlake_ift.losses import (
    dpo_loss,
    ift_loss,
    ipo_loss,
    mix_inputs,
    orpo_loss,
    relation_weights,
    sequence_logps,
    sft_loss,
    simpo_loss,
)

# --------------------------------------------------------------------------- errors


def test_shape_errors_name_expected_and_actual():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"expected Shape \(B, T\), got \(3,\)"):
        sft_loss(torch.zeros(3), torch.ones(3))
    with pytest.raises(ValueError, match=r"mask: expected Shape \(2, 3\).*got \(2, 4\)"):
        ift_loss(x, torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"step_losses: expected Shape \(B, T\)"):
        relation_weights(torch.zeros(2, 3, 1), torch.ones(2, 3, 1), 0.5)
    v, w = torch.zeros(2), torch.zeros(3)
    with pytest.raises(ValueError, match=r"ref_rejected: expected Shape \(2,\).*got \(3,\)"):
        dpo_loss(v, v, v, w)
    with pytest.raises(ValueError, match=r"expected Shape \(B,\)"):
        orpo_loss(x, x, x)
    with pytest.raises(ValueError, match=r"chosen_nll"):
        orpo_loss(v, v, w)
    with pytest.raises(ValueError, match=r"rejected_avg_logps"):
        simpo_loss(v, w)
    with pytest.raises(ValueError, match=r"predicted: expected Shape \(2, 3\).*got \(3, 2\)"):
        mix_inputs(x, torch.zeros(3, 2), 0.2)


@pytest.mark.parametrize("lam", [-0.1, 1.1, float("nan"), float("inf")])
def test_bad_lam(lam):
    with pytest.raises(ValueError, match=r"lam must lie in \[0.0, 1.0\]"):
        mix_inputs(torch.zeros(2), torch.ones(2), lam)


@pytest.mark.parametrize("gamma", [-0.1, 1.5, float("nan")])
def test_bad_gamma(gamma):
    x, m = torch.zeros(1, 3), torch.ones(1, 3)
    with pytest.raises(ValueError, match=r"gamma must lie in \[0.0, 1.0\]"):
        ift_loss(x, m, gamma=gamma)
    with pytest.raises(ValueError, match="gamma"):
        relation_weights(x, m, gamma)


def test_bad_beta_label_smoothing_margin_reduction():
    z = torch.zeros(2)
    for beta in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="beta"):
            dpo_loss(z, z, z, z, beta=beta)
        with pytest.raises(ValueError, match="beta"):
            ipo_loss(z, z, z, z, beta=beta)
        with pytest.raises(ValueError, match="beta"):
            simpo_loss(z, z, beta=beta)
    with pytest.raises(ValueError, match="beta"):
        orpo_loss(z, z, z, beta=-0.1)
    with pytest.raises(ValueError, match=r"label_smoothing must lie in \[0.0, 0.5\]"):
        dpo_loss(z, z, z, z, label_smoothing=0.6)
    with pytest.raises(ValueError, match="margin"):
        simpo_loss(z, z, margin=-1.0)
    with pytest.raises(ValueError, match="reduction"):
        sft_loss(torch.zeros(1, 2), torch.ones(1, 2), reduction="avg")


def test_mask_errors():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"rows \[1\] have none"):
        sft_loss(x, torch.tensor([[1, 0, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match="at least one unmasked step"):
        ift_loss(x, torch.tensor([[False] * 3, [True] * 3]))
    with pytest.raises(ValueError, match="bool or 0/1"):
        sequence_logps(x, torch.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="step_losses must be >= 0"):
        relation_weights(-torch.ones(2, 3), torch.ones(2, 3), 0.5)
