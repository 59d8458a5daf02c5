"""The ``frozenlake-ift`` console script: solve, reproduce, plot, sweep, report, methods, play.

Each sub-command is a pair ``_add_<cmd>(subparsers)`` / ``_run_<cmd>(args) -> int``.
User errors (ValueError, FileNotFoundError) print one line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, sort_keys=False))


# ---------------------------------------------------------------- solve
def _add_solve(sub) -> None:
    p = sub.add_parser("solve", help="solve a Frozen Lake map exactly by value iteration",
                       description="Solve a Frozen Lake map exactly (value iteration or finite-horizon backward induction) "
                                   "and print V(start), the success probability of the optimal policy and the policy.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--map", default="4x4",
                   help="4x4, 8x8, two-route, random:SIZE:SEED[:P], or comma-separated rows such as SFF,FHF,FFG")
    p.add_argument("--slippery", action="store_true", help="slippery ice: moves go to a-1, a, a+1 (gymnasium)")
    p.add_argument("--success-rate", type=float, default=None,
                   help="probability of the intended move on slippery ice (gymnasium default 1/3)")
    p.add_argument("--gamma", type=float, default=0.99, help="discount in (0, 1]")
    p.add_argument("--horizon", type=int, default=None,
                   help="solve for this many steps by backward induction (non-stationary policy)")
    p.add_argument("--tol", type=float, default=1e-10, help="stop when the Bellman residual is at most this")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_run_solve)


def _solve_record(args) -> tuple[dict, object, object]:
    """Solve as asked; return the JSON record, the MDP and the (first-step) policy."""
    import time

    from . import lakes, solve

    mdp = lakes.make_lake(args.map, slippery=args.slippery, success_rate=args.success_rate)
    t0 = time.perf_counter()
    if args.horizon is None:
        sol = solve.value_iteration(mdp, args.gamma, tol=args.tol)
        V0, policy, first, iterations = sol.V, sol.policy.tolist(), sol.policy, sol.iterations
    else:
        sol = solve.finite_horizon(mdp, args.horizon, args.gamma)
        V0, policy, first, iterations = sol.V[0], sol.policy.tolist(), sol.policy[0], args.horizon
    seconds = time.perf_counter() - t0
    success = solve.success_probability(mdp, sol.policy, horizon=args.horizon)
    record = {"map": mdp.name, "gamma": args.gamma, "horizon": args.horizon, "n_states": mdp.n_states,
              "V_start": float(mdp.rho0 @ V0), "success_probability": success, "policy": policy,
              "iterations": int(iterations), "seconds": seconds}
    if args.horizon is None:
        record["residual"] = sol.residual
        if args.gamma == 1:
            record["note"] = ("gamma 1: V_start is the best success probability, but the greedy policy may stall "
                              "among tied actions; use gamma < 1 (or --horizon) for a policy")
    return record, mdp, first


def _run_solve(args) -> int:
    from . import routes

    record, mdp, first = _solve_record(args)
    if args.json:
        _print_json(record)
        return 0
    how = "value iteration" if args.horizon is None else f"backward induction, horizon {args.horizon}"
    print(f"map {record['map']} ({mdp.shape[0]}x{mdp.shape[1]}, {mdp.n_states} states), gamma {args.gamma:g}, {how}")
    rows = [("V(start)", f"{record['V_start']:.6g}"), ("success probability", f"{record['success_probability']:.6g}"),
            ("iterations", str(record["iterations"])), ("seconds", f"{record['seconds']:.3g}")]
    if "residual" in record:
        rows.append(("Bellman residual", f"{record['residual']:.2g}"))
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"  {k:<{width}}  {v}" for k, v in rows))
    if "note" in record:
        print(f"note: {record['note']}")
    if mdp.n_states <= 64 * 64:
        print("policy" + (" at t = 0" if args.horizon is not None else "") + " (← ↓ → ↑; H hole, G goal):")
        print(routes.render_policy(mdp, first))
    return 0


# ---------------------------------------------------------------- reproduce
def _add_reproduce(sub) -> None:
    from .config import StudyConfig
    from .methods import method_names

    d = StudyConfig()
    p = sub.add_parser(
        "reproduce", help="run the Frozen-Lake study (SFT / IFT / DPO / ORPO) and write results + figures",
        description="Fine-tune theta_0 with each method on the default study map, all seeds batched; write "
                    "results.json, summary.csv, params.pt (the trained parameters) and figures (PNG + SVG) to "
                    "--out and print a summary table (final and best value per method and metric, mean and 95% "
                    "CI over seeds, rankings, and whether each of the paper's claims holds, judged over the "
                    "paper's four methods only). `frozenlake-ift methods` lists every registered method.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--seeds", type=int, default=d.seeds, help="ensemble size: seeds trained at once")
    p.add_argument("--steps", type=int, default=d.steps, help="fine-tuning steps per method")
    p.add_argument("--methods", default=",".join(d.methods),
                   help=f"comma-separated registered methods: {', '.join(method_names())}")
    p.add_argument("--base", default=d.base, help="base policy theta_0: random | uniform | suboptimal")
    p.add_argument("--map", default=d.map, help="two-route, 4x4, 8x8, random:SIZE:SEED")
    p.add_argument("--device", default=d.device, help="auto | cpu | cuda[:N]")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any StudyConfig field, e.g. --set lam=0.5 --set lr=0.003 (repeatable)")
    p.add_argument("--out", default=None, help="output folder (default: runs/<timestamp>/)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads; 1 is fastest for these tiny networks on a busy machine")
    p.add_argument("--no-figures", action="store_true", help="write results.json and summary.csv only")
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    p.set_defaults(func=_run_reproduce)


def _config_from_args(args):
    from .config import StudyConfig, coerce_field

    values = {"seeds": args.seeds, "steps": args.steps, "base": args.base, "map": args.map, "device": args.device,
              "methods": tuple(m.strip() for m in args.methods.replace("+", ",").split(",") if m.strip())}
    for item in args.set:
        if "=" not in item:
            raise ValueError(f"--set expects FIELD=VALUE, got {item!r}")
        key, text = item.split("=", 1)
        values[key.strip()] = coerce_field(key.strip(), text)
    return StudyConfig(**values)


def _run_reproduce(args) -> int:
    import time
    from pathlib import Path

    from . import results
    from .study import run_study

    config = _config_from_args(args)  # validates everything before any file is written
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    result = run_study(config, progress=not args.json)
    res = results.save(result, out)
    figures = []
    if not args.no_figures:
        from . import plots

        figures = [str(p) for p in plots.save_figures(res, out)]
    if args.json:
        _print_json({"out": str(out), "seconds": res["seconds"], "device": res["device"], "summary": res["summary"],
                     "ranking": res["ranking"], "claims": res["claims"], "figures": figures})
    else:
        print(f"map {res['config']['map']}, base {config.base}, {config.seeds} seeds, {config.steps} steps, "
              f"device {res['device']}, {res['seconds']:.1f} s; theta* fit KL {max(res['fit']['kl']):.2g} "
              f"(tol {config.fit_tol:g})")
        print(results.format_table(res))
        print(f"wrote {out / 'results.json'}, {out / 'summary.csv'}, {out / 'params.pt'}"
              + (f" and {len(figures)} figure files" if figures else ""))
    return 0


# ---------------------------------------------------------------- plot
def _add_plot(sub) -> None:
    p = sub.add_parser("plot", help="redraw the figures of a results.json",
                       description="Redraw the figures (PNG + SVG) of a saved study from its results.json.")
    p.add_argument("results", help="path to results.json (or the folder holding it)")
    p.add_argument("--out", default=None, help="folder for the figures (default: beside results.json)")
    p.set_defaults(func=_run_plot)


def _run_plot(args) -> int:
    from pathlib import Path

    from . import plots, results

    res = results.load(args.results)
    src = Path(args.results)
    out = Path(args.out) if args.out else (src if src.is_dir() else src.parent)
    for path in plots.save_figures(res, out):
        print(path)
    return 0


# ---------------------------------------------------------------- sweep
def _add_sweep(sub) -> None:
    p = sub.add_parser(
        "sweep", help="run a grid of studies (resumable, sharded, parallel)",
        description="Run the study on every cell of a grid of StudyConfig fields (the Cartesian product of the "
                    "--grid SPEC file's or --set values, plus fixed values), seeds batched inside each cell. Each "
                    "finished cell is saved at once to DIR/cells/<key>.json; rerunning the same command skips "
                    "finished cells, so an interrupt loses only the cells in flight. Then: frozenlake-ift report DIR.")
    p.add_argument("--grid", metavar="SPEC", help="spec file (.json, .toml, .yaml): {\"grid\": {FIELD: [values]}, "
                                                 "\"fixed\": {FIELD: value}}")
    p.add_argument("--default", action="store_true", help="use the shipped default sweep (frozenlake_ift/sweeps/default.json)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=V1,V2",
                   help="add or replace a grid axis, e.g. --set lam=0,0.2,0.5 (repeatable; methods: sft+ift,dpo)")
    p.add_argument("--fix", action="append", default=[], metavar="FIELD=VALUE",
                   help="fix a field for every cell, e.g. --fix seeds=8 (repeatable; removes that grid axis)")
    p.add_argument("--out", default=None, help="sweep folder (default: runs/sweep-<spec name>-<hash of the cells' configs>)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="cells run in N parallel processes (default 1)")
    p.add_argument("--shard", default=None, metavar="I/N", help="run only shard I of N (1-based, by sorted cell key)")
    p.add_argument("--dry-run", action="store_true", help="validate and list the cells; run and write nothing")
    p.add_argument("--report", action="store_true", help="write the report into the sweep folder when done")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    p.set_defaults(func=_run_sweep)


def _run_sweep(args) -> int:
    import hashlib
    import signal
    from pathlib import Path

    from . import sweep

    if args.grid and args.default:
        raise ValueError("give --grid SPEC or --default, not both")
    if not (args.grid or args.default or args.set):
        raise ValueError("nothing to sweep: give --grid SPEC, --default or --set FIELD=V1,V2")
    spec = sweep.load_spec(sweep.DEFAULT_SPEC if args.default else args.grid) if (args.grid or args.default) \
        else sweep.make_spec({})
    spec = sweep.override(spec, sweep.parse_assignments(args.set, True), sweep.parse_assignments(args.fix, False))
    shard = sweep.parse_shard(args.shard) if args.shard else None
    cells = sweep.expand(spec)  # validates everything before any file is written
    digest = hashlib.sha256(" ".join(sorted(c.key for c in cells)).encode()).hexdigest()[:8]  # of the configs
    out = Path(args.out) if args.out else Path("runs") / f"sweep-{spec['name'] or 'grid'}-{digest}"
    mine = sweep.shard_cells(cells, *shard) if shard else cells
    done = sum((out / "cells" / f"{c.key}.json").exists() for c in mine)
    header = (f"{len(cells)} cells over {', '.join(spec['grid']) or 'no field'}"
              + (f"; shard {args.shard}: {len(mine)} cells" if shard else "") + f"; {done} already done; "
              f"running {len(mine) - done} with {args.workers} worker(s) -> {out}")
    if args.dry_run:
        if args.json:
            _print_json({"out": str(out), "cells": len(cells), "shard_cells": len(mine), "done": done,
                         "todo": [{"key": c.key, "values": c.values} for c in mine]})
        else:
            print(header)
            for c in mine:
                print(c.key, json.dumps(c.values))
        return 0
    if not args.json:
        print(header, file=sys.stderr)

    def _term(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _term)  # a kill stops like Ctrl-C: finished cells stay saved
    try:
        summary = sweep.run_sweep(spec, out, workers=args.workers, shard=shard,
                                  progress=not (args.json or args.no_progress))
    except KeyboardInterrupt:
        print(f"frozenlake-ift sweep: interrupted; finished cells are saved in {out}; rerun the same command to "
              "continue", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.report:
        from .report import write_report

        summary["report"] = [str(p) for p in write_report([out])[1]]
    if args.json:
        _print_json(summary)
    else:
        secs = summary["cell_seconds"]
        print(f"ran {summary['ran']} cells in {summary['seconds']:.1f} s"
              + (f" ({sum(secs) / len(secs):.2f} s per cell)" if secs else "")
              + f", skipped {summary['skipped']} finished; sweep folder {out}")
        for f in summary["failed"]:
            print(f"cell {f['key']} {json.dumps(f['values'])} FAILED: {f['error']}", file=sys.stderr)
        print(f"report: frozenlake-ift report {out}" if not args.report else f"wrote {summary['report'][0]}")
    return 1 if summary["failed"] else 0


# ---------------------------------------------------------------- report
def _add_report(sub) -> None:
    p = sub.add_parser(
        "report", help="merge sweep folders (or shards) into a sensitivity report",
        description="Merge the finished cells of one or more sweep folders (e.g. the shards of one sweep) and write "
                    "report.md, report.json and claims_by_field.{png,svg}: how often each of the paper's claims "
                    "holds, its rate per value of each swept field, which single values flip it, and every cell's "
                    "ranking of methods per metric with 95% CIs.")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="sweep folders (each has a sweep.json)")
    p.add_argument("--out", default=None, help="folder for the report (default: the first DIR)")
    p.add_argument("--no-figures", action="store_true", help="write report.md and report.json only")
    p.add_argument("--json", action="store_true", help="print the claim rates as JSON")
    p.set_defaults(func=_run_report)


def _run_report(args) -> int:
    from .report import write_report

    rep, paths = write_report(args.dirs, args.out, figures=not args.no_figures)
    if args.json:
        _print_json({"cells": rep["n_cells"], "done": rep["n_done"], "swept": rep["swept"], "files": [str(p) for p in paths],
                     "claims": {k: {"holds": c["holds"], "n": c["n"], "rate": c["rate"], "flipped_by": c["flipped_by"]}
                                for k, c in rep["claims"].items()}})
        return 0
    print(f"{rep['n_done']} of {rep['n_cells']} cells finished; swept: {', '.join(rep['swept']) or 'nothing'}")
    for name, c in rep["claims"].items():
        print(f"  {name}: holds in {c['holds']}/{c['n']} ({100 * c['rate']:.0f}%); flipped by "
              f"{', '.join(c['flipped_by']) or 'no single value'}")
    print("wrote " + ", ".join(map(str, paths)))
    return 0


# ---------------------------------------------------------------- methods
def _add_methods(sub) -> None:
    p = sub.add_parser("methods", help="list the registered fine-tuning methods",
                       description="List every registered method: whether the paper's Frozen-Lake study trained it "
                                   "(only those enter the claims), its Table 1 row, whether it samples from its own "
                                   "policy, and the StudyConfig fields it reads.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_run_methods)


def _run_methods(args) -> int:
    from .methods import get_method, method_names

    rows = [get_method(n) for n in method_names()]
    if args.json:
        _print_json([{"name": m.name, "in_paper": m.in_paper, "table1_row": m.table1_row, "on_policy": m.on_policy,
                      "needs_reference": m.needs_reference, "fields": list(m.fields), "description": m.description}
                     for m in rows])
        return 0
    width = max(len(m.name) for m in rows)
    for m in rows:
        flags = ", ".join(f for f, on in (("in the paper's study", m.in_paper), ("on-policy", m.on_policy),
                                           ("reference theta_0", m.needs_reference)) if on)
        row = f"Table 1: {m.table1_row}" if m.table1_row else "not a Table 1 row"
        print(f"{m.name:<{width}}  {m.description}\n{'':<{width}}  [{row}; {flags or 'offline'}]"
              + (f" fields: {', '.join(m.fields)}" if m.fields else ""))
    return 0


# ---------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="frozenlake-ift",
        description="Frozen-Lake study of Intuitive Fine-Tuning (arXiv 2405.11870): exact MDPs, "
                    "value iteration, and SFT / IFT / DPO / ORPO fine-tuning of policy networks.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_solve(sub)
    _add_reproduce(sub)
    _add_plot(sub)
    _add_sweep(sub)
    _add_report(sub)
    _add_methods(sub)
    from .play import add_parser as _add_play

    _add_play(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"frozenlake-ift {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
