"""The default study written again in JAX (jit, vmap over members, lax.scan over steps, optax's Adam):
the same numbers, and the package's time over JAX's, measured in one run.

    pip install '.[peer-jax]'                      # jax 0.6 and optax: never needed by the package itself
    python benchmarks/bench_peer_jax.py            # the checks, E = 20 and 540 per method, the warm study, cold runs
    python benchmarks/bench_peer_jax.py --repeats 3 --json out.json

What it does, each side on one CPU thread (torch.set_num_threads(1); XLA without its thread pool):
1. equal numbers: the whole default study (theta* fit, SFT / IFT / DPO / ORPO, every metric every
   eval_every steps) in both; prints the largest relative difference of the losses, of the parameters
   after the last step and of every metric curve (each curve's largest |package - JAX| over its largest
   |value|). The two differ only by rounding (XLA fuses and orders float32 sums its own way).
2. training per method at E = 20 and E = 540 (the batched sweep's largest ensemble): ``study.train_method``
   against the JAX loop, both with metrics at the first and last step only, warm (JAX compiled, the
   package's first call done); the ratio package / JAX per method (target <= 1.1 at E = 540).
3. the warm whole default study at E = 20: ``run_study`` against the JAX study (target <= 3).
4. cold: a fresh process that imports everything and runs the default study once, for each side
   (the package's first study must stay faster than JAX's, whose compiling is most of its time).
jax is pinned to 0.6 in the extra: with jaxlib 0.10.2 the E = 540 calls hung at random on this machine
(``block_until_ready`` waiting with every thread idle, with or without XLA's thread pool); 0.6.2 runs them.
Timings alternate package / JAX; each figure is the median of --repeats runs, with the range.
The JAX side is this project's own code, written for this comparison; it covers the default study
(the lake two-route map, the paper's four methods, Adam, a constant learning rate, tanh).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
METHODS = ("sft", "ift", "dpo", "orpo")


# ------------------------------------------------------------------------------ the JAX study
def jax_study(cfg, data, base_t: dict, methods=METHODS, evals: bool = True):
    """Build the jitted JAX functions of ``cfg``'s study on ``data``; returns run(base) -> results dict.

    results: {"fit_kl", "fit_steps", "star", method: {"curves": {metric: (n_evals, E)}, "params": {...}}}.
    evals False: metrics at the first and last step only (the per-method timing).
    """
    import jax
    import jax.numpy as jnp
    import optax

    from frozenlake_ift import data as data_mod

    jax.config.update("jax_enable_x64", True)  # the metrics are float64, as the package's
    f32, f64 = jnp.float32, jnp.float64
    mdp = data.mdp
    S = mdp.n_states
    P64 = jnp.asarray(mdp.dense_P(), f64)  # (S, A, S)
    P32 = P64.astype(f32)
    R = jnp.asarray(mdp.R, f64)
    nt_idx = jnp.asarray(np.flatnonzero(~mdp.terminal))
    solve_idx = jnp.asarray(np.flatnonzero(np.asarray(data_mod.reachable(mdp)) & ~mdp.terminal))
    goal = jnp.asarray(mdp.goal)
    rho0 = jnp.asarray(mdp.rho0, f64)
    pi_star = jnp.asarray(data.pi_star, f64)
    gamma = cfg.gamma
    eye = jnp.eye(S, dtype=f32)
    pair = data.route_pair  # (1, Nc + Nr, T)
    nc = len(data.chosen_all)
    st_all = jnp.asarray(pair.states[0, :, :-1].numpy())  # (N, T)
    ac_all = jnp.asarray(pair.actions[0].numpy())
    mk_all = jnp.asarray(pair.mask[0].numpy())
    n_evals_every = cfg.eval_every if evals else cfg.steps

    def net(p, x):  # one member: x (..., S) -> log pi (..., A)
        h = jnp.tanh(x @ p["W1"] + p["b1"])
        return jax.nn.log_softmax(h @ p["W2"] + p["b2"], axis=-1)

    def table(p):  # (S, A) float64 policy
        h = jnp.tanh(p["W1"] + p["b1"])
        return jax.nn.softmax((h @ p["W2"] + p["b2"]).astype(f64), axis=-1)

    def logps(p, states, actions, lam=0.0):  # (N, T)
        x = eye[states]  # (N, T, S)
        if lam > 0:
            prev = states[:, :-1]
            a_hat = jnp.argmax(jax.lax.stop_gradient(net(p, eye[prev])), axis=-1)  # (N, T-1)
            pred = P32[prev, a_hat]  # (N, T-1, S)
            x = jnp.concatenate([x[:, :1], (1 - lam) * x[:, 1:] + lam * pred], axis=1)
        lp = net(p, x)
        return jnp.take_along_axis(lp, actions[..., None], -1)[..., 0]

    def seq(lp, mask, average):
        total = jnp.where(mask, lp, 0.0).sum(-1)
        return total / mask.sum(-1) if average else total

    def relation(losses, mask, g):  # IFT's weights (losses.relation_weights), kept in the graph
        n = mask.sum(-1).astype(losses.dtype)
        T = losses.shape[-1]
        r = jnp.arange(T)
        D = jnp.where(r[None, :] >= r[:, None], g ** (r[None, :] - r[:, None]).clip(0).astype(losses.dtype), 0.0)
        W = jnp.where(mask, (losses / n[:, None]) @ D.T, 0.0)
        total = W.sum(-1)
        ok = total > np.sqrt(np.finfo(np.float32).tiny)
        return jnp.where(ok[:, None], W * (n / jnp.where(ok, total, 1.0))[:, None], mask.astype(losses.dtype))

    def log1mexp(x):
        x = jnp.minimum(x, -np.finfo(np.float32).eps)
        cut = -np.log(2.0)
        return jnp.where(x > cut, jnp.log(-jnp.expm1(jnp.maximum(x, cut))), jnp.log1p(-jnp.exp(jnp.minimum(x, cut))))

    ch = (st_all[:nc], ac_all[:nc], mk_all[:nc])
    rj = (st_all[nc:], ac_all[nc:], mk_all[nc:])

    def loss_fn(method, p, ref_seq):
        if method in ("sft", "ift"):
            lam = cfg.lam if method == "ift" else 0.0
            lp = logps(p, ch[0], ch[1], lam)
            mask = ch[2]
            losses = -jnp.where(mask, lp, 0.0)
            n = mask.sum(-1)
            if method == "sft":
                return (losses.sum(-1) / n).mean()
            w = relation(losses, mask, cfg.prop_gamma)
            return ((w * losses).sum(-1) / n).mean()
        lc, lr = logps(p, ch[0], ch[1]), logps(p, rj[0], rj[1])
        if method == "dpo":
            h = (seq(lc, ch[2], False) - ref_seq[0]) - (seq(lr, rj[2], False) - ref_seq[1])
            return (-jax.nn.log_sigmoid(cfg.dpo_beta * h)).mean()
        a_c, a_r = seq(lc, ch[2], True), seq(lr, rj[2], True)
        log_odds = (a_c - log1mexp(a_c)) - (a_r - log1mexp(a_r))
        return (-a_c - cfg.orpo_beta * jax.nn.log_sigmoid(log_odds)).mean()

    def flat(p):
        return jnp.concatenate([p[k].reshape(-1) for k in ("W1", "b1", "W2", "b2")]).astype(f64)

    def value_success(pi):  # one member, dense (the package's study.evaluate on maps of <= 64 states)
        T = jnp.einsum("sa,sat->st", pi, P64)
        T_n = T[solve_idx]
        T_nn = T_n[:, solve_idx]
        eye_n = jnp.eye(solve_idx.shape[0], dtype=f64)
        r = (pi * R).sum(-1)[solve_idx]
        V = jnp.linalg.solve(eye_n - gamma * T_nn, r)
        succ = jnp.linalg.solve(eye_n - T_nn, T_n[:, goal].sum(-1))
        return V @ rho0[solve_idx], jnp.clip(succ @ rho0[solve_idx] + rho0[goal].sum(), 0.0, 1.0), T

    def metrics_of(p, ref, explored, loss):  # one member's metric values at an evaluation step
        pi = table(p)
        fl = flat(p)
        value, success, T = value_success(pi)
        T_n = T[nt_idx]
        sq = lambda a, b: ((a - b) ** 2)[nt_idx].mean()  # noqa: E731
        kl = jnp.where(pi_star > 0, pi_star * (jnp.log(jnp.maximum(pi_star, 1e-300)) - jnp.log(pi)), 0.0).sum(-1)
        u, v = fl - ref["base_flat"], ref["star_flat"] - ref["base_flat"]
        den = jnp.linalg.norm(u) * jnp.linalg.norm(v)
        inter = (explored & ref["preferred"]).sum().astype(f64)
        union = (explored | ref["preferred"]).sum().astype(f64)
        return {
            "param_mse": ((fl - ref["star_flat"]) ** 2).mean(),
            "policy_mse": sq(pi, ref["star_pi"]),
            "policy_mse_opt": sq(pi, pi_star),
            "tmatrix_mse": ((T_n - ref["star_T"]) ** 2).mean(),
            "tmatrix_mse_opt": ((T_n - ref["opt_T"]) ** 2).mean(),
            "kl": kl[nt_idx].mean(),
            "success": success,
            "value": value,
            "explored": explored.sum().astype(f64),
            "explored_alignment": inter / jnp.maximum(union, 1.0),
            "cosine": jnp.where(den > 0, (u * v).sum() / jnp.maximum(den, 1e-300), 0.0),
            "loss": loss.astype(f64),
        }

    def member_ref(base, star):
        star_pi = table(star)
        return {
            "base_flat": flat(base),
            "star_flat": flat(star),
            "star_pi": star_pi,
            "star_T": jnp.einsum("sa,sat->st", star_pi, P64)[nt_idx],
            "opt_T": jnp.einsum("sa,sat->st", pi_star, P64)[nt_idx],
            "preferred": preferred,
            "ref_seq": (
                seq(logps(base, ch[0], ch[1]), ch[2], False),
                seq(logps(base, rj[0], rj[1]), rj[2], False),
            ),
        }

    def train_one(method):
        opt = optax.adam(cfg.lr)
        vgrad = jax.value_and_grad(lambda p, rs: loss_fn(method, p, rs))

        def member(base, ref):
            def step(carry, _):
                p, state, explored = carry
                loss, g = vgrad(p, ref["ref_seq"])
                explored = explored | (jnp.abs(g["W1"]).sum(-1) > 0)
                updates, state = opt.update(g, state, p)
                return (optax.apply_updates(p, updates), state, explored), loss

            def block(carry, _):  # n_evals_every steps, then the metrics
                carry, _ = jax.lax.scan(step, carry, None, length=n_evals_every)
                p, _, explored = carry
                loss_now = jax.value_and_grad(lambda q: loss_fn(method, q, ref["ref_seq"]))(p)[0]
                return carry, metrics_of(p, ref, explored, loss_now)

            explored0 = jnp.zeros(S, dtype=bool)
            first = metrics_of(base, ref, explored0, loss_fn(method, base, ref["ref_seq"]))
            carry, later = jax.lax.scan(
                block, (base, opt.init(base), explored0), None, length=cfg.steps // n_evals_every
            )
            curves = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, later)
            return curves, carry[0]

        return jax.jit(jax.vmap(member))

    def fit():  # theta*: Adam on mean KL(pi* || pi_theta) over the non-terminal states, each member stops at tol
        opt = optax.adam(cfg.fit_lr)
        tgt = pi_star[nt_idx].astype(f32)

        def kl(p):
            lp = net(p, eye[nt_idx])
            return jnp.where(tgt > 0, tgt * (jnp.log(jnp.maximum(tgt, 1e-30)) - lp), 0.0).sum(-1).mean()

        def member(p0):
            def cond(c):
                return (c[3] < cfg.fit_steps) & ~c[2]

            def body(c):
                p, state, _, i, used = c
                value, g = jax.value_and_grad(kl)(p)
                done = value <= cfg.fit_tol
                updates, new_state = opt.update(g, state, p)
                new = optax.apply_updates(p, updates)
                keep = lambda a, b: jax.tree.map(lambda x, y: jnp.where(done, x, y), a, b)  # noqa: E731
                return keep(p, new), keep(state, new_state), done, i + 1, used + (~done).astype(jnp.int32)

            p, _, _, _, used = jax.lax.while_loop(cond, body, (p0, opt.init(p0), False, 0, 0))
            return p, kl(p).astype(f64), used

        return jax.jit(jax.vmap(member))

    preferred_np = data_mod.make_reference(cfg, data, base_t, base_t).preferred.numpy()  # pi*'s tiles (package)
    preferred = jnp.asarray(preferred_np)
    trainers = {m: train_one(m) for m in methods}
    fitter = fit()
    refs = jax.jit(jax.vmap(member_ref))

    def run(base, star=None):
        out = {}
        if star is None:
            star, fit_kl, used = fitter(base)
            out.update(fit_kl=fit_kl, fit_steps=used)
        ref = refs(base, star)
        out["star"] = star
        for m in methods:
            curves, params = trainers[m](base, ref)
            out[m] = {"curves": curves, "params": params}
        jax.block_until_ready(out)
        return out

    return run


# ------------------------------------------------------------------------------ the runs
def setup(E: int, evals: bool = True, methods=METHODS):
    """The package's config, data and theta_0 (torch) for E members, theta_0 for JAX, and the JAX study."""
    import jax.numpy as jnp
    import torch

    from frozenlake_ift.study import StudyConfig, base_params, build_data

    torch.set_num_threads(1)
    cfg = StudyConfig(seeds=E, device="cpu", methods=methods)
    data = build_data(cfg, "cpu")
    base_t = base_params(cfg, data, "cpu")
    base = {k: jnp.asarray(v.detach().numpy()) for k, v in base_t.items()}
    return cfg, data, base_t, base, jax_study(cfg, data, base_t, methods, evals)


