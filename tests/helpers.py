"""Setup shared by several test modules (imported as ``from helpers import ...``, as ``strategies``)."""

import json


def saved_cells(d) -> dict:
    """Every saved cell of a sweep folder, without its timing: key -> record."""
    out = {}
    for p in sorted((d / "cells").glob("*.json")):
        rec = json.loads(p.read_text())
        rec.pop("seconds")
        out[p.stem] = rec
    return out


def tiny_gpt2(seed: int = 0, vocab: int = 24, n_positions: int = 32):
    """A 2-layer, 32-wide GPT-2 without dropout, built from a config (nothing is downloaded)."""
    import torch
    import transformers

    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(
        n_layer=2,
        n_embd=32,
        n_head=2,
        vocab_size=vocab,
        n_positions=n_positions,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=1,
        eos_token_id=2,
    )
    return transformers.GPT2LMHeadModel(cfg)
