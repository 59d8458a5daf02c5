"""Where does a claim hold? An Optuna search over StudyConfig fields (``frozenlake-ift search``).

    Param, make_space, load_space   the fields searched: a list of choices, or a range {low, high, log, step},
                                    optionally only when an earlier field takes some values (``when``)
    DEFAULT_SPACE                   map, base, optimizer, lr, steps, lam, the DPO and ORPO betas, negatives and
                                    the sampler's pairs, resample_every and horizon
    run_search(claim, trials, ...)  TPE (Optuna's sampler) proposes configs; each trial is one study
                                    (``study.run_study``) run by an executor (local processes or Ray); the
                                    claim (``claims.judge_claim``) is judged on it and its score, the claim's
                                    smallest P(improvement) (``claims.claim_score``), is maximised

A search lives in an Optuna storage (``sqlite:///OUT/search.db`` by default, in memory when asked), so
a killed search resumes where it stopped: finished trials are kept, trials in flight are run again.
Its files (``write_files``): trials.json and trials.csv (every trial), search.json (the best settings,
the share of trials in which the claim holds) and spec.json, a sweep spec of the best settings with
more seeds and fresh ones (``frozenlake-ift sweep --grid OUT/spec.json`` reruns it). Optuna is optional
(the ``search`` extra): it is imported only when a search runs.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import claims
from .config import StudyConfig, coerce_field
from .methods import paper_method_names

STORAGE_FILE = "search.db"
FILES = ("search.json", "trials.json", "trials.csv", "spec.json")
DEFAULT_SEEDS = 8  # members per trial (the confirmation sweep uses more, and fresh ones)
CONFIRM_SEEDS, CONFIRM_SEED = 20, 1000  # spec.json: seeds and the first seed of the rerun
NOT_SEARCHED = ("seeds", "seed", "methods", "device", "dtype")  # the trial's frame, not a setting
MEMORY = "memory"

DEFAULT_SPACE: dict = {
    "map": ["two-route", "4x4", "8x8"],
    "base": ["random", "uniform", "suboptimal"],
    "optimizer": ["adam", "rmsprop", "sgd"],
    "lr": {"low": 1e-4, "high": 0.1, "log": True},
    "steps": [300, 1000, 2000],
    "lam": {"low": 0.0, "high": 0.5},
    "dpo_beta": {"low": 0.01, "high": 1.0, "log": True},
    "orpo_beta": {"low": 0.01, "high": 1.0, "log": True},
    "negatives": ["fixed", "base", "policy"],
    "pairs": {"low": 1, "high": 8, "log": True, "when": {"negatives": ["base", "policy"]}},
    "resample_every": {"low": 1, "high": 20, "log": True, "when": {"negatives": ["policy"]}},
    "horizon": {"low": 10, "high": 50, "when": {"negatives": ["base", "policy"]}},
}


# ---------------------------------------------------------------------------------------- the space
@dataclass(frozen=True)
class Param:
    """One searched field: ``choices`` (categorical) or a range [low, high] (int or float by the field's
    type; ``log`` scale, ``step``); suggested only when each ``when`` field's value is in its list."""

    name: str
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False
    when: tuple[tuple[str, tuple], ...] = ()

    def active(self, values: dict) -> bool:
        return all(values.get(f) in allowed for f, allowed in self.when)

    def suggest(self, trial):
        if self.choices:
            return trial.suggest_categorical(self.name, list(self.choices))
        assert self.low is not None and self.high is not None, "a range has both ends"
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def describe(self) -> str:
        when = "".join(f" when {f} in {list(a)}" for f, a in self.when)
        if self.choices:
            return f"{self.name} in {list(self.choices)}{when}"
        return f"{self.name} in [{self.low:g}, {self.high:g}]{' (log)' if self.log else ''}{when}"


def _field_value(name: str, value, where: str):
    """A choice as the StudyConfig field takes it (a text form parsed as --set parses it)."""
    default = getattr(StudyConfig(), name)
    if isinstance(value, str) and not isinstance(default, str):
        return coerce_field(name, value)
    if isinstance(value, (dict, list)) or value is None:
        raise ValueError(f"{where}: {value!r} is not a value of {name!r}")
    return value


def _check_value(name: str, value, fixed: dict, where: str) -> None:
    """ValueError (one line) unless ``StudyConfig(**fixed, name=value)`` is a valid config."""
    try:
        StudyConfig(**{**fixed, name: _field_value(name, value, where)})
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {exc}") from None


