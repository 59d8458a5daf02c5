"""The data rules: which trajectories a study trains on, as a registry (like the methods' and the MDP sources').

    make_plan(mdp, config) -> Plan       value iteration, pi*, the start states and the chosen trajectories
    rejected_trajectories(plan, config)  the rejected trajectories of the config's rule (``negatives``)

Chosen (``StudyConfig.chosen="route"``): pi*'s most likely trajectory (``trajectories.most_likely_path``
of the greedy policy on Q*) from each start state in rho0's support; with more than
``StudyConfig.max_starts`` of them, that many drawn with probabilities rho0 by
``numpy.random.default_rng(START_SEED)`` (``trajectories.start_states``): the same subset for every
config seed, so that a study's seeds differ in their networks only. ``chosen="sampled"`` draws
from pi* while training instead (``methods.batches``).

Rejected, by the rule ``StudyConfig.negatives`` names (``NAME`` or ``NAME:ARG``):

    fixed          the MDP source's own rule (``MDPSource.default_rule``): second-route on lakes, else second-best
    second-route   lakes: a second route S -> G of its own tiles that makes a sub-optimal move (``routes.second_route``)
    second-best    any MDP: from each start, the best sub-optimal first action, then pi*'s most likely path
                   (a bandit: the second-best arm)
    policy, base   sampled while training from the current policy / from theta_0 (``methods.batches``)
    file:PATH      trajectories of your own, a JSON file {"rejected": [{"states": [...], "actions": [...]}, ...]}

A plugin adds a rule with ``register_rule(DataRule("mine", rejected=fn))``, ``fn(plan, arg, config) ->
[Trajectory, ...]``: one per chosen trajectory (paired in order), or one for all of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .mdp import TabularMDP
from .plugins import FunctionRef, Registry, check_ref, resolve
from .trajectories import Trajectory, most_likely_path, start_states

_NAME = re.compile(r"[a-z][a-z0-9_-]*")
SAMPLERS = ("policy", "base")  # what a sampled rule draws from (methods.batches)
START_SEED = 0  # the seed of the start-state subset (max_starts): one documented subset for every config


@dataclass(frozen=True)
class Plan:
    """What a data rule reads: the MDP, its solution and the chosen trajectories.

    Q: Q* (value iteration to 1e-12, the greedy policy's and the tie rule's source), Shape (S, A).
    pi_star: pi*(a|s) of the study (softmax of Q* / temperature, ties split), Shape (S, A).
    starts: the start states the trajectories leave from; chosen: pi*'s most likely trajectory from
    each. horizon: StudyConfig.horizon (paths of MDPs without terminal states stop there).
    """

    mdp: TabularMDP
    gamma: float
    Q: np.ndarray
    pi_star: np.ndarray
    starts: tuple[int, ...]
    chosen: tuple[Trajectory, ...]
    horizon: int

    @property
    def greedy(self) -> np.ndarray:
        """The greedy optimal policy, Shape (S,) actions (ties: lowest index)."""
        from .solve import greedy_policy

        return greedy_policy(self.Q)


@dataclass(frozen=True)
class DataRule:
    """One rule for the rejected trajectories.

    name: ``[a-z][a-z0-9_-]*``, what ``negatives`` names. rejected: ``rejected(plan, arg, config) ->
    Sequence[Trajectory]`` for a fixed rule, or None for a sampled one. sampled: "policy" or "base"
    for a rule whose negatives are drawn while training. takes_arg: the rule reads ``NAME:ARG``
    (``file:PATH``). description: one line.
    """

    name: str
    rejected: FunctionRef | None = None
    sampled: str = ""
    takes_arg: bool = False
    description: str = ""
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"data rule name must match [a-z][a-z0-9_-]*, got {self.name!r}")
        if (self.rejected is None) == (self.sampled == ""):
            raise ValueError(f"data rule {self.name!r} needs exactly one of rejected= (a function) or sampled=")
        if self.sampled and self.sampled not in SAMPLERS:
            raise ValueError(f"data rule {self.name!r}: sampled must be one of {list(SAMPLERS)}, got {self.sampled!r}")
        if self.rejected is not None:
            check_ref(self.rejected, f"data rule {self.name!r}: rejected")

    def rejected_fn(self):
        if "rejected" not in self._cache:
            assert self.rejected is not None, "a fixed rule"
            self._cache["rejected"] = resolve(self.rejected, f"rejected function of data rule {self.name!r}")
        return self._cache["rejected"]


FIXED = "fixed"  # the MDP source's own rule
RULES: Registry[DataRule] = Registry(
    "data rule", DataRule, lambda: f"negatives must be one of {', '.join(rule_names())}"
)  # the built-ins are registered and sealed at the end of this module


def register_rule(rule: DataRule, replace: bool = False) -> DataRule:
    """Add a data rule; returns it. Built-in names are refused; a plugin's name needs ``replace=True``."""
    if isinstance(rule, DataRule) and rule.name == FIXED:
        raise ValueError(f"{FIXED!r} is reserved: it names the MDP source's own rule")
    return RULES.register(rule, replace)


