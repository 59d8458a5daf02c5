"""Refuse a notebook over the documented size limit (pre-commit hook and CI check).

Notebooks may be committed with their outputs (the docs site shows them as committed), so
nothing is stripped; but an output that embeds a large image or a long log would bloat the
repository for good (git keeps every version). The limit:

- **1 MB (1,000,000 bytes) per notebook**, the file as committed. Measured: executed with all
  their outputs, 01_mdp_framing is 702 kB (14 outputs) and 02_preference_estimation 682 kB
  (13 outputs), almost all of it PNG figures at 100 dpi (31 kB each without outputs). 1 MB
  leaves room for two or three more figures and stops a runaway output (a 2000-step log, a
  300-dpi figure).
- **200 kB per single output** (one image or one text stream; the largest measured is a 136 kB
  figure), so that one cell cannot use most of the budget by itself.

Usage: ``python tools/check_notebook_size.py [--max-bytes N] [--max-output-bytes N] [PATH ...]``
(no PATH: every ``*.ipynb`` under notebooks/ and docs/). Prints one line per notebook over a
limit, naming the cells, and exits 1; exits 0 when all are within the limits.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_NOTEBOOK_BYTES = 1_000_000
MAX_OUTPUT_BYTES = 200_000
DEFAULT_GLOBS = ("notebooks/**/*.ipynb", "docs/**/*.ipynb")


@dataclass(frozen=True)
class OutputSize:
    """The size of one output of one code cell, as it is stored (JSON text)."""

    cell: int  # index among all cells, from 0
    output: int  # index among the cell's outputs
    n_bytes: int


@dataclass(frozen=True)
class NotebookReport:
    """A notebook's size and its outputs over the per-output limit."""

    path: Path
    n_bytes: int
    large_outputs: tuple[OutputSize, ...]
    error: str = ""  # non-empty if the file is not a readable notebook

    def problems(self, max_bytes: int) -> list[str]:
        """One message per broken limit ([] if the notebook is within both)."""
        out = []
        if self.error:
            out.append(f"{self.path}: not a readable notebook ({self.error})")
        if self.n_bytes > max_bytes:
            out.append(f"{self.path}: {self.n_bytes:,} bytes, over the limit of {max_bytes:,} bytes per notebook")
        for o in self.large_outputs:
            out.append(
                f"{self.path}: cell {o.cell} output {o.output} is {o.n_bytes:,} bytes, over the per-output limit"
            )
        return out


def measure(path: Path, max_output_bytes: int = MAX_OUTPUT_BYTES) -> NotebookReport:
    """Size of the file and of each output (each output's JSON, as stored)."""
    n_bytes = path.stat().st_size
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = nb["cells"]
        if not isinstance(cells, list):
            raise TypeError(f"'cells' is a {type(cells).__name__}, not a list")
    except (ValueError, KeyError, TypeError) as err:
        return NotebookReport(path, n_bytes, (), error=f"{type(err).__name__}: {err}")
    large = []
    for i, cell in enumerate(cells):
        for j, output in enumerate(cell.get("outputs", []) if isinstance(cell, dict) else []):
            size = len(json.dumps(output, ensure_ascii=False).encode("utf-8"))
            if size > max_output_bytes:
                large.append(OutputSize(i, j, size))
    return NotebookReport(path, n_bytes, tuple(large))


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number of bytes, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", type=Path, help="notebooks to check (default: notebooks/, docs/)")
    ap.add_argument("--max-bytes", type=_positive, default=MAX_NOTEBOOK_BYTES, help="limit per notebook")
    ap.add_argument("--max-output-bytes", type=_positive, default=MAX_OUTPUT_BYTES, help="limit per output")
    args = ap.parse_args(argv)
    paths = args.paths or sorted({p for g in DEFAULT_GLOBS for p in ROOT.glob(g)})
    paths = [p for p in paths if p.suffix == ".ipynb"]
    problems: list[str] = []
    for path in paths:
        problems += measure(path, args.max_output_bytes).problems(args.max_bytes)
    for line in problems:
        print(line)
    if problems:
        print(
            f"{len(problems)} problem(s); limits: {args.max_bytes:,} bytes per notebook, "
            f"{args.max_output_bytes:,} per output (tools/check_notebook_size.py)"
        )
        return 1
    print(
        f"{len(paths)} notebook(s) within {args.max_bytes:,} bytes each "
        f"(largest output allowed: {args.max_output_bytes:,} bytes)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