def make_space(raw: dict, fixed: dict | None = None, source: str = "search space") -> tuple[Param, ...]:
    """Check a search space ({field: [choices] or {low, high, log, step, when}}) and return its Params.

    Every field must be a StudyConfig field (not one of ``NOT_SEARCHED``) and not also fixed; every choice and
    both ends of every range must make a valid config with ``fixed``; ``when`` names earlier fields or fixed
    ones. Errors are one line naming the field and what is allowed.
    """
    fixed = dict(fixed or {})
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{source}: must map at least one StudyConfig field to its choices or range")
    allowed = [f for f in StudyConfig.field_names() if f not in NOT_SEARCHED]
    out: list[Param] = []
    for name, spec in raw.items():
        where = f"{source}: {name}"
        if name not in StudyConfig.field_names():
            raise ValueError(f"{source} names an unknown StudyConfig field {name!r}; allowed: {', '.join(allowed)}")
        if name in NOT_SEARCHED:
            raise ValueError(f"{where}: {name!r} frames every trial and is not searched (fix it with --fix)")
        if name in fixed:
            raise ValueError(f"{where}: {name!r} is both searched and fixed")
        if isinstance(spec, list):
            spec = {"choices": spec}
        if not isinstance(spec, dict):
            raise ValueError(f"{where}: give a list of choices or {{low, high[, log, step, when]}}, got {spec!r}")  # noqa: TRY004  (a bad space file is a user error: one line, exit 2)
        unknown = sorted(set(spec) - {"choices", "low", "high", "log", "step", "when"})
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: choices, low, high, log, step, when")
        when = _when(spec.get("when") or {}, [p.name for p in out], fixed, where)
        default = getattr(StudyConfig(), name)
        if "choices" in spec:
            choices = spec["choices"]
            if not isinstance(choices, list) or not choices or "low" in spec or "high" in spec:
                raise ValueError(f"{where}: choices must be a non-empty list (and no low / high)")
            for c in choices:
                if not isinstance(c, (str, int, float, bool)):
                    raise ValueError(f"{where}: choice {c!r} must be a string, number or bool")  # noqa: TRY004  (a bad space file is a user error: one line, exit 2)
                _check_value(name, c, fixed, where)
            out.append(Param(name, tuple(choices), when=when))
            continue
        if isinstance(default, bool) or not isinstance(default, (int, float)):
            raise ValueError(f"{where}: {name!r} is not a number: give a list of choices")  # noqa: TRY004  (a bad space file is a user error: one line, exit 2)
        low, high = spec.get("low"), spec.get("high")
        for end in (low, high):
            if isinstance(end, bool) or not isinstance(end, (int, float)) or not math.isfinite(end):
                raise ValueError(f"{where}: low and high must be finite numbers, got {low!r} and {high!r}")
        assert low is not None and high is not None, "checked above"
        if not low < high:
            raise ValueError(f"{where}: low must be below high, got {low!r} and {high!r}")
        integer = isinstance(default, int)
        if integer and not (float(low).is_integer() and float(high).is_integer()):
            raise ValueError(f"{where}: {name!r} is an integer field: low and high must be integers")
        log = spec.get("log", False)
        if not isinstance(log, bool) or (log and low <= 0):
            raise ValueError(f"{where}: log must be true or false, and a log range needs low > 0")
        for end in (low, high):
            _check_value(name, int(end) if integer else float(end), fixed, where)
        step = spec.get("step")
        if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0 or log):
            raise ValueError(f"{where}: step must be a positive number (and not with log), got {step!r}")
        out.append(Param(name, (), float(low), float(high), log, step, integer, when))
    return tuple(out)


def _when(raw, earlier: list[str], fixed: dict, where: str) -> tuple[tuple[str, tuple], ...]:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: when must map earlier fields to the values that switch this one on")  # noqa: TRY004  (a bad space file is a user error: one line, exit 2)
    out = []
    for f, allowed in raw.items():
        if f not in earlier and f not in fixed:
            raise ValueError(f"{where}: when names {f!r}, which is neither an earlier searched field nor fixed")
        values = allowed if isinstance(allowed, list) else [allowed]
        out.append((f, tuple(values)))
    return tuple(out)


