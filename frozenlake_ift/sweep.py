"""Running a sweep's cells: resumable, sharded, parallel, batched; the cell store. The report is in ``report``.

A spec (a grid of StudyConfig fields and fixed values) is read and expanded into cells by
``sweep_spec``, whose public names this module re-exports. Each cell is one StudyConfig with its
seeds batched inside it. A sweep folder DIR holds:

    DIR/sweep.json        manifest: the spec, swept fields, every cell's key and swept values
    DIR/cells/<key>.json  one finished cell, written atomically by the driver; key = the first 16
                          hex digits of sha256 of the cell's StudyConfig as sorted JSON. It is a
                          results.json (config, steps, curves, summary, map, ...; ``frozenlake-ift
                          plot`` reads it) with floats rounded to 6 significant digits, plus key,
                          swept values and the final per-seed value of each metric. A failed cell
                          is saved as {key, values, error} and retried on the next run.
    DIR/report.md, report.json, claims_by_field.{png,svg}     from ``report.write_report``

The units of work (chunks of groups, method parts) are planned by ``sweep_tasks``; its public names are
re-exported here. Engines (docs/sweeps.md): "batched" (default) trains each group of cells that share shapes as one
ensemble with per-member hyper-parameters (``batched.py``); "per-cell" runs ``run_study`` per cell.
Both give the same numbers. Executors (``executors.py``): local (processes) or Ray.

Finished cells are skipped on a rerun (a truncated or corrupt file is recomputed), so an interrupt
loses only the tasks in flight. A folder holding another spec's cells is refused. The key depends
on the config only: after changing the study's code, sweep into a new folder.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from . import results
from .study import run_study
from .sweep_spec import (  # noqa: F401  (re-exported: the stable API)
    DEFAULT_SPEC,
    DEFAULTS,
    SPEC_KEYS,
    Cell,
    cell_key,
    expand,
    label,
    load_spec,
    make_spec,
    override,
    parse_assignments,
    parse_shard,
    shard_cells,
    swept_fields,
)
from .sweep_tasks import (  # noqa: F401  (re-exported: the stable API)
    ENGINES,
    MIN_SPLIT_MEMBERS,
    TASKS_PER_WORKER,
    Task,
    make_tasks,
    method_parts,
    split_group,
)

FORMAT = 2  # cell files: 2 = results.json layout (curves kept, rounded); 1 = final values only
CELL_KEYS = ("format", "key", "values", "config", "steps", "curves", "summary", "ranking", "claims", "map", "seconds")
DIGITS = 6  # significant digits kept in cell files (curves and per-seed values)


@dataclass(frozen=True)
class TaskResult:
    """What a task sends back to the driver: the cell records, as JSON text, and the failed cells."""

    records: dict  # key -> JSON text of the cell file
    failed: list  # [{"key", "values", "error"}]
    seconds: float
    infos: dict  # key -> {"seconds", "held", "claims"} (``_info``): what the driver reports of each cell
    methods: tuple[str, ...] = ()  # a method part's (``Task.methods``): its records hold these methods alone


def compact(result, cell: Cell) -> dict:
    """The cell file cells/<key>.json: a results.json (``results.to_dict``: config, steps, curves, summary, map,
    ...; ``frozenlake-ift plot`` reads it) with floats rounded to DIGITS significant digits (summary, ranking
    and claims computed before rounding), plus the sweep's key, swept values and each metric's final per-seed
    value."""
    rec = results.to_dict(result, digits=DIGITS)
    for k in ("summary", "ranking", "claims"):  # after the rounded sections, as cell files have always had them
        rec[k] = rec.pop(k)
    rec.update(
        {
            "format": FORMAT,
            "key": cell.key,
            "values": cell.values,
            "final": {m: {k: v[-1] for k, v in mc.items()} for m, mc in rec["curves"].items()},
        }
    )
    return rec


def cell_done(path: Path, key: str) -> bool:
    """Whether path holds a finished cell of this version: whole JSON, this format and key, every CELL_KEY.
    A truncated, corrupt, failed or older cell file is not done (it is recomputed)."""
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(rec, dict)
        and "error" not in rec
        and rec.get("format") == FORMAT
        and rec.get("key") == key
        and all(k in rec for k in CELL_KEYS)
    )


def _failure(cell: Cell, exc: Exception) -> dict:
    return {"key": cell.key, "values": cell.values, "error": f"{type(exc).__name__}: {exc}"}


def run_task(task: Task) -> TaskResult:
    """Train a task's cells (batched, or one by one) and return their records; writes no file.

    A group that fails is rerun cell by cell, so one bad cell costs only itself; a cell's user
    error (ValueError, TypeError) or numerical failure is returned as its error, not raised.
    """
    from . import batched
    from .plugins import load_plugins

    load_plugins(task.plugins)  # a spawned or Ray worker registers the driver's plugins (a forked one has them)
    t0 = time.perf_counter()
    out, failed, part = {}, [], task.methods or None
    if task.engine == "batched" and (len(task.cells) > 1 or part):
        try:
            res = batched.run_group([c.config for c in task.cells], methods=part)
            recs = {c.key: compact(r, c) for c, r in zip(task.cells, res, strict=True)}
            return TaskResult(
                {k: json.dumps(r) for k, r in recs.items()},
                [],
                time.perf_counter() - t0,
                {k: _info(r) for k, r in recs.items()},
                task.methods,
            )
        except (ValueError, TypeError, RuntimeError, FloatingPointError):
            pass  # find the failing cell(s): run each on its own below
    infos = {}
    for c in task.cells:
        try:
            rec = compact(batched.run_group([c.config], methods=part)[0] if part else run_study(c.config), c)
            out[c.key], infos[c.key] = json.dumps(rec), _info(rec)
        except (ValueError, TypeError, RuntimeError, FloatingPointError) as exc:
            failed.append(_failure(c, exc))
    return TaskResult(out, failed, time.perf_counter() - t0, infos, task.methods)


def join_parts(texts: list[str], cell: Cell) -> dict:
    """A cell's record (cell file) from its method parts' records (JSON texts): ``results.join_records``,
    and compact's per-method ``final`` joined the same way."""
    recs = [json.loads(t) for t in texts]
    methods = cell.config.methods
    rec = results.join_records(recs, methods)
    rec["final"] = {m: r["final"][m] for m in methods for r in recs if m in r["final"]}
    return rec


