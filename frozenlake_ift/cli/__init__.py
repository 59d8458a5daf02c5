"""The ``frozenlake-ift`` console script: solve, reproduce, plot, sweep, report, methods, envs, fields, play,
phenomena, search.

Each sub-command is a pair ``add_<cmd>(subparsers)`` / ``run_<cmd>(args) -> int``: ``commands`` holds
solve, plot, sweep, report and methods, ``study`` reproduce and fields, ``common`` what they share. ``main`` keeps
the promise of docs/reliability.md: a user error (a bad argument, value or input file) prints one
line naming it and what is allowed and exits 2, with nothing written; a fault while writing (a full
disk) prints one line and exits 1; a closed or broken standard output ends quietly (141); nothing
ever ends in a traceback (FROZENLAKE_IFT_DEBUG=1 shows one for an internal error).
"""

from __future__ import annotations

import argparse
import errno
import os
import sys

from . import commands, lab, study, sweeps
from .common import (
    EXIT_FAULT,
    EXIT_INTERRUPT,
    EXIT_PIPE,
    EXIT_USAGE,
    FIELDS_HINT,
    MAP_HELP,
    PROG,
    Parser,
    UsageError,
    err,
    one_line,
    plugin_args,
)
from .study import check_size, field_table

__all__ = [
    "EXIT_FAULT",
    "EXIT_INTERRUPT",
    "EXIT_PIPE",
    "EXIT_USAGE",
    "FIELDS_HINT",
    "MAP_HELP",
    "PROG",
    "UsageError",
    "build_parser",
    "check_size",
    "console",
    "field_table",
    "main",
]


class _Stdout:
    """sys.stdout as seen by a command: a failed write is marked as standard output's (``stdout_fault``)."""

    def __init__(self, inner):
        self._inner = inner

    def _call(self, name, *a):
        try:
            return getattr(self._inner, name)(*a)
        except (OSError, ValueError) as exc:
            exc.stdout_fault = True  # type: ignore[union-attr]  # a marker attribute on the instance, read by _main
            raise

    def write(self, text):
        return self._call("write", text)

    def flush(self):
        return self._call("flush")

    def __getattr__(self, name):
        return getattr(self._inner, name)


# ---------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="Frozen-Lake study of Intuitive Fine-Tuning (arXiv 2405.11870): exact MDPs, "
        "value iteration, and SFT / IFT / DPO / ORPO fine-tuning of policy networks. "
        f"Maps everywhere: {MAP_HELP}. {FIELDS_HINT[0].upper() + FIELDS_HINT[1:]}.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    commands.add_solve(sub)
    study.add_reproduce(sub)
    commands.add_plot(sub)
    sweeps.add_sweep(sub)
    sweeps.add_report(sub)
    commands.add_methods(sub)
    commands.add_envs(sub)
    study.add_fields(sub)
    lab.add_phenomena(sub)
    lab.add_search(sub)
    from ..play import add_parser as add_play

    add_play(sub)
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


def console() -> int:
    """The console script (``frozenlake-ift``, ``python -m frozenlake_ift.cli``): ``main()`` on the process's
    arguments, then ``gc.freeze()``, so that the interpreter's exit does not walk every object torch and
    matplotlib made (about 0.4 s of a first command). atexit hooks still run; every file is written and
    closed before ``main`` returns."""
    import gc

    status = main()
    gc.freeze()
    return status


def _main(argv) -> int:
    name = PROG
    try:
        from ..plugins import load_plugins

        load_plugins(plugin_args(list(sys.argv[1:] if argv is None else argv)))  # before the parser lists names
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
        err(f"{name}: interrupted")
        return EXIT_INTERRUPT
    except UsageError as exc:
        err(one_line(f"{exc.args[0]}: error: {exc.args[1]}"))
        return EXIT_USAGE
    except (ValueError, TypeError, FileNotFoundError, KeyError) as exc:
        if getattr(exc, "stdout_fault", False):  # e.g. print after stdout was closed
            _quiet_stdout()
            return EXIT_PIPE
        if isinstance(exc, TypeError) and os.environ.get("FROZENLAKE_IFT_DEBUG"):
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        err(one_line(f"{name}: error: {msg}"))
        return EXIT_USAGE
    except OSError as exc:
        if getattr(exc, "stdout_fault", False):
            _quiet_stdout()
            if isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE:
                return EXIT_PIPE  # `| head`: the reader left; not an error worth a line
            err(f"{name}: error: cannot write to standard output: {exc.strerror or exc}")
            return EXIT_FAULT
        err(one_line(f"{name}: error: {exc.strerror if exc.strerror and exc.filename is None else exc}"))
        return EXIT_FAULT
    except MemoryError:
        err(f"{name}: error: out of memory; use a smaller map, fewer seeds or fewer steps")
        return EXIT_FAULT
    except Exception as exc:  # a bug: still one line, with the way to see the traceback
        if os.environ.get("FROZENLAKE_IFT_DEBUG"):
            raise
        err(
            one_line(
                f"{name}: internal error (a bug, please report it; FROZENLAKE_IFT_DEBUG=1 shows the traceback): "
                f"{type(exc).__name__}: {exc}"
            )
        )
        return EXIT_FAULT
