"""The phenomena's machinery: the scenario records, the derived quantities, the registry, running and judging.

The package's docstring (``frozenlake_ift.phenomena``) says what a scenario is; the built-in scenarios are
data, in ``phenomena.builtin``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from .. import claims as claims_mod
from .. import stats
from ..config import StudyConfig
from ..metric_table import METRICS

AT = ("final", "start", "change")
OPS = ("<", ">")
BUDGETS = ("full", "small")


# ------------------------------------------------------------------------------------------ records
@dataclass(frozen=True)
class Budget:
    """How long a scenario trains: seeds (ensemble members), optimiser steps and the evaluation interval
    (0: every ``steps // 30`` steps)."""

    seeds: int
    steps: int
    eval_every: int = 0

    def fields(self) -> dict:
        every = self.eval_every or max(1, self.steps // 30)
        return {"seeds": self.seeds, "steps": self.steps, "eval_every": every}


@dataclass(frozen=True)
class Run:
    """One study of a scenario: a label and the StudyConfig fields it sets (methods included); the budget
    sets seeds, steps and eval_every unless the run sets them itself."""

    label: str
    fields: Mapping[str, object]


@dataclass(frozen=True)
class Term:
    """A quantity of one method in one run, per seed: a metric, a loss statistic or a ``QUANTITIES`` name,
    read at ``at`` ("final", "start" or "change" = final - start)."""

    run: str
    method: str
    quantity: str
    at: str = "final"

    def label(self) -> str:
        what = {"final": "", "start": " at step 0", "change": " change"}[self.at]
        return f"{self.method.upper()} [{self.run}] {self.quantity}{what}"


@dataclass(frozen=True)
class Expectation:
    """What the source says happens: ``left op right`` with op "<" or ">", right a Term or a number."""

    text: str
    left: Term
    op: str
    right: Term | float


@dataclass(frozen=True)
class Scenario:
    """A phenomenon as a runnable, judged study (see the module docstring).

    claims: names of ``claims.named_claims`` judged on run ``claims_run`` (the paper's own sentences).
    curves: (method, metric or statistic) of the first run drawn over steps in the figure (run, method, name).
    """

    name: str
    title: str
    citation: str
    story: str
    runs: tuple[Run, ...]
    expectations: tuple[Expectation, ...] = ()
    claims: tuple[str, ...] = ()
    claims_run: str = ""
    curves: tuple[tuple[str, str, str], ...] = ()
    full: Budget = Budget(20, 300)
    small: Budget = Budget(4, 100)

    def __post_init__(self) -> None:
        labels = [r.label for r in self.runs]
        if not self.runs or len(set(labels)) != len(labels):
            raise ValueError(f"scenario {self.name!r} needs at least one run and distinct run labels, got {labels}")
        if not (self.expectations or self.claims):
            raise ValueError(f"scenario {self.name!r} states no expectation and no claim")
        for e in self.expectations:
            if e.op not in OPS:
                raise ValueError(f"scenario {self.name!r}: op must be one of {list(OPS)}, got {e.op!r}")
            for t in (e.left, e.right):
                if isinstance(t, Term):
                    _check_term(self, t)
                elif not (isinstance(t, (int, float)) and math.isfinite(t)):
                    raise ValueError(f"scenario {self.name!r}: the right side must be a Term or a finite number")
        for c in self.claims:
            claims_mod.get_claim(c)
        if self.claims and self.claims_run not in labels:
            raise ValueError(f"scenario {self.name!r}: claims_run must be one of its runs {labels}")
        for run, method, _ in self.curves:
            _check_term(self, Term(run, method, "loss"))

    def run(self, label: str) -> Run:
        return next(r for r in self.runs if r.label == label)

    def budget(self, name: str) -> Budget:
        if name not in BUDGETS:
            raise ValueError(f"budget must be one of {list(BUDGETS)}, got {name!r}")
        return self.full if name == "full" else self.small

    def configs(self, budget: Budget) -> dict[str, StudyConfig]:
        """Each run's StudyConfig under ``budget`` (a run's own seeds / steps / eval_every win)."""
        return {r.label: StudyConfig(**{**budget.fields(), **dict(r.fields)}) for r in self.runs}


def _check_term(scenario: Scenario, term: Term) -> None:
    labels = [r.label for r in scenario.runs]
    if term.run not in labels:
        raise ValueError(f"scenario {scenario.name!r}: run {term.run!r} is not one of {labels}")
    methods = scenario.run(term.run).fields.get("methods", ())
    if term.method not in tuple(methods):  # type: ignore[arg-type]
        raise ValueError(f"scenario {scenario.name!r}: run {term.run!r} does not train {term.method!r}")
    if term.at not in AT:
        raise ValueError(f"scenario {scenario.name!r}: at must be one of {list(AT)}, got {term.at!r}")


# ------------------------------------------------------------------------------ derived quantities
@dataclass(frozen=True)
class Quantity:
    """A per-seed quantity of a trained policy beyond the metrics: ``fn(result, pi) -> (E,)`` where pi is the
    policy (E, S, A) it is read on (theta_0's for "start", the method's final one for "final")."""

    name: str
    description: str
    fn: Callable


def data_support(data) -> tuple[np.ndarray, np.ndarray]:
    """The state-action pairs of the data: (chosen (S, A) bool, rejected (S, A) bool), from the study's
    fixed chosen and rejected trajectories."""
    S, A = data.mdp.n_states, data.mdp.n_actions
    out = np.zeros((2, S, A), dtype=bool)
    for i, trajectories in enumerate((data.chosen_all, data.rejected_all)):
        for t in trajectories:
            out[i, list(t.states[: len(t.actions)]), list(t.actions)] = True
    return out[0], out[1]


def _masses(result, pi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over the data's states of the mass on the chosen actions, on the rejected actions the chosen
    trajectories do not take there, and on every other action (outside the data). Shape: (E,) each."""
    chosen, rejected = data_support(result.data)
    states = (chosen | rejected).any(1)
    c = (pi * chosen).sum(-1)[:, states]  # (E, n)
    r = (pi * (rejected & ~chosen)).sum(-1)[:, states]
    return c.mean(1), r.mean(1), (1.0 - c - r).mean(1)


def _outside_occupancy(result, pi: np.ndarray) -> np.ndarray:
    """The share of the policy's own discounted visits (non-terminal states, from rho0) spent on actions
    outside the data: sum_s d(s) sum_{a not in the data at s} pi(a|s) / sum_s d(s). Shape: (E,)."""
    import torch

    from .. import metrics

    mdp = result.data.mdp
    chosen, rejected = data_support(result.data)
    P = metrics.dense_transitions(mdp)
    rho0 = torch.as_tensor(mdp.rho0, dtype=torch.float64)
    occ = metrics.discounted_occupancy(P, rho0, torch.as_tensor(pi), min(result.config.gamma, 0.999)).numpy()
    nt = ~mdp.terminal
    outside = 1.0 - (pi * (chosen | rejected)).sum(-1)  # (E, S)
    d = occ[:, nt]
    return (d * outside[:, nt]).sum(1) / d.sum(1)


def _path_logp(pi: np.ndarray, trajectory) -> np.ndarray:
    """sum_t log pi(a_t | s_t) along a trajectory. Shape: (E,)."""
    s, a = list(trajectory.states[: len(trajectory.actions)]), list(trajectory.actions)
    return np.log(np.clip(pi[:, s, a], 1e-300, None)).sum(1)


def _margin(result, pi: np.ndarray, average: bool = False) -> np.ndarray:
    """The log-ratio margin h of the first pair: [log pi(y_w) - log pi_0(y_w)] - [log pi(y_l) - log pi_0(y_l)]
    (summed log-probs, or per-step averages with ``average``, as IPO regresses them). Shape: (E,)."""
    base = result.final_policy("base").numpy()
    yw, yl = result.data.chosen_all[0], result.data.rejected_all[0]
    h = _path_logp(pi, yw) - _path_logp(base, yw)
    hl = _path_logp(pi, yl) - _path_logp(base, yl)
    if average:
        return h / len(yw.actions) - hl / len(yl.actions)
    return h - hl


def _ipo_gap(result, pi: np.ndarray) -> np.ndarray:
    """|h / (1 / (2 ipo_beta)) - 1|: how far the averaged log-ratio margin is from IPO's target. Shape: (E,)."""
    return np.abs(_margin(result, pi, average=True) * 2.0 * result.config.ipo_beta - 1.0)


QUANTITIES: dict[str, Quantity] = {
    q.name: q
    for q in (
        Quantity(
            "chosen_mass", "mass on the chosen actions, mean over the data's states", lambda r, p: _masses(r, p)[0]
        ),
        Quantity(
            "rejected_mass",
            "mass on the rejected actions (not also chosen there), mean over the data's states",
            lambda r, p: _masses(r, p)[1],
        ),
        Quantity(
            "outside_mass",
            "mass on actions the data never takes at that state, mean over the data's states",
            lambda r, p: _masses(r, p)[2],
        ),
        Quantity(
            "outside_occupancy",
            "share of the policy's own discounted visits spent on actions outside the data",
            _outside_occupancy,
        ),
        Quantity(
            "chosen_prob",
            "probability of the (first) chosen trajectory",
            lambda r, p: np.exp(_path_logp(p, r.data.chosen)),
        ),
        Quantity(
            "rejected_prob",
            "probability of the (first) rejected trajectory",
            lambda r, p: np.exp(_path_logp(p, r.data.rejected)),
        ),
        Quantity("margin", "log-ratio margin h of the first pair against theta_0 (summed log-probs)", _margin),
        Quantity("ipo_gap", "|h / (1 / (2 ipo_beta)) - 1|, h of per-step averages: 0 at IPO's target", _ipo_gap),
    )
}


def quantity_names() -> tuple[str, ...]:
    """Everything a Term may name: the metrics, then the derived quantities (loss statistics as well)."""
    return tuple(METRICS) + tuple(QUANTITIES)


# ------------------------------------------------------------------------------------------- registry
_REGISTRY: dict[str, Scenario] = {}


def register_scenario(scenario: Scenario, replace: bool = False) -> Scenario:
    """Add a scenario (a plugin's own); a taken name needs ``replace=True``."""
    if not isinstance(scenario, Scenario):
        raise TypeError(f"register_scenario expects a Scenario, got {type(scenario).__name__}")
    if scenario.name in _REGISTRY and not replace:
        raise ValueError(f"scenario {scenario.name!r} is already registered (replace=True to replace it)")
    _REGISTRY[scenario.name] = scenario
    return scenario


def unregister_scenario(name: str) -> None:
    """Remove a registered scenario (a plugin's, or a built-in one for a test)."""
    get_scenario(name)
    del _REGISTRY[name]


def scenario_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name``; an unknown name lists the known ones (ValueError)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown scenario {name!r}; scenarios: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


# -------------------------------------------------------------------------------------------- running
@dataclass(frozen=True)
class SeedValues:
    """One quantity of one method per seed: at step 0 and at the end. Shape: (E,) each."""

    start: np.ndarray
    final: np.ndarray

    def at(self, when: str) -> np.ndarray:
        return {"start": self.start, "final": self.final, "change": self.final - self.start}[when]


@dataclass(frozen=True)
class Curve:
    """A metric or statistic of one method over the evaluation steps. values: Shape (n_evals, E)."""

    run: str
    method: str
    name: str
    steps: tuple[int, ...]
    values: np.ndarray


@dataclass(frozen=True)
class RunTask:
    """One unit of work: a scenario's run under a budget (picklable: the executors send it to workers)."""

    scenario: str
    run: str
    config: StudyConfig
    curves: tuple[tuple[str, str], ...] = ()  # (method, name) drawn over steps
    claims: tuple[str, ...] = ()
    plugins: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunRecord:
    """What a run gives back: every quantity per (method, name), the curves asked for, judged claims."""

    scenario: str
    run: str
    config: StudyConfig
    values: dict[tuple[str, str], SeedValues]
    curves: tuple[Curve, ...]
    claims: dict[str, dict | None]
    seconds: float


def run_task(task: RunTask) -> RunRecord:
    """Train one run (``study.run_study``) and read every quantity of every method (writes no file)."""
    from ..plugins import load_plugins
    from ..results import summarize
    from ..study import run_study

    load_plugins(task.plugins)
    t0 = time.perf_counter()
    result = run_study(task.config)
    base = result.final_policy("base").numpy()  # (E, S, A)
    values: dict[tuple[str, str], SeedValues] = {}
    for m in task.config.methods:
        for name, arr in {**result.curves[m], **result.stats.get(m, {})}.items():
            arr = np.asarray(arr, dtype=np.float64)  # (n_evals, E)
            values[(m, name)] = SeedValues(arr[0], arr[-1])
        final = result.final_policy(m).numpy()
        for q in QUANTITIES.values():
            values[(m, q.name)] = SeedValues(np.asarray(q.fn(result, base)), np.asarray(q.fn(result, final)))
    curves = tuple(
        Curve(task.run, m, name, tuple(result.steps), np.asarray(values_of(result, m, name), dtype=np.float64))
        for m, name in task.curves
    )
    judged: dict[str, dict | None] = {}
    if task.claims:
        summary, _ = summarize(result.curves, robust=False)
        judged = {c: claims_mod.judge_claim(summary, c) for c in task.claims}
    return RunRecord(task.scenario, task.run, task.config, values, curves, judged, time.perf_counter() - t0)


def values_of(result, method: str, name: str) -> np.ndarray:
    """A metric's or statistic's curve of a method, Shape (n_evals, E); ValueError naming what exists."""
    found = {**result.curves.get(method, {}), **result.stats.get(method, {})}
    if name not in found:
        raise ValueError(f"{method!r} records no {name!r}; it records {', '.join(found)}")
    return found[name]


@dataclass(frozen=True)
class Verdict:
    """One judged expectation or claim: both sides' per-seed values (right: None for a number or a claim),
    their means, P(improvement) of the left over the right, and whether it holds (None: one seed)."""

    text: str
    left: str
    right: str
    left_values: np.ndarray | None
    right_values: np.ndarray | None
    left_mean: float
    right_mean: float
    p_improvement: float
    holds: bool | None
    detail: str = ""


@dataclass
class ScenarioResult:
    """A scenario's runs, its verdicts (expectations first, then claims) and its budget."""

    scenario: Scenario
    budget: Budget
    runs: dict[str, RunRecord]
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def reproduced(self) -> bool:
        """Every expectation and claim holds."""
        return all(v.holds for v in self.verdicts)

    @property
    def seconds(self) -> float:
        return float(sum(r.seconds for r in self.runs.values()))


def judge(scenario: Scenario, budget: Budget, runs: dict[str, RunRecord]) -> ScenarioResult:
    """Every expectation and claim of a scenario on its runs' records."""
    verdicts = [_judge_expectation(e, runs) for e in scenario.expectations]
    for c in scenario.claims:
        entry = runs[scenario.claims_run].claims.get(c)
        claim = claims_mod.get_claim(c)
        text = f"{claim.sentence} [{claim.metric}]"
        if entry is None:
            verdicts.append(Verdict(text, c, "", None, None, math.nan, math.nan, math.nan, None, "not judged"))
            continue
        verdicts.append(
            Verdict(
                text,
                c,
                "",
                None,
                None,
                math.nan,
                math.nan,
                claims_mod.claim_score(entry),
                entry["holds"],
                entry["detail"],
            )
        )
    return ScenarioResult(scenario, budget, runs, verdicts)


def _values(term: Term, runs: dict[str, RunRecord]) -> np.ndarray:
    rec = runs[term.run]
    key = (term.method, term.quantity)
    if key not in rec.values:
        known = sorted({n for m, n in rec.values if m == term.method})
        raise ValueError(
            f"run {term.run!r}: {term.method!r} has no quantity {term.quantity!r}; it has {', '.join(known)}"
        )
    return rec.values[key].at(term.at)


def _judge_expectation(e: Expectation, runs: dict[str, RunRecord]) -> Verdict:
    left = _values(e.left, runs)
    right = _values(e.right, runs) if isinstance(e.right, Term) else None
    other = right if right is not None else np.array([float(e.right)])  # type: ignore[arg-type]
    higher = e.op == ">"
    ok = np.isfinite(left).all() and np.isfinite(other).all()
    p = stats.probability_of_improvement(left, other, higher) if ok else math.nan
    lm, rm = float(np.mean(left)), float(np.mean(other))
    means = (lm > rm) if higher else (lm < rm)
    holds = None if left.size < 2 or not ok else bool(means and p >= stats.CLAIM_THRESHOLD)
    right_label = e.right.label() if isinstance(e.right, Term) else f"{float(e.right):g}"
    return Verdict(e.text, e.left.label(), right_label, left, right, lm, rm, p, holds)


def tasks_for(scenario: Scenario, budget: Budget, plugins: tuple[str, ...] = ()) -> list[RunTask]:
    """The runs of a scenario as tasks (each asks for the curves and claims of its own run)."""
    configs = scenario.configs(budget)
    return [
        RunTask(
            scenario.name,
            label,
            config,
            tuple((m, n) for r, m, n in scenario.curves if r == label),
            scenario.claims if label == scenario.claims_run else (),
            plugins,
        )
        for label, config in configs.items()
    ]


def run_scenarios(
    names=None,
    budget: str = "full",
    *,
    seeds: int | None = None,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
    on_run: Callable | None = None,
) -> list[ScenarioResult]:
    """Run the named scenarios (all when ``names`` is empty) under their "full" or "small" budget (``seeds``
    overrides the budget's seeds), each run a task of ``executors`` (``workers`` local processes, or Ray),
    and judge them. Everything is validated (names, budgets, every run's config) before anything runs."""
    from .. import executors
    from ..plugins import plugin_modules

    names = list(names or scenario_names())
    scenarios = [get_scenario(n) for n in names]
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise ValueError(f"seeds must be an integer >= 1, got {seeds!r}")
    budgets = {}
    tasks: list[RunTask] = []
    for s in scenarios:
        b = s.budget(budget)
        budgets[s.name] = b if seeds is None else replace(b, seeds=seeds)
        tasks += tasks_for(s, budgets[s.name], plugin_modules())
    tasks.sort(key=lambda t: -t.config.steps * len(t.config.methods))  # longest first: workers finish together
    records: dict[str, dict[str, RunRecord]] = {s.name: {} for s in scenarios}
    if tasks:
        ex = executors.make_executor(executor, workers, address)
        for rec in ex.map(run_task, tasks):
            records[rec.scenario][rec.run] = rec
            if on_run is not None:
                on_run(rec)
    return [judge(s, budgets[s.name], records[s.name]) for s in scenarios]
