"""The Frozen-Lake study: smoke runs, determinism, per-method training, errors, equivalences."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from frozenlake_ift import cli, metrics, policy, results, solve
from frozenlake_ift.data import Paths
from frozenlake_ift.methods import StepContext, get_method
from frozenlake_ift.methods.batches import path_logps
from frozenlake_ift.study import (
    Job,
    StudyConfig,
    base_params,
    build_data,
    coerce_field,
    fit_to,
    pair_step_logps,
    reference,
    run_study,
    train_method,
    train_methods,
)

TINY = dict(seeds=3, steps=12, eval_every=4, fit_steps=400, device="cpu")


@pytest.fixture(scope="module")
def tiny_result():
    return run_study(StudyConfig(**TINY))


def test_smoke_api_shapes(tiny_result):
    r = tiny_result
    assert r.steps == [0, 4, 8, 12]
    assert set(r.curves) == {"sft", "ift", "dpo", "orpo"}
    for mc in r.curves.values():
        for arr in mc.values():
            assert arr.shape == (4, 3) and np.isfinite(arr).all()
    S = r.data.mdp.n_states
    for occ in r.final_occupancy.values():
        assert occ.shape == (3, S) and np.allclose(occ.sum(-1), 1.0)


def test_same_config_same_results_bitwise(tiny_result):
    again = run_study(StudyConfig(**TINY))
    a, b = results.to_dict(tiny_result), results.to_dict(again)
    for d in (a, b):
        d.pop("seconds")
    assert json.dumps(a) == json.dumps(b)


def test_members_do_not_depend_on_ensemble_size():
    """Seed k trains the same whether it runs alone or inside a larger ensemble."""
    big = run_study(StudyConfig(**{**TINY, "seeds": 3}))
    alone = run_study(StudyConfig(**{**TINY, "seeds": 1, "seed": 2}))
    for m in big.curves:
        np.testing.assert_allclose(
            big.curves[m]["param_mse"][:, 2], alone.curves[m]["param_mse"][:, 0], rtol=1e-4, atol=1e-7
        )


@pytest.mark.parametrize("method", ["sft", "ift", "dpo", "orpo", "ipo", "simpo", "truly"])
def test_each_method_lowers_its_own_training_loss(method):
    r = run_study(StudyConfig(**{**TINY, "steps": 60, "eval_every": 60, "methods": (method,)}))
    loss = r.curves[method]["loss"]  # (2, E)
    assert (loss[-1] < loss[0]).all(), loss


def test_theta_star_fit_reaches_tolerance(tiny_result):
    assert tiny_result.fit_kl.max() <= tiny_result.config.fit_tol
    # theta* is close to pi* in the metric the study reports, too.
    data = tiny_result.data
    assert tiny_result.star_success.min() > 0.9 * solve.success_probability(data.mdp, data.pi_star)


def test_ift_with_lam0_gamma0_equals_sft_step_for_step():
    cfg = StudyConfig(**{**TINY, "lam": 0.0, "prop_gamma": 0.0, "methods": ("sft", "ift")})
    device = torch.device("cpu")
    data = build_data(cfg, device)
    base = base_params(cfg, data, device)
    ref = reference(cfg, data, base, star=base)
    p_sft = train_method("sft", base, data, cfg, ref).params
    p_ift = train_method("ift", base, data, cfg, ref).params
    for k in p_sft:
        torch.testing.assert_close(p_sft[k], p_ift[k], rtol=1e-6, atol=1e-7)


def test_ift_input_mixes_target_with_predicted_next_state():
    """Grid temporal residual (Eq. 17): the log-prob at step i uses (1-lam) s*_i + lam P(.|s*_{i-1}, a_hat)."""
    cfg = StudyConfig(**TINY)
    data = build_data(cfg)
    base = base_params(cfg, data, "cpu")
    lam = 0.3
    got = pair_step_logps(base, data, cfg.activation, lam=lam)[:, 0]  # (E, T)
    states, acts = data.pair_states[0], data.pair_actions[0]
    for e in range(cfg.seeds):
        member = {k: v[e : e + 1] for k, v in base.items()}
        for i in range(1, int(data.pair_mask[0].sum())):
            prev = data.eye[states[i - 1]][None, None]
            a_hat = int(policy.log_probs(member, prev)[0, 0].argmax())
            nxt = torch.as_tensor(
                data.mdp.next_state_distribution([int(states[i - 1])], [a_hat])[0], dtype=data.eye.dtype
            )
            x = (1 - lam) * data.eye[states[i]] + lam * nxt
            want = policy.step_logps(member, x[None, None], acts[i].view(1, 1))[0, 0]
            torch.testing.assert_close(got[e, i], want)


def test_batched_metrics_agree_with_solver():
    cfg = StudyConfig(**TINY)
    data = build_data(cfg)
    mdp = data.mdp
    rng = np.random.default_rng(0)
    pi = rng.dirichlet(np.ones(mdp.n_actions), size=(4, mdp.n_states))  # (E, S, A)
    v, s = metrics.value_and_success(
        metrics.dense_transitions(mdp),
        torch.as_tensor(mdp.R),
        torch.as_tensor(mdp.terminal),
        torch.as_tensor(mdp.goal),
        torch.as_tensor(mdp.rho0),
        torch.as_tensor(pi),
        cfg.gamma,
    )
    for e in range(4):
        assert s[e].item() == pytest.approx(solve.success_probability(mdp, pi[e]), abs=1e-9)
        V = solve.policy_evaluation(mdp, pi[e], cfg.gamma)
        assert v[e].item() == pytest.approx(float(mdp.rho0 @ V), abs=1e-8)
        occ = metrics.discounted_occupancy(
            metrics.dense_transitions(mdp), torch.as_tensor(mdp.rho0), torch.as_tensor(pi[e : e + 1]), cfg.gamma
        )[0].numpy()
        np.testing.assert_allclose(occ, mdp.occupancy(pi[e], gamma=cfg.gamma), atol=1e-9)


@pytest.mark.parametrize("base", ["uniform", "suboptimal"])
def test_bases(base):
    cfg = StudyConfig(**{**TINY, "base": base})
    data = build_data(cfg)
    theta0 = base_params(cfg, data, "cpu")
    pi0 = policy.policy_table(theta0, data.mdp.n_states).detach()
    if base == "uniform":
        torch.testing.assert_close(pi0, torch.full_like(pi0, 0.25))
    else:
        # the base prefers the rejected route: at the start state it takes the rejected route's first move
        s0, a_rej, a_cho = data.rejected.states[0], data.rejected.actions[0], data.chosen.actions[0]
        assert (pi0[:, s0, a_rej] > pi0[:, s0, a_cho]).all()


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"methods": ("sft", "nope")}, "registered: sft, ift, dpo, orpo"),
        ({"methods": ("sft", "sft")}, "repeat"),
        ({"negatives": "sampled"}, "negatives"),
        ({"grpo_group": 1}, "grpo_group"),
        ({"lam": 1.5}, "lam"),
        ({"lam": -0.1}, "lam"),
        ({"seeds": 0}, "seeds"),
        ({"base": "pretrained"}, "base"),
        ({"optimizer": "lbfgs"}, "optimizer"),
    ],
)
def test_bad_config_is_a_clear_error(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        StudyConfig(**kwargs)


def test_two_route_pair_demanded_on_a_map_without_two_routes():
    with pytest.raises(ValueError, match="two"):
        build_data(StudyConfig(map="4x4", route_pair="two-route"))


def test_coerce_field():
    assert coerce_field("lam", "0.5") == 0.5
    assert coerce_field("seeds", "4") == 4
    assert coerce_field("slippery", "true") is True
    assert coerce_field("methods", "sft,ift") == ("sft", "ift")
    with pytest.raises(ValueError, match="unknown StudyConfig field 'lamda'"):
        coerce_field("lamda", "1")
    with pytest.raises(ValueError, match="seeds"):
        coerce_field("seeds", "many")


def test_fit_to_reduces_kl():
    cfg = StudyConfig(**TINY)
    data = build_data(cfg)
    theta0 = base_params(cfg, data, "cpu")
    target = torch.as_tensor(data.pi_star)
    states = torch.as_tensor(np.flatnonzero(~data.mdp.terminal))
    _, kl0, _ = fit_to(theta0, target, states, cfg.activation, steps=0, lr=0.01, tol=1e-9)
    _, kl1, used = fit_to(theta0, target, states, cfg.activation, steps=200, lr=0.01, tol=1e-9)
    assert (used == 200).all() and (kl1 < kl0).all()


# ------------------------------------------------------------------------------ CLI
def test_cli_reproduce_smoke(tmp_path, capsys):
    out = tmp_path / "run"
    rc = cli.main(
        [
            "reproduce",
            "--seeds",
            "2",
            "--steps",
            "6",
            "--set",
            "eval_every=3",
            "--set",
            "fit_steps=200",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--formats",
            "png,svg",
            "--json",
        ]
    )
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed["summary"]) == {"sft", "ift", "dpo", "orpo"}
    res = results.load(out / "results.json")
    assert res["steps"] == [0, 3, 6]
    assert (out / "summary.csv").read_text().startswith("method,metric")
    for name in ("curves", "explored", "map"):
        assert (out / f"{name}.png").stat().st_size > 0 and (out / f"{name}.svg").stat().st_size > 0
    assert cli.main(["plot", str(out / "results.json"), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "curves.png").exists()


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--methods", "sft,nope"], "unknown method 'nope'"),
        (["--set", "lam=2"], "lam"),
        (["--seeds", "0"], "seeds"),
        (["--set", "nonsense=1"], "nonsense"),
        (["--map", "4x4", "--set", "route_pair=two-route"], "two"),
    ],
)
def test_cli_reproduce_errors_write_nothing(tmp_path, capsys, argv, needle):
    out = tmp_path / "run"
    rc = cli.main(["reproduce", "--steps", "2", "--device", "cpu", "--out", str(out), *argv])
    assert rc == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())


def test_cli_plot_missing_file(tmp_path, capsys):
    assert cli.main(["plot", str(tmp_path / "nope.json")]) == 2
    assert "no results file" in capsys.readouterr().err


def test_config_names_match_the_torch_tables():
    """config.py names choices without importing torch; study/policy map them: the two must agree."""
    from frozenlake_ift import config, methods, study

    assert set(config.ACTIVATION_NAMES) == set(policy.ACTIVATIONS)
    assert set(config.OPTIMIZER_NAMES) == set(study.OPTIMIZERS)
    assert set(config.DTYPE_NAMES) == set(study.DTYPES)
    assert config.METHOD_NAMES == methods.paper_method_names() == StudyConfig().methods


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_policy_table_equals_the_one_hot_product_bit_for_bit(dtype, activation):
    """table_logits skips the (E, S, S) one-hot product: the same numbers, not just close ones."""
    params = policy.init_params(37, 4, 24, seeds=[0, 1, 2], dtype=dtype)
    eye = torch.eye(37, dtype=dtype).expand(3, 37, 37)
    assert torch.equal(policy.table_logits(params, activation), policy.logits(params, eye, activation))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("E", [3, 540])
def test_state_logits_equal_the_one_hot_product_bit_for_bit(dtype, E):
    """state_logits gathers W1's rows for indexed states (IFT's greedy pass): the one-hot product's numbers."""
    params = policy.init_params(37, 4, 24, seeds=list(range(E)), dtype=dtype)
    states = torch.randint(0, 37, (E, 2, 15), generator=torch.Generator().manual_seed(E))
    onehot = torch.eye(37, dtype=dtype)[states]  # (E, 2, 15, 37)
    assert torch.equal(policy.state_logits(params, states), policy.logits(params, onehot))
    shared = policy.state_logits(params, states[:1])  # the same states for every member: rows selected once
    assert torch.equal(shared, policy.logits(params, onehot[:1].expand(E, -1, -1, -1)))
    with pytest.raises(ValueError, match="states must have shape"):
        policy.state_logits(params, states[:2])