def unregister_rule(name: str) -> None:
    """Remove a plugin's data rule (not a built-in)."""
    RULES.unregister(name)


def rule_names() -> tuple[str, ...]:
    """Every value ``negatives`` takes: "fixed", then the registered rules (file as file:PATH)."""
    return (FIXED,) + tuple(f"{n}:PATH" if r.takes_arg else n for n, r in RULES.records.items())


def get_rule(name: str) -> DataRule:
    """The registered rule ``name``; an unknown name lists the allowed ones."""
    return RULES.get(name)


def split_rule(spec: str) -> tuple[str, str]:
    """``NAME[:ARG]`` -> (NAME, ARG), checked: a registered rule (or "fixed"), ARG exactly when it takes one."""
    if not isinstance(spec, str):
        raise TypeError(f"negatives must be a str, got {type(spec).__name__}")
    name, colon, arg = spec.partition(":")
    if name == FIXED and not colon:
        return name, ""
    rule = get_rule(name)
    if rule.takes_arg and not arg.strip():
        raise ValueError(f"negatives={name!r} needs an argument: {name}:PATH")
    if not rule.takes_arg and colon:
        raise ValueError(f"negatives={name!r} takes no argument, got {spec!r}")
    return name, arg


def sampled_from(spec: str) -> str:
    """ "policy" or "base" when the rule's negatives are sampled while training, else ""."""
    name, _ = split_rule(spec)
    return "" if name == FIXED else get_rule(name).sampled


def fixed_rule(spec: str, default_rule: str) -> tuple[str, str]:
    """(rule, arg) of the fixed rejected trajectories: ``spec`` itself, or the source's ``default_rule``
    for "fixed" and for the sampled rules (their data record, the figures and the ``suboptimal`` base
    still show one fixed pair)."""
    name, arg = split_rule(spec)
    if name == FIXED or get_rule(name).sampled:
        return default_rule, ""
    return name, arg


# ------------------------------------------------------------------------ plan and rules
def make_plan(mdp: TabularMDP, config) -> Plan:
    """Value iteration, pi*, the start states and pi*'s most likely trajectory from each (see the module docstring)."""
    from .solve import greedy_policy, optimal_action_probs, value_iteration

    pi_star = optimal_action_probs(value_iteration(mdp, gamma=config.gamma).Q, temperature=config.temperature)
    Q = value_iteration(mdp, config.gamma, tol=1e-12).Q
    starts = start_states(mdp, config.max_starts, START_SEED)
    greedy = greedy_policy(Q)
    try:
        chosen = tuple(most_likely_path(mdp, greedy, start=s, horizon=config.horizon) for s in starts)
    except ValueError as exc:
        if config.gamma == 1 and "never reaches" in str(exc):  # name the cause: the missing discount
            raise ValueError(
                f"gamma=1 (no discount) makes every move that keeps the goal reachable equally optimal, "
                f"so the greedy optimal policy stalls among tied actions: {exc}; use gamma < 1, "
                f"e.g. --set gamma=0.99"
            ) from None
        raise
    return Plan(mdp, config.gamma, Q, pi_star, starts, chosen, config.horizon)


def rejected_trajectories(plan: Plan, config, default_rule: str) -> tuple[Trajectory, ...]:
    """The fixed rejected trajectories of ``config.negatives`` (``fixed_rule``), checked against the MDP."""
    name, arg = fixed_rule(config.negatives, default_rule)
    found = tuple(get_rule(name).rejected_fn()(plan, arg, config))
    if not found or not all(isinstance(t, Trajectory) for t in found):
        raise ValueError(f"data rule {name!r} must return at least one Trajectory, got {found!r}")
    if len(found) not in (1, len(plan.chosen)) and len(plan.chosen) != 1:
        raise ValueError(
            f"data rule {name!r} returned {len(found)} rejected trajectories for {len(plan.chosen)} chosen ones; "
            f"return one per chosen trajectory, or one"
        )
    for i, t in enumerate(found):
        check_trajectory(plan.mdp, t, f"rejected trajectory {i} of rule {name!r}")
    return found


