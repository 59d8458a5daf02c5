"""The paper read exactly: both matrices, the exploration sentences, the paper preset, per-step logs,
robust statistics."""

import csv
import io

import numpy as np
import pytest
import torch

from frozenlake_ift import metrics, results, stats
from frozenlake_ift.study import StudyConfig, lr_factor, run_study

TINY = dict(seeds=3, steps=8, eval_every=4, fit_steps=300, device="cpu")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result = run_study(StudyConfig(**TINY))
    return result, results.save(result, out), out


def test_state_transition_matrix_mse_by_hand(run):
    result, _, _ = run
    mdp = result.data.mdp
    P = mdp.dense_P()  # (S, A, S)
    nt = ~mdp.terminal
    pi_star = result.data.pi_star
    for m in result.curves:
        pi = results.load_params(run[2]).policy_table(m).numpy()  # (E, S, A)
        T = np.einsum("esa,sat->est", pi, P)
        T_opt = np.einsum("sa,sat->st", pi_star, P)
        want = ((T - T_opt) ** 2)[:, nt].mean((-1, -2))
        np.testing.assert_allclose(result.curves[m]["tmatrix_mse_opt"][-1], want, rtol=1e-6, atol=1e-9)


def test_explored_alignment_is_a_jaccard_index():
    pref = torch.tensor([True, True, False, False])
    explored = torch.tensor([[True, True, False, False], [True, True, True, True], [False, False, False, False]])
    np.testing.assert_allclose(metrics.explored_alignment(explored, pref).numpy(), [1.0, 0.5, 0.0])


def test_sft_explores_exactly_the_preferred_tiles_on_two_route(run):
    result, _, _ = run
    # SFT trains on the chosen route only, which is where pi* goes: alignment 1 (after its first step)
    assert (result.curves["sft"]["explored_alignment"][-1] == 1.0).all()
    assert (result.curves["dpo"]["explored_alignment"][-1] < 1.0).all()  # DPO also trains on the rejected route


def test_claims_name_each_sentence_with_p_improvement(run):
    _, res, _ = run
    names = {(c["claim"], c["metric"]) for c in res["claims"]}
    for metric in results.MSE_CLAIM_METRICS:
        assert ("DPO has the lowest MSE to the optimal policy", metric) in names
        assert ("IFT is better (lower MSE) than SFT and ORPO", metric) in names
    assert ("DPO, ORPO and IFT explore more grids than SFT", "explored") in names
    assert any(c["metric"] == "explored_alignment" for c in res["claims"])
    for c in res["claims"]:
        assert c["p_improvement"] and all(0 <= v <= 1 for v in c["p_improvement"].values())


def test_probability_of_improvement_golden():
    assert stats.probability_of_improvement([1, 2, 3], [2]) == pytest.approx((0 + 0.5 + 1) / 3)
    assert stats.probability_of_improvement([1, 2], [3, 4], higher_is_better=False) == 1.0
    scipy_stats = pytest.importorskip("scipy.stats")
    x, y = np.random.default_rng(0).normal(size=15), np.random.default_rng(1).normal(size=12)
    u = scipy_stats.mannwhitneyu(x, y).statistic  # U counts x > y (+ half ties): P = U / (n m)
    assert stats.probability_of_improvement(x, y) == pytest.approx(u / (15 * 12))
    assert stats.iqm([1, 2, 3, 4, 100, 5, 6, 7]) == pytest.approx(np.mean([3, 4, 5, 6]))


def test_iqm_intervals_of_many_rows_equal_scipy_row_by_row():
    """One bootstrap over k rows gives each row the interval scipy's own bootstrap gives it alone."""
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    x = rng.lognormal(size=(6, 20))
    x[2] = 0.25  # every run equal: the degenerate interval
    x[4, 7] = np.nan  # a diverged run: no interval
    rows = stats.iqm_ci_rows(x)
    for i, row in enumerate(x):
        if i in (2, 4):
            assert stats.iqm_ci(row) == rows[i]
            continue
        assert stats.iqm_ci(row) == pytest.approx(rows[i], rel=1e-12)
        alone = scipy_stats.bootstrap(
            (row,),
            lambda a, axis: scipy_stats.trim_mean(a, 0.25, axis=axis),
            n_resamples=stats.BOOTSTRAP_RESAMPLES,
            method="percentile",
            random_state=np.random.default_rng(0),
        ).confidence_interval
        assert rows[i] == pytest.approx((alone.low, alone.high), rel=1e-12)
    assert rows[2] == (0.25, 0.25) and rows[4] is None
    np.testing.assert_allclose(stats.trimmed_mean(x[[0, 1, 3]]), scipy_stats.trim_mean(x[[0, 1, 3]], 0.25, axis=-1))
    # numpy alone, as scipy computes them: the IQM (partition) and the bootstrap with the same statistic
    np.testing.assert_allclose(
        stats.iqm_rows(x[[0, 1, 3]]), scipy_stats.trim_mean(x[[0, 1, 3]], 0.25, axis=-1), rtol=1e-15
    )
    same_stat = scipy_stats.bootstrap(
        (x[[0, 1, 3]],),
        stats.trimmed_mean,
        axis=-1,
        n_resamples=stats.BOOTSTRAP_RESAMPLES,
        method="percentile",
        vectorized=True,
        random_state=np.random.default_rng(0),
    ).confidence_interval
    np.testing.assert_allclose([rows[i] for i in (0, 1, 3)], np.stack([same_stat.low, same_stat.high], -1), rtol=1e-14)
    assert stats.iqm_rows(x[[0, 1]]) == pytest.approx([stats.iqm(x[0]), stats.iqm(x[1])], rel=1e-15)


