"""The ``frozenlake-ift`` console script: solve, reproduce, plot, sweep, report, methods, fields, play.

Each sub-command is a pair ``_add_<cmd>(subparsers)`` / ``_run_<cmd>(args) -> int``. ``main`` keeps
the promise of docs/reliability.md: a user error (a bad argument, value or input file) prints one
line naming it and what is allowed and exits 2, with nothing written; a fault while writing (a full
disk) prints one line and exits 1; a closed or broken standard output ends quietly (141); nothing
ever ends in a traceback (FROZENLAKE_IFT_DEBUG=1 shows one for an internal error).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys

PROG = "frozenlake-ift"
MAP_HELP = ("4x4, 8x8, two-route, random:SIZE:SEED[:P] (gymnasium's random map of SIZE x SIZE tiles, frozen with "
            "probability P, default 0.8), or your own map as rows joined by commas, e.g. SFF,FHF,FFG "
            "(S start, F frozen, H hole, G goal; rows of equal length)")
FIELDS_HINT = f"`{PROG} fields` lists every field with its type, default and allowed values"
EXIT_USAGE, EXIT_FAULT, EXIT_PIPE, EXIT_INTERRUPT = 2, 1, 141, 130  # 141 = 128 + SIGPIPE, as a shell reports it


class UsageError(ValueError):
    """An argparse error, raised instead of printing usage and exiting, so main() prints one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block (the usage is one --help away)
        raise UsageError(self.prog, f"{message} (see {self.prog} --help)")


class _Stdout:
    """sys.stdout as seen by a command: a failed write is marked as standard output's (``stdout_fault``)."""

    def __init__(self, inner):
        self._inner = inner

    def _call(self, name, *a):
        try:
            return getattr(self._inner, name)(*a)
        except (OSError, ValueError) as exc:
            exc.stdout_fault = True
            raise

    def write(self, text):
        return self._call("write", text)

    def flush(self):
        return self._call("flush")

    def __getattr__(self, name):
        return getattr(self._inner, name)


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" only where it says something: not for None / False, nor twice."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, False, [], argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


def _print_json(obj) -> None:
    from .safety import strict_json

    print(strict_json(obj, indent=2, sort_keys=False)[0])


def _err(line: str) -> None:
    if sys.stderr is not None:
        try:
            print(line, file=sys.stderr, flush=True)
        except (OSError, ValueError):
            pass


# ---------------------------------------------------------------- solve
def _add_solve(sub) -> None:
    p = sub.add_parser("solve", help="solve a Frozen Lake map exactly by value iteration",
                       description="Solve a Frozen Lake map exactly (value iteration or finite-horizon backward induction) "
                                   "and print V(start), the success probability of the optimal policy and the policy.",
                       formatter_class=_Help)
    p.add_argument("--map", default="4x4", help=MAP_HELP)
    p.add_argument("--slippery", action="store_true", help="slippery ice: moves go to a-1, a, a+1 (gymnasium)")
    p.add_argument("--success-rate", type=float, default=None,
                   help="probability of the intended move on slippery ice (gymnasium default 1/3)")
    p.add_argument("--gamma", type=float, default=0.99, help="discount in (0, 1]")
    p.add_argument("--horizon", type=int, default=None,
                   help="solve for this many steps by backward induction (non-stationary policy)")
    p.add_argument("--tol", type=float, default=1e-10, help="stop when the Bellman residual is at most this")
    p.add_argument("--max-states", type=int, default=None,
                   help="refuse maps with more states than this (default: lakes.MAX_STATES, 4,194,304)")
    p.add_argument("--progress", action="store_true", help="show a progress bar while solving")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_run_solve)


