"""The batched engine: per-member optimisers, per-row loss hyper-parameters, and batched == per-cell results."""

import numpy as np
import pytest
import torch

from frozenlake_ift import batched, losses
from frozenlake_ift.optim import EnsembleOptimizer, make_optimizer
from frozenlake_ift.residual import temporal_residual
from frozenlake_ift.study import StudyConfig, lr_factor, run_study

LRS = [0.003, 0.01, 0.03]
TORCH = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop, "sgd": torch.optim.SGD}


def _feed(opt, params, grads, schedule=False):
    """Step ``opt`` once per gradient dict (with the cosine schedule if asked: LambdaLR for a torch.optim
    optimiser, the factor given to ``step`` for ours); returns params."""
    ours = isinstance(opt, EnsembleOptimizer)
    sched = None
    if schedule and not ours:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, 40, "cosine", 0.1))
    for i, g in enumerate(grads):
        for k in params:
            params[k].grad = g[k].clone()
        if ours:
            opt.step(lr_factor(i, 40, "cosine", 0.1) if schedule else 1.0)
        else:
            opt.step()
        if sched is not None:
            sched.step()
    return params


def _torch_run(name, params, lr, grads, schedule, **kernel):
    """torch.optim's own optimiser on one tensor dict, fed the given gradients."""
    return _feed(TORCH[name](params.values(), lr=lr, **kernel), params, grads, schedule)