def load_space(path, fixed: dict | None = None) -> tuple[Param, ...]:
    """Read a search space from a JSON / TOML / YAML file (by suffix) and check it (``make_space``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no search space at {str(path)!r}")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ValueError(f"{str(path)!r}: YAML needs pyyaml (pip install pyyaml); or use JSON / TOML") from None
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"search space {str(path)!r} is not valid YAML: {str(exc).splitlines()[0]}") from None
    elif path.suffix.lower() == ".toml":
        import tomllib  # type: ignore[import-not-found, unused-ignore]  # Python 3.11+

        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"search space {str(path)!r} is not valid TOML: {exc}") from None
    else:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"search space {str(path)!r} is not valid JSON: {exc}") from None
    return make_space(raw, fixed, source=f"search space {str(path)!r}")


def claim_methods(claim: str) -> tuple[str, ...]:
    """The methods a trial trains for ``claim``: the pair of a pairwise claim, else the paper's four."""
    c = claims.get_claim(claim)
    return c.pair if c.pair is not None else paper_method_names()


def base_fixed(claim: str, fixed: dict | None) -> dict:
    """The fields every trial fixes: seeds (``DEFAULT_SEEDS``), the claim's methods, then ``fixed``, checked."""
    out = {"seeds": DEFAULT_SEEDS, "methods": claim_methods(claim), **dict(fixed or {})}
    StudyConfig(**out)  # a bad fixed value fails here, before anything runs
    return out


# --------------------------------------------------------------------------------------------- trials
@dataclass(frozen=True)
class TrialTask:
    """One trial: its number, its config and the claim judged on it (picklable, for the executors)."""

    number: int
    config: StudyConfig
    claim: str
    plugins: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrialOutcome:
    """What a trial gives back: the claim's score and verdict (None: not judged), its P(improvement) per
    pair, the judged detail, seconds, and the error of a trial whose config could not run."""

    number: int
    score: float
    holds: bool | None
    p_improvement: dict
    detail: str
    seconds: float
    error: str = ""


def run_trial(task: TrialTask) -> TrialOutcome:
    """Train the trial's study and judge the claim on it (writes no file)."""
    from .plugins import load_plugins
    from .results import summarize
    from .study import run_study

    load_plugins(task.plugins)
    t0 = time.perf_counter()
    try:
        result = run_study(task.config)
    except (ValueError, RuntimeError, FloatingPointError) as exc:
        return TrialOutcome(task.number, 0.0, None, {}, "", time.perf_counter() - t0, f"{type(exc).__name__}: {exc}")
    summary, _ = summarize(result.curves, robust=False)
    entry = claims.judge_claim(summary, task.claim)
    return TrialOutcome(
        task.number,
        claims.claim_score(entry),
        None if entry is None else entry["holds"],
        {} if entry is None else entry["p_improvement"],
        "" if entry is None else entry["detail"],
        time.perf_counter() - t0,
    )


def trial_config(params: dict, fixed: dict) -> StudyConfig:
    """The StudyConfig of a trial: the fixed fields, the suggested ones, and (unless fixed) eval_every =
    steps, so that only the start and the end are evaluated (the claims read the final values)."""
    values = {**fixed, **{k: _field_value(k, v, "trial") for k, v in params.items()}}
    values.setdefault("eval_every", values.get("steps", StudyConfig().steps))
    return StudyConfig(**values)