def _solve_record(args) -> tuple[dict, object, object]:
    """Solve as asked; return the JSON record, the MDP and the (first-step) policy."""
    import time

    from . import lakes, solve

    max_states = lakes.MAX_STATES if args.max_states is None else args.max_states
    mdp = lakes.make_lake(args.map, slippery=args.slippery, success_rate=args.success_rate, max_states=max_states)
    t0 = time.perf_counter()
    if args.horizon is None:
        sol = solve.value_iteration(mdp, args.gamma, tol=args.tol, progress=args.progress)
        V0, policy, first, iterations = sol.V, sol.policy.tolist(), sol.policy, sol.iterations
    else:
        sol = solve.finite_horizon(mdp, args.horizon, args.gamma, progress=args.progress)
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
    from .safety import DEFAULT_MAX_STUDY_GB

    d = StudyConfig()
    p = sub.add_parser(
        "reproduce", help="run the Frozen-Lake study (SFT / IFT / DPO / ORPO) and write results + figures",
        description="Fine-tune theta_0 with each method on the default study map, all seeds batched; write "
                    "results.json, summary.csv, params.pt (the trained parameters) and figures (PNG + SVG) to "
                    "--out and print a summary table (final and best value per method and metric, mean and 95% "
                    "CI over seeds, rankings, and whether each of the paper's claims holds, judged over the "
                    "paper's four methods only). `frozenlake-ift methods` lists every registered method; "
                    + FIELDS_HINT + ". Everything is checked before the study starts; the files of a run "
                    "replace those of an earlier run in --out together (docs/reliability.md).",
        formatter_class=_Help)
    p.add_argument("--seeds", type=int, default=d.seeds, help="ensemble size: seeds trained at once")
    p.add_argument("--steps", type=int, default=d.steps, help="fine-tuning steps per method")
    p.add_argument("--methods", default=",".join(d.methods),
                   help=f"comma-separated registered methods: {', '.join(method_names())}")
    p.add_argument("--base", default=d.base, help="base policy theta_0: random | uniform | suboptimal")
    p.add_argument("--map", default=d.map, help=MAP_HELP)
    p.add_argument("--slippery", action="store_true", help="slippery ice: moves go to a-1, a, a+1 (gymnasium)")
    p.add_argument("--device", default=d.device, help="auto | cpu | cuda[:N]")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any StudyConfig field, e.g. --set lam=0.5 --set lr=0.003 (repeatable); "
                        + FIELDS_HINT)
    p.add_argument("--out", default=None, help="output folder (default: runs/<timestamp>/)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads; 1 is fastest for these tiny networks on a busy machine")
    p.add_argument("--no-figures", action="store_true", help="write results.json, summary.csv and params.pt only")
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    p.add_argument("--max-memory", type=float, default=DEFAULT_MAX_STUDY_GB, metavar="GB",
                   help="refuse a study whose estimated memory exceeds GB gigabytes (the study is dense: "
                        "seeds x states x states matrices)")
    p.add_argument("--force", action="store_true", help="run even beyond --max-memory")
    p.add_argument("--preset", default="default", choices=("default", "paper"),
                   help="start from a preset: paper = the NLP setting of App. B.2 (RMSprop, cosine schedule, "
                        "warmup ratio 0.1; lr 0.01); other flags and --set override it")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard event files to OUT/tensorboard/<method> (pip install '.[tensorboard]')")
    p.set_defaults(func=_run_reproduce)


def _config_from_args(args):
    from .config import StudyConfig, coerce_field

    from .config import PRESETS

    values = {**PRESETS[getattr(args, "preset", "default")],
              "seeds": args.seeds, "steps": args.steps, "base": args.base, "map": args.map, "device": args.device,
              "slippery": bool(getattr(args, "slippery", False)),
              "methods": tuple(m.strip() for m in args.methods.replace("+", ",").split(",") if m.strip())}
    for item in args.set:
        if "=" not in item:
            raise ValueError(f"--set expects FIELD=VALUE, got {item!r}; {FIELDS_HINT}")
        key, text = item.split("=", 1)
        values[key.strip()] = coerce_field(key.strip(), text)
    return StudyConfig(**values)


def check_size(config, max_gb: float) -> int:
    """The estimated peak memory of a study (bytes); ValueError beyond ``max_gb`` gigabytes."""
    from .safety import map_states, study_bytes

    S = map_states(config.map)
    if S is None:
        return 0
    need = study_bytes(S, config.seeds, config.hidden)
    n_evals = config.steps // config.eval_every + 2
    need += 8 * config.seeds * (n_evals * 16 * len(config.methods)  # curves and statistics
                                + 4 * max(config.pairs, config.ppo_episodes, config.grpo_group) * (config.horizon + 1))
    if need > max_gb * 1e9:
        raise ValueError(f"this study needs about {need / 1e9:.3g} GB of memory ({S} states, {config.seeds} seeds, "
                         f"{config.steps} steps, horizon {config.horizon}), more than --max-memory {max_gb:g} GB; "
                         f"use a smaller map or fewer seeds, or pass --force (or a larger --max-memory) to run anyway")
    return need


