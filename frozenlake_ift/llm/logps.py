"""Per-token log-probs of a causal LM without a full-size float32 copy of its logits.

``token_logps`` is the only logits -> log-probs boundary of the LLM path. It computes
log p(x_{t+1} | x_{<=t}) = logit[t, x_{t+1}] - logsumexp(logit[t, :]) chunk by chunk (a selective
log-softmax): each chunk of positions is upcast to float32 (or kept in float64), reduced to one
logsumexp per position and dropped, so the extra memory is one chunk (about ``chunk_bytes``), not a
(B, T-1, V) float32 copy (10 GB at B = 8, T = 2048, V = 150k). The backward pass (a custom autograd
function) recomputes the softmax chunk by chunk and writes the gradient straight into a tensor of the
logits' own dtype and shape: the only full-size allocation is that gradient, which any method needs.
Positions outside each row's span of target tokens (prompt, padding) are skipped in both passes.
"""

from __future__ import annotations

from typing import Any

import torch

IGNORE_INDEX = -100
CHUNK_BYTES = 16 * 2**20  # float32 working set of one chunk: 16 MiB (~80 positions at V = 50k)


def _spans(mask: torch.Tensor) -> list[tuple[int, int, int]]:
    """(row, first, end) of each row's unmasked positions. mask: Shape (B, T) bool, every row non-empty."""
    T = mask.shape[1]
    steps = torch.arange(T, device=mask.device)  # (T,)
    first = torch.where(mask, steps, T).amin(dim=1)  # (B,)
    end = torch.where(mask, steps, -1).amax(dim=1) + 1  # (B,)
    return [(b, lo, hi) for b, (lo, hi) in enumerate(zip(first.tolist(), end.tolist(), strict=True))]


def _chunks(spans: list[tuple[int, int, int]], rows: int):
    for b, lo, hi in spans:
        for s in range(lo, hi, rows):
            yield b, s, min(s + rows, hi)


def _logsumexp_into(chunk: torch.Tensor, buf: torch.Tensor) -> torch.Tensor:
    """logsumexp over the last axis of ``chunk`` (n, V), computed in place in ``buf`` (n, V): Shape (n,)."""
    buf.copy_(chunk)  # upcast into the reused buffer: no allocation of size V per chunk
    top = buf.amax(dim=-1, keepdim=True)  # (n, 1)
    top = top.masked_fill(~torch.isfinite(top), 0.0)  # rows of -inf (or inf) stay as logsumexp gives them
    return buf.sub_(top).exp_().sum(dim=-1).log_().add_(top[:, 0])  # (n,)


class _SelectiveLogSoftmax(torch.autograd.Function):
    """logits (B, T, V), targets (B, T-1), mask (B, T-1) -> log-probs (B, T-1) in float32 or wider.

    One working buffer of ``rows`` x V in the compute dtype is allocated per pass and reused for every
    chunk (allocating a fresh chunk each time fragments the CPU heap by hundreds of MiB).
    """

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, rows: int) -> torch.Tensor:
        work = torch.promote_types(logits.dtype, torch.float32)
        B, T1 = targets.shape
        lse = torch.zeros(B, T1, dtype=work, device=logits.device)  # (B, T-1)
        spans = _spans(mask)
        buf = torch.empty(min(rows, T1), logits.shape[-1], dtype=work, device=logits.device)  # (rows, V)
        for b, s, e in _chunks(spans, rows):
            lse[b, s:e] = _logsumexp_into(logits[b, s:e], buf[: e - s])  # (n,)
        del buf
        picked = logits[:, :-1].gather(-1, targets.unsqueeze(-1)).squeeze(-1).to(work)  # (B, T-1)
        ctx.save_for_backward(logits, targets, lse)
        ctx.spans, ctx.rows = spans, rows
        return picked - lse  # (B, T-1); garbage outside the spans, masked by the caller

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor):
        logits, targets, lse = ctx.saved_tensors
        out = torch.zeros_like(logits)  # (B, T, V): the gradient itself, logits' dtype; 0 outside the spans
        T1 = targets.shape[1]
        buf = torch.empty(min(ctx.rows, T1), logits.shape[-1], dtype=lse.dtype, device=logits.device)  # (rows, V)
        for b, s, e in _chunks(ctx.spans, ctx.rows):
            g = grad[b, s:e, None].to(lse.dtype)  # (n, 1)
            p = buf[: e - s]
            p.copy_(logits[b, s:e]).sub_(lse[b, s:e, None]).exp_()  # (n, V): softmax
            p.mul_(-g).scatter_add_(-1, targets[b, s:e, None], g)  # d(logit[y] - lse)/dlogit, times grad
            out[b, s:e].copy_(p)
        return out, None, None, None


