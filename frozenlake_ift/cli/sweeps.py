"""The sweep commands of ``frozenlake-ift``: ``sweep`` (run a spec's cells, resumable, sharded, local or on
Ray) and ``report`` (merge sweep folders and write the sensitivity report)."""

from __future__ import annotations

import json

from .common import (
    ENV_HELP,
    EXIT_INTERRUPT,
    FIELDS_HINT,
    MAP_HELP,
    PROG,
    HelpFormatter,
    add_plugin_argument,
    err,
    print_json,
)


# ---------------------------------------------------------------- sweep
def add_sweep(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a grid of studies (resumable, sharded, parallel)",
        formatter_class=HelpFormatter,
        description="Run the study on every cell of a grid of StudyConfig fields (the Cartesian product of the "
        "--grid SPEC file's or --set values, plus fixed values), seeds batched inside each cell. Each "
        "finished cell is saved at once to DIR/cells/<key>.json; rerunning the same command skips "
        "finished cells, so an interrupt loses only the cells in flight. Then: frozenlake-ift report DIR. "
        "Grid fields and values are StudyConfig's: " + FIELDS_HINT + "; maps: " + MAP_HELP + ".",
    )
    p.add_argument(
        "--grid",
        metavar="SPEC",
        help='spec file (.json, .toml, .yaml): {"grid": {FIELD: [values]}, "fixed": {FIELD: value}}',
    )
    p.add_argument(
        "--default", action="store_true", help="use the shipped default sweep (frozenlake_ift/sweeps/default.json)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=V1,V2",
        help="add or replace a grid axis, e.g. --set lam=0,0.2,0.5 (repeatable; methods: sft+ift,dpo)",
    )
    p.add_argument(
        "--fix",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="fix a field for every cell, e.g. --fix seeds=8 (repeatable; removes that grid axis)",
    )
    p.add_argument(
        "--out", default=None, help="sweep folder (default: runs/sweep-<spec name>-<hash of the cells' configs>)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="cells run in N parallel processes (batched: large groups split into chunks, and a sweep of fewer "
        "tasks than N trains its methods in parts, so that every worker has work)",
    )
    p.add_argument("--shard", default=None, metavar="I/N", help="run only shard I of N (1-based, by sorted cell key)")
    p.add_argument(
        "--dry-run", action="store_true", help="validate and list the cells it would run; run and write nothing"
    )
    p.add_argument("--report", action="store_true", help="write the report into the sweep folder when done")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    p.add_argument(
        "--engine",
        choices=("batched", "per-cell"),
        default="batched",
        help="batched: cells that differ only in training fields share one batched run; per-cell: one study per cell",
    )
    p.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local processes (--workers), or a Ray cluster (pip install ray)",
    )
    p.add_argument(
        "--address",
        default=None,
        metavar="ADDR",
        help="Ray cluster address (with --executor ray): auto, HOST:PORT or ray://HOST:PORT; without it a local "
        "instance starts, listening on the loopback interface only",
    )
    p.add_argument(
        "--max-memory",
        type=float,
        default=None,
        metavar="GB",
        help="memory the sweep may use: batched groups are split so that the tasks running at once fit, and a "
        "cell that alone does not fit is refused (default: 8, as reproduce)",
    )
    p.add_argument("--force", action="store_true", help="no memory bound: run cells beyond --max-memory")
    p.add_argument(
        "--env",
        default=None,
        help="fix the MDP of every cell (the same as --fix env=SPEC); to sweep it: --set 'env=SPEC1;SPEC2' "
        "(env specs hold commas, so several are separated by ';'). " + ENV_HELP,
    )
    add_plugin_argument(p)
    p.set_defaults(func=run_sweep)


def sweep_options(args, run_sweep) -> dict:
    """--engine / --executor / --address, passed only where ``run_sweep`` takes them."""
    import inspect

    from ..executors import check_ray_address

    params = inspect.signature(run_sweep).parameters
    opts = {"engine": args.engine, "executor": args.executor, "address": args.address}
    if args.address is not None and args.executor != "ray":
        raise ValueError(f"--address {args.address!r} needs --executor ray")
    if args.address is not None:
        check_ray_address(args.address)  # a dead address is refused at once, not after minutes of Ray's retries
    missing = [k for k, v in opts.items() if k not in params and v not in ("batched", "local", None)]
    if missing:
        raise ValueError(
            f"this version's sweep does not support --{missing[0]} {opts[missing[0]]}; "
            "allowed: --engine batched --executor local"
        )
    return {k: v for k, v in opts.items() if k in params}