def _run_reproduce(args) -> int:
    import time
    from pathlib import Path

    from . import results, safety

    config = _config_from_args(args)  # everything is validated before anything is computed or written
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if not args.max_memory > 0:
        raise ValueError(f"--max-memory must be a number of gigabytes > 0, got {args.max_memory}")
    if not args.force:
        check_size(config, args.max_memory)
    out = Path(args.out) if args.out else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    safety.check_out_dir(out)
    safety.clean_orphans(out)
    from . import plots
    from .data import build_data
    from .study import run_study

    build_data(config, "cpu")  # a map without routes, or one the policy cannot solve, fails here, before any bar
    import torch

    torch.set_num_threads(args.threads)
    if args.tensorboard:  # checked before the study runs
        try:
            import torch.utils.tensorboard  # noqa: F401  (needs the tensorboard package)
        except ImportError:
            raise ValueError("--tensorboard needs the tensorboard package: pip install 'frozenlake_ift[tensorboard]'")
    result = run_study(config, progress=not args.json)
    run_files = ("results.json", "summary.csv", "steps.csv", results.PARAMS_FILE) + tuple(
        f"{n}.{e}" for n in plots.FIGURES for e in ("png", "svg"))  # for folders written before RUN_LIST
    figures, problem = [], None
    with safety.staged_run(out) as stage:
        try:
            res = results.save(result, stage.path)
        except OSError as exc:
            raise OSError(exc.errno, f"could not write the results to {str(out)!r} ({exc.strerror or exc}); "
                                     f"nothing was changed there") from None
        if not args.no_figures:
            try:
                plots.save_figures(res, stage.path)
            except OSError as exc:  # keep what can be kept: the results are staged already
                problem = f"could not write the figures ({exc.strerror or exc}); the results were kept"
        figures = [str(p) for p in stage.commit(run_files) if p.suffix in (".png", ".svg")]
    if args.tensorboard:  # event files are logs of their own: written beside the run, not staged
        results.write_tensorboard(res, out / "tensorboard")
    if args.json:
        _print_json({"out": str(out), "seconds": res["seconds"], "device": res["device"], "summary": res["summary"],
                     "ranking": res["ranking"], "claims": res["claims"], "figures": figures,
                     "notes": res.get("notes", [])})
    else:
        print(f"map {res['config']['map']}, base {config.base}, {config.seeds} seeds, {config.steps} steps, "
              f"device {res['device']}, {res['seconds']:.1f} s; theta* fit KL {max(res['fit']['kl']):.2g} "
              f"(tol {config.fit_tol:g})")
        print(results.format_table(res))
        for note in res.get("notes", []):
            print(f"note: {note}")
        print(f"wrote {out / 'results.json'}, {out / 'summary.csv'}, {out / 'params.pt'}"
              + (f" and {len(figures)} figure files" if figures else ""))
    if problem:
        raise OSError(errno.EIO, problem)
    return 0


# ---------------------------------------------------------------- fields
def _add_fields(sub) -> None:
    p = sub.add_parser("fields", help="list the StudyConfig fields that --set and sweep specs accept",
                       description="List every StudyConfig field: its type, default, allowed values and what it "
                                   "means. `reproduce --set FIELD=VALUE` and sweep specs take these.",
                       formatter_class=_Help)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_run_fields)


def field_table() -> list[dict]:
    """Each StudyConfig field: name, type, default, allowed values (or None) and its source comment."""
    import dataclasses
    import inspect
    import re

    from . import config as cfg
    from .methods import method_names

    allowed = {"base": cfg.BASES, "optimizer": cfg.OPTIMIZER_NAMES, "dtype": cfg.DTYPE_NAMES,
               "activation": cfg.ACTIVATION_NAMES, "route_pair": cfg.ROUTE_PAIRS, "chosen": cfg.CHOSEN,
               "negatives": cfg.NEGATIVES, "methods": tuple(method_names()), "slippery": (True, False),
               "scheduler": getattr(cfg, "SCHEDULERS", ())}
    allowed = {k: v for k, v in allowed.items() if v}
    comments = dict(re.findall(r"^\s+(\w+): [^=\n]+=[^#\n]*#\s*(.+)$", inspect.getsource(cfg.StudyConfig), re.M))
    rows = []
    for f in dataclasses.fields(cfg.StudyConfig):
        default = cfg.field_default(f.name)
        kind = "map" if f.name == "map" else "list of str" if f.name == "methods" else type(default).__name__
        note = comments.get(f.name, "")
        if f.name == "map":
            note = MAP_HELP
        rows.append({"name": f.name, "type": kind, "default": list(default) if isinstance(default, tuple) else default,
                     "allowed": list(allowed[f.name]) if f.name in allowed else None, "help": note})
    return rows


