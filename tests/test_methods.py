"""The method registry, the on-policy rows of Table 1 (truly, PPO, online DPO) and GRPO, sampled pairs, saved params."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from frozenlake_ift import losses, metrics, plots, report, results, solve, sweep, theory
from frozenlake_ift.methods import (
    LossOutput,
    Method,
    StepContext,
    batches,
    get_method,
    method_names,
    online,
    paper_method_names,
    register_method,
    unregister_method,
)
from frozenlake_ift.study import StudyConfig, base_params, build_data, reference, run_study, train_method

TINY = dict(seeds=2, steps=8, eval_every=4, fit_steps=300, device="cpu")
ALL = ("sft", "ift", "dpo", "orpo", "ipo", "simpo", "truly", "ppo", "dpo_online", "grpo", "kto", "rloo")
ON_POLICY_TINY = dict(ppo_episodes=8, grpo_group=4, pairs=4, horizon=20)


# ------------------------------------------------------------------------------ a user's method
def hinge_on_margin(params, batch, ctx):
    """A user's method, defined here: a hinge on the summed log-prob margin of the default pair batch."""
    lc, lr = batches.pair_logps(params, batch, ctx)  # (E, N, Tc), (E, N, Tr)
    E = lc.shape[0]
    margin = (lc * batch.chosen.expand(E).mask).sum(-1) - (lr * batch.rejected.expand(E).mask).sum(-1)  # (E, N)
    return torch.relu(1.0 - margin).mean(-1)  # (E,)


@pytest.fixture
def user_method():
    register_method(Method("hinge", loss=hinge_on_margin, color="#123456", marker="h"))
    yield "hinge"
    unregister_method("hinge")


