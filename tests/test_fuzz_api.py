"""Issue 25 acceptance: the Python API is as careful as the CLI.

Each public function is called with one argument replaced by junk (the others valid). It must return,
or raise a TypeError / ValueError (FileNotFoundError for a path) that our own code raised (the
innermost frame is in the package, not in numpy, torch, pathlib or json) and whose message names the
argument. Never an AttributeError, KeyError, IndexError or an error from deep inside.
"""

import math
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frozenlake_ift import lakes, losses, results, solve
from frozenlake_ift.config import StudyConfig
from frozenlake_ift.llm import token_logps
from frozenlake_ift.study import run_study

PACKAGE = str(Path(lakes.__file__).parent)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
JUNK = [
    None,
    True,
    0,
    -1,
    3,
    2.5,
    -0.5,
    math.nan,
    math.inf,
    1e300,
    "",
    "x",
    "4x4",
    b"x",
    [],
    [1, 2],
    ["SF", "FG"],
    {},
    {"a": 1},
    (1,),
    object(),
    np.float64(0.5),
    np.int64(2),
    np.array([1.0, 2.0]),
    np.array([[0.25] * 4] * 16),
    torch.tensor(0.5),
    torch.ones(2, 3),
    torch.zeros(2, 3),
    torch.full((2, 3), -0.5),
    torch.ones(2, 3, dtype=torch.long),
    torch.empty(0, 3),
    torch.full((2, 3), math.nan),
    Path("/nonexistent/run"),
]
VALUES = st.sampled_from(JUNK)

LP = torch.full((2, 3), -0.7)  # log-probs, Shape (B, T)
MASK = torch.ones(2, 3, dtype=torch.bool)
VEC = torch.full((2,), -1.5)  # Shape (B,)
MDP = lakes.make_lake("4x4")
TINY = StudyConfig(seeds=1, steps=1, eval_every=1, fit_steps=1, methods=("sft",), device="cpu")


def _check(call, arg: str, names=()) -> None:
    """call() returns, or raises our own TypeError / ValueError naming ``arg`` (or one of ``names``)."""
    try:
        call()
    except (TypeError, ValueError, FileNotFoundError) as exc:
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        assert frame.filename.startswith(PACKAGE), f"{arg}: {type(exc).__name__} from deep inside {frame}: {exc}"
        text = str(exc)
        assert any(n in text for n in (arg, *names)), f"{arg}: the message does not name it: {text}"


API = {  # function -> (valid keyword arguments, {argument: other words a message may name it by})
    lakes.make_lake: (
        dict(map_name_or_desc="4x4", slippery=False, success_rate=None, max_states=100),
        {"map_name_or_desc": ("map",)},
    ),
    solve.value_iteration: (dict(mdp=MDP, gamma=0.9, tol=1e-10, max_iter=1000, method="gauss-seidel"), {}),
    solve.policy_evaluation: (dict(mdp=MDP, pi=np.zeros(16, dtype=np.int64), gamma=0.9, horizon=None), {}),
    solve.success_probability: (dict(mdp=MDP, pi=np.zeros(16, dtype=np.int64), horizon=None), {}),
    solve.finite_horizon: (dict(mdp=MDP, horizon=5, gamma=0.9), {}),
    losses.sft_loss: (dict(logps=LP, mask=MASK, reduction="mean"), {}),
    losses.ift_loss: (dict(logps=LP, mask=MASK, gamma=0.95, detach_weights=False, reduction="mean"), {}),
    losses.dpo_loss: (
        dict(policy_chosen=VEC, policy_rejected=VEC, ref_chosen=VEC, ref_rejected=VEC, beta=0.1, label_smoothing=0.0),
        {},
    ),
    losses.orpo_loss: (dict(chosen_avg_logps=VEC, rejected_avg_logps=VEC, chosen_nll=-VEC, beta=0.25), {}),
    losses.simpo_loss: (dict(chosen_avg_logps=VEC, rejected_avg_logps=VEC, beta=2.0, margin=0.5), {}),
    losses.clipped_surrogate_loss: (dict(logps=LP, old_logps=LP, advantages=LP, mask=MASK, epsilon=0.2), {}),
    losses.relation_weights: (dict(step_losses=-LP, mask=MASK, gamma=0.9), {}),
    losses.mix_inputs: (dict(target=LP, predicted=LP, lam=0.2), {}),
    token_logps: (dict(logits=torch.randn(2, 3, 5), labels=torch.ones(2, 3, dtype=torch.long)), {}),
}
CASES = [(fn, arg) for fn, (kw, _) in API.items() for arg in kw]


@FUZZ
@given(case=st.sampled_from(CASES), value=VALUES)
def test_public_functions_refuse_junk_naming_the_argument(case, value):
    fn, arg = case
    kwargs, aliases = API[fn]
    _check(lambda: fn(**{**kwargs, arg: value}), arg, aliases.get(arg, ()))


@FUZZ
@given(field=st.sampled_from(StudyConfig.field_names()), value=VALUES)
def test_study_config_refuses_junk_naming_the_field(field, value):
    _check(lambda: StudyConfig(**{field: value}), field)


@pytest.mark.parametrize("value", [None, "config", {"seeds": 2}, 3, TINY.to_dict()])
def test_run_study_refuses_what_is_not_a_config(value):
    _check(lambda: run_study(value), "config")


def test_run_study_refuses_junk_progress():
    _check(lambda: run_study(TINY, progress="yes"), "progress")


@FUZZ
@given(value=VALUES)
def test_results_readers_refuse_junk(value):
    _check(lambda: results.load(value), "path", (repr(str(value)), "results.json"))
    _check(lambda: results.load_params(value), "run_dir", (repr(str(value)), "params.pt"))