@pytest.mark.parametrize("method", ["sft", "dpo"])
def test_shared_paths_rows_give_the_one_hot_products_gradients_bit_for_bit(method):
    """path_logps selects W1's rows for paths every member shares: the loss and every gradient equal those
    of the dense one-hot product (its former form), bit for bit."""
    from frozenlake_ift.methods.batches import pair_batch

    cfg = StudyConfig(seeds=4, device="cpu", methods=(method,))
    data = build_data(cfg, "cpu")
    base = base_params(cfg, data, "cpu")
    ctx = StepContext(cfg, data, reference(cfg, data, base, base), None, get_method(method))
    batch = pair_batch(base, ctx, 0)
    pair = batch.chosen.shared().cat(batch.rejected.shared()).expand(4)  # (E, N, T), a stride-0 view: shared
    assert pair.shared().shape[0] == 1

    def grads(lp):
        loss = (lp * pair.mask).sum()
        return [g.clone() for g in torch.autograd.grad(loss, list(base.values()))]

    rows = path_logps(base, pair, data, cfg.activation)  # (E, N, T), shared paths: rows selected
    x = data.eye[pair.states[..., :-1]]  # (E, N, T, S): the one-hot product
    dense = policy.step_logps(base, x, pair.actions, cfg.activation)
    assert torch.equal(rows, dense)
    assert all(torch.equal(a, b) for a, b in zip(grads(rows), grads(dense), strict=True))


