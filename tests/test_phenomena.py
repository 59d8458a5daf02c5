"""The phenomena scenarios: each run on its small budget and its stated result asserted; the derived
quantities against hand-computed values and the loss's own statistics; the registry's checks; the CLI."""

import json
import math

import numpy as np
import pytest

from frozenlake_ift import cli, phenomena, phenomena_report
from frozenlake_ift.phenomena import Budget, Expectation, Run, Scenario, Term
from frozenlake_ift.study import StudyConfig, run_study


@pytest.fixture(scope="module")
def small():
    """Every built-in scenario on its small budget (the tests' budget), once."""
    return {r.scenario.name: r for r in phenomena.run_scenarios(budget="small")}


def _holds(res):
    return {v.text: v.holds for v in res.verdicts}


@pytest.mark.parametrize("name", ["likelihood-displacement", "dpo-vs-ipo", "outside-data", "on-policy-negatives"])
def test_each_literature_phenomenon_reproduces_on_its_small_budget(small, name):
    res = small[name]
    assert res.reproduced, _holds(res)
    assert all(v.holds is True for v in res.verdicts) and len(res.verdicts) == len(res.scenario.expectations)


def test_displacement_both_log_probs_fall_and_the_mass_leaves_the_data(small):
    res = small["likelihood-displacement"]
    values = res.runs["4x4"].values
    chosen, rejected = values[("dpo", "logps/chosen")], values[("dpo", "logps/rejected")]
    assert (chosen.final < chosen.start).all() and (rejected.final < rejected.start).all()
    masses = [values[("dpo", q)] for q in ("chosen_mass", "rejected_mass", "outside_mass")]
    np.testing.assert_allclose(sum(m.final for m in masses), 1.0, atol=1e-9)  # the three parts of each state's mass
    assert (masses[2].final > masses[2].start).all()


def test_ipo_settles_at_its_target_and_dpo_does_not(small):
    res = small["dpo-vs-ipo"]
    for b in phenomena.BANDIT_BETAS:
        rec = res.runs[f"beta={b:g}"]
        h = rec.values[("ipo", "margin")].final  # summed = averaged on a one-step bandit
        np.testing.assert_allclose(h, 1 / (2 * b), rtol=1e-2)
        assert (rec.values[("dpo", "margin")].final > 2 * h).all()  # DPO's margin has no such stop


def test_the_ift_claims_are_judged_and_the_table_says_which_fail(small):
    res = small["ift-claims"]
    verdicts = {v.left if v.left_values is None else v.text: v for v in res.verdicts}
    assert verdicts["IFT ends closer to the truly-trained policy than SFT (Table 1)"].holds is True
    for claim in ("dpo-lowest:param_mse", "dpo-lowest:policy_mse_opt", "dpo-lowest:tmatrix_mse_opt", "explored-aligns"):
        assert verdicts[claim].holds is False, claim  # as at full budget (README, the headline table)
    assert not res.reproduced
    table = phenomena_report.scenario_markdown(res)
    assert "**Not reproduced**" in table and "| **no** |" in table and "DPO has the lowest MSE" in table


def test_quantities_by_hand_on_the_uniform_bandit_and_against_the_loss_statistics():
    res = run_study(
        StudyConfig(env="bandit:1,0.5,0", base="uniform", methods=("dpo",), seeds=2, steps=20, eval_every=20, lr=0.05)
    )
    base = res.final_policy("base").numpy()
    q = phenomena.QUANTITIES
    for name in ("chosen_mass", "rejected_mass", "outside_mass", "outside_occupancy", "chosen_prob", "rejected_prob"):
        np.testing.assert_allclose(q[name].fn(res, base), 1 / 3, rtol=1e-12, err_msg=name)  # three equal arms
    np.testing.assert_allclose(q["margin"].fn(res, base), 0.0, atol=1e-12)
    np.testing.assert_allclose(q["ipo_gap"].fn(res, base), 1.0, atol=1e-12)  # h = 0: the whole target away
    final = res.final_policy("dpo").numpy()
    stats = res.stats["dpo"]
    # the loss's own summed log-probs (float32, from the network's batch) against the policy table (float64)
    np.testing.assert_allclose(np.log(q["rejected_prob"].fn(res, final)), stats["logps/rejected"][-1], rtol=1e-4)
    np.testing.assert_allclose(q["margin"].fn(res, final), stats["rewards/margins"][-1] / 0.1, rtol=1e-4)


