"""Sweep specs with further grids: the cells are the union of every grid's, each cell names every swept field,
--set / --fix act on every grid, a tiny two-grid sweep runs and reports, and the default sweep holds the
sampler settings of the on-policy DPO regime."""

import dataclasses

import pytest

from frozenlake_ift import report, sweep

TINY = {"seeds": 2, "steps": 4, "eval_every": 2, "fit_steps": 50, "device": "cpu"}
RAW = {
    "name": "two",
    "grid": {"lam": [0.0, 0.2]},
    "grids": [{"negatives": ["policy"], "resample_every": [1, 5]}, {"lam": [0.2], "lr": [0.01]}],
    "fixed": TINY,
}


def test_cells_are_the_union_and_name_every_swept_field():
    spec = sweep.make_spec(RAW)
    assert sweep.swept_fields(spec) == ["lam", "negatives", "resample_every", "lr"]
    cells = sweep.expand(spec)
    assert len(cells) == 2 + 2  # the third grid's one cell is the first grid's lam=0.2 cell (lr 0.01 is the default)
    assert all(list(c.values) == sweep.swept_fields(spec) for c in cells)
    first = cells[0].values
    assert first == {"lam": 0.0, "negatives": "fixed", "resample_every": 10, "lr": 0.01}  # the config's own values
    assert {(c.values["negatives"], c.values["resample_every"]) for c in cells[2:]} == {("policy", 1), ("policy", 5)}


def test_set_and_fix_act_on_every_grid():
    spec = sweep.make_spec(RAW)
    out = sweep.override(spec, grid={"lam": [0.5]}, fixed={"resample_every": 2})
    assert out["grid"] == {"lam": [0.5]} and out["grids"] == [{"negatives": ["policy"]}, {"lam": [0.5], "lr": [0.01]}]
    assert out["fixed"]["resample_every"] == 2
    added = sweep.override(spec, grid={"pairs": [1, 2]})
    assert added["grid"]["pairs"] == [1, 2] and "pairs" not in added["grids"][0]


@pytest.mark.parametrize(
    ("grids", "needle"),
    [
        ({"lam": [0.1]}, "'grids' must be a list"),
        ([{}], "'grids' must be a list of non-empty mappings"),
        ([{"seeds": [3]}], "grids[0]: field(s) ['seeds'] are both in the grid and in 'fixed'"),
        ([{"nope": [1]}], "unknown StudyConfig field 'nope'"),
    ],
)
def test_bad_grids_are_named(grids, needle):
    with pytest.raises(ValueError) as exc:
        sweep.make_spec({**RAW, "grids": grids})
    assert needle in str(exc.value)


def test_a_two_grid_sweep_runs_and_reports(tmp_path):
    spec = sweep.make_spec({**RAW, "grids": RAW["grids"][:1]})
    summary = sweep.run_sweep(spec, tmp_path)
    assert summary["ran"] == 4 and not summary["failed"]
    fields, records, missing = report.load_cells([tmp_path])
    assert not missing and fields["negatives"] == ["fixed", "policy"] and fields["resample_every"] == ["10", "1", "5"]
    rep = report.analyze(fields, records)
    assert set(rep["swept"]) == {"lam", "negatives", "resample_every"}


def test_default_sweep_holds_the_on_policy_regime():
    spec = sweep.load_spec(sweep.DEFAULT_SPEC)
    cells = sweep.expand(spec, check_maps=False)
    # the grid (324 cells less the 18 with base suboptimal on the non-slippery 8x8), the policy grid, fixed and base
    assert len(cells) == 324 - 18 + 32 + 8 - 1  # (one cell shared)
    regime = [
        c.config
        for c in cells
        if (c.config.negatives, c.config.pairs, c.config.resample_every, c.config.horizon, c.config.lr, c.config.steps)
        == ("policy", 1, 1, 20, 0.001, 2000)
    ]
    assert len(regime) == 1 and regime[0].map == "two-route" and regime[0].seeds == 20


def test_every_cell_of_the_default_sweep_can_build_its_base():
    """No cell of the default sweep is one the study refuses: the suboptimal base needs states that only
    the chosen trajectories visit (none on the non-slippery 8x8 map, whose second route walks every tile
    of the chosen one), so those cells are not in the spec."""
    from frozenlake_ift import data

    spec = sweep.load_spec(sweep.DEFAULT_SPEC)
    seen = set()
    for c in sweep.expand(spec):
        cfg = c.config
        if cfg.base != "suboptimal" or (cfg.map, cfg.slippery) in seen:
            continue
        seen.add((cfg.map, cfg.slippery))
        assert data.blocked_mdp(data.build_data(cfg)).n_states == data.make_mdp(cfg).n_states
    assert seen == {
        ("two-route", False),
        ("two-route", True),
        ("random:6:0", False),
        ("random:6:0", True),
        ("8x8", True),
    }
    with pytest.raises(ValueError, match=r"base='suboptimal'.*none"):
        data.blocked_mdp(data.build_data(dataclasses.replace(sweep.expand(spec)[0].config, map="8x8", slippery=False)))
