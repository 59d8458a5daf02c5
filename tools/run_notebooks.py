"""Execute the teaching notebooks and write their outputs in place (the one command that regenerates them).

Each notebook runs top to bottom with nbclient in a fresh ``python3`` kernel, in a temporary working
directory (a notebook writes no file), with ``MPLBACKEND=Agg`` and the repository root on
``PYTHONPATH``. Widget outputs (the sliders) are dropped: without a live kernel they show nothing, and
the cell before each slider cell draws its static version. ``with_solutions`` appends the exercises'
solutions as cells, which is how ``tests/test_notebooks.py`` runs and checks them (never written back).
Figures are inline PNGs at ``plots.NOTEBOOK_DPI`` (``plots.show``), so each notebook
stays well under the size limit of ``tools/check_notebook_size.py`` (1 MB). Execution timings are not
recorded, so re-running on unchanged code changes only what the code computes. The kernel client reads
a cell's reply even when it arrives just before nbclient sends on the shell socket (``shell_channel_class``;
with jupyter_client's own channel a slider cell could stall for the whole cell timeout, then go on).

Usage: ``python tools/run_notebooks.py [--timeout S] [NOTEBOOK ...]`` (default: every
``notebooks/*.ipynb``). Prints one line per notebook (wall and CPU seconds, size) and exits 1 if one fails or is
over the size limit; a notebook that fails is left as it was.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import resource
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
CELL_TIMEOUT_S = 300
sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_notebook_size import MAX_NOTEBOOK_BYTES, measure  # noqa: E402  (the size limit's one home)

if TYPE_CHECKING:
    from jupyter_client.asynchronous import AsyncKernelClient
    from jupyter_client.channels import AsyncZMQSocketChannel


def kernel_env() -> dict[str, str]:
    """The environment a notebook kernel runs in: no windows, the repository importable."""
    env = dict(os.environ)
    env["MPLBACKEND"] = "Agg"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return env


@functools.cache
def shell_channel_class() -> type[AsyncZMQSocketChannel]:
    """jupyter_client's asyncio shell channel, made to wake for a reply that arrives just before a send.

    ``Session.send`` writes through a blocking shadow of the asyncio socket, out of pyzmq's sight. ZeroMQ
    signals new input on a socket's file descriptor once, and a send on the socket can consume that
    signal. So when a reply reaches the socket just before such a send, the coroutine awaiting the reply
    is never woken: it finds the reply only when its poll times out, with no error. nbclient awaits
    each cell's reply with the cell timeout (300 s) and sends on this socket during a cell when it mimics
    an ipywidgets Output widget (the sliders' ``interactive``), so on a loaded machine a slider cell could
    stall for exactly 300 s and then go on. Reading EVENTS through the asyncio socket after each send makes
    pyzmq wake its waiting receivers when a message is there."""
    import zmq
    from jupyter_client.channels import AsyncZMQSocketChannel

    class ShellChannel(AsyncZMQSocketChannel):
        def send(self, msg: dict) -> None:
            super().send(msg)
            self.socket.get(zmq.EVENTS)  # pyzmq schedules its waiting receivers if input is there

    return ShellChannel


@functools.cache
def kernel_client_class() -> type[AsyncKernelClient]:
    """The kernel client ``execute`` runs notebooks with: jupyter_client's asyncio client with
    ``shell_channel_class()``."""
    from jupyter_client.asynchronous import AsyncKernelClient
    from traitlets import Type

    class KernelClient(AsyncKernelClient):
        shell_channel_class = Type(shell_channel_class())

    return KernelClient


def notebook_client(nb, workdir: str | os.PathLike, timeout: int = CELL_TIMEOUT_S):
    """The nbclient NotebookClient that ``execute`` runs ``nb`` with (kernel client: ``kernel_client_class()``)."""
    import nbclient
    from traitlets.config import Config

    config = Config({"AsyncKernelManager": {"client_factory": kernel_client_class()}})
    return nbclient.NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(workdir)}},
        config=config,
    )


def execute(nb, workdir: str | os.PathLike, timeout: int = CELL_TIMEOUT_S):
    """Run ``nb`` (an nbformat notebook) in place in a fresh python3 kernel with its cwd at ``workdir``.

    Raises nbclient's CellExecutionError (naming the cell, with its traceback) if a cell fails."""
    client = notebook_client(nb, workdir, timeout)
    old = dict(os.environ)
    os.environ.update(kernel_env())  # the kernel inherits this process's environment
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    return nb


SOLUTION = re.compile(r"<details><summary>Solution</summary>(.*?)</details>", re.S)
PYTHON_BLOCK = re.compile(r"^[ \t]*```python[ \t]*\n(.*?)^[ \t]*```[ \t]*$", re.S | re.M)
SOLUTION_TAG = "solution"  # the metadata tag of the cells ``with_solutions`` appends


def solutions(nb) -> list[str]:
    """The Python code of every foldable solution (``<details><summary>Solution</summary>`` in a markdown cell),
    in notebook order, each block dedented (they sit in indented list items)."""
    blocks = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for details in SOLUTION.findall(cell.source):
                blocks += [textwrap.dedent(b) for b in PYTHON_BLOCK.findall(details)]
    return blocks


def with_solutions(nb):
    """A copy of ``nb`` with each solution appended as a code cell (tagged ``SOLUTION_TAG``), to run after the
    notebook's own cells in the same kernel: each solution's asserts then check what its text says."""
    import nbformat

    out = nbformat.from_dict(nb)
    for code in solutions(nb):
        cell = nbformat.v4.new_code_cell(code)
        cell.metadata["tags"] = [SOLUTION_TAG]
        out.cells.append(cell)
    return out


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def strip_widgets(nb):
    """Drop every widget output and the widget state: without a live kernel a widget shows nothing (a code
    host prints its repr), so the committed notebook keeps the static figure drawn before the sliders."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if WIDGET_VIEW not in o.get("data", {})]
    return nb


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the kernels), user + system."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_one(path: Path, timeout: int = CELL_TIMEOUT_S) -> tuple[float, float, int]:
    """Execute one notebook and write it back with its outputs; return (wall s, CPU s, bytes written).

    CPU seconds (this process and the kernel) do not depend on how loaded the machine is; wall seconds do."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    start, cpu0 = time.perf_counter(), _cpu_seconds()
    with tempfile.TemporaryDirectory(prefix="nb-") as tmp:
        execute(nb, tmp, timeout)
        stray = sorted(p.name for p in Path(tmp).iterdir())
    if stray:
        raise RuntimeError(f"{path.name} wrote files into its working directory: {stray}")
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu0
    strip_widgets(nb)
    nbformat.validate(nb)
    tmp_path = path.with_suffix(".ipynb.tmp")
    nbformat.write(nb, tmp_path)
    tmp_path.replace(path)  # whole or unchanged
    return seconds, cpu, path.stat().st_size


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", type=Path, help="notebooks to run (default: notebooks/*.ipynb)")
    ap.add_argument("--timeout", type=_positive, default=CELL_TIMEOUT_S, help="limit per cell, seconds")
    args = ap.parse_args(argv)
    paths = args.paths or sorted(NOTEBOOK_DIR.glob("*.ipynb"))
    bad = [p for p in paths if p.suffix != ".ipynb" or not p.is_file()]
    if bad:
        print(f"not notebooks: {', '.join(map(str, bad))} (expected existing *.ipynb files)")
        return 2
    failed = []
    for path in paths:
        try:
            seconds, cpu, n_bytes = run_one(path, args.timeout)
        except Exception as err:  # report every notebook, then fail
            print(f"FAILED {path.name}: {type(err).__name__}: {str(err)[-2000:]}")
            failed.append(path.name)
            continue
        problems = measure(path).problems(MAX_NOTEBOOK_BYTES)
        note = f"  ({'; '.join(problems)})" if problems else ""
        print(f"ran    {path.name}: {seconds:5.1f} s wall, {cpu:5.1f} s CPU, {n_bytes:,} bytes{note}")
        if problems:
            failed.append(path.name)
    if failed:
        print(f"{len(failed)} notebook(s) failed or are over the size limit: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