def chunk_rows(vocab: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    """Positions per chunk so that one float32 chunk of width ``vocab`` takes about ``chunk_bytes``."""
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be >= 1, got {chunk_bytes}")
    return max(1, chunk_bytes // (4 * max(vocab, 1)))


def token_logps(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX, chunk_bytes: int = CHUNK_BYTES
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of each target token under the causal shift: position t predicts token t + 1.

    Shape: logits (B, T, V) (any float dtype: bf16/fp16 are upcast chunk by chunk),
    labels (B, T) -> logps (B, T-1) (0 where masked; float32, or float64 for float64 logits),
    mask (B, T-1) bool. Peak extra memory: one chunk of ``chunk_bytes`` plus (B, T) vectors;
    backward: the logits-sized gradient only. Raises ValueError when a row has no target token, a label is
    out of range or the batch is empty, TypeError for arguments that are not tensors (labels: integer ids).
    """
    for name, value in (("logits", logits), ("labels", labels)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"ignore_index must be an int, got {type(ignore_index).__name__} {ignore_index!r}")
    if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int):
        raise TypeError(f"chunk_bytes must be an int, got {type(chunk_bytes).__name__}")
    if logits.dim() != 3 or labels.dim() != 2 or tuple(labels.shape) != tuple(logits.shape[:2]):
        raise ValueError(
            f"logits must have shape (B, T, V) and labels (B, T) with the same B, T; "
            f"got logits {tuple(logits.shape)}, labels {tuple(labels.shape)}"
        )
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got {logits.dtype}")
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"labels must be an integer tensor of token ids, got {labels.dtype}")
    if labels.shape[0] < 1 or logits.shape[-1] < 1:
        raise ValueError(
            f"token_logps needs a batch of at least one sequence and a vocabulary of at least one token; "
            f"got logits {tuple(logits.shape)}"
        )
    if labels.shape[1] < 2:
        raise ValueError(f"sequences need at least 2 tokens for the causal shift, got T={labels.shape[1]}")
    targets = labels[:, 1:].long()  # (B, T-1)
    mask = targets != ignore_index  # (B, T-1)
    empty = (~mask.any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(
            f"labels are all ignore_index={ignore_index} (after the causal shift) in batch rows "
            f"{empty[:10]}: every sequence needs at least one response token to train on"
        )
    safe = targets.masked_fill(~mask, 0)  # (B, T-1)
    if int(safe.max()) >= logits.shape[-1] or int(safe.min()) < 0:
        raise ValueError(
            f"labels must lie in [0, V={logits.shape[-1]}) or equal ignore_index={ignore_index}; "
            f"got values in [{int(safe.min())}, {int(safe.max())}]"
        )
    logps = _SelectiveLogSoftmax.apply(logits, safe, mask, chunk_rows(logits.shape[-1], chunk_bytes))  # (B, T-1)
    return logps.masked_fill(~mask, 0.0), mask


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DDP / DeepSpeed / other ``.module`` wrappers (the one with get_input_embeddings)."""
    while not hasattr(model, "get_input_embeddings"):
        inner = getattr(model, "module", None)
        if not isinstance(inner, torch.nn.Module):
            break
        model = inner
    return model


def model_logits(model: torch.nn.Module, **inputs: Any) -> torch.Tensor:
    """model(**inputs).logits, Shape (B, T, V); None inputs dropped; no KV cache for HF models."""
    inputs = {k: v for k, v in inputs.items() if v is not None}
    if getattr(getattr(unwrap_model(model), "config", None), "use_cache", None) is not None:
        inputs["use_cache"] = False
    out = model(**inputs)
    return out.logits if hasattr(out, "logits") else out["logits"] if isinstance(out, dict) else out[0]


def context_length(model: torch.nn.Module) -> int | None:
    """The longest sequence the model takes (its config's n_positions or max_position_embeddings), or None."""
    config = getattr(unwrap_model(model), "config", None)
    for name in ("n_positions", "max_position_embeddings"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
