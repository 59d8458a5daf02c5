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


# ---------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="frozenlake-ift",
        description="Frozen-Lake study of Intuitive Fine-Tuning (arXiv 2405.11870): exact MDPs, "
                    "value iteration, and SFT / IFT / DPO / ORPO fine-tuning of policy networks.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_solve(sub)
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
