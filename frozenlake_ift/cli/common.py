"""What every ``frozenlake-ift`` sub-command shares: the program name, help texts, exit codes, the
one-line argument parser, the help formatter and the output helpers."""

from __future__ import annotations

import argparse
import sys

PROG = "frozenlake-ift"
MAP_HELP = (
    "4x4, 8x8, two-route, random:SIZE:SEED[:P] (gymnasium's random map of SIZE x SIZE tiles, frozen with "
    "probability P, default 0.8), or your own map as rows joined by commas, e.g. SFF,FHF,FFG "
    "(S start, F frozen, H hole, G goal; rows of equal length)"
)
ENV_HELP = (
    "the MDP (default: lake, the map of --map): gym:ID[,key=value...] (a gymnasium env with an exact model, e.g. "
    "gym:CliffWalking-v1, gym:Taxi-v4), bandit:R1,R2,... (K arms), chain:N[:P] (N states, slip P), "
    "tokens:V:N[:TARGET] (token prefixes, the paper's MDP), file:PATH.npz (your arrays P, R, terminal, rho0), "
    f"or a plugin's source (`{PROG} envs` lists them)"
)
PLUGIN_HELP = (
    "import MODULE first (repeatable): a plugin that registers methods, MDP sources or data rules; "
    "packages may also register through the entry-point group frozenlake_ift.plugins"
)
FIELDS_HINT = f"`{PROG} fields` lists every field with its type, default and allowed values"
EXIT_USAGE, EXIT_FAULT, EXIT_PIPE, EXIT_INTERRUPT = 2, 1, 141, 130  # 141 = 128 + SIGPIPE, as a shell reports it


class UsageError(ValueError):
    """An argparse error, raised instead of printing usage and exiting, so main() prints one line."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise ``UsageError`` (one line) instead of printing usage and exiting,
    and that takes no abbreviations (``--seed`` is not ``--seeds``)."""

    def __init__(self, *args, **kwargs):
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message):  # one line, no usage block (the usage is one --help away)
        raise UsageError(self.prog, f"{message} (see {self.prog} --help)")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" only where it says something: not for None / False, nor twice."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, False, [], argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


def plugin_args(argv: list[str]) -> list[str]:
    """The modules named by ``--plugin MODULE`` / ``--plugin=MODULE`` anywhere in ``argv``: loaded before the
    parser is built, so that their methods, MDP sources and data rules are known to ``--help`` and checks."""
    out = []
    for i, arg in enumerate(argv):
        if arg == "--plugin":
            if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                raise UsageError(PROG, "argument --plugin: expected one argument (a module name)")
            out.append(argv[i + 1])
        elif arg.startswith("--plugin="):
            out.append(arg.split("=", 1)[1])
    return out


def add_plugin_argument(p) -> None:
    """``--plugin MODULE`` (repeatable); ``main`` has already imported them when the parser runs."""
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE", help=PLUGIN_HELP)


def add_formats_argument(p) -> None:
    """``--formats FMT[,FMT]``: the figure formats (``plots.figure_formats`` reads it), PNG by default."""
    p.add_argument(
        "--formats",
        default="png",
        metavar="FMT[,FMT]",
        help="figure formats, comma-separated: png, svg (default: png; png,svg draws each figure's layout once)",
    )


def print_json(obj) -> None:
    """Print obj as strict JSON (no NaN or infinity), indented, keys in their order."""
    from ..safety import strict_json

    print(strict_json(obj, indent=2, sort_keys=False)[0])


MAX_MESSAGE = 1000  # characters of an error line; longer ones (a 100 KB bad value echoed) are cut in the middle


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """An error message as one line: line breaks and runs of spaces become one space, and a message longer
    than ``limit`` keeps its start and its end (what is allowed) around a note of what was cut."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    head, tail = limit * 2 // 3, limit // 4
    return f"{text[:head]} [... {len(text) - head - tail} characters cut ...] {text[-tail:]}"


def err(line: str) -> None:
    """Print one line on stderr, if there is one that still takes writes."""
    if sys.stderr is not None:
        try:
            print(line, file=sys.stderr, flush=True)
        except (OSError, ValueError):
            pass
