"""The grid task as a dataset: rows in TRL's formats (closed-loop episodes: each move followed by the tile it
reached), the documented tokenisation, exact open-loop success (against an independent forward pass over the
sparse transitions), and the example end to end (SFT and GRPO, tiny budgets, judged exactly)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from frozenlake_ift import lakes, llm
from frozenlake_ift.config import StudyConfig

R, D, U, L = (lakes.ACTION_NAMES.index(a) for a in ("right", "down", "up", "left"))


def forward_success(mdp, actions) -> float:
    """Independent: push the state distribution through next_states / probs, one action at a time."""
    d = mdp.rho0.copy()
    for a in actions:
        nxt = np.zeros_like(d)
        for s in np.flatnonzero(d):
            np.add.at(nxt, mdp.next_states[s, a], d[s] * mdp.probs[s, a])
        d = nxt
    return float(d[mdp.goal].sum())


def test_two_route_rows_are_the_study_routes():
    (task,) = llm.grid_tasks(StudyConfig())
    assert task.chosen == (R, R, R, R, D, D) and task.rejected == (D, D, D, D, R, R, R, R, U, U)
    (row,) = llm.grid_dataset(StudyConfig())
    assert row == {
        "prompt": "map : S F F F F / F H H H F / F H H H G / F H H H F / F F F F F / slippery : no / moves :",
        "chosen": " right F right F right F right F down F down G",
        "rejected": " down F down F down F down F right F right F right F right F up F up G",
    }
    assert llm.grid_dataset([task], "completion") == [{"prompt": row["prompt"], "completion": row["chosen"]}]
    assert llm.grid_dataset([task], "unpaired") == [
        {"prompt": row["prompt"], "completion": row["chosen"], "label": True},
        {"prompt": row["prompt"], "completion": row["rejected"], "label": False},
    ]
    assert llm.grid_dataset([task], "prompt") == [{"prompt": row["prompt"]}]
    with pytest.raises(ValueError, match="form must be one of"):
        llm.grid_dataset([task], "pairs")


def test_tokenizer_is_one_token_per_word():
    pytest.importorskip("transformers")
    tok = llm.grid_tokenizer()
    (row,) = llm.grid_dataset(StudyConfig())
    for text in (row["prompt"], row["chosen"]):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert [llm.VOCAB[i] for i in ids] == text.split()
    assert (tok.pad_token_id, tok.eos_token_id) == (0, 1) and len(tok) == len(llm.VOCAB)
    assert llm.parse_moves(tok.decode(tok(row["chosen"])["input_ids"])) == list(llm.grid_tasks(StudyConfig())[0].chosen)
    assert llm.parse_moves(" right down map up") == [R, D]


@pytest.mark.parametrize("map_name,slippery", [("two-route", False), ("4x4", False), ("4x4", True), ("8x8", True)])
def test_moves_success_is_exact(map_name, slippery):
    (task,) = llm.grid_tasks(StudyConfig(map=map_name, slippery=slippery))
    rng = np.random.default_rng(0)
    plans = [task.chosen, task.rejected, (), tuple(rng.integers(0, 4, 12).tolist())]
    for plan in plans:
        assert llm.moves_success(task.mdp, plan) == pytest.approx(forward_success(task.mdp, plan), abs=1e-12)
    if not slippery:
        assert llm.moves_success(task.mdp, task.chosen) == 1.0 == llm.moves_success(task.mdp, task.rejected)
        assert llm.moves_success(task.mdp, task.chosen[:-1]) == 0.0  # one move short of G


def test_example_trains_and_judges_exactly():
    pytest.importorskip("transformers")
    path = Path(__file__).resolve().parents[1] / "examples" / "llm_grid.py"
    spec = importlib.util.spec_from_file_location("llm_grid_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = example.main(
        ["--methods", "sft,grpo", "--horizon", "8", "--base-steps", "5", "--steps", "25", "--online-steps", "2",
         "--generations", "4", "--online-batch", "8", "--tabular-seeds", "1", "--tabular-steps", "20",
         "--max-histories", "300", "--json"]
    )  # fmt: skip
    assert out["llm"]["sft"]["success"] > 0.9 and out["llm"]["sft"]["pruned"] <= 1e-6
    assert set(out["llm"]) == set(out["tabular"]) == {"sft", "grpo"}
    assert set(out["tabular"]["sft"]) == {"success", "value", "policy_mse_opt", "tmatrix_mse_opt"}