def check_equal(repeat_cfg=None) -> dict:
    """The whole default study in both; the largest relative differences."""
    import dataclasses

    from frozenlake_ift.study import run_study

    cfg, _, _, base, run = setup(20)
    jx = run(base)
    pkg = run_study(dataclasses.replace(cfg))

    def rel(a, b):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        scale = np.nanmax(np.abs(b))
        return float(np.nanmax(np.abs(a - b)) / scale) if scale > 0 else float(np.nanmax(np.abs(a - b)))

    out = {"fit_steps_equal": bool(np.array_equal(np.asarray(jx["fit_steps"]), pkg.fit_steps))}
    out["star"] = max(rel(jx["star"][k], pkg.star[k].numpy()) for k in pkg.star)
    curves, losses, params = {}, [], []
    for m in METHODS:
        for k, v in jx[m]["curves"].items():
            if k == "loss":
                losses.append(rel(np.asarray(v).T, pkg.curves[m][k]))
            else:
                curves[f"{m}/{k}"] = rel(np.asarray(v).T, pkg.curves[m][k])
        params.append(max(rel(jx[m]["params"][k], pkg.params[m][k].numpy()) for k in pkg.params[m]))
    out.update(
        losses=max(losses),
        params=max(params),
        curves=max(curves.values()),
        worst_curve=max(curves, key=curves.__getitem__),
        n_curves=len(curves),
    )
    return out


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def per_method(E: int, repeats: int) -> dict:
    """Training per method (metrics at the first and last step), package against JAX, alternating."""
    import dataclasses

    import jax

    from frozenlake_ift.study import reference, train_method

    rows = {}
    for m in METHODS:
        cfg, data, base_t, base, run = setup(E, evals=False, methods=(m,))
        cfg = dataclasses.replace(cfg, eval_every=cfg.steps)
        star = base  # theta* does not enter the training: theta_0 stands for it on both sides
        ref = reference(cfg, data, base_t, base_t)
        run(base, star)  # compile
        train_method(m, base_t, data, cfg, ref)  # first call
        pkg, jx = [], []
        for _ in range(repeats):
            pkg += timed(lambda: train_method(m, base_t, data, cfg, ref), 1)  # noqa: B023
            jx += timed(lambda: jax.block_until_ready(run(base, star)), 1)  # noqa: B023
        rows[m] = {"package_s": pkg, "jax_s": jx}
    return rows


