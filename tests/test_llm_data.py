"""TRL's dataset formats through PromptResponseCollator: prompt/completion, prompt/chosen/rejected, the
conversational forms (chat template), token ids, datasets.Dataset, and errors naming the row and the field."""

from __future__ import annotations

import pytest
import torch

from frozenlake_ift import llm

pytest.importorskip("transformers")

TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} <eos> {% endfor %}"
    "{% if add_generation_prompt %}<assistant> {% endif %}"
)


@pytest.fixture(scope="module")
def tok():
    """The grid tokenizer (word level, no download) with a tiny chat template."""
    t = llm.grid_tokenizer()
    t.add_tokens(["<user>", "<assistant>"])
    t.chat_template = TEMPLATE
    return t


def ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def test_prompt_completion_text_gets_eos_and_masked_prompt(tok):
    rows = [
        {"prompt": "map : S F G / moves :", "completion": " right right"},
        {"prompt": "map : S G / moves :", "response": " right"},
    ]  # the older field name
    batch = llm.PromptResponseCollator(pad_token_id=tok.pad_token_id, tokenizer=tok)(rows)
    for b, row in enumerate(rows):
        p, c = ids(tok, row["prompt"]), ids(tok, row.get("completion", row.get("response"))) + [tok.eos_token_id]
        assert batch["input_ids"][b, : len(p) + len(c)].tolist() == p + c
        assert (
            batch["labels"][b, : len(p)].eq(-100).all() and batch["labels"][b, len(p) : len(p) + len(c)].tolist() == c
        )
        assert int(batch["attention_mask"][b].sum()) == len(p) + len(c)


def test_preference_text_and_ids_agree(tok):
    text = {"prompt": "map : S F G / moves :", "chosen": " right right", "rejected": " left"}
    as_ids = {
        "prompt_ids": ids(tok, text["prompt"]),
        "chosen_ids": ids(tok, " right right") + [tok.eos_token_id],
        "rejected_ids": ids(tok, " left") + [tok.eos_token_id],
    }
    col = llm.PromptResponseCollator(pad_token_id=tok.pad_token_id, tokenizer=tok)
    a, b = col([text]), col([as_ids])
    assert (
        a.keys()
        == b.keys()
        == {f"{s}_{k}" for s in ("chosen", "rejected") for k in ("input_ids", "attention_mask", "labels")}
    )
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_conversational_forms_use_the_chat_template(tok):
    prompt = [{"role": "user", "content": "map : S F G / moves :"}]
    answer = [{"role": "assistant", "content": "right right"}]
    col = llm.PromptResponseCollator(pad_token_id=tok.pad_token_id, tokenizer=tok)
    conv = col([{"prompt": prompt, "completion": answer}])
    p_text = "<user> map : S F G / moves : <eos> <assistant> "
    want_prompt, want_answer = ids(tok, p_text), ids(tok, "right right <eos>")
    assert conv["input_ids"][0].tolist() == want_prompt + want_answer  # no EOS appended: the template ends the turn
    assert conv["labels"][0].tolist() == [-100] * len(want_prompt) + want_answer
    msgs = col([{"messages": prompt + answer}])  # conversational language modelling: the last turn is the completion
    assert all(torch.equal(conv[k], msgs[k]) for k in conv)
    pair = col([{"prompt": prompt, "chosen": answer, "rejected": [{"role": "assistant", "content": "left"}]}])
    assert pair["chosen_input_ids"][0].tolist() == want_prompt + want_answer
    assert pair["rejected_labels"][0].tolist() == [-100] * len(want_prompt) + ids(tok, "left <eos>")


def test_datasets_dataset_rows_work_like_a_list(tok):
    datasets = pytest.importorskip("datasets")
    assert llm.grid_dataset([], "preference") == []
    from frozenlake_ift.config import StudyConfig

    rows = llm.grid_dataset(StudyConfig(), "preference")
    ds = datasets.Dataset.from_list(rows)
    col = llm.PromptResponseCollator(pad_token_id=tok.pad_token_id, tokenizer=tok)
    a, b = col([ds[0]]), col(rows[:1])
    assert all(torch.equal(a[k], b[k]) for k in a)
    llm.validate_rows(ds, paired=True)
    with pytest.raises(
        ValueError, match=r"row 0 lacks the field\(s\) \['completion'\].*use a preference method, e.g. dpo or orpo"
    ):
        llm.validate_rows(ds, paired=False)


def test_wrong_rows_name_the_row_and_the_missing_field(tok):
    good = {"prompt": "map :", "completion": " up"}
    with pytest.raises(ValueError, match=r"row 2 lacks the field\(s\) \['completion'\] \(has \['prompt'\]\)"):
        llm.validate_rows([good, good, {"prompt": "map :"}], paired=False)
    with pytest.raises(ValueError, match=r"row 1 lacks the field\(s\) \['rejected'\]"):
        llm.validate_rows([{"prompt": "a", "chosen": "b", "rejected": "c"}, {"prompt": "a", "chosen": "b"}], True)
    with pytest.raises(ValueError, match="implicit-prompt form is not supported"):
        llm.validate_rows([{"chosen": "b", "rejected": "c"}], paired=True)
    with pytest.raises(ValueError, match="row 0 is a str"):
        llm.validate_rows(["text"], paired=False)
    with pytest.raises(ValueError, match="ending with an assistant turn"):
        llm.validate_rows([{"messages": [{"role": "user", "content": "x"}]}], paired=False)
    col = llm.PromptResponseCollator(tokenizer=tok)
    with pytest.raises(ValueError, match=r"example 1 of the batch lacks the field\(s\) \['completion'\]"):
        col([good, {"prompt": "map :", "answer": " up"}])
    with pytest.raises(ValueError, match="need a tokenizer"):
        llm.PromptResponseCollator()([good])
    with pytest.raises(ValueError, match="mixes preference"):
        col([good, {"prompt": "a", "chosen": " up", "rejected": " down"}])
