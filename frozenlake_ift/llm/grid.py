"""The study's own task for a language model: Frozen-Lake maps in, moves out, the lake in the loop.

``grid_tasks(configs)`` builds, for each ``StudyConfig``, its lake and the study's chosen and
rejected routes (``routes.chosen_and_rejected``); ``grid_dataset`` writes them in TRL's formats.
An answer is an episode, closed loop: the model writes a move, the environment appends the tile
the move reached (an observation token), and so on until a hole, G or the task's horizon:

    prompt    "map : S F F F F / F H H H F / F H H H G / F H H H F / F F F F F / slippery : no / moves :"
    chosen    " right F right F right F right F down F down G"          (completion, for SFT / IFT)
    rejected  " down F down F down F down F right F right F right F right F up F up G"

The observation tokens are the environment's, not the model's: ``GridEnvironment`` names them
(``observation_token_ids``), the collator leaves them out of the loss (as TRL's tool masks do), and
on-policy methods sample them from the lake itself (``GridEnvironment.step``), so slippery maps are
well defined. ``grid_reward`` is the episode's discounted return in the exact MDP (TRL's
``reward_funcs`` convention); ``llm.judge`` scores a model exactly over all its episodes.

Tokenisation (``grid_tokenizer``, a word-level Hugging Face tokenizer, no download): the text is
split on whitespace and every word is one token: the tile letters S F H G, "/" (end of a row),
the action names of ``lakes.ACTION_NAMES`` and the words map, slippery, yes, no, moves, ":",
plus <pad>, <eos> (appended to every answer by the collator) and <unk>. ``moves_success`` is the
exact probability that a move sequence played open loop reaches G (``solve.success_probability``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..config import StudyConfig
from ..lakes import ACTION_NAMES, TILES, make_lake
from ..mdp import TabularMDP
from ..routes import chosen_and_rejected
from ..solve import success_probability
from .logps import context_length, model_logits

SPECIAL_TOKENS = ("<pad>", "<eos>", "<unk>")
WORDS = ("map", ":", "/", "slippery", "yes", "no", "moves")
VOCAB = (*SPECIAL_TOKENS, *WORDS, *TILES, *ACTION_NAMES)
FORMS = ("preference", "completion", "unpaired", "prompt")


@dataclass(frozen=True)
class GridTask:
    """One map with the study's chosen and rejected routes, as actions, states and text."""

    config: StudyConfig = field(repr=False)
    mdp: TabularMDP = field(repr=False)
    prompt: str
    chosen: tuple[int, ...]  # actions of the chosen (optimal) route
    rejected: tuple[int, ...]  # actions of the rejected (sub-optimal) route
    chosen_states: tuple[int, ...] = ()  # its states s_0 .. s_N
    rejected_states: tuple[int, ...] = ()

    @property
    def horizon(self) -> int:
        """The longest episode, in moves: the config's ``horizon``."""
        return int(self.config.horizon)


