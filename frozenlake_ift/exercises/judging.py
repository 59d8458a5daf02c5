"""How a student's function is judged: the reference, the inputs, the known mistakes, and the verdict.

``judge`` calls the student's function on each ``Case`` (fresh copies of its inputs), compares the outputs
with the reference's (``RTOL``, ``ATOL``), and when they differ names the first ``Mistake`` whose outputs
they match, or the first input where they part. Nothing here knows a particular exercise (``builtin``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

RTOL, ATOL = 1e-6, 1e-9  # how close an answer must be to the reference


@dataclass(frozen=True)
class Verdict:
    """The outcome of a check: ``ok`` and one line for the student (shown as the cell's output)."""

    exercise: str
    ok: bool
    message: str

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"{'correct' if self.ok else 'not yet'} ({self.exercise}): {self.message}"


@dataclass(frozen=True)
class Case:
    """One input of a check: a description for the messages and the keyword arguments."""

    text: str
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class Mistake:
    """A common wrong answer (a function with the student's signature) and the hint that names it."""

    hint: str
    fn: Callable[..., Any]


@dataclass(frozen=True)
class Exercise:
    """One "implement it" exercise: the package's reference, the inputs it is checked on and the known mistakes."""

    title: str
    reference: Callable[..., Any]
    cases: Callable[[], list[Case]]  # built on demand (some make lakes)
    mistakes: tuple[Mistake, ...]

    def check(self, fn: Callable) -> Verdict:
        """The student's ``fn`` against the reference (see ``judge``)."""
        return judge(self.title, fn, self.reference, self.cases(), self.mistakes)


def _as_array(value) -> np.ndarray | None:
    if value is None or value is Ellipsis:
        return None
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return (
        a is not None
        and b is not None
        and a.shape == b.shape
        and bool(np.allclose(a, b, rtol=RTOL, atol=ATOL, equal_nan=False))
    )


def _copy(kwargs: dict) -> dict:
    """Fresh inputs for every call, so that a function that writes into its arguments changes nothing."""
    return {
        k: v.clone() if isinstance(v, torch.Tensor) else v.copy() if isinstance(v, np.ndarray) else v
        for k, v in kwargs.items()
    }


def judge(exercise: str, student: Callable, reference: Callable, cases: Sequence[Case], mistakes: Sequence[Mistake]):
    """Compare ``student`` with ``reference`` on every case; name a known mistake when the outputs match one."""
    if not callable(student):
        return Verdict(exercise, False, f"pass your function itself (got {type(student).__name__})")
    got, want = [], []
    for case in cases:
        try:
            out = student(**_copy(case.kwargs))
        except NotImplementedError:
            return Verdict(exercise, False, "not implemented yet: write the function's body, then run this cell again")
        except Exception as err:  # the student's code: report any error as a hint, never crash the notebook
            return Verdict(exercise, False, f"your function raised {type(err).__name__}: {err} (on {case.text})")
        got.append(_as_array(out))
        want.append(_as_array(reference(**_copy(case.kwargs))))
        if got[-1] is None:
            return Verdict(
                exercise, False, f"your function returned {type(out).__name__}: return the result ({case.text})"
            )
    if all(_same(g, w) for g, w in zip(got, want, strict=True)):
        return Verdict(exercise, True, f"matches the package's implementation on all {len(cases)} inputs")
    for mistake in mistakes:
        if all(_same(g, _as_array(mistake.fn(**_copy(c.kwargs)))) for g, c in zip(got, cases, strict=True)):
            return Verdict(exercise, False, mistake.hint)
    i = next(i for i, (g, w) in enumerate(zip(got, want, strict=True)) if not _same(g, w))
    g, w = got[i], want[i]
    assert g is not None and w is not None, "both were converted above"
    if g.shape != w.shape:
        return Verdict(exercise, False, f"expected Shape {w.shape}, got {g.shape} (on {cases[i].text})")
    return Verdict(exercise, False, f"on {cases[i].text}: expected {np.round(w, 4)}, got {np.round(g, 4)}")
