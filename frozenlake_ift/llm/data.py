"""TRL's dataset formats -> token ids -> padded batches with the prompt masked.

A row is a dict (from a list of dicts or a ``datasets.Dataset``) in one of these forms:

    prompt / completion            SFT, IFT   (TRL's prompt-completion form; "response" is accepted for "completion")
    messages                       SFT, IFT   (conversational language modelling: the last message, an assistant
                                               turn, is the completion; the ones before it are the prompt)
    prompt / chosen / rejected     DPO, ORPO, IPO, SimPO, KTO  (TRL's preference form with an explicit prompt;
                                               KTO unpairs it first: ``unpair_rows``)
    prompt / completion / label    KTO        (TRL's unpaired preference form: label True = desirable)
    prompt                         grpo, rloo, dpo_online, ppo (prompts alone: the trainer samples completions;
                                               the other fields go to the reward functions)

Each of prompt / completion / chosen / rejected is a string (standard form), a list of messages
``[{"role": ..., "content": ...}]`` (conversational form, rendered with the tokenizer's chat
template), or token ids under ``<field>_ids`` (no tokenizer needed). Tokenisation, as TRL does for
preference data: prompt and answer are encoded separately, without special tokens; a standard-form
answer gets the tokenizer's EOS appended (unless it already ends with it); a conversational answer
is the text the chat template adds after the prompt (rendered with the generation prompt, or as a
continued final message when the prompt ends with an assistant turn), so its end-of-turn tokens come
from the template. Labels are the answer's tokens; prompt and padding positions are ignore_index, and so
are the answer's ``mask_token_ids`` (an environment's observation tokens, e.g. the grid task's tiles).
Unpaired rows also give the KL rows of KTO: prompt i with the completion of row i - 1 of the batch (TRL's
rotation), prefixed ``kl_``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .logps import IGNORE_INDEX

COMPLETION_FIELDS = ("completion", "response")  # TRL's name first; "response" is this package's older name
PREFERENCE_FIELDS = ("prompt", "chosen", "rejected")
ROW_FORMS = ("completion", "preference", "unpaired", "prompt")  # objectives.FORMS: what a method trains on


@dataclass(frozen=True)
class EncodedRow:
    """Token ids of one row: the prompt and one answer (completion) or two (chosen, rejected)."""

    prompt: list[int]
    answers: dict[str, list[int]]  # "completion" or "chosen" and "rejected"
    label: bool | None = None  # unpaired rows (KTO): True = desirable


def _is_conversation(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(isinstance(m, dict) and "role" in m and "content" in m for m in value)
    )


def _has(row: dict, name: str) -> bool:
    return row.get(name) is not None or row.get(f"{name}_ids") is not None


def _completion_field(row: dict) -> str | None:
    return next((f for f in COMPLETION_FIELDS if _has(row, f)), None)


def _preference_error(row: dict, where: str) -> str | None:
    missing = [f for f in PREFERENCE_FIELDS if not _has(row, f)]
    if not missing:
        return None
    hint = (
        " (the implicit-prompt form is not supported: put the shared prompt under 'prompt')"
        if missing == ["prompt"]
        else ""
    )
    has = sorted(k for k, v in row.items() if v is not None)
    return (
        f"{where} lacks the field(s) {missing} (has {has}); a preference method (dpo, orpo, ipo, simpo) needs "
        f"prompt / chosen / rejected{hint}"
    )


def row_error(row: Any, where: str, paired: bool = False, form: str | None = None) -> str | None:
    """Why ``row`` (described by ``where``, e.g. "row 7") is not a row of the wanted form, or None if it is.

    form: one of ``ROW_FORMS``; None means "preference" if ``paired`` else "completion"."""
    form = form if form is not None else ("preference" if paired else "completion")
    if form not in ROW_FORMS:
        raise ValueError(f"form must be one of {list(ROW_FORMS)}, got {form!r}")
    if not isinstance(row, dict):
        return f"{where} is a {type(row).__name__}, not a dict of fields"
    has = sorted(k for k, v in row.items() if v is not None)
    if form == "preference":
        return _preference_error(row, where)
    if form == "prompt":
        if not _has(row, "prompt"):
            return f"{where} lacks the field(s) ['prompt'] (has {has}); on-policy methods need a prompt per row"
        return None
    if form == "unpaired":
        if _has(row, "chosen") or _has(row, "rejected"):
            return _preference_error(row, where)
        missing = [f for f in ("prompt",) if not _has(row, f)]
        if _completion_field(row) is None:
            missing.append("completion")
        if not isinstance(row.get("label"), bool) and type(row.get("label")).__name__ != "bool_":
            missing.append("label")
        if missing:
            return (
                f"{where} lacks the field(s) {missing} (has {has}); kto needs prompt / completion / label "
                f"(label True = desirable) or prompt / chosen / rejected"
            )
        return None
    if row.get("messages") is not None:
        msgs = row["messages"]
        if not _is_conversation(msgs) or len(msgs) < 2 or msgs[-1]["role"] != "assistant":
            return (
                f"{where}: 'messages' must be a list of at least two {{'role', 'content'}} dicts ending "
                f"with an assistant turn (the completion)"
            )
        return None
    missing = [f for f in ("prompt",) if not _has(row, f)]
    if _completion_field(row) is None:
        missing.append("completion")
    if missing:
        hint = " (this is a preference row: use a preference method, e.g. dpo or orpo)" if _has(row, "chosen") else ""
        return (
            f"{where} lacks the field(s) {missing} (has {has}); sft and ift need prompt / completion "
            f"(or 'messages'){hint}"
        )
    return None


def unpair_rows(rows: Any) -> Any:
    """TRL's ``unpair_preference_dataset``: each prompt / chosen / rejected row becomes two prompt / completion /
    label rows (chosen: True, rejected: False), the chosen ones first. Rows already unpaired pass unchanged.
    A list gives a list; a ``datasets.Dataset`` a Dataset."""
    columnar = getattr(rows, "column_names", None) is not None
    names = list(rows.column_names) if columnar else sorted({k for r in rows for k in r})
    if "chosen" not in names and "chosen_ids" not in names:
        return rows

    def split(batch: dict[str, list]) -> dict[str, list]:
        n = len(next(iter(batch.values())))
        out: dict[str, list] = {}
        for key, values in batch.items():
            for side in ("chosen", "rejected"):
                if key in (side, f"{side}_ids"):
                    target = key.replace(side, "completion")
                    out.setdefault(target, []).extend(values)
            if not key.startswith(("chosen", "rejected")):
                out[key] = list(values) * 2
        out["label"] = [True] * n + [False] * n
        return out

    if columnar:
        return rows.map(split, batched=True, remove_columns=rows.column_names)
    table = split({k: [r.get(k) for r in rows] for k in names})
    return [dict(zip(table, values, strict=True)) for values in zip(*table.values(), strict=True)]


def validate_rows(rows: Iterable[dict], paired: bool = False, form: str | None = None) -> None:
    """Check every row of a list of dicts, or a ``datasets.Dataset``'s columns; ValueError naming the row.
    form: one of ``ROW_FORMS`` (None: "preference" if ``paired`` else "completion")."""
    if getattr(rows, "column_names", None) is not None:  # datasets.Dataset: columnar, row 0 has every field
        table: Any = rows
        rows = [table[0]] if len(table) else []
    for i, row in enumerate(rows):
        problem = row_error(row, f"row {i}", paired, form)
        if problem:
            raise ValueError(problem)


def _render(tokenizer: Any, prompt: Any, answer: Any) -> tuple[str, str]:
    """(prompt text, answer text) of a conversational prompt and answer, with the tokenizer's chat template."""
    if not _is_conversation(prompt) or not _is_conversation(answer):
        raise TypeError(
            "a conversational row needs both the prompt and the answer as lists of {'role', 'content'} messages"
        )
    cont = prompt[-1]["role"] == "assistant"  # TRL: a prompt ending with an assistant turn is continued
    prompt_text = tokenizer.apply_chat_template(
        list(prompt), tokenize=False, add_generation_prompt=not cont, continue_final_message=cont
    )
    full = tokenizer.apply_chat_template(list(prompt) + list(answer), tokenize=False)
    if not full.startswith(prompt_text):
        raise ValueError(
            "the chat template renders prompt + answer with a different prefix than the prompt "
            "alone, so the answer's tokens cannot be told apart"
        )
    return prompt_text, full[len(prompt_text) :]