def test_one_seed_has_no_interval_and_judges_nothing():
    res = results.to_dict(run_study(StudyConfig(**{**TINY, "seeds": 1})))
    assert all(s["final_ci95"] is None for ms in res["summary"].values() for s in ms.values())
    assert all(c["holds"] is None for c in res["claims"])
    assert "one seed" in results.format_table(res)


def test_steps_csv_holds_trl_names_and_ends_at_the_final_values(run):
    _, res, out = run
    rows = list(csv.DictReader(io.StringIO((out / "steps.csv").read_text())))
    cols = rows[0].keys()
    for name in (
        "logps/chosen",
        "logps/rejected",
        "rewards/chosen",
        "rewards/rejected",
        "rewards/margins",
        "rewards/accuracies",
        "loss",
        "param_mse",
        "tmatrix_mse",
    ):
        assert name in cols
    for m in ("dpo", "orpo"):
        dpo_rows = [r for r in rows if r["method"] == m]
        assert {int(r["step"]) for r in dpo_rows} == set(res["steps"])
        assert all(r["logps/chosen"] != "" for r in dpo_rows)
    for m, mc in res["curves"].items():
        for e in range(TINY["seeds"]):
            last = [r for r in rows if r["method"] == m and int(r["member"]) == e][-1]
            assert int(last["step"]) == res["steps"][-1]
            for k, arr in mc.items():
                assert float(last[k]) == pytest.approx(arr[-1][e], rel=1e-5, abs=1e-12)


def test_to_frame_matches_results_json(run):
    pytest.importorskip("pandas")
    _, res, out = run
    df = results.to_frame(out)
    assert list(df.columns) == ["method", "member", "seed", "step", "quantity", "value"]
    got = df[(df.method == "ift") & (df.quantity == "param_mse") & (df.step == res["steps"][-1])]
    np.testing.assert_allclose(got.sort_values("member").value.to_numpy(), res["curves"]["ift"]["param_mse"][-1])
    n_quantities = sum(len(mc) + len(res["stats"].get(m, {})) for m, mc in res["curves"].items())
    assert len(df) == n_quantities * len(res["steps"]) * TINY["seeds"]


def test_lr_schedule_matches_transformers():
    transformers = pytest.importorskip("transformers")
    for sched, make in (
        ("cosine", transformers.get_cosine_schedule_with_warmup),
        ("constant", lambda o, w, n: transformers.get_constant_schedule_with_warmup(o, w)),
    ):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        hf = make(opt, 30, 300)
        for step in range(300):
            assert lr_factor(step, 300, sched, 0.1) == pytest.approx(hf.lr_lambdas[0](step), abs=1e-12)


def test_paper_preset():
    cfg = StudyConfig.preset("paper", seeds=2)
    assert (cfg.optimizer, cfg.scheduler, cfg.warmup_ratio, cfg.seeds) == ("rmsprop", "cosine", 0.1, 2)
    with pytest.raises(ValueError, match="unknown preset"):
        StudyConfig.preset("nope")
    with pytest.raises(ValueError, match="scheduler"):
        StudyConfig(scheduler="linear")


def test_tensorboard_event_files(run, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, res, _ = run
    folders = results.write_tensorboard(res, tmp_path / "tb")
    assert {f.name for f in folders} == set(res["curves"])
    acc = EventAccumulator(str(tmp_path / "tb" / "dpo"))
    acc.Reload()
    events = acc.Scalars("stats/rewards/margins")
    assert [e.step for e in events] == res["steps"]
    assert events[-1].value == pytest.approx(float(np.mean(res["stats"]["dpo"]["rewards/margins"][-1])), rel=1e-5)