def test_registry_lists_builtins_and_the_paper_four():
    assert method_names()[: len(ALL)] == ALL
    assert paper_method_names() == ("sft", "ift", "dpo", "orpo") == StudyConfig().methods
    assert not get_method("grpo").in_paper and get_method("grpo").table1_row == ""
    assert {get_method(m).table1_row for m in ("truly", "ppo", "dpo_online", "dpo")} == {
        "truly",
        "PPO",
        "DPO online",
        "DPO offline",
    }
    with pytest.raises(ValueError, match="unknown method 'nope'; registered: sft, ift"):
        get_method("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_method(get_method("sft"))
    with pytest.raises(ValueError, match="name"):
        Method("Bad Name", loss=hinge_on_margin)
    with pytest.raises(TypeError, match="loss"):
        Method("x", loss=3)


def test_config_and_registry_import_no_torch():
    code = (
        "import sys; from frozenlake_ift.config import StudyConfig; from frozenlake_ift import methods; "
        "StudyConfig(methods=('ppo', 'grpo')); assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_a_user_method_runs_through_every_stage(user_method, tmp_path):
    cfg = StudyConfig(**{**TINY, "methods": ("sft", user_method)})
    res = results.save(run_study(cfg), tmp_path / "run")
    assert set(res["curves"]) == {"sft", "hinge"} and res["methods"]["hinge"]["in_paper"] is False
    loss = np.asarray(res["curves"]["hinge"]["loss"])
    assert np.isfinite(loss).all() and (loss[-1] <= loss[0]).all()
    figs = plots.save_figures(res, tmp_path / "run", dpi=30)
    assert figs and all(p.stat().st_size > 0 for p in figs)
    assert plots.method_color("hinge") == "#123456"
    spec = sweep.make_spec({"grid": {"lam": [0.0, 0.2]}, "fixed": {**TINY, "methods": ["sft", "hinge"]}})
    out = sweep.run_sweep(spec, tmp_path / "sweep")
    assert out["ran"] == 2 and not out["failed"]
    rep, paths = report.write_report([tmp_path / "sweep"], figures=False)
    assert rep["n_done"] == 2 and all(p.exists() for p in paths)


def test_claims_are_judged_over_the_paper_methods_only():
    four = run_study(StudyConfig(**TINY))
    more = run_study(StudyConfig(**{**TINY, "methods": ("sft", "ift", "dpo", "orpo", "ipo", "simpo")}))
    s4, _ = results.summarize(four.curves)
    s6, _ = results.summarize(more.curves)
    assert results.check_claims(s4) == results.check_claims(s6)
    # a non-paper method that beats everyone on every metric changes no verdict either
    best = {
        k: {**v, "final_mean": -1e9 if not metrics.METRICS[k].higher_is_better else 1e9} for k, v in s4["dpo"].items()
    }
    assert results.check_claims({**s4, "grpo": best}) == results.check_claims(s4)


# ------------------------------------------------------------------------------------- truly
def test_truly_gradient_matches_finite_differences():
    cfg = StudyConfig(**{**TINY, "dtype": "float64", "methods": ("truly",)})
    data = build_data(cfg)
    base = base_params(cfg, data, "cpu")
    ctx = _ctx(cfg, data, base, "truly")
    batch = batches.chosen_batch(base, ctx, 0)
    loss = online.truly(base, batch, ctx).loss.sum()
    (grad,) = torch.autograd.grad(loss, [base["W2"]])
    rng = np.random.default_rng(0)
    for _ in range(5):
        idx = tuple(int(rng.integers(n)) for n in base["W2"].shape)
        h = 1e-6
        with torch.no_grad():
            plus, minus = {k: v.clone() for k, v in base.items()}, {k: v.clone() for k, v in base.items()}
            plus["W2"][idx] += h
            minus["W2"][idx] -= h
            fd = (online.truly(plus, batch, ctx).loss.sum() - online.truly(minus, batch, ctx).loss.sum()) / (2 * h)
        assert float(grad[idx]) == pytest.approx(float(fd), rel=1e-5, abs=1e-9)


def test_truly_equals_the_theory_estimate_on_the_two_route_map():
    """On the deterministic two-route map rho0 T^n [s*_n] is the chosen route's path probability (Eq. 19)."""
    cfg = StudyConfig(**{**TINY, "dtype": "float64", "seeds": 1})
    data = build_data(cfg)
    base = base_params(cfg, data, "cpu")
    ctx = _ctx(cfg, data, base, "truly")
    got = online.truly(base, batches.chosen_batch(base, ctx, 0), ctx).loss.item()
    pi = batches.policy_probs(base, data, cfg.activation)[0].detach().numpy()
    est = theory.truly_estimate(data.mdp, pi, data.chosen.states, data.chosen.actions)
    assert got == pytest.approx(-np.log(est.prob[1:]).mean(), rel=1e-10)


# --------------------------------------------------------------------------- PPO / GRPO losses
def test_clipped_surrogate_golden_values():
    lp = torch.log(torch.tensor([[0.5, 0.9]]))
    old = torch.log(torch.tensor([[0.25, 0.9]]))  # ratios 2.0 and 1.0
    adv = torch.tensor([[1.0, -2.0]])
    mask = torch.tensor([[True, True]])
    # step 0: min(2 * 1, 1.2 * 1) = 1.2; step 1: min(-2, -2) = -2 -> loss = -(1.2 - 2) / 2 = 0.4
    assert losses.clipped_surrogate_loss(lp, old, adv, mask, epsilon=0.2).item() == pytest.approx(0.4)
    adv_neg = torch.tensor([[-1.0, 0.0]])  # ratio 2 with A < 0: min(-2, -1.2) = -2 (no clip benefit)
    assert losses.clipped_surrogate_loss(lp, old, adv_neg, mask).item() == pytest.approx(1.0)
    g = losses.group_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]))
    # mean 0.5, unbiased std sqrt(1/3): (r - 0.5) / (sqrt(1/3) + 1e-4)
    torch.testing.assert_close(
        g[0], torch.tensor([0.5, -0.5, -0.5, 0.5]) / (np.sqrt(1 / 3) + 1e-4), rtol=1e-6, atol=1e-7
    )
    assert (g[1] == 0).all()  # a tied group carries no signal
    kl = losses.grpo_loss(lp, lp.detach(), torch.zeros(1), mask, ref_logps=old, beta=1.0)
    assert kl.item() == pytest.approx(losses.kl_k3(lp, old).mean().item())