def _info(rec: dict) -> dict:
    """What the driver reports of a finished cell (so it need not parse the cell file again)."""
    return {
        "seconds": rec["seconds"],
        "held": sum(bool(c["holds"]) for c in rec["claims"]),
        "claims": len(rec["claims"]),
    }


def _manifest(spec: dict, cells: list[Cell]) -> dict:
    return {
        "format": FORMAT,
        "spec": spec,
        "fields": swept_fields(spec),
        "n_cells": len(cells),
        "cells": {c.key: c.values for c in cells},
    }


def check_folder(out, spec: dict, cells: list[Cell]) -> None:
    """Refuse (ValueError) a sweep folder that holds another sweep: its cells would drop out of the report.

    A folder whose sweep.json cannot be read (truncated, not JSON) is this sweep's when every cell file in it
    is one of this sweep's cells (its manifest is then rewritten); else the refusal says what is wrong."""
    _check_folder(Path(out), _manifest(spec, cells))


def _check_folder(out: Path, man: dict) -> None:
    path = out / "sweep.json"
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
        same = isinstance(old, dict) and old.get("cells") == man["cells"] and old.get("fields") == man["fields"]
    except (OSError, ValueError, RecursionError):
        stray = sorted(p.stem for p in (out / "cells").glob("*.json") if p.stem not in man["cells"])
        if stray:
            raise ValueError(
                f"{str(path)!r} cannot be read (truncated or not JSON) and {str(out / 'cells')!r} holds "
                f"{len(stray)} cell(s) that are not this sweep's (e.g. {stray[0]}.json): use another --out, or "
                "rerun the spec that made them"
            ) from None
        return  # only this sweep's cells (or none): the manifest is rewritten
    if not same:
        raise ValueError(
            f"{str(out)!r} holds a sweep of other cells (its sweep.json differs in cells or swept "
            f"fields); sweeping another spec into it would drop them from its manifest and report: "
            f"use another --out, or rerun that sweep's own spec"
        )


