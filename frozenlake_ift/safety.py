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
    config_bytes(config)          the peak memory of running a config's study (``study_bytes`` and the rest)
    config_states(config)         the number of states of a config's MDP, from its spec where it can

Input files (reading JSON and checking results / sweep layouts) are ``layouts``'s; this module
re-exports those names.

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
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .layouts import LayoutError, check_results_layout, check_sweep_layout, loads_strict, read_json_file  # noqa: F401  (re-exported)

TMP_RE = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$")  # results.atomic_write: .<name>.<pid>.<random>.tmp
STAGE_RE = re.compile(r"^\.staging-(\d+)-[^/]+$")
JOURNAL_RE = re.compile(r"^\.commit-(\d+)\.json$")
RUN_LIST = ".run-files.json"  # the names of the files the last run committed into a folder
MAX_JOURNAL_BYTES = 1 << 20  # a commit journal names a run's files: far smaller
MAX_JOURNAL_NAMES = 10_000
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
    probe = path
    while not _exists(probe):  # the nearest existing folder (a name too long to exist counts as missing)
        if _exists_link(probe):
            raise ValueError(f"{what} {str(path)!r}: {str(probe)!r} is a broken symbolic link")
        probe = probe.parent
    try:
        name_max = os.pathconf(probe, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    for part in [path, *path.parents]:
        if probe in part.parents and len(os.fsencode(part.name)) > name_max:
            raise ValueError(
                f"{what}: the name {part.name[:40]!r}... has {len(os.fsencode(part.name))} bytes, more than the "
                f"{name_max} this file system allows; give a shorter folder name"
            )
    if probe == path and not path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is an existing file, not a folder; give a folder path")
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


def _exists(path: Path, follow: bool = True) -> bool:
    try:
        os.stat(path, follow_symlinks=follow)
    except (OSError, ValueError):  # missing, a name too long, a NUL byte
        return False
    return True


def _exists_link(path: Path) -> bool:
    return _exists(path, follow=False)


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


def plain_name(name) -> bool:
    """Whether ``name`` is a file name a commit may move in or remove: a single path component (no
    separator, not "." or ".."), not hidden (``RUN_LIST`` aside), at most 255 characters."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= 255
        and name not in (".", "..")
        and not any(c in name for c in "/\\\x00")
        and (not name.startswith(".") or name == RUN_LIST)
    )


@dataclass(frozen=True)
class Journal:
    """A commit's plan (``.commit-<pid>.json``): the staging folder (a plain sub-folder of the run folder),
    the names to move from it into the folder, the names of the previous run's files to remove."""

    stage: Path
    files: tuple[str, ...]
    remove: tuple[str, ...]


def read_journal(folder: Path, journal: Path) -> Journal | None:
    """The plan of a commit journal in ``folder``, or None when it is not one this package writes.

    Refused: a link or a file over ``MAX_JOURNAL_BYTES``; not strict JSON; keys other than stage, files,
    remove; a stage that is not this pid's ``.staging-<pid>-*`` folder (a real folder, not a link)
    directly inside ``folder``; file names that are not ``plain_name``s (no path can leave the folder).
    """
    m = JOURNAL_RE.match(journal.name)
    try:
        st = journal.lstat()
        if not m or not stat.S_ISREG(st.st_mode) or st.st_size > MAX_JOURNAL_BYTES:
            return None
        plan = loads_strict(journal.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(plan, dict) or set(plan) != {"stage", "files", "remove"}:
        return None
    stage, files, remove = plan["stage"], plan["files"], plan["remove"]
    sm = STAGE_RE.match(stage) if isinstance(stage, str) and len(stage) <= 255 else None
    if sm is None or any(c in stage for c in "\\\x00") or sm.group(1) != m.group(1):
        return None
    try:
        if not stat.S_ISDIR((folder / stage).lstat().st_mode):
            return None
    except OSError:
        return None
    names = (files, remove)
    if not all(isinstance(x, list) and len(x) <= MAX_JOURNAL_NAMES and all(map(plain_name, x)) for x in names):
        return None
    return Journal(folder / stage, tuple(files), tuple(remove))


def _finish(folder: Path, journal: Path) -> None:
    """Roll a started commit forward: move in what is still staged, remove the old run's files. A journal
    that ``read_journal`` refuses is removed without being applied."""
    plan = read_journal(folder, journal)
    if plan is not None:
        _apply(folder, plan.stage, list(plan.files), list(plan.remove))
    with contextlib.suppress(FileNotFoundError):
        journal.unlink()
    if plan is not None:
        shutil.rmtree(plan.stage, ignore_errors=True)


def _apply(folder: Path, stage: Path, moves: list[str], removes: list[str]) -> None:
    """Remove the plain files (or links) ``removes`` of ``folder``, then move the plain files ``moves`` of
    ``stage`` into it; a name that is a folder on either side is left alone."""
    for name in removes:
        target = folder / name
        if target.is_symlink() or target.is_file():
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
    for name in moves:
        src, dst = stage / name, folder / name
        try:
            if not stat.S_ISREG(src.lstat().st_mode):
                continue
        except FileNotFoundError:  # already moved in by the killed run
            continue
        if dst.is_dir() and not dst.is_symlink():
            continue
        os.replace(src, dst)
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
                before |= {n for n in listed if plain_name(n) and n != RUN_LIST}
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
    """Memory a study's arrays take at their peak, estimated: the dense (E, S, S) float64 state matrices
    of the exact metrics (T_pi, its non-terminal block, I - gamma T_pi and its LU factors: about 6
    copies), about 6 (S, S)-sized copies of the transitions (the (S, A, S) tensors in float64 and the
    config's dtype, the one-hot table, pi*'s T) and the (E, S, H) first layer (float64 Adam state: about
    4 copies). Fitted to peaks measured on 32x32 to 64x64 maps (``STUDY_OVERHEAD_BYTES`` apart); meant
    to err on the high side."""
    S, E = int(n_states), int(seeds)
    return 8 * (6 * E * S * S + (n_actions + 2) * S * S + 4 * E * S * (int(hidden) + n_actions))


STUDY_OVERHEAD_BYTES = 600_000_000  # the interpreter, torch and the libraries a study loads (0.42-0.55 GB measured)


def config_bytes(config, members: int | None = None) -> int | None:
    """The peak memory (resident, bytes) of running ``config``'s study with ``members`` ensemble members at
    once (default: its seeds; a batched sweep task trains more): ``study_bytes``, the curves and statistics,
    the sampled trajectories and ``STUDY_OVERHEAD_BYTES``. None when the MDP's size is unknown."""
    S = config_states(config)
    if S is None:
        return None
    E = int(config.seeds if members is None else members)
    n_evals = config.steps // config.eval_every + 2
    curves = n_evals * 16 * len(config.methods)  # curves and statistics, per member
    paths = 4 * max(config.pairs, config.ppo_episodes, config.grpo_group) * (config.horizon + 1)
    return study_bytes(S, E, config.hidden) + 8 * E * (curves + paths) + STUDY_OVERHEAD_BYTES


def config_states(config) -> int | None:
    """The number of states of a config's MDP: a lake's from its map spec (``map_states``), another
    source's from its spec where that tells it (bandit, chain, tokens), else from building its model
    (gym, file: small, and built before any study anyway); None when unknown."""
    from .mdps import check_env, env_source, make_env

    if env_source(config.env).name == "lake":
        return map_states(config.map)
    n = check_env(config.env)
    return n if n is not None else make_env(config.env, config).n_states


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