def test_ppo_advantages_use_the_exact_value_of_the_sampling_policy():
    cfg = StudyConfig(**{**TINY, **ON_POLICY_TINY, "dtype": "float64", "ppo_kl": 0.0, "methods": ("ppo",)})
    data = build_data(cfg)
    base = base_params(cfg, data, "cpu")
    ctx = _ctx(cfg, data, base, "ppo")
    pi = batches.policy_probs(base, data, cfg.activation).detach()
    V = metrics.state_values(ctx.reference.P, ctx.reference.R, ctx.reference.terminal, pi, cfg.gamma)
    for e in range(cfg.seeds):
        want = solve.policy_evaluation(data.mdp, pi[e].numpy(), cfg.gamma)
        np.testing.assert_allclose(V[e].numpy(), want, atol=1e-8)
    b = online.ppo_batch(base, ctx, 0)
    assert b.old_logps.shape == b.paths.mask.shape == b.advantages.shape
    assert online.ppo_batch(base, ctx, 1) is b  # reused for ppo_epochs steps
    out = online.ppo(base, b, ctx)
    assert torch.isfinite(out.loss).all() and out.loss.shape == (cfg.seeds,)


def test_online_dpo_labels_by_the_oracle():
    cfg = StudyConfig(**{**TINY, **ON_POLICY_TINY, "pairs": 16, "methods": ("dpo_online",)})
    data = build_data(cfg)
    base = base_params(cfg, data, "cpu")
    ctx = _ctx(cfg, data, base, "dpo_online")
    b = online.dpo_online_batch(base, ctx, 0)
    rc, vc = online._oracle_scores(b.chosen, ctx)
    rr, vr = online._oracle_scores(b.rejected, ctx)
    assert ((rc > rr) | ((rc == rr) & (vc >= vr))).all()
    tied = (rc == rr) & (vc == vr)
    assert torch.equal(b.weight == 0, tied)


def test_rloo_and_grpo_loss_types_on_the_grid_path():
    """RLOO's batch: reward = reached G - rloo_beta x the summed log-ratio to theta_0, minus the mean of the other
    k - 1 rollouts of the member; GRPO's loss types: the member's steps averaged as each says."""
    cfg = StudyConfig(**{**TINY, **ON_POLICY_TINY, "rloo_k": 4, "rloo_beta": 0.3, "methods": ("rloo",)})
    data = build_data(cfg)
    base = base_params(cfg, data, "cpu")
    moved = {k: v + 0.3 * torch.randn_like(v) for k, v in base.items()}  # the policy, away from theta_0
    ctx = _ctx(cfg, data, base, "rloo")
    b = online.rloo_batch(moved, ctx, 0)
    E, k, _ = b.old_logps.shape
    for e in range(E):
        for i in range(k):
            m = b.paths.mask[e, i]
            reached = float(data.mdp.goal[b.paths.states[e, i][1:][m]].any())
            kl = float((b.old_logps[e, i] - b.ref_logps[e, i])[m].sum())
            rewards = [float(data.mdp.goal[b.paths.states[e, j][1:][b.paths.mask[e, j]]].any()) for j in range(k)]
            kls = [float((b.old_logps[e, j] - b.ref_logps[e, j])[b.paths.mask[e, j]].sum()) for j in range(k)]
            others = sum(r - 0.3 * x for j, (r, x) in enumerate(zip(rewards, kls, strict=True)) if j != i) / (k - 1)
            assert b.advantages[e, i].item() == pytest.approx(reached - 0.3 * kl - others, abs=1e-5)
    out = online.rloo(moved, b, ctx)
    assert out.loss.shape == (E,) and (out.stats["objective/kl"] != 0).all()
    gcfg = StudyConfig(**{**TINY, **ON_POLICY_TINY, "methods": ("grpo",)})
    gctx = _ctx(gcfg, data, base, "grpo")
    g = online.grpo_batch(moved, gctx, 0)
    lp = batches.path_logps(moved, g.paths, data, gcfg.activation)  # (E, G, T)
    mask = g.paths.expand(E).mask
    token = losses.clipped_token_losses(lp.flatten(0, 1), g.old_logps.flatten(0, 1), g.advantages.flatten().float(),
                                        mask.flatten(0, 1)).view(mask.shape)  # fmt: skip
    for loss_type in ("grpo", "bnpo", "dapo", "dr_grpo"):
        gctx.config = StudyConfig(**{**gcfg.to_dict(), "grpo_loss_type": loss_type})
        got = online.grpo(moved, g, gctx).loss  # (E,)
        n = mask.sum(-1).float()  # (E, G)
        want = {
            "grpo": (token.sum(-1) / n).mean(-1),
            "bnpo": token.sum((1, 2)) / n.sum(-1),
            "dapo": token.sum((1, 2)) / n.sum(-1),
            "dr_grpo": token.sum((1, 2)) / (mask.shape[1] * gcfg.horizon),
        }[loss_type]
        torch.testing.assert_close(got, want)