class PromptResponseCollator:
    """Pads rows of TRL's formats (see the module docstring) into input_ids / attention_mask / labels.

    Right padding with ``pad_token_id``; prompt and padding labels are ``ignore_index``. Preference rows
    give ``chosen_`` / ``rejected_``-prefixed tensors; unpaired rows (KTO) give a bool ``label`` and the KL
    rows ``kl_input_ids`` / ``kl_attention_mask`` / ``kl_labels`` (prompt i, completion i - 1). With
    ``form="prompt"`` (on-policy methods) a batch is the prompts' token ids as lists (``prompt_ids``),
    the raw ``prompts`` and every other field as lists (``columns``). ``max_length`` cuts each sequence
    from the right. Text and conversational fields need ``tokenizer`` (a Hugging Face tokenizer;
    conversational ones also its chat template); ``eos_token_id`` (default: the tokenizer's) is appended
    to standard-form answers. ``mask_token_ids``: answer tokens never trained on (an environment's
    observations, e.g. ``GridEnvironment.observation_token_ids``).
    """

    def __init__(
        self,
        pad_token_id: int = 0,
        ignore_index: int = IGNORE_INDEX,
        max_length: int | None = None,
        tokenizer: Any = None,
        eos_token_id: int | None = None,
        mask_token_ids: Sequence[int] = (),
        form: str | None = None,
    ):
        if max_length is not None and max_length < 2:
            raise ValueError(f"max_length must be >= 2 (or None), got {max_length}")
        if form is not None and form not in ROW_FORMS:
            raise ValueError(f"form must be one of {list(ROW_FORMS)} (or None: from the rows), got {form!r}")
        self.pad_token_id, self.ignore_index, self.max_length = pad_token_id, ignore_index, max_length
        self.tokenizer = tokenizer
        self.eos_token_id = eos_token_id if eos_token_id is not None else getattr(tokenizer, "eos_token_id", None)
        self.mask_token_ids = frozenset(int(t) for t in mask_token_ids)
        self.form = form

    def _encode(self, text: str) -> list[int]:
        if self.tokenizer is None:
            raise ValueError(
                f"text fields need a tokenizer (got text {text[:40]!r}); pass tokenizer=... or "
                f"give token ids as <field>_ids"
            )
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _answer(self, prompt: Any, answer: Any) -> tuple[list[int] | None, list[int]]:
        """(prompt ids if the answer is conversational, else None, answer ids)."""
        if _is_conversation(answer):
            if self.tokenizer is None:
                raise ValueError("conversational rows need a tokenizer with a chat template")
            prompt_text, answer_text = _render(self.tokenizer, prompt, answer)
            return self._encode(prompt_text), self._encode(answer_text)
        if isinstance(answer, str):
            ids = self._encode(answer)
            if self.eos_token_id is not None and (not ids or ids[-1] != self.eos_token_id):
                ids.append(self.eos_token_id)
            return None, ids
        raise TypeError(f"an answer must be a string or a list of messages, got {type(answer).__name__}")

    def prompt_ids(self, row: dict, where: str = "row") -> list[int]:
        """Token ids of a row's prompt alone: ``prompt_ids``, the text, or the messages rendered with the chat
        template and its generation prompt (what a model answers)."""
        problem = row_error(row, where, form="prompt")
        if problem:
            raise ValueError(problem)
        if row.get("prompt_ids") is not None:
            ids = list(row["prompt_ids"])
        elif isinstance(row["prompt"], str):
            ids = self._encode(row["prompt"])
        elif _is_conversation(row["prompt"]) and self.tokenizer is not None:
            text = self.tokenizer.apply_chat_template(list(row["prompt"]), tokenize=False, add_generation_prompt=True)
            ids = self._encode(text)
        else:
            raise TypeError(f"{where}: a prompt must be a string, a list of messages (with a tokenizer) or prompt_ids")
        if not ids:
            raise ValueError(f"{where}: the prompt is empty (no tokens)")
        return ids

    def encode(self, row: dict, where: str = "row") -> EncodedRow:
        """Token ids of one row (any supported form). ``where`` names the row in errors."""
        paired = _has(row, "chosen") if isinstance(row, dict) else False
        unpaired = isinstance(row, dict) and not paired and row.get("label") is not None
        problem = row_error(row, where, paired, "unpaired" if unpaired else None)
        if problem:
            raise ValueError(problem)
        if not paired and row.get("messages") is not None:
            row = {"prompt": row["messages"][:-1], "completion": row["messages"][-1:]}
        names = ("chosen", "rejected") if paired else (_completion_field(row),)
        prompt_ids: list[int] | None = list(row["prompt_ids"]) if row.get("prompt_ids") is not None else None
        if prompt_ids is None and isinstance(row["prompt"], str):
            prompt_ids = self._encode(row["prompt"])
        answers: dict[str, list[int]] = {}
        for name in names:
            if row.get(f"{name}_ids") is not None:
                ids = list(row[f"{name}_ids"])
            else:
                conv_prompt, ids = self._answer(row.get("prompt"), row[name])
                if conv_prompt is not None:
                    prompt_ids = conv_prompt if prompt_ids is None else prompt_ids
            if prompt_ids is None:
                raise TypeError(f"{where}: the prompt is conversational but {name!r} is not")
            if not ids:
                raise ValueError(f"{where}: the {name} is empty (no tokens to train on)")
            answers["completion" if name in COMPLETION_FIELDS else str(name)] = ids
        if prompt_ids is None:  # every form above sets it; a row without a prompt is refused by row_error
            raise TypeError(f"{where}: no prompt")
        return EncodedRow(prompt_ids, answers, bool(row["label"]) if unpaired else None)

    def _pad(self, prompts: Sequence[list[int]], answers: Sequence[list[int]], prefix: str = "") -> dict:
        masked = self.mask_token_ids
        rows = [
            (p + r, [self.ignore_index] * len(p) + [self.ignore_index if t in masked else t for t in r])
            for p, r in zip(prompts, answers, strict=True)
        ]
        if self.max_length is not None:
            rows = [(i[: self.max_length], lab[: self.max_length]) for i, lab in rows]
        T = max(len(i) for i, _ in rows)
        ids = torch.full((len(rows), T), self.pad_token_id, dtype=torch.long)  # (B, T)
        labels = torch.full((len(rows), T), self.ignore_index, dtype=torch.long)  # (B, T)
        att = torch.zeros((len(rows), T), dtype=torch.long)  # (B, T)
        for b, (i, lab) in enumerate(rows):
            ids[b, : len(i)], labels[b, : len(lab)], att[b, : len(i)] = torch.tensor(i), torch.tensor(lab), 1
        return {f"{prefix}input_ids": ids, f"{prefix}attention_mask": att, f"{prefix}labels": labels}

    def __call__(self, examples: list[dict]) -> dict[str, Any]:
        if not examples:
            raise ValueError("cannot collate an empty list of examples")
        if self.form == "prompt":
            return self.collate_prompts(examples)
        encoded = [self.encode(ex, f"example {b} of the batch") for b, ex in enumerate(examples)]
        kinds = {(tuple(sorted(e.answers)), e.label is None) for e in encoded}
        if len(kinds) > 1:
            raise ValueError(f"a batch mixes preference, unpaired and prompt/completion rows ({sorted(kinds)})")
        prompts = [e.prompt for e in encoded]
        out: dict[str, Any] = {}
        if "chosen" in encoded[0].answers:
            for side in ("chosen", "rejected"):
                out.update(self._pad(prompts, [e.answers[side] for e in encoded], f"{side}_"))
            return out
        answers = [e.answers["completion"] for e in encoded]
        out = self._pad(prompts, answers)
        if encoded[0].label is not None:  # KTO: the label and the mismatched KL rows (TRL's rotation by one)
            out["label"] = torch.tensor([bool(e.label) for e in encoded])
            out.update(self._pad(prompts, answers[-1:] + answers[:-1], "kl_"))
        return out

    def collate_prompts(self, examples: list[dict]) -> dict[str, Any]:
        """Prompt rows for on-policy methods: prompt_ids (lists), the raw prompts, the other fields as columns."""
        ids = [self.prompt_ids(ex, f"example {b} of the batch") for b, ex in enumerate(examples)]
        names = sorted({k for ex in examples for k in ex} - {"prompt", "prompt_ids"})
        columns = {k: [ex.get(k) for ex in examples] for k in names}
        prompts = [ex.get("prompt", ex.get("prompt_ids")) for ex in examples]
        return {"prompt_ids": ids, "prompts": prompts, "columns": columns}
