"""Faults and bad input (issue 15): output places, orphan cleanup, whole-run commits, strict JSON.

    check_out_dir(path, what)     refuse an output folder that cannot be written, BEFORE computing
    clean_orphans(folder)         remove temporary files and staging folders of killed runs; finish
                                  a commit a killed run had started (``.commit-*.json`` journal)
    staged_run(out, names)        a context manager: write a run's files into a hidden staging
                                  folder inside ``out``, then move them in (``commit``), so that a
                                  folder never mixes the files of two runs
    strict_json(obj)              JSON text without NaN / Infinity tokens (non-finite -> null) and
                                  the dotted paths of the values it replaced
    study_bytes(S, E, H)          the memory a study of S states and E seeds needs (an estimate)

A run's files are staged in ``OUT/.staging-<pid>-<random>/``. When all of them are written, a
journal ``OUT/.commit-<pid>.json`` naming the files to move in and the previous run's files to
remove is written atomically, then the moves and removals happen and the journal goes. A run
killed before the journal leaves only the staging folder (the previous run's files stay whole);
one killed after it is finished by the next run's ``clean_orphans``. Temporary names carry the
writer's pid, so the cleanup never touches the files of a process that is still running.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

TMP_RE = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$")  # results.atomic_write: .<name>.<pid>.<random>.tmp
STAGE_RE = re.compile(r"^\.staging-(\d+)-[^/]+$")
JOURNAL_RE = re.compile(r"^\.commit-(\d+)\.json$")
RUN_LIST = ".run-files.json"  # the names of the files the last run committed into a folder
DEFAULT_MAX_STUDY_GB = 8.0  # reproduce refuses studies estimated above this unless --force / --max-memory


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def check_out_dir(path: str | os.PathLike, what: str = "--out") -> Path:
    """The output folder ``path`` if it can be written, else ValueError naming what is wrong.

    Creates nothing: a probe file is written into the nearest existing folder and removed again.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is an existing file, not a folder; give a folder path")
    probe = path
    while not probe.exists():
        if probe.is_symlink():
            raise ValueError(f"{what} {str(path)!r}: {str(probe)!r} is a broken symbolic link")
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"{what} {str(path)!r} lies under {str(probe)!r}, which is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=f".probe.{os.getpid()}.", suffix=".tmp")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise ValueError(
            f"{what} {str(path)!r} cannot be written ({str(probe)!r}: {exc.strerror or exc}); give a writable folder"
        ) from None
    return path


def clean_orphans(folder: str | os.PathLike) -> list[str]:
    """Finish or remove what killed runs left in ``folder``; return the names removed or finished."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    done = []
    for entry in sorted(folder.iterdir()):
        m = JOURNAL_RE.match(entry.name)
        if m and not _alive(int(m.group(1))):
            _finish(folder, entry)
            done.append(entry.name)
    for entry in sorted(folder.iterdir()):
        m = TMP_RE.match(entry.name) or STAGE_RE.match(entry.name)
        if m and not _alive(int(m.group(1))):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
            done.append(entry.name)
    return done


def _finish(folder: Path, journal: Path) -> None:
    """Roll a started commit forward: move in what is still staged, remove the old run's files."""
    try:
        plan = json.loads(journal.read_text())
        stage, moves, removes = folder / plan["stage"], list(plan["files"]), list(plan["remove"])
    except (ValueError, KeyError, TypeError, OSError):  # a journal is written atomically; be safe anyway
        journal.unlink()
        return
    _apply(folder, stage, moves, removes)
    journal.unlink()
    shutil.rmtree(stage, ignore_errors=True)