@pytest.mark.parametrize(("map_", "E"), [("two-route", 6), ("4x4", 3), ("8x8", 2)])
def test_sampled_paths_are_computed_on_their_taken_steps(map_, E):
    """Per-member (sampled) paths of E >= 2 members (one member's paths count as shared): path_logps computes
    their taken steps only (``_packed_path_logps``). On them it gives the dense one-hot product's values bit
    for bit, 0 on masked steps, and the loss's gradients up to rounding."""
    from frozenlake_ift.data import policy_probs
    from frozenlake_ift.methods.batches import sample_paths

    cfg = StudyConfig(map=map_, slippery=map_ == "4x4", seeds=E, device="cpu", negatives="policy", horizon=40)
    data = build_data(cfg, "cpu")
    base = base_params(cfg, data, "cpu")
    ctx = StepContext(cfg, data, reference(cfg, data, base, base), torch.Generator().manual_seed(3), get_method("dpo"))
    paths = sample_paths(policy_probs(base, data, cfg.activation), 8, ctx)  # (E, 8, T)
    assert paths.shared().shape[0] == E and not bool(paths.mask.all())  # per member, with masked steps
    weights = torch.randn(paths.mask.shape, generator=torch.Generator().manual_seed(4))

    def grads(lp):
        loss = (torch.where(paths.mask, lp, 0.0) * weights).sum()
        return [g.clone() for g in torch.autograd.grad(loss, list(base.values()))]

    packed = path_logps(base, paths, data, cfg.activation)  # (E, N, T)
    dense = policy.step_logps(base, data.eye[paths.states[..., :-1]], paths.actions, cfg.activation)
    assert torch.equal(packed[paths.mask], dense[paths.mask])
    assert bool((packed[~paths.mask] == 0).all())
    for a, b in zip(grads(packed), grads(dense), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_one_route_paired_with_sampled_negatives_is_computed_once():
    """One chosen route against N sampled negatives: pair_batch keeps the route (``chosen_once``) and
    pair_logps computes it once, then repeats it: the repeated route's values bit for bit, the same
    reference log-probs, and the DPO loss's gradients up to rounding."""
    from frozenlake_ift.methods.batches import pair_batch, pair_logps

    cfg = StudyConfig(seeds=4, device="cpu", methods=("dpo",), negatives="policy", pairs=5)
    data = build_data(cfg, "cpu")
    base = base_params(cfg, data, "cpu")
    ctx = StepContext(cfg, data, reference(cfg, data, base, base), torch.Generator().manual_seed(5), get_method("dpo"))
    batch = pair_batch(base, ctx, 0)
    assert batch.chosen_once is not None and batch.chosen_once.shape[1] == 1
    assert batch.chosen.shape[:2] == batch.rejected.shape[:2] == (4, 5)
    once, _ = pair_logps(base, batch, ctx)  # (E, N, Tc)
    repeated = path_logps(base, batch.chosen, data, cfg.activation)  # the N copies computed one by one
    taken = batch.chosen.mask  # masked steps hold junk
    assert torch.equal(once[taken], repeated[taken])
    assert torch.equal(batch.ref_chosen[taken], repeated[taken])
    loss = get_method("dpo").loss_fn
    p = {k: v.detach().clone().requires_grad_(True) for k, v in base.items()}
    g_once = torch.autograd.grad(loss(p, batch, ctx).loss.sum(), list(p.values()))
    plain = dataclasses.replace(batch, chosen_once=None)  # pair_logps then runs the N copies with the negatives
    g_plain = torch.autograd.grad(loss(p, plain, ctx).loss.sum(), list(p.values()))
    for a, b in zip(g_once, g_plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_methods_side_by_side_train_as_each_alone():
    """train_methods: runs in one loop (one backward, one optimiser, one evaluate) give each run's numbers,
    bit for bit, as train_method gives them alone; on a slippery map, with a schedule and per-run lr."""
    cfg = StudyConfig(map="4x4", slippery=True, seeds=3, steps=9, eval_every=3, scheduler="cosine", device="cpu")
    data = build_data(cfg, "cpu")
    base = base_params(cfg, data, "cpu")
    ref = reference(cfg, data, base, base)
    jobs = [
        Job("sft", base, cfg, ref),
        Job("ift", base, cfg, ref),
        Job(
            "dpo",
            base,
            StudyConfig(
                **{
                    **TINY,
                    "lr": 0.03,
                    "map": "4x4",
                    "slippery": True,
                    "scheduler": "cosine",
                    "steps": 9,
                    "eval_every": 3,
                }
            ),
            ref,
        ),
    ]
    together = train_methods(jobs, data)
    for job, run in zip(jobs, together, strict=True):
        alone = train_method(job.method, base, data, job.cfg, ref)
        assert run.steps == alone.steps and set(run.curves) == set(alone.curves)
        for k, v in alone.curves.items():
            np.testing.assert_array_equal(run.curves[k], v, err_msg=f"{job.method} {k}")
        assert all(torch.equal(run.params[k], alone.params[k]) for k in alone.params)
        np.testing.assert_array_equal(run.occupancy, alone.occupancy)
    with pytest.raises(ValueError, match="must agree on steps"):
        train_methods([jobs[0], Job("sft", base, StudyConfig(**{**TINY, "steps": 5}), ref)], data)


def test_shared_paths_are_built_once_and_broadcast():
    data = build_data(StudyConfig(device="cpu"), "cpu")
    one = data.route_pair  # E = 1
    assert one.shared().shape == one.shape
    wide = one.expand(5)
    assert wide.shared().shape == one.shape and torch.equal(wide.shared().states, one.states)
    own = Paths(wide.states.clone(), wide.actions.clone(), wide.mask.clone())  # per-member copies: not shared
    assert own.shared() is own
    params = policy.init_params(data.mdp.n_states, 4, 8, seeds=range(5))
    taken = wide.mask  # masked steps hold junk in path_logps (0 for per-member paths, computed on taken steps only)
    assert torch.equal(path_logps(params, wide, data, "tanh")[taken], path_logps(params, own, data, "tanh")[taken])
    assert torch.equal(path_logps(params, wide, data, "tanh", 0.3), path_logps(params, own, data, "tanh", 0.3))
