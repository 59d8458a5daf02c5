"""The teaching notebooks' hands-on parts: "implement it" checks with hints, and slider cells.

    check_bellman_backup(fn)     one Bellman backup Q = R + gamma * sum_s' P V        (notebook 01)
    check_sft_loss(fn)           SFT's loss on masked per-step log-probs               (notebook 02)
    check_prefix_weight(fn, row) a Table 1 prefix weight: "truly" or "ift"             (notebooks 02, 04)
    check_relation_weights(fn)   IFT's relation-propagation weights (Algorithm 1)      (notebook 02)
    check_dpo_loss(fn)           DPO's loss on summed log-probs                        (notebook 03)
    sliders(fn, **controls)      fn with a slider or menu per argument (ipywidgets), or one line on how to get them

Each ``check_*`` calls the student's function on a few small, seeded inputs, compares it with the
package's own implementation (``losses``, ``theory``, ``TabularMDP.q_from_v``) and returns a
``Verdict``: correct, or the most likely mistake named as a hint (each check knows the common wrong
answers and recognises them by their outputs), or the first input where the two differ. A function
that still raises ``NotImplementedError`` (the notebooks' templates) gets "not implemented yet", so
a notebook with its templates unfilled still runs top to bottom. The checks only read what the
student's function returns; nothing here is graded or stored.

The judging machinery is ``exercises.judging``, the exercises themselves ``exercises.builtin``, the sliders
``exercises.sliders``; this package re-exports the public names.
"""

from .builtin import (
    PREFIX_ROWS,
    check_bellman_backup,
    check_dpo_loss,
    check_prefix_weight,
    check_relation_weights,
    check_sft_loss,
    exercises,
)
from .judging import ATOL, RTOL, Case, Exercise, Mistake, Verdict, judge
from .sliders import NO_WIDGETS, sliders

__all__ = [
    "ATOL",
    "NO_WIDGETS",
    "PREFIX_ROWS",
    "RTOL",
    "Case",
    "Exercise",
    "Mistake",
    "Verdict",
    "check_bellman_backup",
    "check_dpo_loss",
    "check_prefix_weight",
    "check_relation_weights",
    "check_sft_loss",
    "exercises",
    "judge",
    "sliders",
]
