"""The closed-loop grid task: the exact judge against hand-worked values (scripted models on the deterministic
two-route map) and against Monte-Carlo rollouts of the sampler (a slippery map, 99% interval), the pruned mass
bounded; the environment, the reward function, and greedy decoding bounded by the horizon and the context."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from frozenlake_ift import lakes, llm
from frozenlake_ift.config import StudyConfig
from frozenlake_ift.metrics import METRICS

pytest.importorskip("transformers")

from helpers import tiny_gpt2

Z99 = 2.576


class ScriptedMoves(torch.nn.Module):
    """A "model" that writes the k-th move of a fixed plan after k moves (then EOS), with probability 1."""

    def __init__(self, tok, prompt_len: int, moves, n_positions: int | None = None):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(n_positions=n_positions)  # the context length, as a GPT-2 config names it
        self.vocab, self.prompt_len = len(tok), prompt_len
        self.ids = [tok.convert_tokens_to_ids(lakes.ACTION_NAMES[a]) for a in moves] + [tok.eos_token_id]

    def forward(self, input_ids, attention_mask=None, **_):
        B, L = input_ids.shape
        logits = torch.full((B, L, self.vocab), -1e9)
        for pos in range(self.prompt_len - 1, L, 2):  # positions that predict a move
            k = (pos + 1 - self.prompt_len) // 2
            logits[:, pos, self.ids[min(k, len(self.ids) - 1)]] = 0.0
        return SimpleNamespace(logits=logits)


class Bigram(torch.nn.Module):
    """A stochastic "model" whose next token depends on the last one: after the prompt or S it moves down / right
    (0.6 / 0.4), after F down / right / EOS (0.3 / 0.6 / 0.1): a history-dependent policy on a slippery lake."""

    def __init__(self, tok):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        V, ids = len(tok), tok.convert_tokens_to_ids
        table = torch.full((V, V), 1e-12)
        table[:, ids("down")] = 1.0  # anything else (never asked): down
        for start in (":", "S"):
            table[ids(start)] = 1e-12
            table[ids(start), ids("down")], table[ids(start), ids("right")] = 0.6, 0.4
        table[ids("F")] = 1e-12
        table[ids("F"), ids("down")], table[ids("F"), ids("right")], table[ids("F"), tok.eos_token_id] = 0.3, 0.6, 0.1
        self.register_buffer("logits", table.log())

    def forward(self, input_ids, attention_mask=None, **_):
        return SimpleNamespace(logits=self.logits[input_ids])  # (B, L, V)


@pytest.fixture(scope="module")
def tok():
    return llm.grid_tokenizer()


@pytest.fixture(scope="module")
def two_route():
    (task,) = llm.grid_tasks(StudyConfig(horizon=12))
    return task


def prompt_len(tok, task) -> int:
    return len(tok(task.prompt, add_special_tokens=False)["input_ids"])


def test_scripted_routes_get_their_exact_values(tok, two_route):
    task, gamma = two_route, 0.95
    chosen = llm.judge(ScriptedMoves(tok, prompt_len(tok, task), task.chosen), tok, task)
    rejected = llm.judge(ScriptedMoves(tok, prompt_len(tok, task), task.rejected), tok, task)
    # reward 1 on the move entering G: the 6th move of the chosen route, the 10th of the rejected one
    assert chosen.success == 1.0 and chosen.value == pytest.approx(gamma**5, abs=1e-12)
    assert rejected.success == 1.0 and rejected.value == pytest.approx(gamma**9, abs=1e-12)
    # pi* on the two-route map is one-hot on the chosen route; the rejected route disagrees with it at
    # s = 0 (down, not right: squared error 2), s = 5 (down, not up: 2) and s = 10 (pi* splits down / up
    # evenly: 0.25 + 0.25); mean over its 10 states x 4 actions. T_pi: the same rows, one successor each,
    # mean over 10 rows x 25 columns.
    assert chosen.policy_mse_opt == 0.0 and chosen.tmatrix_mse_opt == 0.0 and chosen.kl == 0.0
    assert rejected.policy_mse_opt == pytest.approx(4.5 / 40, abs=1e-12)
    assert rejected.tmatrix_mse_opt == pytest.approx(4.5 / 250, abs=1e-12)
    assert rejected.metrics != chosen.metrics and set(chosen.metrics) <= set(METRICS)
    assert chosen.visited.nonzero()[0].tolist() == [0, 1, 2, 3, 4, 9]
    assert rejected.visited.sum() == 10 and (chosen.pruned, chosen.unfinished, chosen.stopped) == (0.0, 0.0, 0.0)
    # a plan one move short stops on EOS next to G: no success, the mass is "stopped"
    short = llm.judge(ScriptedMoves(tok, prompt_len(tok, task), task.chosen[:-1]), tok, task)
    assert (short.success, short.stopped) == (0.0, 1.0)


def test_slippery_judge_agrees_with_monte_carlo_rollouts(tok):
    (task,) = llm.grid_tasks(StudyConfig(map=("SFF", "FHF", "FFG"), slippery=True, horizon=6))
    model = Bigram(tok)
    exact = llm.judge(model, tok, task)
    assert exact.pruned <= 1e-6
    total = exact.success + exact.fell + exact.stopped + exact.unfinished + exact.pruned
    assert total == pytest.approx(1.0, abs=1e-12)
    assert 0.05 < exact.success < 0.95 and exact.stopped > 0 and exact.fell > 0
    n = 4000
    env = llm.GridEnvironment([task], tok, seed=1)
    ids = tok(task.prompt, add_special_tokens=False)["input_ids"]
    samples = llm.sample_completions(
        model,
        [ids],
        n,
        12,
        tok.eos_token_id,
        tok.pad_token_id,
        torch.Generator().manual_seed(2),
        environment=env,
        prompts=[task.prompt],
        tokenizer=tok,
    )
    returns = torch.tensor(llm.grid_reward([task])(samples.prompts, samples.completions, **samples.columns))
    success = (returns > 0).double().mean().item()
    slack = exact.pruned
    assert abs(success - exact.success) <= Z99 * math.sqrt(exact.success * (1 - exact.success) / n) + slack
    assert abs(returns.mean().item() - exact.value) <= Z99 * returns.std().item() / math.sqrt(n) + slack
    # the environment's observation tokens are never the model's: every second completion token is a tile
    first = samples.completion_ids[0]
    assert all(not t for t in samples.trained[0][1::2]) and len(first) <= 12


def test_pruning_is_bounded_and_reported(tok):
    (task,) = llm.grid_tasks(StudyConfig(map="4x4", slippery=True, horizon=3))
    model = tiny_gpt2(vocab=len(tok), n_positions=64).eval()
    loose = llm.judge(model, tok, task, max_pruned=1e-2)
    tight = llm.judge(model, tok, task, max_pruned=0.0)
    assert 0 < loose.pruned <= 1e-2 and tight.pruned == 0.0 and loose.histories < tight.histories
    for j in (loose, tight):
        assert j.success + j.fell + j.stopped + j.unfinished + j.pruned == pytest.approx(1.0, abs=1e-12)
    assert tight.success <= loose.success + loose.pruned + 1e-12 and loose.success <= tight.success + 1e-12
    with pytest.raises(ValueError, match="context holds 64"):
        llm.judge(model, tok, task, horizon=20)
    with pytest.raises(ValueError, match="max_pruned"):
        llm.judge(model, tok, task, max_pruned=1.0)


def test_decode_moves_is_closed_loop_and_bounded(tok, two_route):
    task = two_route
    assert llm.decode_moves(ScriptedMoves(tok, prompt_len(tok, task), task.chosen), tok, task) == list(task.chosen)
    # a model that walks into the wall at S forever: bounded by the task's horizon, or by the model's context
    # (the old decode_moves ran past GPT-2's positions: IndexError)
    walls = [lakes.ACTION_NAMES.index("left")] * 600
    assert len(llm.decode_moves(ScriptedMoves(tok, prompt_len(tok, task), walls), tok, task)) == task.horizon == 12
    (long,) = llm.grid_tasks(StudyConfig(horizon=500))
    bounded = llm.decode_moves(ScriptedMoves(tok, prompt_len(tok, long), walls, n_positions=60), tok, long)
    assert len(bounded) == (60 - prompt_len(tok, long) + 1) // 2 == 11


def test_environment_and_reward_errors(tok, two_route):
    env = llm.GridEnvironment([two_route], tok)
    ids = tok.convert_tokens_to_ids
    walk = env.reset(two_route.prompt)  # S = 0; right -> 1 (F); down -> 6, a hole: the episode ends
    assert env.step(walk, ids("right")) == [ids("F")] and not walk.done
    assert env.step(walk, ids("down")) == [ids("H")] and walk.done and walk.states == [0, 1, 6]
    reward = llm.grid_reward([two_route])  # gamma^t on the move t (from 0) that enters G
    states = [list(two_route.chosen_states), list(two_route.rejected_states), [0, 1, 6]]
    assert reward([two_route.prompt] * 3, ["", "", ""], states=states) == pytest.approx([0.95**5, 0.95**9, 0.0])
    episode = env.reset(two_route.prompt)
    assert env.step(episode, tok.eos_token_id) == [] and episode.done
    with pytest.raises(ValueError, match="episode has ended"):
        env.step(episode, tok.eos_token_id)
    with pytest.raises(ValueError, match="no grid task has the prompt"):
        env.reset("map : S G")
    with pytest.raises(ValueError, match="needs the episodes' true states"):
        llm.grid_reward([two_route])([two_route.prompt], [" right F"])
    row = llm.grid_dataset([two_route], "completion")[0]
    assert llm.parse_moves(row["completion"]) == list(two_route.chosen)
    assert row["completion"].split()[1::2] == ["F"] * 5 + ["G"]