# ------------------------------------------------------------------------- whole runs, sampling
@pytest.fixture(scope="module")
def all_methods(tmp_path_factory):
    cfg = StudyConfig(**{**TINY, **ON_POLICY_TINY, "methods": ALL})
    out = tmp_path_factory.mktemp("all")
    result = run_study(cfg)
    return cfg, result, results.save(result, out), out


def test_every_builtin_method_trains_and_is_measured_against_truly(all_methods):
    cfg, result, res, _ = all_methods
    assert list(res["curves"]) == list(ALL)
    for m in ALL:
        for k, arr in result.curves[m].items():
            assert arr.shape == (3, cfg.seeds) and np.isfinite(arr).all(), (m, k)
        assert metrics.TRULY_METRIC in result.curves[m]
    assert result.curves["truly"][metrics.TRULY_METRIC][-1] == pytest.approx(0.0, abs=1e-12)
    assert result.curves["sft"][metrics.TRULY_METRIC][0] == pytest.approx(
        result.curves["truly"][metrics.TRULY_METRIC][0]
    )  # every method starts from theta_0
    assert {"rewards/margins", "logps/chosen"} <= set(res["stats"]["dpo"])


def test_saved_params_reload_and_reproduce_the_recorded_success(all_methods):
    cfg, result, res, out = all_methods
    saved = results.load_params(out)
    data = result.data
    assert saved.seeds == [cfg.seed + i for i in range(cfg.seeds)] and set(saved.methods) == set(ALL)
    R = metrics.dense_transitions(data.mdp)
    for m in ALL:
        pi = saved.policy_table(m)  # (E, S, A)
        _, success = metrics.value_and_success(
            R,
            torch.as_tensor(data.mdp.R),
            torch.as_tensor(data.mdp.terminal),
            torch.as_tensor(data.mdp.goal),
            torch.as_tensor(data.mdp.rho0),
            pi,
            cfg.gamma,
        )
        np.testing.assert_allclose(success.numpy(), res["curves"][m]["success"][-1], rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="no saved parameters for method"):
        saved.params("nope")
    with pytest.raises(FileNotFoundError):
        results.load_params(out / "missing")


def test_sampled_methods_are_reproducible_bit_for_bit():
    cfg = StudyConfig(**{**TINY, **ON_POLICY_TINY, "methods": ("ppo", "dpo_online", "grpo")})
    a, b = results.to_dict(run_study(cfg)), results.to_dict(run_study(cfg))
    for d in (a, b):
        d.pop("seconds")
    assert json.dumps(a) == json.dumps(b)


