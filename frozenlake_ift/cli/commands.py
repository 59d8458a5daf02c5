"""The tabular and file commands of ``frozenlake-ift``: ``solve``, ``plot``, ``methods``, ``envs``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .common import (
    ENV_HELP,
    MAP_HELP,
    HelpFormatter,
    add_formats_argument,
    add_plugin_argument,
    print_json,
)

if TYPE_CHECKING:  # numpy and the model load only when a command runs
    import numpy as np

    from ..mdp import TabularMDP


# ---------------------------------------------------------------- solve
def add_solve(sub) -> None:
    p = sub.add_parser(
        "solve",
        help="solve a Frozen Lake map (or any MDP, --env) exactly by value iteration",
        description="Solve a Frozen Lake map, or any MDP named by --env, exactly (value iteration or "
        "finite-horizon backward induction) and print V(start), the success probability of the optimal "
        "policy (where the MDP has goal states) and the policy.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--env", default="lake", help=ENV_HELP)
    p.add_argument("--map", default="4x4", help=MAP_HELP)
    p.add_argument("--slippery", action="store_true", help="slippery ice: moves go to a-1, a, a+1 (gymnasium)")
    p.add_argument(
        "--success-rate",
        type=float,
        default=None,
        help="probability of the intended move on slippery ice (gymnasium default 1/3)",
    )
    p.add_argument("--gamma", type=float, default=0.99, help="discount in (0, 1]")
    p.add_argument(
        "--horizon",
        type=int,
        default=None,
        help="solve for this many steps by backward induction (non-stationary policy)",
    )
    p.add_argument("--tol", type=float, default=1e-10, help="stop when the Bellman residual is at most this")
    p.add_argument(
        "--max-states",
        type=int,
        default=None,
        help="refuse maps with more states than this (default: lakes.MAX_STATES, 4,194,304)",
    )
    p.add_argument("--progress", action="store_true", help="show a progress bar while solving")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_plugin_argument(p)
    p.set_defaults(func=run_solve)


@dataclass
class SolveOutcome:
    """What ``solve`` computed: the JSON record, the MDP and the (first-step) policy, Shape (S,)."""

    record: dict
    mdp: TabularMDP
    first: np.ndarray


def solve_record(args) -> SolveOutcome:
    """Solve as asked; return the JSON record, the MDP and the (first-step) policy."""
    import time

    from .. import lakes, solve
    from ..mdps import env_source, make_env

    if env_source(args.env).name == "lake":
        max_states = lakes.MAX_STATES if args.max_states is None else args.max_states
        mdp = lakes.make_lake(args.map, slippery=args.slippery, success_rate=args.success_rate, max_states=max_states)
    else:
        if args.map != "4x4" or args.slippery or args.success_rate is not None:
            raise ValueError(f"--map, --slippery and --success-rate describe the lake; --env {args.env!r} takes none")
        mdp = make_env(args.env)
        if args.max_states is not None and mdp.n_states > args.max_states:
            raise ValueError(
                f"--env {args.env!r} has {mdp.n_states:,} states, more than --max-states {args.max_states:,}"
            )
    t0 = time.perf_counter()
    residual = None
    if args.horizon is None:
        sol = solve.value_iteration(mdp, args.gamma, tol=args.tol, progress=args.progress)
        V0, policy, first, iterations, residual = sol.V, sol.policy, sol.policy, sol.iterations, sol.residual
    else:
        fin = solve.finite_horizon(mdp, args.horizon, args.gamma, progress=args.progress)
        V0, policy, first, iterations = fin.V[0], fin.policy, fin.policy[0], args.horizon
    seconds = time.perf_counter() - t0
    success = solve.success_probability(mdp, policy, horizon=args.horizon) if mdp.goal.any() else None
    record = {
        "map": mdp.name,
        "env": args.env,
        "gamma": args.gamma,
        "horizon": args.horizon,
        "n_states": mdp.n_states,
        "V_start": float(mdp.rho0 @ V0),
        "success_probability": success,
        "policy": policy.tolist(),
        "iterations": int(iterations),
        "seconds": seconds,
    }
    if args.horizon is None:
        record["residual"] = residual
        if args.gamma == 1:
            record["note"] = (
                "gamma 1: V_start is the best success probability, but the greedy policy may stall "
                "among tied actions; use gamma < 1 (or --horizon) for a policy"
            )
    return SolveOutcome(record, mdp, first)


def run_solve(args) -> int:
    from .. import routes

    outcome = solve_record(args)
    record, mdp, first = outcome.record, outcome.mdp, outcome.first
    if args.json:
        print_json(record)
        return 0
    how = "value iteration" if args.horizon is None else f"backward induction, horizon {args.horizon}"
    size = f"{mdp.shape[0]}x{mdp.shape[1]}, " if mdp.shape is not None else ""
    kind = "map" if mdp.desc is not None else "MDP"
    print(f"{kind} {record['map']} ({size}{mdp.n_states} states), gamma {args.gamma:.15g}, {how}")
    success = record["success_probability"]
    rows = [
        ("V(start)", f"{record['V_start']:.6g}"),
        ("success probability", "n/a (no goal states)" if success is None else f"{success:.6g}"),
        ("iterations", str(record["iterations"])),
        ("seconds", f"{record['seconds']:.3g}"),
    ]
    if "residual" in record:
        rows.append(("Bellman residual", f"{record['residual']:.2g}"))
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"  {k:<{width}}  {v}" for k, v in rows))
    if "note" in record:
        print(f"note: {record['note']}")
    when = " at t = 0" if args.horizon is not None else ""
    if mdp.desc is not None and mdp.n_states <= 64 * 64:
        print(f"policy{when} (← ↓ → ↑; H hole, G goal):")
        print(routes.render_policy(mdp, first))
    elif mdp.desc is None and mdp.n_states <= 64:
        print(f"policy{when} (state: action), non-terminal states:")
        for st in map(int, (~mdp.terminal).nonzero()[0]):
            name = mdp.state_names[st] if mdp.state_names else str(st)
            act = mdp.action_names[int(first[st])] if mdp.action_names else str(int(first[st]))
            print(f"  {name}: {act}")
    return 0


# ---------------------------------------------------------------- plot
def add_plot(sub) -> None:
    p = sub.add_parser(
        "plot",
        help="redraw the figures of a results.json",
        description="Redraw the figures (PNG; --formats png,svg adds SVG) of a saved study from its results.json. "
        "A file "
        "that is not a frozenlake-ift results file is refused with one line.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("results", help="path to results.json (or the folder holding it)")
    p.add_argument(
        "--out",
        default=None,
        help="folder for the figures (default: beside results.json; for a sweep's cells/KEY.json, "
        "the sweep's plots/KEY)",
    )
    add_formats_argument(p)
    p.set_defaults(func=run_plot)


def run_plot(args) -> int:
    from pathlib import Path

    from .. import plots, results, safety

    formats = plots.figure_formats(args.formats)
    src = Path(args.results)
    folder = src if src.is_dir() else src.parent
    cell = folder.name == "cells" and (folder.parent / "sweep.json").is_file()  # a sweep's cell store
    if args.out:
        out = Path(args.out)
    elif cell:  # the cell store holds cell files only: a cell's figures go beside it, in plots/<key>
        out = folder.parent / "plots" / (src.stem if src.suffix == ".json" else "cells")
    else:
        out = folder
    safety.check_out_dir(out)
    safety.clean_orphans(out)  # first: an interrupted commit in the run folder is finished before reading
    res = results.load(args.results)
    with safety.staged_run(out) as stage:
        try:
            plots.save_figures(res, stage.path, formats=formats, workers=plots.figure_workers())
        except (TypeError, IndexError, KeyError) as exc:  # a layout the checks let through: still one line
            raise ValueError(f"cannot draw {str(src)!r}: {type(exc).__name__}: {exc}") from None
        paths = stage.commit(replace=False)  # figures beside a run's files: keep those
    for path in paths:
        print(path)
    return 0


# ---------------------------------------------------------------- methods
def add_methods(sub) -> None:
    p = sub.add_parser(
        "methods",
        help="list the registered fine-tuning methods",
        description="List every registered method: whether the paper's Frozen-Lake study trained it "
        "(only those enter the claims), its Table 1 row, whether it samples from its own "
        "policy, and the StudyConfig fields it reads.",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    add_plugin_argument(p)
    p.set_defaults(func=run_methods)


def run_methods(args) -> int:
    from ..methods import get_method, method_names

    rows = [get_method(n) for n in method_names()]
    if args.json:
        print_json(
            [
                {
                    "name": m.name,
                    "in_paper": m.in_paper,
                    "table1_row": m.table1_row,
                    "on_policy": m.on_policy,
                    "needs_reference": m.needs_reference,
                    "fields": list(m.fields),
                    "description": m.description,
                }
                for m in rows
            ]
        )
        return 0
    width = max(len(m.name) for m in rows)
    for m in rows:
        flags = ", ".join(
            f
            for f, on in (
                ("in the paper's study", m.in_paper),
                ("on-policy", m.on_policy),
                ("reference theta_0", m.needs_reference),
            )
            if on
        )
        row = f"Table 1: {m.table1_row}" if m.table1_row else "not a Table 1 row"
        print(
            f"{m.name:<{width}}  {m.description}\n{'':<{width}}  [{row}; {flags or 'offline'}]"
            + (f" fields: {', '.join(m.fields)}" if m.fields else "")
        )
    return 0


# ---------------------------------------------------------------- envs
def add_envs(sub) -> None:
    p = sub.add_parser(
        "envs",
        help="list the registered MDP sources (--env) and data rules (negatives)",
        description="List every registered MDP source (what --env and StudyConfig.env take, with an example "
        "spec) and every data rule (what StudyConfig.negatives takes: how the rejected trajectories are made), "
        "built-ins and plugins.",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    add_plugin_argument(p)
    p.set_defaults(func=run_envs)


def run_envs(args) -> int:
    from .. import data_rules
    from ..mdps import env_names, get_source

    sources = [get_source(n) for n in env_names()]
    rules = [data_rules.get_rule(n.split(":")[0]) for n in data_rules.rule_names()[1:]]
    if args.json:
        print_json(
            {
                "envs": [
                    {"name": s.name, "example": s.example, "default_rule": s.default_rule, "description": s.description}
                    for s in sources
                ],
                "rules": [
                    {"name": r.name, "sampled": r.sampled, "takes_arg": r.takes_arg, "description": r.description}
                    for r in rules
                ],
            }
        )
        return 0
    width = max(len(s.name) for s in sources)
    print("MDP sources (--env, StudyConfig.env):")
    for s in sources:
        print(f"  {s.name:<{width}}  {s.description} (e.g. {s.example}; negatives=fixed means {s.default_rule})")
    width = max(len(r.name) + 5 * r.takes_arg for r in rules)
    print("data rules (StudyConfig.negatives: fixed = the source's own rule):")
    for r in rules:
        name = f"{r.name}:PATH" if r.takes_arg else r.name
        print(f"  {name:<{width}}  {r.description}")
    return 0