def whole_study(repeats: int) -> dict:
    from frozenlake_ift.study import StudyConfig, run_study

    base, run = setup(20)[3:]
    run(base)  # compile
    run_study(StudyConfig(device="cpu"))
    pkg, jx = [], []
    for _ in range(repeats):
        pkg += timed(lambda: run_study(StudyConfig(device="cpu")), 1)
        jx += timed(lambda: run(base), 1)
    return {"package_s": pkg, "jax_s": jx}


COLD = {
    "package": "import torch; torch.set_num_threads(1); from frozenlake_ift.study import StudyConfig, run_study; "
    "run_study(StudyConfig(device='cpu'))",
    "jax": "import sys; sys.path.insert(0, {here!r}); import bench_peer_jax as b; "
    "base, run = b.setup(20)[3:]; run(base)",
}


def cold(repeats: int) -> dict:
    """Fresh processes, alternating: imports, data, the default study once (JAX: with its compiling)."""
    here = os.path.dirname(os.path.abspath(__file__))
    out: dict[str, list[float]] = {"package": [], "jax": []}
    for _ in range(repeats):
        for side in ("package", "jax"):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", COLD[side].format(here=here)], check=True)
            out[side].append(time.perf_counter() - t0)
    return {"package_s": out["package"], "jax_s": out["jax"]}