def run_sweep(args) -> int:
    import hashlib
    import inspect
    import signal
    from pathlib import Path

    from .. import safety, sweep

    if args.grid and args.default:
        raise ValueError("give --grid SPEC or --default, not both")
    if not (args.grid or args.default or args.set):
        raise ValueError("nothing to sweep: give --grid SPEC, --default or --set FIELD=V1,V2")
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.max_memory is not None and not 0 < args.max_memory < float("inf"):
        raise ValueError(f"--max-memory must be a number of gigabytes > 0, got {args.max_memory}")
    max_memory = None if args.force else (safety.DEFAULT_MAX_STUDY_GB if args.max_memory is None else args.max_memory)
    spec = (
        sweep.load_spec(sweep.DEFAULT_SPEC if args.default else args.grid)
        if (args.grid or args.default)
        else sweep.make_spec({})
    )
    fix = list(args.fix) + ([f"env={args.env}"] if args.env is not None else [])
    spec = sweep.override(spec, sweep.parse_assignments(args.set, True), sweep.parse_assignments(fix, False))
    shard = sweep.parse_shard(args.shard) if args.shard is not None else None
    options = sweep_options(args, sweep.run_sweep)
    if "max_memory" in inspect.signature(sweep.run_sweep).parameters:
        options["max_memory"] = max_memory
    cells = sweep.expand(spec, max_bytes=None if max_memory is None else max_memory * 1e9)  # before any file is written
    digest = hashlib.sha256(" ".join(sorted(c.key for c in cells)).encode()).hexdigest()[:8]  # of the configs
    out = Path(args.out) if args.out else Path("runs") / f"sweep-{spec['name'] or 'grid'}-{digest}"
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is an existing file, not a folder; give a folder path")
    mine = sweep.shard_cells(cells, *shard) if shard else cells
    sweep.check_folder(out, spec, cells)  # another sweep's folder is refused before anything is printed
    if not args.dry_run:
        for folder in (out, out / "cells"):
            safety.check_out_dir(folder)
    done = sum((out / "cells" / f"{c.key}.json").exists() for c in mine)
    verb = "would run" if args.dry_run else "running"
    header = (
        f"{len(cells)} cells over {', '.join(sweep.swept_fields(spec)) or 'no field'}"
        + (f"; shard {args.shard}: {len(mine)} cells" if shard else "")
        + f"; {done} already done; "
        f"{verb} {len(mine) - done} with {args.workers} worker(s) -> {out}"
    )
    if args.dry_run:
        if args.json:
            print_json(
                {
                    "out": str(out),
                    "cells": len(cells),
                    "shard_cells": len(mine),
                    "done": done,
                    "would_run": len(mine) - done,
                    "todo": [
                        {"key": c.key, "values": c.values}
                        for c in mine
                        if not (out / "cells" / f"{c.key}.json").exists()
                    ],
                }
            )
        else:
            print(header + " (dry run: nothing is run or written)")
            for c in mine:
                state = "done" if (out / "cells" / f"{c.key}.json").exists() else "would run"
                print(c.key, state, json.dumps(c.values))
        return 0
    for folder in (out, out / "cells"):
        safety.clean_orphans(folder)
    if not args.json:
        err(header)

    def _term(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _term)  # a kill stops like Ctrl-C: finished cells stay saved
    try:
        summary = sweep.run_sweep(
            spec,
            out,
            workers=args.workers,
            shard=shard,
            progress=not (args.json or args.no_progress),
            **options,
        )
    except KeyboardInterrupt:
        err(f"{PROG} sweep: interrupted; finished cells are saved in {out}; rerun the same command to continue")
        return EXIT_INTERRUPT
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.report:
        from ..report import write_report

        summary["report"] = [str(p) for p in write_report([out])[1]]
    if args.json:
        print_json(summary)
    else:
        secs = summary["cell_seconds"]
        print(
            f"ran {summary['ran']} cells in {summary['seconds']:.1f} s"
            + (f" ({sum(secs) / len(secs):.2f} s per cell)" if secs else "")
            + f", skipped {summary['skipped']} finished; sweep folder {out}"
        )
        for f in summary["failed"]:
            err(f"cell {f['key']} {json.dumps(f['values'])} FAILED: {f['error']}")
        print(f"report: frozenlake-ift report {out}" if not args.report else f"wrote {summary['report'][0]}")
    return 1 if summary["failed"] else 0


# ---------------------------------------------------------------- report
def add_report(sub) -> None:
    p = sub.add_parser(
        "report",
        help="merge sweep folders (or shards) into a sensitivity report",
        description="Merge the finished cells of one or more sweep folders (e.g. the shards of one sweep) and write "
        "report.md, report.json and claims_by_field.{png,svg}: how often each of the paper's claims "
        "holds, its rate per value of each swept field, which single values flip it, and every cell's "
        "ranking of methods per metric with 95% CIs. A manifest or cell file it cannot read is "
        "refused with one line naming it.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("dirs", nargs="+", metavar="DIR", help="sweep folders (each has a sweep.json)")
    p.add_argument("--out", default=None, help="folder for the report (default: the first DIR)")
    p.add_argument("--no-figures", action="store_true", help="write report.md and report.json only")
    p.add_argument("--json", action="store_true", help="print the claim rates as JSON")
    p.set_defaults(func=run_report)


def run_report(args) -> int:
    from pathlib import Path

    from .. import safety
    from ..report import write_report

    out = Path(args.out or args.dirs[0])
    safety.check_out_dir(out)
    safety.clean_orphans(out)
    rep, paths = write_report(args.dirs, args.out, figures=not args.no_figures)
    if args.json:
        print_json(
            {
                "cells": rep["n_cells"],
                "done": rep["n_done"],
                "swept": rep["swept"],
                "files": [str(p) for p in paths],
                "claims": {
                    k: {"holds": c["holds"], "n": c["n"], "rate": c["rate"], "flipped_by": c["flipped_by"]}
                    for k, c in rep["claims"].items()
                },
            }
        )
        return 0
    print(f"{rep['n_done']} of {rep['n_cells']} cells finished; swept: {', '.join(rep['swept']) or 'nothing'}")
    for name, c in rep["claims"].items():
        print(
            f"  {name}: holds in {c['holds']}/{c['n']} ({100 * c['rate']:.0f}%); flipped by "
            f"{', '.join(c['flipped_by']) or 'no single value'}"
        )
    print("wrote " + ", ".join(map(str, paths)))
    return 0