def _run_fields(args) -> int:
    rows = field_table()
    if args.json:
        _print_json(rows)
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        default = ",".join(r["default"]) if isinstance(r["default"], list) else r["default"]
        extra = f"; allowed: {', '.join(map(str, r['allowed']))}" if r["allowed"] else ""
        print(f"{r['name']:<{width}}  {r['type']}, default {default}{extra}"
              + (f"  ({r['help']})" if r["help"] else ""))
    print("Floats must be finite (no nan or inf). Ranges are checked when the config is built; an error names "
          "the field and what it allows.")
    return 0


# ---------------------------------------------------------------- plot
def _add_plot(sub) -> None:
    p = sub.add_parser("plot", help="redraw the figures of a results.json",
                       description="Redraw the figures (PNG + SVG) of a saved study from its results.json. A file "
                                   "that is not a frozenlake-ift results file is refused with one line.",
                       formatter_class=_Help)
    p.add_argument("results", help="path to results.json (or the folder holding it)")
    p.add_argument("--out", default=None, help="folder for the figures (default: beside results.json)")
    p.set_defaults(func=_run_plot)


def _run_plot(args) -> int:
    from pathlib import Path

    from . import plots, results, safety

    res = results.load(args.results)
    src = Path(args.results)
    out = Path(args.out) if args.out else (src if src.is_dir() else src.parent)
    safety.check_out_dir(out)
    safety.clean_orphans(out)
    with safety.staged_run(out) as stage:
        try:
            plots.save_figures(res, stage.path)
        except (TypeError, IndexError, KeyError) as exc:  # a layout the checks let through: still one line
            raise ValueError(f"cannot draw {str(src)!r}: {type(exc).__name__}: {exc}") from None
        paths = stage.commit(replace=False)  # figures beside a run's files: keep those
    for path in paths:
        print(path)
    return 0


