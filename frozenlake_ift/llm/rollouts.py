"""On-policy data of the LLM path: completions sampled from the current model, scored, laid out for a loss.

    sample_completions(model, prompt_ids, ...)   -> Samples: num_generations completions per prompt, drawn
                                                    token by token (closed loop when an environment is given:
                                                    its observation tokens are appended and never trained on)
    score_completions(reward_funcs, samples)     -> rewards (N,): the sum of the reward functions (TRL's
                                                    ``reward_funcs`` convention), every value checked
    make_rollouts(samples, rewards, ...)         -> Rollouts: prompt + completion rows, labels on the model's own
                                                    tokens, log-probs under the sampling and reference models

Rows are laid out as TRL lays out a generation batch: the completions of one prompt are consecutive
(``num_generations`` rows each). Sequences are right-padded, so every model sees positions 0, 1, ...
from the first prompt token, as in training on the collator's batches. Sampling runs the full forward
pass at each step (no KV cache): simple and exact, meant for the small models this package trains.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .logps import IGNORE_INDEX, context_length, model_logits, token_logps


@dataclass(frozen=True)
class Samples:
    """Completions of a batch of prompts, ``num_generations`` consecutive rows per prompt.

    prompts: the raw prompt of each row (text, messages or ids, as the dataset gave it). prompt_ids,
    completion_ids: token ids per row. trained: per completion token, True for the model's own token,
    False for an environment's observation. completions: the decoded completion text (or its ids when
    there is no tokenizer). columns: the dataset's other fields, per row, and the environment's reward
    keyword arguments (``GridEnvironment.reward_kwargs``). truncated: the row hit max_new_tokens.
    """

    prompts: list
    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    trained: list[list[bool]]
    completions: list
    num_generations: int
    columns: dict[str, list] = field(default_factory=dict)
    truncated: list[bool] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.completion_ids)


@dataclass(frozen=True)
class Rollouts:
    """Scored samples as tensors. input_ids, attention_mask, labels: Shape (N, L), right-padded prompt +
    completion; labels hold the model's own completion tokens and IGNORE_INDEX elsewhere (prompt,
    observations, padding). rewards: Shape (N,). old_logps: Shape (N, L-1), the sampling model's
    per-token log-probs, or None (then the current model's, detached: one optimiser step per sample).
    ref_logps: Shape (N, L-1) under the reference model, or None."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    rewards: torch.Tensor
    num_generations: int
    samples: Samples
    old_logps: torch.Tensor | None = None
    ref_logps: torch.Tensor | None = None


def check_context(model: torch.nn.Module, prompt_len: int, max_new_tokens: int) -> None:
    """ValueError when the longest prompt plus max_new_tokens does not fit the model's context."""
    if max_new_tokens < 1:
        raise ValueError(f"max_completion_length must be >= 1, got {max_new_tokens}")
    limit = context_length(model)
    if limit is not None and prompt_len + max_new_tokens > limit:
        raise ValueError(
            f"a prompt of {prompt_len} tokens plus max_completion_length={max_new_tokens} is longer than the "
            f"model's context ({limit} positions); lower max_completion_length (or the task's horizon)"
        )


@torch.no_grad()
def sample_completions(
    model: torch.nn.Module,
    prompt_ids: Sequence[Sequence[int]],
    num_generations: int,
    max_new_tokens: int,
    eos_token_id: int | None,
    pad_token_id: int,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    environment: Any = None,
    prompts: Sequence | None = None,
    tokenizer: Any = None,
) -> Samples:
    """``num_generations`` completions of each prompt, sampled token by token from softmax(logits / temperature).

    A completion ends at EOS (kept, and trained on), at max_new_tokens, or when the environment ends the
    episode. With an ``environment`` (e.g. ``GridEnvironment``): each episode starts with
    ``environment.reset(prompt)``, and after every sampled token ``environment.step(episode, token)``
    returns the observation tokens to append (not trained on). ``prompts``: the raw prompts (the
    environment's keys and the reward functions' ``prompts``); defaults to the ids.
    """
    if num_generations < 1:
        raise ValueError(f"num_generations must be >= 1, got {num_generations}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    raw = list(prompts) if prompts is not None else [list(p) for p in prompt_ids]
    rows = [list(p) for p in prompt_ids for _ in range(num_generations)]  # (N,) prompt of each row
    raw_rows = [r for r in raw for _ in range(num_generations)]
    if any(not p for p in rows):
        raise ValueError("every prompt needs at least one token")
    check_context(model, max(len(p) for p in rows), max_new_tokens)
    device = next(model.parameters()).device
    N = len(rows)
    episodes = [environment.reset(r) for r in raw_rows] if environment is not None else [None] * N
    completion: list[list[int]] = [[] for _ in range(N)]
    trained: list[list[bool]] = [[] for _ in range(N)]
    done = [bool(getattr(e, "done", False)) for e in episodes]
    while not all(done):
        live = [i for i in range(N) if not done[i]]
        seqs = [rows[i] + completion[i] for i in live]
        L = max(len(s) for s in seqs)
        ids = torch.full((len(live), L), pad_token_id, dtype=torch.long, device=device)  # (n, L)
        att = torch.zeros((len(live), L), dtype=torch.long, device=device)  # (n, L)
        for k, s in enumerate(seqs):
            ids[k, : len(s)] = torch.tensor(s, device=device)
            att[k, : len(s)] = 1
        last = torch.tensor([len(s) - 1 for s in seqs], device=device)  # (n,)
        logits = model_logits(model, input_ids=ids, attention_mask=att)  # (n, L, V)
        probs = torch.softmax(logits[torch.arange(len(live), device=device), last].double() / temperature, -1)
        picked = torch.multinomial(probs, 1, generator=generator).squeeze(-1).tolist()  # (n,)
        for i, token in zip(live, picked, strict=True):
            completion[i].append(int(token))
            trained[i].append(True)
            episode = episodes[i]
            if episode is not None:
                obs = environment.step(episode, int(token))
                completion[i] += list(obs)
                trained[i] += [False] * len(obs)
                done[i] = bool(episode.done)
            done[i] = done[i] or token == eos_token_id or len(completion[i]) >= max_new_tokens
    truncated = [len(c) >= max_new_tokens and c[-1] != eos_token_id for c in completion]
    texts = [tokenizer.decode(c) for c in completion] if tokenizer is not None else [list(c) for c in completion]
    columns = environment.reward_kwargs(episodes) if environment is not None else {}
    return Samples(raw_rows, rows, completion, trained, texts, num_generations, dict(columns), truncated)


def reward_name(func: Callable) -> str:
    """The name a reward function is logged under (``rewards/<name>/mean``), as TRL names it."""
    return getattr(func, "__name__", type(func).__name__)


def score_completions(
    reward_funcs: Sequence[Callable], samples: Samples, weights: Sequence[float] | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Rewards of the samples: sum_i weight_i * f_i(prompts=, completions=, completion_ids=, **columns), Shape (N,)
    float32, and each function's rewards by name. A function must return one finite number per completion:
    a wrong count, None, NaN or an infinity is a ValueError naming the function (and the completion)."""
    if not reward_funcs:
        raise ValueError("on-policy methods need reward_funcs: one or more functions scoring each completion")
    weights = [1.0] * len(reward_funcs) if weights is None else list(weights)
    if len(weights) != len(reward_funcs):
        raise ValueError(f"got {len(weights)} reward weights for {len(reward_funcs)} reward functions")
    N, total, per_func = len(samples), torch.zeros(len(samples), dtype=torch.float32), {}
    for func, w in zip(reward_funcs, weights, strict=True):
        name = reward_name(func)
        out = func(
            prompts=samples.prompts,
            completions=samples.completions,
            completion_ids=samples.completion_ids,
            **samples.columns,
        )
        try:
            values = list(out)
        except TypeError:
            raise ValueError(
                f"reward function {name!r} returned {type(out).__name__}, not a list of {N} numbers"
            ) from None
        if len(values) != N:
            raise ValueError(
                f"reward function {name!r} returned {len(values)} rewards for {N} completions; "
                f"it must return one number per completion"
            )
        for i, v in enumerate(values):
            ok = (isinstance(v, numbers.Real) and not isinstance(v, bool)) or (
                isinstance(v, torch.Tensor) and v.numel() == 1
            )
            if not ok or not math.isfinite(float(v)):
                raise ValueError(
                    f"reward function {name!r} returned {v!r} for completion {i} "
                    f"({str(samples.completions[i])[:40]!r}); rewards must be finite numbers"
                )
        per_func[name] = torch.tensor([float(v) for v in values], dtype=torch.float32)
        total = total + float(w) * per_func[name]
    return total, per_func


def layout(samples: Samples, pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """input_ids, attention_mask, labels (N, L): prompt + completion, right-padded; labels on trained tokens."""
    empty = [i for i, t in enumerate(samples.trained) if not any(t)]
    if empty:
        raise ValueError(f"completions {empty[:10]} are empty: every completion needs a token of the model's own")
    seqs = [p + c for p, c in zip(samples.prompt_ids, samples.completion_ids, strict=True)]
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), pad_token_id, dtype=torch.long)  # (N, L)
    att = torch.zeros((len(seqs), L), dtype=torch.long)  # (N, L)
    labels = torch.full((len(seqs), L), IGNORE_INDEX, dtype=torch.long)  # (N, L)
    for b, (p, c, t) in enumerate(zip(samples.prompt_ids, samples.completion_ids, samples.trained, strict=True)):
        ids[b, : len(p) + len(c)] = torch.tensor(p + c)
        att[b, : len(p) + len(c)] = 1
        labels[b, len(p) : len(p) + len(c)] = torch.tensor(
            [tok if keep else IGNORE_INDEX for tok, keep in zip(c, t, strict=True)]
        )
    return ids, att, labels


@torch.no_grad()
def rollout_logps(model: torch.nn.Module, ids: torch.Tensor, att: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token log-probs of the labels under ``model`` without gradient. Shape: (N, L) -> (N, L-1)."""
    return token_logps(model_logits(model, input_ids=ids, attention_mask=att), labels)[0]


def make_rollouts(
    samples: Samples,
    rewards: torch.Tensor,
    pad_token_id: int,
    device: torch.device | str = "cpu",
    sampling_model: torch.nn.Module | None = None,
    ref_model: torch.nn.Module | None = None,
) -> Rollouts:
    """Lay out scored samples; with ``sampling_model`` keep its log-probs (for more than one optimiser step per
    sample), with ``ref_model`` the reference log-probs."""
    ids, att, labels = (t.to(device) for t in layout(samples, pad_token_id))
    old = rollout_logps(sampling_model, ids, att, labels) if sampling_model is not None else None
    ref = rollout_logps(ref_model, ids, att, labels) if ref_model is not None else None
    return Rollouts(ids, att, labels, rewards.to(device), samples.num_generations, samples, old, ref)
