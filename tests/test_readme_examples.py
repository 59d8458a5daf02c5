"""The README's code examples run as written (the property test and the method plugin)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
ARCHITECTURE = (ROOT / "docs" / "ARCHITECTURE.md").read_text()


def _block(needle: str, text: str = README) -> str:
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.S):
        if needle in block:
            return block
    raise AssertionError(f"no python block with {needle!r} in the README / docs/ARCHITECTURE.md")


def test_the_property_test_example_passes():
    pytest.importorskip("hypothesis")
    namespace: dict = {}
    exec(_block("test_success_grows_with_the_horizon"), namespace)
    namespace["test_success_grows_with_the_horizon"]()


def test_the_method_plugin_example_runs(monkeypatch):
    from frozenlake_ift import study
    from frozenlake_ift.methods import unregister_method

    code = _block('register_method(Method("hinge"')
    calls = []
    monkeypatch.setattr(study, "run_study", lambda cfg: calls.append(cfg))  # the README's last line: no training
    namespace: dict = {}
    try:
        exec(code, namespace)
        cfg = calls[0]
        assert cfg.methods[-1] == "hinge"
        # and the method really trains: a tiny study with it
        r = study.StudyConfig(seeds=1, steps=3, eval_every=3, fit_steps=50, device="cpu", methods=("hinge",))
        monkeypatch.undo()
        res = study.run_study(r)
        assert res.curves["hinge"]["loss"].shape == (2, 1)
    finally:
        unregister_method("hinge")


def test_the_architecture_mdp_family_and_data_rule_examples_run():
    from frozenlake_ift import data_rules
    from frozenlake_ift.config import StudyConfig
    from frozenlake_ift.data import build_data
    from frozenlake_ift.mdps import unregister_env

    try:
        exec(_block('register_env(MDPSource("ring"', ARCHITECTURE), {})
        exec(_block('register_rule(DataRule("worst-first"', ARCHITECTURE), {})
        data = build_data(StudyConfig(env="ring:6", negatives="worst-first"))
        assert data.chosen.actions == (1,) and data.chosen.states == (0, 5)  # one step back to the goal
        # the worst first move (a step the long way round), then pi* back: 0 -> 1 -> 0 -> 5
        assert data.rejected.states == (0, 1, 0, 5) and data.rejected.actions == (0, 1, 1)
    finally:
        unregister_env("ring")
        data_rules.unregister_rule("worst-first")