# ---------------------------------------------------------------- sweep
def _add_sweep(sub) -> None:
    p = sub.add_parser(
        "sweep", help="run a grid of studies (resumable, sharded, parallel)", formatter_class=_Help,
        description="Run the study on every cell of a grid of StudyConfig fields (the Cartesian product of the "
                    "--grid SPEC file's or --set values, plus fixed values), seeds batched inside each cell. Each "
                    "finished cell is saved at once to DIR/cells/<key>.json; rerunning the same command skips "
                    "finished cells, so an interrupt loses only the cells in flight. Then: frozenlake-ift report DIR. "
                    "Grid fields and values are StudyConfig's: " + FIELDS_HINT + "; maps: " + MAP_HELP + ".")
    p.add_argument("--grid", metavar="SPEC", help="spec file (.json, .toml, .yaml): {\"grid\": {FIELD: [values]}, "
                                                 "\"fixed\": {FIELD: value}}")
    p.add_argument("--default", action="store_true", help="use the shipped default sweep (frozenlake_ift/sweeps/default.json)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=V1,V2",
                   help="add or replace a grid axis, e.g. --set lam=0,0.2,0.5 (repeatable; methods: sft+ift,dpo)")
    p.add_argument("--fix", action="append", default=[], metavar="FIELD=VALUE",
                   help="fix a field for every cell, e.g. --fix seeds=8 (repeatable; removes that grid axis)")
    p.add_argument("--out", default=None, help="sweep folder (default: runs/sweep-<spec name>-<hash of the cells' configs>)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="cells run in N parallel processes")
    p.add_argument("--shard", default=None, metavar="I/N", help="run only shard I of N (1-based, by sorted cell key)")
    p.add_argument("--dry-run", action="store_true",
                   help="validate and list the cells it would run; run and write nothing")
    p.add_argument("--report", action="store_true", help="write the report into the sweep folder when done")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    p.add_argument("--engine", choices=("batched", "per-cell"), default="batched",
                   help="batched: cells that differ only in training fields share one batched run; per-cell: one "
                        "study per cell")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local processes (--workers), or a Ray cluster (pip install ray)")
    p.add_argument("--address", default=None, metavar="ADDR", help="Ray cluster address (with --executor ray)")
    p.set_defaults(func=_run_sweep)


def _sweep_options(args, run_sweep) -> dict:
    """--engine / --executor / --address, passed only where ``run_sweep`` takes them."""
    import inspect

    params = inspect.signature(run_sweep).parameters
    opts = {"engine": args.engine, "executor": args.executor, "address": args.address}
    if args.address is not None and args.executor != "ray":
        raise ValueError(f"--address {args.address!r} needs --executor ray")
    missing = [k for k, v in opts.items() if k not in params and v not in ("batched", "local", None)]
    if missing:
        raise ValueError(f"this version's sweep does not support --{missing[0]} {opts[missing[0]]}; "
                         "allowed: --engine batched --executor local")
    return {k: v for k, v in opts.items() if k in params}


def _run_sweep(args) -> int:
    import hashlib
    import signal
    from pathlib import Path

    from . import safety, sweep

    if args.grid and args.default:
        raise ValueError("give --grid SPEC or --default, not both")
    if not (args.grid or args.default or args.set):
        raise ValueError("nothing to sweep: give --grid SPEC, --default or --set FIELD=V1,V2")
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    spec = sweep.load_spec(sweep.DEFAULT_SPEC if args.default else args.grid) if (args.grid or args.default) \
        else sweep.make_spec({})
    spec = sweep.override(spec, sweep.parse_assignments(args.set, True), sweep.parse_assignments(args.fix, False))
    shard = sweep.parse_shard(args.shard) if args.shard else None
    options = _sweep_options(args, sweep.run_sweep)
    cells = sweep.expand(spec)  # validates everything before any file is written
    digest = hashlib.sha256(" ".join(sorted(c.key for c in cells)).encode()).hexdigest()[:8]  # of the configs
    out = Path(args.out) if args.out else Path("runs") / f"sweep-{spec['name'] or 'grid'}-{digest}"
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is an existing file, not a folder; give a folder path")
    mine = sweep.shard_cells(cells, *shard) if shard else cells
    done = sum((out / "cells" / f"{c.key}.json").exists() for c in mine)
    verb = "would run" if args.dry_run else "running"
    header = (f"{len(cells)} cells over {', '.join(spec['grid']) or 'no field'}"
              + (f"; shard {args.shard}: {len(mine)} cells" if shard else "") + f"; {done} already done; "
              f"{verb} {len(mine) - done} with {args.workers} worker(s) -> {out}")
    if args.dry_run:
        if args.json:
            _print_json({"out": str(out), "cells": len(cells), "shard_cells": len(mine), "done": done,
                         "would_run": len(mine) - done,
                         "todo": [{"key": c.key, "values": c.values} for c in mine
                                  if not (out / "cells" / f"{c.key}.json").exists()]})
        else:
            print(header + " (dry run: nothing is run or written)")
            for c in mine:
                state = "done" if (out / "cells" / f"{c.key}.json").exists() else "would run"
                print(c.key, state, json.dumps(c.values))
        return 0
    safety.check_out_dir(out)
    for folder in (out, out / "cells"):
        safety.clean_orphans(folder)
    if not args.json:
        _err(header)

    def _term(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _term)  # a kill stops like Ctrl-C: finished cells stay saved
    try:
        summary = sweep.run_sweep(spec, out, workers=args.workers, shard=shard,
                                  progress=not (args.json or args.no_progress), **options)
    except KeyboardInterrupt:
        _err(f"{PROG} sweep: interrupted; finished cells are saved in {out}; rerun the same command to continue")
        return EXIT_INTERRUPT
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
            _err(f"cell {f['key']} {json.dumps(f['values'])} FAILED: {f['error']}")
        print(f"report: frozenlake-ift report {out}" if not args.report else f"wrote {summary['report'][0]}")
    return 1 if summary["failed"] else 0


# ---------------------------------------------------------------- report
def _add_report(sub) -> None:
    p = sub.add_parser(
        "report", help="merge sweep folders (or shards) into a sensitivity report",
        description="Merge the finished cells of one or more sweep folders (e.g. the shards of one sweep) and write "
                    "report.md, report.json and claims_by_field.{png,svg}: how often each of the paper's claims "
                    "holds, its rate per value of each swept field, which single values flip it, and every cell's "
                    "ranking of methods per metric with 95% CIs. A manifest or cell file it cannot read is "
                    "refused with one line naming it.", formatter_class=_Help)
    p.add_argument("dirs", nargs="+", metavar="DIR", help="sweep folders (each has a sweep.json)")
    p.add_argument("--out", default=None, help="folder for the report (default: the first DIR)")
    p.add_argument("--no-figures", action="store_true", help="write report.md and report.json only")
    p.add_argument("--json", action="store_true", help="print the claim rates as JSON")
    p.set_defaults(func=_run_report)


def _run_report(args) -> int:
    from pathlib import Path

    from . import safety
    from .report import write_report

    out = Path(args.out or args.dirs[0])
    safety.check_out_dir(out)
    safety.clean_orphans(out)
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
    parser = _Parser(
        prog=PROG,
        description="Frozen-Lake study of Intuitive Fine-Tuning (arXiv 2405.11870): exact MDPs, "
                    "value iteration, and SFT / IFT / DPO / ORPO fine-tuning of policy networks. "
                    f"Maps everywhere: {MAP_HELP}. {FIELDS_HINT[0].upper() + FIELDS_HINT[1:]}.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    _add_solve(sub)
    _add_reproduce(sub)
    _add_plot(sub)
    _add_sweep(sub)
    _add_report(sub)
    _add_methods(sub)
    _add_fields(sub)
    from .play import add_parser as _add_play

    _add_play(sub)
    return parser


def _quiet_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush of a broken stdout cannot fail."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError, AttributeError):  # no real stdout (tests capture it): nothing to flush
        pass


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit status (0 ok, 1 fault or failed cells, 2 user error, 130 interrupt,
    141 broken stdout). Every error is one line on stderr."""
    real = sys.stdout
    if real is not None:
        sys.stdout = _Stdout(real)
    try:
        return _main(argv)
    finally:
        sys.stdout = real


def _main(argv) -> int:
    name = PROG
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help
            return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
        name = f"{PROG} {args.command}"
        status = int(args.func(args) or 0)
        if sys.stdout is not None:
            sys.stdout.flush()  # a full or closed stdout fails here, inside the handlers below
        return status
    except KeyboardInterrupt:
        _err(f"{name}: interrupted")
        return EXIT_INTERRUPT
    except UsageError as exc:
        _err(f"{exc.args[0]}: error: {exc.args[1]}")
        return EXIT_USAGE
    except (ValueError, TypeError, FileNotFoundError, KeyError) as exc:
        if getattr(exc, "stdout_fault", False):  # e.g. print after stdout was closed
            _quiet_stdout()
            return EXIT_PIPE
        if isinstance(exc, TypeError) and os.environ.get("FROZENLAKE_IFT_DEBUG"):
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        _err(f"{name}: error: {msg}")
        return EXIT_USAGE
    except OSError as exc:
        if getattr(exc, "stdout_fault", False):
            _quiet_stdout()
            if isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE:
                return EXIT_PIPE  # `| head`: the reader left; not an error worth a line
            _err(f"{name}: error: cannot write to standard output: {exc.strerror or exc}")
            return EXIT_FAULT
        _err(f"{name}: error: {exc.strerror if exc.strerror and exc.filename is None else exc}")
        return EXIT_FAULT
    except MemoryError:
        _err(f"{name}: error: out of memory; use a smaller map, fewer seeds or fewer steps")
        return EXIT_FAULT
    except Exception as exc:  # a bug: still one line, with the way to see the traceback
        if os.environ.get("FROZENLAKE_IFT_DEBUG"):
            raise
        _err(f"{name}: internal error (a bug, please report it; FROZENLAKE_IFT_DEBUG=1 shows the traceback): "
             f"{type(exc).__name__}: {exc}")
        return EXIT_FAULT


def console() -> None:  # pragma: no cover - the console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
