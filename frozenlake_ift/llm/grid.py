"""The study's own task as a language-model dataset: Frozen-Lake maps in, move sequences out.

``grid_tasks(configs)`` builds, for each ``StudyConfig``, its lake and the study's chosen and
rejected routes (``routes.chosen_and_rejected``); ``grid_dataset`` writes them in TRL's formats:

    prompt    "map : S F F F F / F H H H F / F H H H G / F H H H F / F F F F F / slippery : no / moves :"
    chosen    " right right right right down down"          (completion, for SFT / IFT)
    rejected  " down down down down right right right right up up"

Tokenisation (``grid_tokenizer``, a word-level Hugging Face tokenizer, no download): the text is
split on whitespace and every word is one token: the tile letters S F H G, "/" (end of a row),
the action names of ``lakes.ACTION_NAMES`` and the words map, slippery, yes, no, moves, ":",
plus <pad>, <eos> (appended to every answer by the collator) and <unk>. The answer is judged by
the exact MDP: ``moves_success`` is the probability that the open-loop move sequence reaches G
(0 or 1 on a deterministic lake), computed with ``solve.success_probability``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import StudyConfig
from ..lakes import ACTION_NAMES, TILES, make_lake
from ..mdp import TabularMDP
from ..routes import chosen_and_rejected
from ..solve import success_probability

SPECIAL_TOKENS = ("<pad>", "<eos>", "<unk>")
WORDS = ("map", ":", "/", "slippery", "yes", "no", "moves")
VOCAB = (*SPECIAL_TOKENS, *WORDS, *TILES, *ACTION_NAMES)
FORMS = ("preference", "completion")


@dataclass(frozen=True)
class GridTask:
    """One map with the study's chosen and rejected routes, as actions and as text."""

    config: StudyConfig
    mdp: TabularMDP
    prompt: str
    chosen: tuple[int, ...]  # actions of the chosen (optimal) route
    rejected: tuple[int, ...]  # actions of the rejected (sub-optimal) route


def grid_prompt(mdp: TabularMDP, slippery: bool) -> str:
    """The prompt text of a lake: its tiles row by row, whether it is slippery, then "moves :"."""
    if mdp.desc is None:
        raise ValueError(f"MDP {mdp.name!r} has no map rows (desc); build it with lakes.make_lake")
    rows = " / ".join(" ".join(row) for row in mdp.desc)
    return f"map : {rows} / slippery : {'yes' if slippery else 'no'} / moves :"


def moves_text(actions: Sequence[int]) -> str:
    """An answer's text: " " + the action names joined by spaces."""
    return "".join(f" {ACTION_NAMES[a]}" for a in actions)


def parse_moves(text: str) -> list[int]:
    """Actions named in ``text``, up to the first word that is not an action name."""
    out = []
    for word in text.split():
        if word not in ACTION_NAMES:
            break
        out.append(ACTION_NAMES.index(word))
    return out


def moves_success(mdp: TabularMDP, actions: Sequence[int]) -> float:
    """Exact probability that playing ``actions`` in order from the start reaches G (open loop)."""
    if len(actions) == 0:
        return 0.0
    plan = np.repeat(np.asarray(actions, dtype=np.int64)[:, None], mdp.n_states, axis=1)  # (H, S)
    return success_probability(mdp, plan)


def grid_tasks(configs: StudyConfig | Sequence[StudyConfig]) -> list[GridTask]:
    """One GridTask per config: make_lake(map, slippery), chosen_and_rejected(mdp, gamma)."""
    configs = [configs] if isinstance(configs, StudyConfig) else list(configs)
    tasks = []
    for cfg in configs:
        mdp = make_lake(cfg.map, slippery=cfg.slippery)
        chosen, rejected = chosen_and_rejected(mdp, gamma=cfg.gamma)
        tasks.append(GridTask(cfg, mdp, grid_prompt(mdp, cfg.slippery), chosen.actions, rejected.actions))
    return tasks


def grid_dataset(
    tasks: StudyConfig | Sequence[StudyConfig] | Sequence[GridTask], form: str = "preference"
) -> list[dict[str, str]]:
    """Rows in TRL's standard format: prompt / chosen / rejected ("preference", for DPO / ORPO) or
    prompt / completion with the chosen route ("completion", for SFT / IFT)."""
    if form not in FORMS:
        raise ValueError(f"form must be one of {list(FORMS)}, got {form!r}")
    if isinstance(tasks, StudyConfig) or (len(tasks) and isinstance(tasks[0], StudyConfig)):
        items = grid_tasks(tasks)  # type: ignore[arg-type]  # a StudyConfig or a list of them, checked above
    else:
        items = [t for t in tasks if isinstance(t, GridTask)]
    if form == "completion":
        return [{"prompt": t.prompt, "completion": moves_text(t.chosen)} for t in items]
    return [{"prompt": t.prompt, "chosen": moves_text(t.chosen), "rejected": moves_text(t.rejected)} for t in items]


def grid_tokenizer() -> Any:
    """The word-level tokenizer of the grid task (a transformers tokenizer built from ``VOCAB``)."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )


@torch.no_grad()
def decode_moves(model: torch.nn.Module, tokenizer: Any, task: GridTask, max_moves: int | None = None) -> list[int]:
    """Greedy decoding of the model's answer to ``task.prompt``, parsed into actions (stops at EOS)."""
    max_moves = max_moves if max_moves is not None else 4 * task.mdp.n_states
    device = next(model.parameters()).device
    ids = torch.tensor([tokenizer(task.prompt, add_special_tokens=False)["input_ids"]], device=device)  # (1, P)
    out: list[int] = []
    for _ in range(max_moves + 1):
        nxt = int(model(input_ids=ids).logits[0, -1].argmax())
        if nxt == tokenizer.eos_token_id:
            break
        out.append(nxt)
        ids = torch.cat([ids, torch.tensor([[nxt]], device=device)], dim=1)  # (1, P + k)
    return parse_moves(tokenizer.decode(out))