def check_trajectory(mdp: TabularMDP, t: Trajectory, what: str) -> None:
    """ValueError unless every step of ``t`` is possible in ``mdp`` (states and actions in range, P > 0)."""
    S, A = mdp.n_states, mdp.n_actions
    if len(t) < 1:
        raise ValueError(f"{what} needs at least one step")
    if not all(0 <= s < S for s in t.states) or not all(0 <= a < A for a in t.actions):
        raise ValueError(f"{what} has states outside [0, {S}) or actions outside [0, {A})")
    for i, (s, a, s2) in enumerate(zip(t.states[:-1], t.actions, t.states[1:], strict=True)):
        if mdp.terminal[s]:
            raise ValueError(f"{what} takes a step from the terminal state {s} (step {i})")
        if mdp.transition_prob(s, a, s2) <= 0:
            raise ValueError(f"{what} makes an impossible step {s} -a{a}-> {s2} (step {i}): P = 0")


def second_best(plan: Plan, arg: str, config) -> list[Trajectory]:
    """From each start: the best sub-optimal first action (highest Q* among the actions the tie rule
    does not count as optimal; lowest index on ties), its most likely successor, then pi*'s most
    likely path from there. On a bandit: the second-best arm."""
    from .solve import optimal_actions

    mdp, greedy, optimal = plan.mdp, plan.greedy, optimal_actions(plan.Q)
    out = []
    for s in plan.starts:
        worse = np.flatnonzero(~optimal[s])
        if worse.size == 0:
            raise ValueError(
                f"second-best needs a sub-optimal action at the start state {s}, but every action there is "
                f"optimal on {mdp.name or 'this MDP'!r}"
            )
        a = int(worse[np.argmax(plan.Q[s, worse])])
        nxt = int(mdp.next_states[s, a, int(mdp.probs[s, a].argmax())])
        if mdp.terminal[nxt]:
            out.append(Trajectory((s, nxt), (a,)))
            continue
        rest = most_likely_path(mdp, greedy, start=nxt, horizon=max(plan.horizon - 1, 1))
        out.append(Trajectory((s,) + rest.states, (a,) + rest.actions))
    return out


def second_route(plan: Plan, arg: str, config) -> list[Trajectory]:
    """Lakes: ``routes.second_route`` (a second route S -> G of its own tiles with a sub-optimal move)."""
    from . import routes

    mdp = plan.mdp
    if mdp.desc is None:
        raise ValueError(
            f"negatives='second-route' needs a Frozen Lake map (routes along its tiles); {mdp.name!r} is not "
            f"one: use second-best"
        )
    if getattr(config, "route_pair", "auto") == "two-route" and not routes.has_two_routes(mdp):
        raise ValueError(
            f"route_pair='two-route' needs a map whose frozen tiles form exactly two S->G routes of "
            f"different lengths; map {config.map!r} does not (use route_pair='auto')"
        )
    return [routes.second_route(mdp, plan.Q, plan.chosen[0])]


def from_file(plan: Plan, arg: str, config) -> list[Trajectory]:
    """Trajectories from a JSON file ``{"rejected": [{"states": [...], "actions": [...]}, ...]}``."""
    path = Path(arg)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"negatives='file:{arg}': no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"negatives='file:{arg}' is not a readable JSON file: {exc}") from None
    items = data.get("rejected") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise ValueError(
            f'negatives=\'file:{arg}\' must hold {{"rejected": [{{"states": [...], "actions": [...]}}, ...]}}'
        )
    out = []
    for i, item in enumerate(items):
        ok = isinstance(item, dict) and all(
            isinstance(item.get(k), list) and all(isinstance(x, int) and not isinstance(x, bool) for x in item[k])
            for k in ("states", "actions")
        )
        if not ok:
            raise ValueError(f'negatives=\'file:{arg}\': item {i} must be {{"states": [ints], "actions": [ints]}}')
        out.append(Trajectory(item["states"], item["actions"]))
    return out


def save_trajectories(trajectories: Sequence[Trajectory], path) -> None:
    """Write trajectories as the JSON file ``negatives="file:PATH"`` reads."""
    Path(path).write_text(json.dumps({"rejected": [t.to_dict() for t in trajectories]}, indent=1), encoding="utf-8")


BUILTIN_RULES = (
    DataRule(
        "second-route",
        "frozenlake_ift.data_rules:second_route",
        description="lakes: a second route S->G of its own tiles that makes a sub-optimal move (App. B.2)",
    ),
    DataRule(
        "second-best",
        "frozenlake_ift.data_rules:second_best",
        description="the best sub-optimal first action, then pi* (a bandit: the second-best arm)",
    ),
    DataRule("policy", sampled="policy", description="pairs trajectories sampled from the current policy"),
    DataRule("base", sampled="base", description="pairs trajectories sampled once from theta_0"),
    DataRule(
        "file",
        "frozenlake_ift.data_rules:from_file",
        takes_arg=True,
        description='file:PATH: a JSON file {"rejected": [{"states": [...], "actions": [...]}, ...]}',
    ),
)
for _rule in BUILTIN_RULES:
    register_rule(_rule, replace=True)
RULES.seal_builtins()