@pytest.mark.parametrize(
    "overrides",
    [{"negatives": "policy", "resample_every": 3}, {"negatives": "base"}, {"chosen": "sampled", "slippery": True}],
)
def test_sampled_pairs(overrides):
    cfg = StudyConfig(**{**TINY, **ON_POLICY_TINY, **overrides, "methods": ("sft", "dpo", "orpo")})
    r = run_study(cfg)
    for m in cfg.methods:
        assert np.isfinite(r.curves[m]["loss"]).all()
    data = build_data(cfg)
    base = base_params(cfg, data, "cpu")
    ctx = _ctx(cfg, data, base, "dpo")
    b0 = batches.pair_batch(base, ctx, 0)
    assert b0.chosen.shape[:2] == b0.rejected.shape[:2] == (cfg.seeds, cfg.pairs)
    assert b0.ref_chosen.shape == b0.chosen.shape
    if cfg.negatives == "policy":
        assert batches.pair_batch(base, ctx, 1) is b0 and batches.pair_batch(base, ctx, 3) is not b0


def test_fixed_negatives_are_the_route_pair():
    cfg = StudyConfig(**TINY)
    data = build_data(cfg)
    base = base_params(cfg, data, "cpu")
    b = batches.pair_batch(base, _ctx(cfg, data, base, "dpo"), 0)
    assert b.chosen.shape[1] == b.rejected.shape[1] == 1
    assert b.chosen.states[0, 0].tolist()[: len(data.chosen.states)] == list(data.chosen.states)
    assert b.rejected.actions[0, 0].tolist() == list(data.rejected.actions)


def test_a_loss_of_the_wrong_shape_is_a_clear_error():
    register_method(Method("broken", loss=lambda params, batch, ctx: LossOutput(torch.zeros(()))))
    try:
        with pytest.raises(ValueError, match=r"method 'broken': loss must return a Tensor of Shape \(E,\)"):
            run_study(StudyConfig(**{**TINY, "methods": ("broken",)}))
    finally:
        unregister_method("broken")


def _ctx(cfg, data, base, method):
    from frozenlake_ift.methods import StepContext
    from frozenlake_ift.study import method_generator

    ref = reference(cfg, data, base, base)
    return StepContext(
        config=cfg, data=data, reference=ref, method=get_method(method), generator=method_generator(cfg, method, "cpu")
    )


def test_train_method_returns_a_typed_record():
    cfg = StudyConfig(**TINY)
    data = build_data(cfg)
    base = base_params(cfg, data, "cpu")
    run = train_method("sft", base, data, cfg, reference(cfg, data, base, base))
    assert run.steps == [0, 4, 8] and run.occupancy.shape == (cfg.seeds, data.mdp.n_states)
    assert set(run.params) == {"W1", "b1", "W2", "b2"} and run.stats["nll_loss"].shape == (3, cfg.seeds)


@pytest.mark.parametrize("method", ["dpo", "ipo", "orpo", "simpo", "kto", "dpo_online"])
def test_a_step_that_is_not_logged_skips_the_statistics_not_the_loss(method):
    """``ctx.logging`` False (a step between evaluations): the loss is the same bits, the statistics are
    not computed (the study records them on logged steps only)."""
    cfg = StudyConfig(seeds=3, steps=2, device="cpu", methods=(method,))
    data = build_data(cfg, "cpu")
    base = base_params(cfg, data, "cpu")
    rec = get_method(method)
    outs = []
    for logging in (True, False):
        ctx = StepContext(cfg, data, reference(cfg, data, base, base), torch.Generator().manual_seed(0), rec)
        ctx.logging = logging
        with torch.no_grad():
            batch = rec.batch_fn(base, ctx, 0)
        outs.append(rec.loss_fn(base, batch, ctx))
    logged, quiet = outs
    assert torch.equal(logged.loss, quiet.loss)
    assert logged.stats and not quiet.stats
