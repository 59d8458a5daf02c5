"""A sweep's units of work: which cells train together, in how many tasks, and in what order.

``make_tasks`` turns the cells still to run into Tasks for the executors (``sweep.run_sweep`` runs them):
one per cell under the "per-cell" engine; under "batched", the groups of cells that share shapes
(``batched.group_configs``), split into chunks (``split_group``) so that every worker has work and the
chunks running at once fit the memory bound, and, where a sweep still has fewer tasks than workers, a
task's methods in parts (``method_parts``) whose records the driver joins (``sweep.join_parts``).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

from . import lakes, safety
from .plugins import plugin_modules
from .study import StudyConfig
from .sweep_spec import Cell

ENGINES = ("batched", "per-cell")


@dataclass(frozen=True)
class Task:
    """One unit of work: cells trained together (a batched group) or one cell (``engine="per-cell"``)."""

    cells: tuple[Cell, ...]
    engine: str = "batched"
    plugins: tuple[str, ...] = ()  # modules a worker imports first (``plugins.load_plugins``: --plugin)
    methods: tuple[str, ...] = ()  # a method part (``make_tasks``): train only these; () trains every method


def method_parts(methods: tuple[str, ...], k: int) -> list[tuple[str, ...]]:
    """A cell's methods in at most k parts of consecutive methods, sizes as equal as they go; none (an empty
    list) when "truly" is among them (every other method's curves need its policy, so it cannot train apart)."""
    from .batched import TRULY

    if len(methods) < 2 or k < 2 or TRULY in methods:
        return []
    k = min(k, len(methods))
    cuts = [round(j * len(methods) / k) for j in range(k + 1)]
    return [tuple(methods[a:b]) for a, b in itertools.pairwise(cuts)]


TASKS_PER_WORKER = 2  # the batched engine splits its largest groups until there are this many tasks per worker
# ... but never into chunks of fewer cell members (cells x seeds) than this: below a few hundred members a batched
# run's time is mostly its per-step work, which a chunk repeats whole (two-route map, 20 seeds, 150 steps, one
# core: 1 cell 0.47 s, 9 cells 1.33 s, 18 cells 1.42 s), so a split adds a run without shortening either
MIN_SPLIT_MEMBERS = 512


def make_tasks(
    cells: list[Cell], engine: str, max_cells: int = 0, workers: int = 1, max_bytes: float | None = None
) -> list[Task]:
    """The units of work: under "per-cell", one task per cell; under "batched", the groups of cells that share
    shapes (``batched.group_configs``), each split into chunks (``split_group``: cut between cells of
    different starts where it can, since a run never spans two starts) so that

    * no chunk holds more than ``max_cells`` cells (0: no such bound);
    * no chunk's estimated memory (``safety.config_bytes`` with all its cells' members at once), times the
      tasks that run at once, exceeds ``max_bytes`` (None: no bound);
    * there are at least ``TASKS_PER_WORKER`` x ``workers`` tasks where the cells allow it, the largest
      groups split first: every worker has work, and an interrupt loses only the tasks in flight, not a
      whole group's finished members; a group is split so only while every chunk keeps at least
      ``MIN_SPLIT_MEMBERS`` cell members (a smaller chunk costs about what the whole group costs);
    * where there are still fewer tasks than workers, the largest tasks train their methods in parts
      (``method_parts``: consecutive methods, one task each; the driver merges a cell's parts), so that a
      small sweep of one group uses every worker: a part costs about its share of the per-step work, and
      rebuilds only the start (theta_0 and the theta* fit).

    Tasks are ordered largest first (cells x states x steps: longest processing time first), so that workers
    finish together (the default sweep's 2000-step sampler cells start first, not last)."""
    from . import batched

    if engine not in ENGINES:
        raise ValueError(f"--engine must be one of {list(ENGINES)}, got {engine!r}")
    if engine == "per-cell":
        return [Task((c,), engine, plugin_modules()) for c in cells]
    groups = [[cells[i] for i in idx] for idx in batched.group_configs([c.config for c in cells])]
    at_once = max(1, int(workers))
    chunks: list[int] = []  # the number of chunks of each group
    for g in groups:
        k = 1 if max_cells < 1 else -(-len(g) // max_cells)
        while k < len(g) and max_bytes is not None and at_once * _chunks_bytes(split_group(g, k)) > max_bytes:
            k += 1
        chunks.append(k)
    want = TASKS_PER_WORKER * at_once
    while sum(chunks) < want:
        splittable = [
            i
            for i, g in enumerate(groups)
            if chunks[i] < len(g) and sum(c.config.seeds for c in g) >= MIN_SPLIT_MEMBERS * (chunks[i] + 1)
        ]
        if not splittable:
            break
        largest = max(splittable, key=lambda i: -(-len(groups[i]) // chunks[i]) * _n_states(groups[i][0].config))
        chunks[largest] += 1
    tasks = [
        Task(part, engine, plugin_modules()) for g, k in zip(groups, chunks, strict=True) for part in split_group(g, k)
    ]
    tasks = sorted(tasks, key=_task_cost, reverse=True)
    if len(tasks) < at_once:  # workers would sit idle: the largest tasks' methods train in parts, side by side
        split, idle = [], at_once - len(tasks)
        for t in tasks:
            parts = method_parts(t.cells[0].config.methods, idle + 1) if idle else []
            split += [dataclasses.replace(t, methods=p) for p in parts] or [t]
            idle -= max(len(parts) - 1, 0)
        tasks = split
    return tasks


def _task_cost(task: Task) -> int:
    """A task's rough cost for ordering: cells x states x steps (method parts of a task count as it does)."""
    return len(task.cells) * _n_states(task.cells[0].config) * task.cells[0].config.steps


def split_group(group: list[Cell], k: int) -> list[tuple[Cell, ...]]:
    """A group's cells in k chunks of sizes as equal as allowed. Cells are ordered by their start (theta_0 and
    theta*: ``batched.START_FIELDS``), in order of first appearance; with at least k starts the cuts fall
    between starts (nearest the equal cuts), so that no run is trained twice (a method's run never spans
    two starts, ``batched.run_key``); with fewer, the chunks are equal."""
    first: dict[tuple, int] = {}
    for c in group:
        first.setdefault(_start(c), len(first))
    cells = sorted(group, key=lambda c: first[_start(c)])
    n = len(cells)
    edges = [i for i in range(1, n) if _start(cells[i]) != _start(cells[i - 1])]
    if len(edges) >= k - 1:
        cuts: list[int] = []
        for j in range(1, k):
            left = [e for e in edges if not cuts or e > cuts[-1]]
            room = left[: len(left) - (k - 1 - j)]  # leave a cut for each chunk still to come
            cuts.append(min(room, key=lambda e: abs(e - j * n / k)))
    else:
        cuts = [round(j * n / k) for j in range(1, k)]
    return [tuple(cells[a:b]) for a, b in itertools.pairwise([0, *cuts, n])]


def _start(cell: Cell) -> tuple:
    from . import batched

    return batched.start_key(cell.config)


def _chunks_bytes(parts: list[tuple[Cell, ...]]) -> float:
    """The estimated memory of the largest chunk (all its cells' members at once)."""
    need = [safety.config_bytes(p[0].config, members=sum(c.config.seeds for c in p)) for p in parts]
    return max(float(x) for x in need if x is not None) if any(x is not None for x in need) else 0.0


def _n_states(config: StudyConfig) -> int:
    """The number of states of a config's MDP (for ordering tasks by cost)."""
    from .mdps import env_source

    if env_source(config.env).name != "lake":
        return safety.config_states(config) or 0
    desc = config.map if isinstance(config.map, str) else list(config.map)
    return len(lakes.make_lake(desc, slippery=False).terminal)
