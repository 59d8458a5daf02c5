"""A sweep's units of work (``sweep_tasks``): groups split into chunks for the workers and the memory bound,
the longest tasks first, and a lone group's methods in parts."""

from frozenlake_ift import safety, sweep, sweep_tasks

TINY = dict(seeds=2, steps=4, eval_every=2, fit_steps=20, device="cpu")


def test_groups_are_split_so_workers_have_work_and_memory_fits(monkeypatch):
    cells = sweep.expand(sweep.make_spec({"grid": {"lam": [0.0, 0.1, 0.2, 0.3]}, "fixed": TINY}), check_maps=False)
    members = sum(c.config.seeds for c in cells)
    assert members < sweep_tasks.MIN_SPLIT_MEMBERS  # a small group stays whole: a chunk would cost what the group costs
    assert [len(t.cells) for t in sweep_tasks.make_tasks(cells, "batched")] == [4]
    halves = [("sft", "ift"), ("dpo", "orpo")]  # two workers, one group: its methods train in two parts instead
    tasks = sweep_tasks.make_tasks(cells, "batched", workers=2)
    assert [(len(t.cells), t.methods) for t in tasks] == [(4, h) for h in halves]
    monkeypatch.setattr(sweep_tasks, "MIN_SPLIT_MEMBERS", members // 4)  # chunks of one cell are now big enough
    assert [len(t.cells) for t in sweep_tasks.make_tasks(cells, "batched")] == [2, 2]  # two tasks for one worker
    assert sorted(len(t.cells) for t in sweep_tasks.make_tasks(cells, "batched", workers=2)) == [1, 1, 1, 1]
    need = safety.config_bytes(cells[0].config, members=2 * TINY["seeds"])
    tasks = sweep_tasks.make_tasks(cells, "batched", workers=1, max_bytes=need)  # two cells' members at most
    assert max(len(t.cells) for t in tasks) <= 2
    assert sum(len(t.cells) for t in tasks) == 4
    grid = {"lam": [0.0, 0.1], "base": ["random", "uniform"]}  # base varies fastest: starts interleave
    cells = sweep.expand(sweep.make_spec({"grid": grid, "fixed": TINY}), check_maps=False)
    parts = sweep_tasks.split_group(cells, 2)  # cut between the two starts: no run is trained in both chunks
    assert [sorted({c.config.base for c in p}) for p in parts] == [["random"], ["uniform"]]


def test_tasks_start_with_the_longest():
    """Longest processing time first: the tasks are ordered by cells x states x steps, so a long group starts
    first instead of running alone at the end."""
    fixed = {k: v for k, v in TINY.items() if k != "steps"}
    spec = sweep.make_spec({"grid": {"steps": [2, 6], "lam": [0.0, 0.1, 0.2]}, "fixed": fixed})
    tasks = sweep_tasks.make_tasks(sweep.expand(spec, check_maps=False), "batched")
    assert [t.cells[0].config.steps for t in tasks] == [6, 2]
    grid = {"steps": [6], "map": ["4x4", "8x8"]}  # more states, more work per step
    cells = sweep.expand(sweep.make_spec({"grid": grid, "fixed": fixed}), check_maps=False)
    tasks = sweep_tasks.make_tasks(cells, "batched")
    assert [t.cells[0].config.map for t in tasks] == ["8x8", "4x4"]


def test_method_parts_are_consecutive_and_never_split_off_truly():
    assert sweep_tasks.method_parts(("sft", "ift", "dpo", "orpo"), 2) == [("sft", "ift"), ("dpo", "orpo")]
    assert sweep_tasks.method_parts(("sft", "ift", "dpo"), 5) == [("sft",), ("ift",), ("dpo",)]
    assert sweep_tasks.method_parts(("truly", "sft"), 2) == [] == sweep_tasks.method_parts(("sft",), 2)