def test_scenario_records_refuse_what_cannot_be_judged():
    run = Run("r", {"methods": ("dpo",)})
    ok = Expectation("x", Term("r", "dpo", "success"), "<", 1.0)
    with pytest.raises(ValueError, match="op must be one of"):
        Scenario("s", "t", "c", "story", (run,), (Expectation("x", ok.left, "<=", 1.0),))
    with pytest.raises(ValueError, match="does not train 'sft'"):
        Scenario("s", "t", "c", "story", (run,), (Expectation("x", Term("r", "sft", "success"), "<", 1.0),))
    with pytest.raises(ValueError, match="run 'q' is not one of"):
        Scenario("s", "t", "c", "story", (run,), (Expectation("x", Term("q", "dpo", "success"), "<", 1.0),))
    with pytest.raises(ValueError, match="finite number"):
        Scenario("s", "t", "c", "story", (run,), (Expectation("x", ok.left, "<", math.nan),))
    with pytest.raises(ValueError, match="unknown claim"):
        Scenario("s", "t", "c", "story", (run,), claims=("nope",), claims_run="r")
    with pytest.raises(ValueError, match="unknown scenario 'nope'; scenarios: likelihood-displacement"):
        phenomena.get_scenario("nope")
    with pytest.raises(ValueError, match="already registered"):
        phenomena.register_scenario(phenomena.get_scenario("dpo-vs-ipo"))


def test_a_plugin_scenario_runs_and_an_unknown_quantity_is_named():
    s = Scenario(
        "tiny",
        "t",
        "c",
        "story",
        (Run("r", {"methods": ("sft",), "map": "4x4"}),),
        (Expectation("SFT raises its success", Term("r", "sft", "success", "change"), ">", 0.0),),
        small=Budget(2, 20),
    )
    phenomena.register_scenario(s, replace=True)
    try:
        (res,) = phenomena.run_scenarios(["tiny"], "small")
        assert res.verdicts[0].holds is True and res.budget == Budget(2, 20)
        bad = Expectation("x", Term("r", "sft", "nothing"), "<", 1.0)
        with pytest.raises(ValueError, match="has no quantity 'nothing'"):
            phenomena.judge(Scenario("t2", "t", "c", "story", s.runs, (bad,)), res.budget, res.runs)
    finally:
        phenomena.unregister_scenario("tiny")


def test_cli_writes_the_tables_and_refuses_bad_input(tmp_path, capsys):
    out = tmp_path / "ph"
    argv = ["phenomena", "likelihood-displacement", "--budget", "small", "--seeds", "2", "--out", str(out)]
    assert cli.main(argv) == 0, capsys.readouterr().err
    names = {p.name for p in out.iterdir()}
    assert {"likelihood-displacement.md", "likelihood-displacement.json", "likelihood-displacement.png"} <= names
    rec = json.loads((out / "likelihood-displacement.json").read_text())
    assert rec["budget"] == {"seeds": 2, "steps": 100} and len(rec["verdicts"][0]["left_values"]) == 2
    assert "likelihood-displacement" in (out / "phenomena.md").read_text()
    capsys.readouterr()
    for bad, needle in (
        (["nope"], "unknown scenario 'nope'"),
        (["--seeds", "0"], "--seeds must be >= 1"),
        (["--budget", "huge"], "invalid choice: 'huge'"),
    ):
        fresh = tmp_path / "bad"
        assert cli.main(["phenomena", *bad, "--out", str(fresh)]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1 and not fresh.exists()
    assert cli.main(["phenomena", "--list"]) == 0
    assert "dpo-vs-ipo" in capsys.readouterr().out


def test_the_docs_example_scenario_runs():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "phenomena.md").read_text()
    code = text.split("```python\n")[1].split("```")[0]
    exec(code, {})
    try:
        (res,) = phenomena.run_scenarios(["orpo-keeps-the-chosen"], "small", seeds=2)
        assert res.verdicts[0].holds is True
    finally:
        phenomena.unregister_scenario("orpo-keeps-the-chosen")
