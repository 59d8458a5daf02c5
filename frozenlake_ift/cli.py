"""The ``frozenlake-ift`` console script: solve, reproduce, plot, sweep, report.

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
                       description="Solve a Frozen Lake map exactly (value iteration or finite-horizon backward induction).")
    p.set_defaults(func=_run_solve)


def _run_solve(args) -> int:
    raise NotImplementedError("solve is being built")


# ---------------------------------------------------------------- reproduce
def _add_reproduce(sub) -> None:
    from .study import METHOD_NAMES, StudyConfig

    d = StudyConfig()
    p = sub.add_parser(
        "reproduce", help="run the Frozen-Lake study (SFT / IFT / DPO / ORPO) and write results + figures",
        description="Fine-tune theta_0 with each method on the default study map, all seeds batched; write "
                    "results.json, summary.csv and figures (PNG + SVG) to --out and print a summary table "
                    "(final and best value per method and metric, mean and 95%% CI over seeds, rankings, "
                    "and whether each of the paper's claims holds).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--seeds", type=int, default=d.seeds, help="ensemble size: seeds trained at once")
    p.add_argument("--steps", type=int, default=d.steps, help="fine-tuning steps per method")
    p.add_argument("--methods", default=",".join(METHOD_NAMES), help=f"comma-separated subset of {METHOD_NAMES}")
    p.add_argument("--base", default=d.base, help="base policy theta_0: random | uniform | suboptimal")
    p.add_argument("--map", default=d.map, help="two-route, 4x4, 8x8, random:SIZE:SEED")
    p.add_argument("--device", default=d.device, help="auto | cpu | cuda[:N]")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any StudyConfig field, e.g. --set lam=0.5 --set lr=0.003 (repeatable)")
    p.add_argument("--out", default=None, help="output folder (default: runs/<timestamp>/)")
    p.add_argument("--no-figures", action="store_true", help="write results.json and summary.csv only")
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    p.set_defaults(func=_run_reproduce)


def _config_from_args(args):
    from .study import StudyConfig, coerce_field

    values = {"seeds": args.seeds, "steps": args.steps, "base": args.base, "map": args.map, "device": args.device,
              "methods": tuple(m.strip() for m in args.methods.split(",") if m.strip())}
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
        print(f"wrote {out / 'results.json'}, {out / 'summary.csv'}" + (f" and {len(figures)} figure files" if figures else ""))
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