@pytest.mark.parametrize("name", ["adam", "rmsprop", "sgd"])
@pytest.mark.parametrize("schedule", [False, True])
def test_ensemble_optimizer_blocks_equal_torch_optim_on_each_block(name, schedule):
    """Each block (its own lr) moves exactly as torch.optim moves that block alone, with the same kernel
    (fused Adam / SGD, foreach RMSprop); and within rounding of torch's default single-tensor loop."""
    g = torch.Generator().manual_seed(0)
    P0 = {
        "W": torch.randn(6, 5, 4, generator=g, dtype=torch.float64),
        "b": torch.randn(6, 3, generator=g, dtype=torch.float64),
    }
    blocks, lrs = [(0, 2), (2, 3), (3, 6)], [0.003, 0.01, 0.003]
    member_lr = [lr for (a, b), lr in zip(blocks, lrs, strict=True) for _ in range(a, b)]
    grads = [{k: torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in P0.items()} for _ in range(40)]
    pb = {k: v.clone().requires_grad_() for k, v in P0.items()}
    _feed(make_optimizer(name, pb, torch.tensor(member_lr, dtype=torch.float64), blocks), pb, grads, schedule)
    kernel = {"foreach": True} if name == "rmsprop" else {"fused": True}
    for (a, b), lr in zip(blocks, lrs, strict=True):
        block = [{k: v[a:b] for k, v in gr.items()} for gr in grads]
        start = {k: v[a:b].clone().requires_grad_() for k, v in P0.items()}
        same = _torch_run(name, start, lr, block, schedule, **kernel)
        loop = _torch_run(name, {k: v[a:b].clone().requires_grad_() for k, v in P0.items()}, lr, block, schedule)
        for k in P0:
            assert torch.equal(pb[k][a:b], same[k]), (k, a, b)
            torch.testing.assert_close(pb[k][a:b], loop[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["adam", "sgd"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equal_lr_blocks_share_a_kernel_call_only_where_each_block_keeps_its_bits(name, dtype):
    """Adjacent blocks with one lr are updated as one span when their sizes fit the vector lanes (W: 64
    elements a member); the others (b: 3 a member, vector tails) stay apart. Either way every block moves
    bit for bit as torch's fused kernel moves it alone."""
    g = torch.Generator().manual_seed(1)
    E = 15
    P0 = {"W": torch.randn(E, 8, 8, generator=g, dtype=dtype), "b": torch.randn(E, 3, generator=g, dtype=dtype)}
    blocks = [(0, 5), (5, 8), (8, 15)]
    grads = [{k: torch.randn(v.shape, generator=g, dtype=dtype) for k, v in P0.items()} for _ in range(30)]
    pb = {k: v.clone().requires_grad_() for k, v in P0.items()}
    opt = make_optimizer(name, pb, torch.full((E,), 0.01, dtype=torch.float64), blocks)
    spans = {k: [(a, b) for p, _, a, b in opt.views[0.01] if p is pb[k]] for k in pb}
    assert spans == {"W": [(0, 15)], "b": blocks}
    _feed(opt, pb, grads)
    for a, b in blocks:
        alone = _torch_run(
            name,
            {k: v[a:b].clone().requires_grad_() for k, v in P0.items()},
            0.01,
            [{k: v[a:b] for k, v in gr.items()} for gr in grads],
            False,
            fused=True,
        )
        for k in P0:
            assert torch.equal(pb[k][a:b], alone[k]), (k, a, b)


def test_a_float_lr_is_one_block_of_the_whole_ensemble():
    p = {"W": torch.zeros(4, 3, requires_grad=True)}
    opt = make_optimizer("adam", p, 0.1)
    assert [len(vs) for vs in opt.views.values()] == [1] and list(opt.views) == [0.1]


def test_ensemble_optimizer_rejects_bad_lr_and_blocks():
    p = {"W": torch.zeros(2, 3, requires_grad=True)}
    with pytest.raises(ValueError, match="lr must be one positive"):
        EnsembleOptimizer(p, "adam", [0.1])
    with pytest.raises(ValueError, match="optimizer must be one of"):
        EnsembleOptimizer(p, "adamw", [0.1, 0.1])
    with pytest.raises(ValueError, match=r"cover members 0\.\.2"):
        EnsembleOptimizer(p, "adam", [0.1, 0.1], blocks=[(0, 1)])
    with pytest.raises(ValueError, match="share one lr"):
        EnsembleOptimizer(p, "adam", [0.1, 0.2], blocks=[(0, 2)])


def test_per_row_loss_hyperparameters_equal_scalars_row_by_row():
    g = torch.Generator().manual_seed(1)
    pc, pr, rc, rr = (-torch.rand(4, generator=g, dtype=torch.float32) * 5 for _ in range(4))
    beta = torch.tensor([0.1, 0.5, 1.0, 2.0], dtype=torch.float64)
    cases = [
        (losses.dpo_loss, (pc, pr, rc, rr), {"beta": beta, "label_smoothing": beta / 10}),
        (losses.ipo_loss, (pc, pr, rc, rr), {"beta": beta}),
        (losses.orpo_loss, (pc / 5, pr / 5, -pc / 5), {"beta": beta}),
        (losses.simpo_loss, (pc / 5, pr / 5), {"beta": beta, "margin": beta / 2}),
    ]
    for fn, args, kw in cases:
        batched_out = fn(*args, **kw)
        for i in range(4):
            one = fn(*(a[i : i + 1] for a in args), **{k: float(v[i]) for k, v in kw.items()})
            for b, o in zip(batched_out, one, strict=True):
                assert torch.equal(b[i : i + 1], o), fn.__name__
    with pytest.raises(ValueError, match=r"beta must lie in \(0.0, inf\], got -1.0"):
        losses.dpo_loss(pc, pr, rc, rr, beta=torch.tensor([0.1, -1.0, 0.1, 0.1], dtype=torch.float64))
    x = torch.rand(4, 3, 5, generator=g)
    y = torch.rand(4, 3, 5, generator=g)
    mixed = losses.mix_inputs(x, y, beta / 2)
    assert all(torch.equal(mixed[i], losses.mix_inputs(x[i], y[i], float(beta[i] / 2))) for i in range(4))


def test_temporal_residual_per_member_lam():
    g = torch.Generator().manual_seed(2)
    onehots, predicted = torch.rand(3, 2, 5, 4, generator=g), torch.rand(3, 2, 4, 4, generator=g)
    lam = torch.tensor([0.0, 0.2, 0.5], dtype=torch.float64)
    out = temporal_residual(onehots, predicted, lam)
    for e in range(3):
        assert torch.equal(out[e], temporal_residual(onehots[e], predicted[e], float(lam[e])))
    assert torch.equal(out[0], onehots[0])  # lam = 0: exactly the one-hot input
    with pytest.raises(ValueError, match="lam must lie in"):
        temporal_residual(onehots, predicted, torch.tensor([0.0, 1.5, 0.2], dtype=torch.float64))


def test_groups_follow_the_shape_fields():
    cfgs = [
        StudyConfig(lr=0.01),
        StudyConfig(lr=0.03, lam=0.5, base="uniform", seeds=3),
        StudyConfig(map="4x4"),
        StudyConfig(hidden=16),
        StudyConfig(dpo_beta=0.5),
    ]
    assert batched.group_configs(cfgs) == [[0, 1, 4], [2], [3]]
    with pytest.raises(ValueError, match="agree on"):
        batched.run_group(cfgs[:3])


TINY = dict(seeds=2, steps=8, eval_every=4, fit_steps=200, device="cpu")
GRID = [
    ("random", 0.01, 0.0, 0.1),
    ("random", 0.03, 0.5, 0.5),
    ("uniform", 0.01, 0.2, 0.5),
    ("suboptimal", 0.003, 0.2, 0.1),
]


def _grid(**fixed):
    return [
        StudyConfig(
            base=b,
            lr=lr,
            lam=lam,
            dpo_beta=beta,
            ipo_beta=beta,
            orpo_beta=beta,
            simpo_beta=4 * beta,
            simpo_margin=beta,
            **{**TINY, **fixed},
        )
        for b, lr, lam, beta in GRID
    ]


def _assert_same(batched_results, per_cell_results, rel):
    for b, p in zip(batched_results, per_cell_results, strict=True):
        assert b.steps == p.steps and set(b.curves) == set(p.curves)
        for m in p.curves:
            assert set(b.curves[m]) == set(p.curves[m]), m
            for k, ref in p.curves[m].items():
                np.testing.assert_allclose(b.curves[m][k], ref, rtol=rel, atol=1e-300, err_msg=f"{m} {k}")
            for k, ref in p.stats[m].items():
                np.testing.assert_allclose(b.stats[m][k], ref, rtol=rel, atol=1e-300, err_msg=f"{m} stat {k}")
            np.testing.assert_array_equal(b.explored[m], p.explored[m])
            np.testing.assert_allclose(b.final_occupancy[m], p.final_occupancy[m], rtol=rel, atol=1e-300)
        np.testing.assert_array_equal(b.fit_steps, p.fit_steps)
        np.testing.assert_allclose(b.fit_kl, p.fit_kl, rtol=rel)


@pytest.mark.parametrize("dtype, rel", [("float64", 1e-9), ("float32", 1e-5)])
def test_batched_equals_per_cell_offline_methods(dtype, rel):
    """Item 2: every metric of every cell, on a grid varying base, lr, lambda and the betas."""
    cfgs = _grid(dtype=dtype, methods=("sft", "ift", "dpo", "orpo", "ipo", "simpo"))
    _assert_same(batched.run_group(cfgs), [run_study(c) for c in cfgs], rel)


def test_batched_equals_per_cell_with_truly_sampling_and_schedule():
    """truly (its metric against every method), a sampling method (trained per cell inside the engine),
    sampled negatives, RMSprop with a cosine schedule."""
    cfgs = _grid(
        dtype="float64",
        methods=("truly", "sft", "dpo", "grpo"),
        negatives="policy",
        pairs=2,
        grpo_group=2,
        horizon=10,
        optimizer="rmsprop",
        scheduler="cosine",
        warmup_ratio=0.2,
    )[:3]
    assert batched.draws_samples("dpo", cfgs[0]) and batched.draws_samples("grpo", cfgs[0])
    assert not batched.draws_samples("sft", cfgs[0])
    _assert_same(batched.run_group(cfgs), [run_study(c) for c in cfgs], 1e-9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_batched_on_cuda_matches_cpu():
    """The GPU path (benchmarks/gpu_check.sh runs it): batched on CUDA against per-cell on CPU, float64."""
    cfgs = _grid(dtype="float64", methods=("sft", "ift", "dpo", "orpo"))
    gpu = batched.run_group(
        [StudyConfig(**{**c.to_dict(), "map": c.map, "methods": c.methods, "device": "cuda"}) for c in cfgs]
    )
    _assert_same(gpu, [run_study(c) for c in cfgs], 1e-6)


def test_one_optimiser_over_several_ensembles_moves_each_as_its_own():
    """EnsembleOptimizer.add: a second ensemble (another method's) stepped by the same calls moves exactly as
    under its own optimiser; a tensor without a gradient is skipped, its step count too (as torch does)."""
    g = torch.Generator().manual_seed(3)
    P0 = [{"W": torch.randn(4, 5, 3, generator=g), "b": torch.randn(4, 3, generator=g)} for _ in range(2)]
    grads = [[{k: torch.randn(v.shape, generator=g) for k, v in p.items()} for _ in range(6)] for p in P0]
    joint = [{k: v.clone().requires_grad_() for k, v in p.items()} for p in P0]
    opt = make_optimizer("adam", joint[0], 0.01)
    opt.add(joint[1], 0.03)
    for i in range(6):
        for p, gr in zip(joint, grads, strict=True):
            for k in p:
                p[k].grad = None if (k == "b" and i == 2) else gr[i][k].clone()
        opt.step()
    for p0, gr, lr, got in zip(P0, grads, (0.01, 0.03), joint, strict=True):
        alone = {k: v.clone().requires_grad_() for k, v in p0.items()}
        ref = torch.optim.Adam(alone.values(), lr=lr, fused=True)
        for i in range(6):
            for k in alone:
                alone[k].grad = None if (k == "b" and i == 2) else gr[i][k].clone()
            ref.step()
        assert all(torch.equal(got[k], alone[k]) for k in alone)
    with pytest.raises(RuntimeError, match="before its first step"):
        opt.add({"W": torch.zeros(2, 3, requires_grad=True)}, 0.1)


def test_the_study_imports_no_compiler():
    """No torch.optim optimiser on the default path: a study leaves torch._dynamo unimported (it costs about
    a second of a fresh process)."""
    import subprocess
    import sys

    code = (
        "import sys; from frozenlake_ift.study import StudyConfig, run_study; "
        "run_study(StudyConfig(seeds=2, steps=2, eval_every=1, fit_steps=5, device='cpu', "
        "scheduler='cosine', warmup_ratio=0.5)); print('torch._dynamo' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