def _apply(folder: Path, stage: Path, moves: list[str], removes: list[str]) -> None:
    for name in removes:
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
    for name in moves:
        if (stage / name).exists():
            os.replace(stage / name, folder / name)
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Stage:
    """A hidden staging folder inside a run folder (``staged_run``)."""

    def __init__(self, out: Path):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(dir=out, prefix=f".staging-{os.getpid()}-"))

    def commit(self, run_files: tuple[str, ...] = (), replace: bool = True) -> list[Path]:
        """Move every staged file into the run folder; return the final paths.

        ``replace``: the files the previous run wrote (listed in ``RUN_LIST``, else those named in
        ``run_files``) that this run did not write are removed, so the folder holds one run's files.
        """
        moves = sorted(p.name for p in self.path.iterdir() if p.is_file())
        removes = []
        if replace:
            before = set(run_files)
            with contextlib.suppress(OSError, ValueError, TypeError):
                listed = json.loads((self.out / RUN_LIST).read_text())
                before |= {n for n in listed if isinstance(n, str) and "/" not in n and not n.startswith(".")}
            removes = sorted(n for n in before if n not in moves and (self.out / n).is_file())
            (self.path / RUN_LIST).write_text(json.dumps(moves))
            moves.append(RUN_LIST)
        from .results import atomic_write  # results imports nothing of this module's users

        journal = self.out / f".commit-{os.getpid()}.json"
        atomic_write(journal, json.dumps({"stage": self.path.name, "files": moves, "remove": removes}))
        _apply(self.out, self.path, moves, removes)
        journal.unlink()
        shutil.rmtree(self.path, ignore_errors=True)
        return [self.out / n for n in moves if n != RUN_LIST]

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


@contextlib.contextmanager
def staged_run(out: str | os.PathLike):
    """``with staged_run(out) as stage: write into stage.path; stage.commit(run_files)``.

    Anything left uncommitted (an error, Ctrl-C) is removed on the way out; the folder keeps the
    previous run's files.
    """
    stage = Stage(Path(out))
    try:
        yield stage
    finally:
        stage.discard()


def strict_json(obj, **dumps_kw) -> tuple[str, list[str]]:
    """``json.dumps`` with ``allow_nan=False``: each non-finite float becomes null. Returns the text
    and the dotted paths (e.g. ``curves.dpo.param_mse``) of the lists or values that held one."""
    where: list[str] = []

    def clean(x, path):
        if isinstance(x, float) and not math.isfinite(x):
            if path not in where:
                where.append(path)
            return None
        if isinstance(x, dict):
            return {k: clean(v, f"{path}.{k}" if path else str(k)) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v, path) for v in x]
        return x

    return json.dumps(clean(obj, ""), allow_nan=False, **dumps_kw), where


def study_bytes(n_states: int, seeds: int, hidden: int, n_actions: int = 4) -> int:
    """Peak memory of a study, estimated: the dense (E, S, S) float64 state matrices of the exact
    metrics (T_pi, I - gamma T_pi and its LU factors, the fitted theta*'s T_pi: about 5 copies),
    the (S, A, S) transition tensor, the (S, S) one-hot table and the (E, S, H) first layer (float64
    Adam state: about 4 copies). A model, not a measurement: it is meant to err on the high side."""
    S, E = int(n_states), int(seeds)
    return 8 * (5 * E * S * S + n_actions * S * S + S * S + 4 * E * S * (int(hidden) + n_actions))


def map_states(spec) -> int | None:
    """The number of states of a study map, read from its spec without building it (None: unknown)."""
    if isinstance(spec, (list, tuple)):
        return len(spec) * max((len(r) for r in spec), default=0)
    if not isinstance(spec, str):
        return None
    if spec.startswith("random:"):
        try:
            size = int(spec.split(":")[1])
        except (ValueError, IndexError):
            return None
        return size * size if size > 0 else None
    rows = spec.split(",")
    if len(rows) > 1 or (spec and set(spec) <= set("SFHG")):
        return len(rows) * max(len(r) for r in rows)
    return {"4x4": 16, "8x8": 64}.get(spec, 64)  # two-route and other named maps are small


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