def torch_cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def run_sweep(
    spec: dict,
    out_dir,
    *,
    workers: int = 1,
    shard: tuple[int, int] | None = None,
    progress: bool = False,
    on_cell=None,
    engine: str = "batched",
    executor: str = "local",
    address: str | None = None,
    max_cells: int = 0,
    max_memory: float | None = None,
) -> dict:
    """Run the cells of spec (or of one shard) not yet saved in out_dir; return a summary dict.

    Everything is validated before anything is written. The shard unit is the cell (every n-th cell by
    sorted key, ``shard_cells``), so shards are the same under both engines; a shard's cells are then
    grouped. engine "batched" (default) trains each group of cells that share shapes as one ensemble
    (``batched.run_group``); "per-cell" runs ``run_study`` per cell. executor "local" runs the tasks
    here (workers == 1) or in ``workers`` local processes (``executors``); "ray" as Ray tasks (``address`` joins a
    cluster; none starts a local instance). The driver alone writes cells/<key>.json, atomically, as
    each task returns. ``on_cell(record)`` is called per finished or failed cell. KeyboardInterrupt
    stops the sweep: finished tasks' cells stay saved; those in flight are lost and rerun next time.
    A failed cell is saved as {key, values, error} (the report names it) and retried on a rerun.
    Tasks (``make_tasks``): groups split so that each worker has work and, with ``max_memory`` (GB; None:
    no bound), so that the tasks running at once fit it; a cell that alone does not fit is refused.
    """
    from . import executors

    if int(workers) < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if engine not in ENGINES:
        raise ValueError(f"--engine must be one of {list(ENGINES)}, got {engine!r}")
    if executor not in executors.EXECUTOR_NAMES:
        raise ValueError(f"--executor must be one of {list(executors.EXECUTOR_NAMES)}, got {executor!r}")
    if address and executor != "ray":
        raise ValueError(f"--address {address!r} needs --executor ray")
    if address:
        executors.check_ray_address(address)
    max_bytes = None if max_memory is None else float(max_memory) * 1e9
    cells = expand(spec, max_bytes=max_bytes)  # a cell that alone does not fit is refused here
    mine = shard_cells(cells, *shard) if shard else cells
    out = Path(out_dir)
    man = _manifest(spec, cells)
    _check_folder(out, man)
    todo = [c for c in mine if not cell_done(out / "cells" / f"{c.key}.json", c.key)]
    text = json.dumps(man, indent=1)
    if not (out / "sweep.json").is_file() or (out / "sweep.json").read_text() != text:
        results.atomic_write(out / "sweep.json", text)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    tasks = make_tasks(todo, engine, max_cells, workers, max_bytes)
    t0, ran, failed = time.perf_counter(), [], []
    from tqdm.auto import tqdm

    bar = tqdm(
        total=len(todo),
        unit="cell",
        desc="sweep" + (f" {shard[0]}/{shard[1]}" if shard else ""),
        disable=not progress,
        smoothing=0.1,
    )

    expect: dict[str, int] = {}  # cell key -> the method parts it is trained in (none: a whole task)
    for t in tasks:
        for c in t.cells if t.methods else ():
            expect[c.key] = expect.get(c.key, 0) + 1
    cell_of = {c.key: c for c in todo}
    pending: dict[str, list] = {}  # cell key -> its parts' records so far (JSON text; a failed part: its failure)

    def merged(res: TaskResult) -> TaskResult:
        """A method part's result: the cells whose last part it brings, joined (``join_parts``), or failed with
        the first failing part's error; the others wait in ``pending``."""
        recs, infos, failed = {}, {}, []
        for key, got in [(f["key"], f) for f in res.failed] + list(res.records.items()):
            pending.setdefault(key, []).append(got)
            if len(pending[key]) < expect[key]:
                continue
            parts = pending.pop(key)
            errors = [p for p in parts if isinstance(p, dict)]
            if errors:
                failed.append(errors[0])
                continue
            rec = join_parts(parts, cell_of[key])
            recs[key], infos[key] = json.dumps(rec), _info(rec)
        return TaskResult(recs, failed, res.seconds, infos)

    def done(res: TaskResult) -> None:
        if res.methods:  # a method part: its cells are saved when their last part is in
            res = merged(res)
        for key, text in res.records.items():
            results.atomic_write(out / "cells" / f"{key}.json", text)
            info = {"key": key, **res.infos[key]}
            ran.append(info)
            bar.update(1)
            bar.set_postfix_str(f"{key[:8]} claims held {info['held']}/{info['claims']}")
            if on_cell is not None:
                on_cell(info)
        for f in res.failed:
            results.atomic_write(out / "cells" / f"{f['key']}.json", json.dumps({"format": FORMAT, **f}))
            failed.append(f)
            bar.update(1)
            bar.set_postfix_str(f"{f['key'][:8]} FAILED")
            if on_cell is not None:
                on_cell(f)

    device = mine[0].config.device if mine else "cpu"
    gpus = device.startswith("cuda") or (device == "auto" and torch_cuda_available())
    try:
        if tasks:
            ex = executors.make_executor(executor, workers, address, gpus=gpus)
            for res in ex.map(run_task, tasks):
                done(res)
    finally:
        bar.close()
    return {
        "dir": str(out),
        "cells": len(cells),
        "shard": f"{shard[0]}/{shard[1]}" if shard else None,
        "shard_cells": len(mine),
        "skipped": len(mine) - len(todo),
        "ran": len(ran),
        "failed": failed,
        "cell_seconds": [r["seconds"] for r in ran],
        "seconds": time.perf_counter() - t0,
        "engine": engine,
        "executor": executor,
        "tasks": len(tasks),
    }
