"""Known phenomena of preference fine-tuning as runnable scenarios, each judged with P(improvement) over seeds.

    Scenario        one phenomenon: the studies it trains (``Run``: StudyConfig fields), what its source says
                    happens (``Expectation``: one quantity against another, or against a number) and the
                    citation; a scenario may also judge the paper's claims by name (``claims.judge_claim``)
    register_scenario, get_scenario, scenario_names       the registry (unregister_scenario); the built-ins: ``builtin``
    run_scenarios(names, budget, ...) -> [ScenarioResult]  train every run (local processes or Ray), judge
    QUANTITIES      what an expectation compares besides the metrics (``metric_table.METRICS``) and the loss
                    statistics (TRL's names: ``logps/chosen``, ``rewards/margins``, ...): where the mass goes

An expectation "left < right" (or ">") holds as a claim does (``claims``): the means in that order and
P(improvement) >= ``stats.CLAIM_THRESHOLD`` (rliable's probability that a seed of the left side beats one
of the right side; against a number, the share of seeds that beat it). A quantity is read at the
run's end ("final"), at step 0 ("start", theta_0) or as the change of each seed ("change" = final -
start: "the chosen log-prob falls" is change < 0). The files (tables, figures) are ``phenomena_report``'s.
"""

# core: the scenario records, quantities, registry, running and judging; importing builtin registers the
# built-in scenarios (data)
from .builtin import BANDIT, BANDIT_BETAS, BUILTIN_SCENARIOS
from .core import (
    AT,
    BUDGETS,
    OPS,
    QUANTITIES,
    Budget,
    Curve,
    Expectation,
    Quantity,
    Run,
    RunRecord,
    RunTask,
    Scenario,
    ScenarioResult,
    SeedValues,
    Term,
    Verdict,
    data_support,
    get_scenario,
    judge,
    quantity_names,
    register_scenario,
    run_scenarios,
    run_task,
    scenario_names,
    tasks_for,
    unregister_scenario,
    values_of,
)

__all__ = [
    "AT",
    "BANDIT",
    "BANDIT_BETAS",
    "BUDGETS",
    "BUILTIN_SCENARIOS",
    "OPS",
    "QUANTITIES",
    "Budget",
    "Curve",
    "Expectation",
    "Quantity",
    "Run",
    "RunRecord",
    "RunTask",
    "Scenario",
    "ScenarioResult",
    "SeedValues",
    "Term",
    "Verdict",
    "data_support",
    "get_scenario",
    "judge",
    "quantity_names",
    "register_scenario",
    "run_scenarios",
    "run_task",
    "scenario_names",
    "tasks_for",
    "unregister_scenario",
    "values_of",
]
