"""Tests for frozenlake_ift.testing: each strategy yields what its docstring promises."""

import itertools
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from frozenlake_ift import losses, solve, testing
from frozenlake_ift.lakes import TILES, make_lake, validate_desc
from frozenlake_ift.mdp import TabularMDP

FEW = settings(max_examples=40)


@FEW
@given(testing.lake_descs(max_size=4))
def test_lake_descs_are_valid_maps(desc):
    assert isinstance(desc, tuple) and validate_desc(desc) == desc
    nrow, ncol = len(desc), len(desc[0])
    assert 1 <= nrow <= 4 and 1 <= ncol <= 4 and nrow * ncol >= 2
    flat = "".join(desc)
    assert set(flat) <= set(TILES) and flat.count("S") == 1 and "G" in flat


@FEW
@given(testing.lake_mdps(max_size=3))
def test_lake_mdps_are_the_exact_mdps_of_their_maps(mdp):
    again = make_lake(list(mdp.desc), slippery=mdp.name.endswith("slippery"))
    assert np.array_equal(again.probs, mdp.probs) and np.array_equal(again.next_states, mdp.next_states)
    assert solve.success_probability(mdp, np.full((mdp.n_states, 4), 0.25)) > 0  # G is reachable


def test_lake_mdps_can_fix_slippery():
    from hypothesis import find

    m = find(testing.lake_mdps(max_size=3, slippery=True), lambda m: m.n_states >= 4)
    slippery = make_lake(list(m.desc), slippery=True)
    assert m.name.endswith("-slippery") and np.array_equal(m.probs, slippery.probs) and m.probs.shape[-1] == 3


@FEW
@given(st.integers(1, 6), st.integers(1, 5), st.data())
def test_policies_are_row_stochastic(S, A, data):
    pi = data.draw(testing.policies(S, A))
    assert pi.shape == (S, A) and pi.dtype == np.float64
    assert (pi >= 0).all() and np.allclose(pi.sum(-1), 1, atol=1e-12)


def test_policies_reach_one_hot_rows():
    from hypothesis import find

    pi = find(testing.policies(3, 4), lambda p: ((p == 1).sum(-1) == 1).all())
    assert ((pi == 0) | (pi == 1)).all()


@FEW
@given(testing.tabular_mdps())
def test_tabular_mdps_are_valid_with_absorbing_goals(mdp):
    assert isinstance(mdp, TabularMDP) and 2 <= mdp.n_states <= 5 and 2 <= mdp.n_actions <= 3
    assert mdp.goal.any() and not (mdp.goal & ~mdp.terminal).any() and not mdp.terminal[0]
    P = mdp.dense_P()  # (S, A, S)
    assert np.allclose(P.sum(-1), 1)
    for s in np.flatnonzero(mdp.terminal):
        assert (P[s, :, s] == 1).all() and (mdp.R[s] == 0).all()
    assert (np.abs(mdp.R) <= 1).all() and np.array_equal(mdp.R * 4, np.round(mdp.R * 4))


@FEW
@given(testing.tabular_mdps(deterministic=True, with_goal=False))
def test_tabular_mdps_options(mdp):
    assert (mdp.dense_P().max(-1) == 1).all()  # one successor per (s, a)


@FEW
@given(testing.instances(max_len=4))
def test_instances_give_feasible_paths(inst):
    states, actions = inst.states, inst.actions
    assert len(states) == len(actions) + 1 and 1 <= len(actions) <= 4
    assert inst.mdp.rho0[states[0]] > 0
    assert all(inst.P[s, a, t] > 0 for s, a, t in zip(states[:-1], actions, states[1:], strict=True))
    assert np.allclose(inst.pi.sum(-1), 1)
    assert eval(repr(inst), {"make_inst": testing.make_inst}).P.tolist() == inst.P.tolist()  # paste-able repr


@FEW
@given(testing.instances(markov_path=True, point_start=True))
def test_instances_markov_path_follows_one_action_per_state(inst):
    assert inst.states[0] == 0
    chosen = {}
    for s, a in zip(inst.states[:-1], inst.actions, strict=True):
        assert chosen.setdefault(s, a) == a


@FEW
@given(testing.masked_logps(max_batch=3, max_len=5))
def test_masked_logps_are_what_losses_expect(batch):
    B, T = batch.shape
    assert 1 <= B <= 3 and 1 <= T <= 5 and batch.logps.dtype == torch.float64 and batch.mask.dtype == torch.bool
    assert (batch.logps <= 0).all() and (batch.logps >= -20).all() and batch.mask.any(-1).all()
    assert torch.isfinite(losses.sft_loss(batch.logps, batch.mask))  # accepted without error


@FEW
@given(testing.masked_logps(contiguous=True, pad_value=float("-inf"), dtype="float32"))
def test_masked_logps_contiguous_and_padded(batch):
    assert batch.logps.dtype == torch.float32
    for row, m in zip(batch.logps, batch.mask, strict=True):
        idx = torch.nonzero(m).flatten()
        assert idx.numel() == int(idx[-1] - idx[0]) + 1  # one run of True
        assert torch.isinf(row[~m]).all() and (row[m] <= 0).all()
    assert torch.isfinite(losses.sft_loss(batch.logps, batch.mask))  # -inf at masked steps is ignored


@pytest.mark.parametrize(
    "call, needle",
    [
        (lambda: testing.policies(0, 2), "S must be an integer >= 1"),
        (lambda: testing.masked_logps(dtype="half"), "dtype must be one of"),
        (lambda: testing.masked_logps(min_logp=1.0), "min_logp must be a finite number <= 0"),
        (lambda: testing.tabular_mdps(max_states=1), "max_states must be an integer >= 2"),
    ],
)
def test_bad_arguments_raise(call, needle):
    from hypothesis import find

    with pytest.raises(ValueError, match=needle):
        find(call(), lambda _: True)


def test_the_readme_example_property_runs():
    from hypothesis import given as given_

    @settings(max_examples=20)
    @given_(testing.tabular_mdps(), st.data())
    def prop(mdp, data):
        pi = data.draw(testing.policies(mdp.n_states, mdp.n_actions))
        p = [solve.success_probability(mdp, pi, horizon=h) for h in range(6)]
        assert all(0 <= a <= b + 1e-12 <= 1 + 2e-12 for a, b in itertools.pairwise(p))

    prop()


def test_without_hypothesis_the_import_error_names_the_extra():
    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "try:\n    import frozenlake_ift.testing\nexcept ImportError as e:\n    print(e)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert 'pip install "frozenlake_ift[testing]"' in out.stdout, out.stderr