# ------------------------------------------------------------------ input files
def read_json_file(path: Path):
    """Parse a JSON file; ValueError naming the file if it cannot be read, is binary or is not JSON."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{str(path)!r} cannot be read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
        if "\x00" in text:
            raise UnicodeDecodeError("utf-8", raw, 0, 1, "NUL byte")
    except UnicodeDecodeError:
        raise ValueError(f"{str(path)!r} is not a text file (binary data); expected JSON") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ValueError(f"{str(path)!r} is nested too deeply to be a frozenlake-ift file") from None


class LayoutError(ValueError):
    pass


def _num(x) -> bool:
    return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool))


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise LayoutError(what)


def _mapping(x, what: str, empty_ok: bool = False) -> dict:
    _need(
        isinstance(x, dict) and (empty_ok or bool(x)),
        f"{what} must be a{'' if empty_ok else ' non-empty'} mapping, got {_kind(x)}",
    )
    return x


def _kind(x) -> str:
    if isinstance(x, (list, dict, str)):
        return f"{type(x).__name__} of length {len(x)}" if x else f"empty {type(x).__name__}"
    return "null" if x is None else type(x).__name__


def _matrix(x, what: str, rows: int | None = None, cols: int | None = None) -> int:
    """A rectangular list of lists of numbers (or null); returns the row length."""
    _need(isinstance(x, list) and bool(x), f"{what} must be a non-empty list of rows, got {_kind(x)}")
    _need(rows is None or len(x) == rows, f"{what} has {len(x)} rows, expected {rows}")
    width = cols
    for r in x:
        _need(isinstance(r, list) and bool(r), f"{what} must hold lists of numbers, got a {_kind(r)}")
        width = len(r) if width is None else width
        _need(len(r) == width, f"{what} has rows of {len(r)} values, expected {width}")
        _need(all(_num(v) for v in r), f"{what} holds a value that is not a number")
    assert width is not None  # x is a non-empty list of rows, so the loop set it
    return width


def check_results_layout(res, where: str) -> None:
    """Refuse (ValueError naming ``where``) a results.json whose layout plots cannot draw."""
    try:
        _results_layout(res)
    except LayoutError as exc:
        raise ValueError(f"{where!r} is not a frozenlake-ift results file: {exc}") from None


def _results_layout(res) -> None:
    _mapping(res, "the file's top level")
    missing = [k for k in ("config", "steps", "curves", "summary", "map") if k not in res]
    _need(not missing, f"missing keys {missing} (another version's or another tool's file?)")
    cfg = _mapping(res["config"], "'config'")
    for k in ("gamma", "temperature"):
        _need(k not in cfg or (_num(cfg[k]) and cfg[k] is not None), f"'config.{k}' must be a number")
    steps = res["steps"]
    _need(
        isinstance(steps, list) and bool(steps) and all(_num(s) and s is not None for s in steps),
        f"'steps' must be a non-empty list of numbers, got {_kind(steps)}",
    )
    n, seeds = len(steps), None
    for m, mc in _mapping(res["curves"], "'curves'").items():
        for k, v in _mapping(mc, f"'curves.{m}'").items():
            _matrix(v, f"'curves.{m}.{k}'", rows=n, cols=seeds)
            seeds = len(v[0])
    for m, ms in _mapping(res["summary"], "'summary'", empty_ok=True).items():
        for k, s in _mapping(ms, f"'summary.{m}'", empty_ok=True).items():
            _need(
                isinstance(s, dict) and all(_num(v) or (isinstance(v, list) and all(map(_num, v))) for v in s.values()),
                f"'summary.{m}.{k}' must map statistics to numbers (or lists of numbers)",
            )
    mp = _mapping(res["map"], "'map'")
    desc: Any = mp.get("desc")  # unchecked JSON until the _need calls below
    _need(
        isinstance(desc, list) and bool(desc) and all(isinstance(r, str) and r for r in desc),
        f"'map.desc' must be a non-empty list of row strings, got {_kind(desc)}",
    )
    _need(
        len({len(r) for r in desc}) == 1 and all(set(r) <= set("SFHG") for r in desc),
        "'map.desc' rows must have equal lengths and use only the letters S, F, H, G",
    )
    S = len(desc) * len(desc[0])
    _matrix(mp.get("pi_star"), "'map.pi_star'", rows=S)
    if mp.get("terminal") is not None:
        t = mp["terminal"]
        _need(
            isinstance(t, list) and len(t) == S and all(_num(v) and v is not None for v in t),
            f"'map.terminal' must be a list of {S} numbers, got {_kind(t)}",
        )
    for key in ("chosen", "rejected"):
        if key not in mp:
            continue
        route = mp[key]
        _mapping(route, f"'map.{key}'", empty_ok=True)
        for part in ("states", "actions"):
            v = route.get(part, [])
            _need(
                isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < S for i in v),
                f"'map.{key}.{part}' must be a list of integers in [0, {S})",
            )
    for key in ("final_occupancy", "explored"):
        for m, v in _mapping(res.get(key) or {}, f"'{key}'", empty_ok=True).items():
            _matrix(v, f"'{key}.{m}'", rows=seeds, cols=S)
    star = _mapping(res.get("fit", {}), "'fit'", empty_ok=True).get("star_success")
    _need(
        star is None or (isinstance(star, list) and all(_num(v) for v in star)),
        "'fit.star_success' must be a list of numbers",
    )


def check_sweep_layout(obj, where: str, kind: str, fields: tuple[str, ...] = ()) -> None:
    """Refuse (ValueError naming ``where``) a sweep manifest (kind "manifest") or cell record
    (kind "cell") that the report cannot read. ``fields``: the StudyConfig field names."""
    try:
        (_manifest_layout if kind == "manifest" else _cell_layout)(obj, fields)
    except LayoutError as exc:
        what = "sweep.json manifest" if kind == "manifest" else "sweep cell"
        raise ValueError(f"{where!r} is not a frozenlake-ift {what}: {exc}") from None


def _manifest_layout(man, fields) -> None:
    _mapping(man, "the file's top level")
    f = man.get("fields")
    _need(
        isinstance(f, list) and all(isinstance(x, str) for x in f), f"'fields' must be a list of names, got {_kind(f)}"
    )
    for key, values in _mapping(man.get("cells"), "'cells'", empty_ok=True).items():
        _mapping(values, f"'cells.{key}'", empty_ok=True)


def _cell_layout(rec, fields) -> None:
    _mapping(rec, "the file's top level")
    if isinstance(rec.get("error"), str):  # a failed cell's record: its key and error are enough
        _need(isinstance(rec.get("key"), str), "'key' must be a string")
        return
    missing = [k for k in ("key", "values", "config", "summary", "ranking", "claims", "seconds") if k not in rec]
    _need(
        not missing, f"missing keys {missing} (truncated, or another version's layout; rerun the sweep to recompute it)"
    )
    _need(isinstance(rec["key"], str), "'key' must be a string")
    _mapping(rec["values"], "'values'", empty_ok=True)
    unknown = sorted(set(_mapping(rec["config"], "'config'")) - set(fields)) if fields else []
    _need(not unknown, f"'config' has fields this version does not know: {unknown}")
    _need(_num(rec["seconds"]) and rec["seconds"] is not None, "'seconds' must be a number")
    summary = _mapping(rec["summary"], "'summary'", empty_ok=True)
    for m, ms in summary.items():
        for k, s in _mapping(ms, f"'summary.{m}'", empty_ok=True).items():
            _need(
                isinstance(s, dict) and all(_num(s.get(x, 0)) for x in ("final_mean", "final_ci")),
                f"'summary.{m}.{k}' must hold final_mean and final_ci numbers",
            )
    for metric, order in _mapping(rec["ranking"], "'ranking'", empty_ok=True).items():
        _need(
            isinstance(order, list) and all(isinstance(m, str) and metric in summary.get(m, {}) for m in order),
            f"'ranking.{metric}' must list methods whose summary has {metric!r}",
        )
    claims = rec["claims"]
    _need(
        isinstance(claims, list)
        and all(
            isinstance(c, dict)
            and isinstance(c.get("claim"), str)
            and isinstance(c.get("metric"), str)
            and isinstance(c.get("holds"), bool)
            for c in claims
        ),
        "'claims' must be a list of {claim, metric, holds} records",
    )