def line(name: str, row: dict) -> str:
    p, j = statistics.median(row["package_s"]), statistics.median(row["jax_s"])
    rng = lambda v: f"{min(v):.3f}-{max(v):.3f}"  # noqa: E731
    ratios = [a / b for a, b in zip(row["package_s"], row["jax_s"], strict=True)]
    row["ratio"] = statistics.median(ratios)
    return (
        f"{name:<28} package {p:7.3f} s ({rng(row['package_s'])})  JAX {j:7.3f} s ({rng(row['jax_s'])})  "
        f"package / JAX {row['ratio']:5.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", default="20,540", help="ensemble sizes of the per-method timing")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: equal, methods, study, cold")
    ap.add_argument("--json", default=None, metavar="FILE")
    args = ap.parse_args()
    try:
        import jax  # noqa: F401
        import optax  # noqa: F401
    except ImportError:
        raise SystemExit("this benchmark needs jax and optax: pip install '.[peer-jax]'") from None
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    report: dict = {}
    if "equal" not in skip:
        report["equal"] = eq = check_equal()
        print(
            f"equal numbers (largest relative difference): losses {eq['losses']:.1e}, parameters after the last step "
            f"{eq['params']:.1e}, theta* {eq['star']:.1e}, {eq['n_curves']} metric curves {eq['curves']:.1e} "
            f"(worst {eq['worst_curve']}); theta* fit steps equal: {eq['fit_steps_equal']}",
            flush=True,
        )
    if "methods" not in skip:
        for E in (int(e) for e in args.sizes.split(",")):
            for m, row in per_method(E, args.repeats).items():
                report[f"train/{m}/E={E}"] = row
                print(line(f"training {m}, E = {E}", row), flush=True)
    if "study" not in skip:
        report["study/E=20"] = row = whole_study(args.repeats)
        print(line("warm whole study, E = 20", row), flush=True)
    if "cold" not in skip:
        report["cold"] = row = cold(args.repeats)
        print(line("cold first study (process)", row), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