def tile(mdp: TabularMDP, state: int) -> str:
    """The tile letter (S F H G) of a state: the observation token the environment appends."""
    if mdp.desc is None or mdp.shape is None:
        raise ValueError(f"MDP {mdp.name!r} has no map rows (desc); build it with lakes.make_lake")
    return mdp.desc[state // mdp.shape[1]][state % mdp.shape[1]]


def episode_text(mdp: TabularMDP, states: Sequence[int], actions: Sequence[int]) -> str:
    """An answer's text, closed loop: " " + each move followed by the tile it reached."""
    if len(states) != len(actions) + 1:
        raise ValueError(f"{len(actions)} moves need {len(actions) + 1} states, got {len(states)}")
    return "".join(f" {ACTION_NAMES[a]} {tile(mdp, s)}" for a, s in zip(actions, states[1:], strict=True))


def grid_prompt(mdp: TabularMDP, slippery: bool) -> str:
    """The prompt text of a lake: its tiles row by row, whether it is slippery, then "moves :"."""
    if mdp.desc is None:
        raise ValueError(f"MDP {mdp.name!r} has no map rows (desc); build it with lakes.make_lake")
    rows = " / ".join(" ".join(row) for row in mdp.desc)
    return f"map : {rows} / slippery : {'yes' if slippery else 'no'} / moves :"


def moves_text(actions: Sequence[int]) -> str:
    """A move sequence's text without observations (open loop): " " + the action names joined by spaces."""
    return "".join(f" {ACTION_NAMES[a]}" for a in actions)


def parse_moves(text: str) -> list[int]:
    """Actions named in ``text`` (observation tiles between them skipped), up to the first other word."""
    out = []
    for word in text.split():
        if word in TILES:
            continue
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
        prompt = grid_prompt(mdp, cfg.slippery)
        tasks.append(GridTask(cfg, mdp, prompt, chosen.actions, rejected.actions, chosen.states, rejected.states))
    return tasks


def _as_tasks(tasks: StudyConfig | Sequence[StudyConfig] | Sequence[GridTask]) -> list[GridTask]:
    if isinstance(tasks, StudyConfig) or (len(tasks) and isinstance(tasks[0], StudyConfig)):
        return grid_tasks(tasks)  # type: ignore[arg-type]  # a StudyConfig or a list of them, checked above
    return [t for t in tasks if isinstance(t, GridTask)]


def grid_dataset(
    tasks: StudyConfig | Sequence[StudyConfig] | Sequence[GridTask], form: str = "preference"
) -> list[dict[str, Any]]:
    """Rows in TRL's standard formats, the answers closed-loop episodes (``episode_text``):
    "preference": prompt / chosen / rejected (DPO, ORPO, IPO, SimPO, KTO); "completion": prompt /
    completion with the chosen route (SFT, IFT); "unpaired": prompt / completion / label, the chosen
    route desirable and the rejected one not (KTO); "prompt": the prompt alone (on-policy methods)."""
    if form not in FORMS:
        raise ValueError(f"form must be one of {list(FORMS)}, got {form!r}")
    items = _as_tasks(tasks)
    rows: list[dict[str, Any]] = []
    for t in items:
        chosen = episode_text(t.mdp, t.chosen_states, t.chosen)
        rejected = episode_text(t.mdp, t.rejected_states, t.rejected)
        if form == "completion":
            rows.append({"prompt": t.prompt, "completion": chosen})
        elif form == "preference":
            rows.append({"prompt": t.prompt, "chosen": chosen, "rejected": rejected})
        elif form == "unpaired":
            rows += [
                {"prompt": t.prompt, "completion": chosen, "label": True},
                {"prompt": t.prompt, "completion": rejected, "label": False},
            ]
        else:
            rows.append({"prompt": t.prompt})
    return rows


def grid_tokenizer() -> Any:
    """The word-level tokenizer of the grid task (a transformers tokenizer built from ``VOCAB``)."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )


@dataclass
class GridEpisode:
    """One episode of a grid task in progress: the true states so far (s_0 first) and whether it ended."""

    task: GridTask = field(repr=False)
    states: list[int]
    done: bool = False

    @property
    def moves(self) -> int:
        return len(self.states) - 1


class GridEnvironment:
    """The grid tasks as the environment of a language model's answers (closed loop).

    ``reset(prompt)`` starts an episode of the task whose prompt it is (s_0 drawn from rho0);
    ``step(episode, token)`` plays one token of the model: a move token draws the next state from the
    lake's transitions and returns the observation token of the tile reached (the episode ends at a
    hole, at G or after the task's horizon); any other token (EOS included) ends the episode and
    returns nothing. Draws come from ``numpy.random.default_rng(seed)``. ``observation_token_ids``
    (the tiles S F H G) are never trained on; ``reward_kwargs(episodes)`` gives ``grid_reward`` the states.
    """

    def __init__(self, tasks: StudyConfig | Sequence[StudyConfig] | Sequence[GridTask], tokenizer: Any, seed: int = 0):
        self.tasks = _as_tasks(tasks)
        if not self.tasks:
            raise ValueError("GridEnvironment needs at least one grid task")
        self.by_prompt: dict[str, GridTask] = {}
        for t in self.tasks:
            old = self.by_prompt.setdefault(t.prompt, t)
            if old is not t and (old.horizon, old.config.gamma) != (t.horizon, t.config.gamma):
                raise ValueError(f"two tasks share the prompt {t.prompt!r} but differ in horizon or gamma")
        vocab = tokenizer.get_vocab()
        missing = [w for w in (*ACTION_NAMES, *TILES) if w not in vocab]
        if missing:
            raise ValueError(f"the tokenizer has no token for {missing}; use llm.grid_tokenizer()")
        self.action_token_ids = tuple(int(vocab[a]) for a in ACTION_NAMES)  # in ACTION_NAMES order
        self.observation_token_ids = tuple(int(vocab[t]) for t in TILES)
        self._tile_id = {t: int(vocab[t]) for t in TILES}
        self.rng = np.random.default_rng(seed)

    def task(self, prompt: str) -> GridTask:
        if prompt not in self.by_prompt:
            raise ValueError(f"no grid task has the prompt {prompt[:60]!r}...; known: {len(self.by_prompt)} prompts")
        return self.by_prompt[prompt]

    def observation_id(self, task: GridTask, state: int) -> int:
        """The observation token of a state: its tile letter's id."""
        return self._tile_id[tile(task.mdp, state)]

    def max_new_tokens(self, prompt: str) -> int:
        """The longest answer: a move and an observation per step of the task's horizon."""
        return 2 * self.task(prompt).horizon

    def reset(self, prompt: str) -> GridEpisode:
        task = self.task(prompt)
        s0 = int(self.rng.choice(task.mdp.n_states, p=task.mdp.rho0))
        return GridEpisode(task, [s0], done=bool(task.mdp.terminal[s0]))

    def step(self, episode: GridEpisode, token: int) -> list[int]:
        if episode.done:
            raise ValueError("the episode has ended; reset() starts a new one")
        if token not in self.action_token_ids:
            episode.done = True
            return []
        mdp, s, a = episode.task.mdp, episode.states[-1], self.action_token_ids.index(token)
        nxt = int(self.rng.choice(mdp.next_states[s, a], p=mdp.probs[s, a]))
        episode.states.append(nxt)
        episode.done = bool(mdp.terminal[nxt]) or episode.moves >= episode.task.horizon
        return [self.observation_id(episode.task, nxt)]

    def reward_kwargs(self, episodes: Sequence[GridEpisode]) -> dict[str, list]:
        """Extra keyword arguments for the reward functions: the episodes' true states."""
        return {"states": [list(e.states) for e in episodes]}


class GridReward:
    """The grid task's reward function in TRL's ``reward_funcs`` convention: each episode's discounted
    return in the exact MDP, sum_t gamma^t r_t with r_t = 1 on the move that enters G (the study's
    reward and gamma). Reads the true states that ``GridEnvironment`` passes as ``states``."""

    __name__ = "grid_return"

    def __init__(self, tasks: StudyConfig | Sequence[StudyConfig] | Sequence[GridTask]):
        self.by_prompt = {t.prompt: t for t in _as_tasks(tasks)}

    def __call__(self, prompts: list, completions: list, states: list | None = None, **kwargs: Any) -> list[float]:
        if states is None:
            raise ValueError(
                "grid_return needs the episodes' true states: train with environment=llm.GridEnvironment(...)"
            )
        out = []
        for prompt, path in zip(prompts, states, strict=True):
            task = self.by_prompt.get(prompt)
            if task is None:
                raise ValueError(f"grid_return: no grid task has the prompt {str(prompt)[:60]!r}")
            goal, gamma = task.mdp.goal, task.config.gamma
            out.append(sum(gamma**t for t in range(len(path) - 1) if goal[path[t + 1]]))
        return out


def grid_reward(tasks: StudyConfig | Sequence[StudyConfig] | Sequence[GridTask]) -> GridReward:
    """The reward function of the grid tasks (``GridReward``): pass it in ``reward_funcs``."""
    return GridReward(tasks)


@torch.no_grad()
def decode_moves(
    model: torch.nn.Module, tokenizer: Any, task: GridTask, max_moves: int | None = None, seed: int = 0
) -> list[int]:
    """The model's greedy moves on ``task``, closed loop: after each move the lake appends the tile reached
    (drawn with ``seed`` on a slippery map). Stops at a token that is not a move (EOS included), a hole,
    G, ``max_moves`` moves (default: the task's horizon) or the model's context length."""
    env = GridEnvironment([task], tokenizer, seed)
    episode = env.reset(task.prompt)
    limit = max_moves if max_moves is not None else task.horizon
    context = context_length(model)
    device = next(model.parameters()).device
    ids = list(tokenizer(task.prompt, add_special_tokens=False)["input_ids"])
    if context is not None and len(ids) >= context:
        raise ValueError(f"the prompt has {len(ids)} tokens; the model's context holds {context}")
    actions: list[int] = []
    while not episode.done and episode.moves < limit and (context is None or len(ids) < context):
        token = int(model_logits(model, input_ids=torch.tensor([ids], device=device))[0, -1].argmax())
        ids += [token, *env.step(episode, token)]
        if token in env.action_token_ids:
            actions.append(env.action_token_ids.index(token))
    return actions