# --------------------------------------------------------------------------------------------- search
@dataclass
class SearchOutcome:
    """A finished search: every trial (Optuna's records, as dicts), the best one and the share that holds."""

    claim: str
    study_name: str
    storage: str
    fixed: dict
    space: tuple[Param, ...]
    trials: list[dict] = field(default_factory=list)
    ran: int = 0
    seconds: float = 0.0

    @property
    def judged(self) -> list[dict]:
        return [t for t in self.trials if t["state"] == "COMPLETE" and t["holds"] is not None]

    @property
    def held(self) -> int:
        return sum(bool(t["holds"]) for t in self.judged)

    @property
    def best(self) -> dict | None:
        """The best trial: the highest score among those where the claim holds, else the highest score."""
        done = self.judged
        if not done:
            return None
        return max(done, key=lambda t: (bool(t["holds"]), t["score"], -t["number"]))


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ValueError("search needs Optuna: pip install 'frozenlake_ift[search]' (or pip install optuna)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def study_name(claim: str, space: tuple[Param, ...], fixed: dict) -> str:
    """The Optuna study of a search: the claim and a hash of the space and the fixed fields."""
    text = json.dumps(
        {"claim": claim, "space": [p.describe() for p in space], "fixed": StudyConfig(**fixed).to_dict()},
        sort_keys=True,
    )
    return f"{claim}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def storage_url(out, storage: str | None) -> str | None:
    """The storage of a search: ``memory`` (None: in this process only), a URL, or sqlite in OUT."""
    if storage == MEMORY:
        return None
    if storage is not None:
        return storage
    if out is None:
        return None
    return f"sqlite:///{Path(out).resolve() / STORAGE_FILE}"


def run_search(
    claim: str,
    trials: int,
    space: tuple[Param, ...] | dict | None = None,
    fixed: dict | None = None,
    *,
    out=None,
    storage: str | None = None,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
    seed: int = 0,
    on_trial=None,
) -> SearchOutcome:
    """Search ``space`` (default ``DEFAULT_SPACE``) until ``trials`` trials of ``claim`` have finished in the
    storage (a resumed search runs only the rest), ``workers`` at a time; return every trial.

    storage: an Optuna URL, "memory", or None (``OUT/search.db`` when ``out`` is given, else memory). A
    storage that holds a search of another claim, space or fixed fields is refused. ``seed`` seeds TPE.
    Everything (claim, budget, space, fixed fields, out) is checked before a trial runs.
    """
    from . import executors
    from .plugins import plugin_modules

    claims.get_claim(claim)
    for name, v, low in (("trials", trials, 1), ("workers", workers, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    fixed = base_fixed(claim, fixed)
    params = make_space(DEFAULT_SPACE if space is None else space, fixed) if not isinstance(space, tuple) else space
    if executor not in executors.EXECUTOR_NAMES:
        raise ValueError(f"executor must be one of {list(executors.EXECUTOR_NAMES)}, got {executor!r}")
    if out is not None:
        from . import safety

        safety.check_out_dir(out)
    optuna = _optuna()
    url = storage_url(out, storage)
    if url is not None and url.startswith("sqlite:///") and out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
    name = study_name(claim, params, fixed)
    if url is not None:
        others = [n for n in optuna.study.get_all_study_names(url) if n != name]
        if others:
            raise ValueError(
                f"the storage {url!r} holds another search ({others[0]}: another claim, space or fixed fields); "
                "use another --out or --storage"
            )
    sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    study = optuna.create_study(
        study_name=name, storage=url, direction="maximize", sampler=sampler, load_if_exists=True
    )
    study.set_user_attr("claim", claim)
    study.set_user_attr("fixed", StudyConfig(**fixed).to_dict())
    _requeue_interrupted(study, optuna)
    t0, ran = time.perf_counter(), 0
    ex = None
    while (todo := trials - _finished(study, optuna)) > 0:
        batch = []
        for _ in range(min(workers, todo)):
            trial = study.ask()
            values = dict(fixed)
            suggested = {}
            for p in params:
                if p.active(values):
                    values[p.name] = suggested[p.name] = p.suggest(trial)
            batch.append((trial, trial_config(suggested, fixed)))
        tasks = [TrialTask(t.number, cfg, claim, plugin_modules()) for t, cfg in batch]
        by_number = {t.number: t for t, _ in batch}
        if ex is None:
            _warm()
            ex = executors.make_executor(executor, workers, address)
        for outcome in ex.map(run_trial, tasks):
            trial = by_number[outcome.number]
            for k, v in (
                ("holds", outcome.holds),
                ("p_improvement", outcome.p_improvement),
                ("detail", outcome.detail),
                ("seconds", outcome.seconds),
                ("error", outcome.error),
            ):
                trial.set_user_attr(k, v)
            if outcome.error:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(trial, outcome.score)
            ran += 1
            if on_trial is not None:
                on_trial(outcome)
    return SearchOutcome(
        claim, name, url or MEMORY, fixed, params, _records(study, optuna), ran, time.perf_counter() - t0
    )


def _warm() -> None:
    """Build one optimiser here, so that local workers forked for each batch of trials start with what its
    first construction imports (about 1.5 s, paid once instead of by every worker of every batch)."""
    import torch

    from .optim import make_optimizer

    make_optimizer("adam", {"W": torch.zeros(1, 1, requires_grad=True)}, 0.1)


def _finished(study, optuna) -> int:
    """Trials that count towards the budget: complete ones and those whose config could not run."""
    S = optuna.trial.TrialState
    return sum(
        t.state == S.COMPLETE or (t.state == S.FAIL and bool(t.user_attrs.get("error")))
        for t in study.get_trials(deepcopy=False)
    )


def _requeue_interrupted(study, optuna) -> None:
    """Trials a killed search left running: marked failed (without an error: interrupted, not counted) and
    queued again with their params, so the resumed search runs them first."""
    S = optuna.trial.TrialState
    for t in study.get_trials(deepcopy=False, states=(S.RUNNING,)):
        study.tell(t.number, state=S.FAIL, skip_if_finished=True)
        study.enqueue_trial(t.params, skip_if_exists=False)


def _interrupted(t, optuna) -> bool:
    return t.state == optuna.trial.TrialState.FAIL and not t.user_attrs.get("error")


def _records(study, optuna) -> list[dict]:
    S = optuna.trial.TrialState
    out = []
    for t in study.get_trials(deepcopy=False):
        if _interrupted(t, optuna) or t.state not in (S.COMPLETE, S.FAIL):
            continue
        out.append(
            {
                "number": t.number,
                "state": t.state.name,
                "score": t.value,
                "holds": t.user_attrs.get("holds"),
                "params": dict(t.params),
                "p_improvement": t.user_attrs.get("p_improvement", {}),
                "detail": t.user_attrs.get("detail", ""),
                "seconds": t.user_attrs.get("seconds"),
                "error": t.user_attrs.get("error", ""),
            }
        )
    return out


# ---------------------------------------------------------------------------------------------- files
def confirm_spec(outcome: SearchOutcome, seeds: int = CONFIRM_SEEDS, first_seed: int = CONFIRM_SEED) -> dict:
    """A sweep spec of the best settings with ``seeds`` fresh seeds (``first_seed`` on), for ``sweep --grid``."""
    best = outcome.best
    if best is None:
        raise ValueError(f"no trial of {outcome.claim!r} finished: nothing to confirm")
    cfg = trial_config(best["params"], outcome.fixed)
    fixed = {k: v for k, v in cfg.to_dict().items() if v != getattr(StudyConfig(), k) or k in outcome.fixed}
    fixed.update({"seeds": seeds, "seed": first_seed, "eval_every": max(1, cfg.steps // 30)})
    for k, v in list(fixed.items()):
        if isinstance(v, tuple):
            fixed[k] = list(v)
    return {
        "name": "search-" + outcome.claim.replace(":", "-").replace("_", "-"),
        "description": (
            f"The best settings frozenlake-ift search found for the claim {outcome.claim!r} (trial {best['number']}, "
            f"score {best['score']:.3g}, holds: {best['holds']}), rerun with {seeds} fresh seeds ({first_seed} on)."
        ),
        "grid": {},
        "fixed": fixed,
    }


def summary(outcome: SearchOutcome) -> dict:
    """search.json: the claim, the space, the best trial's settings, the share of trials in which it holds."""
    best = outcome.best
    judged = len(outcome.judged)
    return {
        "claim": outcome.claim,
        "sentence": claims.get_claim(outcome.claim).sentence,
        "study_name": outcome.study_name,
        "storage": outcome.storage,
        "space": [p.describe() for p in outcome.space],
        "fixed": StudyConfig(**outcome.fixed).to_dict(),
        "trials": len(outcome.trials),
        "judged": judged,
        "held": outcome.held,
        "share_held": outcome.held / judged if judged else None,
        "failed": sum(t["state"] == "FAIL" for t in outcome.trials),
        "best": best,
        "best_config": None if best is None else trial_config(best["params"], outcome.fixed).to_dict(),
        "ran_now": outcome.ran,
        "seconds": outcome.seconds,
    }


def trials_csv(outcome: SearchOutcome) -> str:
    names = [p.name for p in outcome.space]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["number", "state", "score", "holds", *names, "seconds", "error"])
    for t in outcome.trials:
        w.writerow(
            [t["number"], t["state"], t["score"], t["holds"], *(t["params"].get(n, "") for n in names)]
            + [t["seconds"], t["error"]]
        )
    return buf.getvalue()


def write_files(outcome: SearchOutcome, out) -> list[Path]:
    """search.json, trials.json, trials.csv and spec.json, staged and moved into ``out`` together."""
    from . import safety

    out = Path(out)
    safety.check_out_dir(out)
    safety.clean_orphans(out)
    texts = {
        "search.json": safety.strict_json(summary(outcome), indent=1)[0],
        "trials.json": safety.strict_json(outcome.trials, indent=1)[0],
        "trials.csv": trials_csv(outcome),
    }
    if outcome.best is not None:
        texts["spec.json"] = json.dumps(confirm_spec(outcome), indent=1)
    with safety.staged_run(out) as stage:
        for name, text in texts.items():
            (stage.path / name).write_text(text, encoding="utf-8")
        return stage.commit(FILES, replace=True)
