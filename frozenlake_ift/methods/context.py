"""The records a method's functions receive and return (no torch import here; tensors in fields)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class StepContext:
    """What a method's ``batch`` and ``loss`` functions may read.

    config: the StudyConfig. data: ``data.GridData`` (map, pi*, routes, tensors). reference:
    ``data.Reference`` (theta_0 as ``reference.base``, theta*, the MDP in float64). generator: the
    method's own seeded ``torch.Generator`` on the study's device (all sampling draws from it, so a
    run is reproducible bit for bit on CPU). method: the ``Method`` record. cache: scratch space a
    batch builder may keep between steps (e.g. samples it reuses for ``resample_every`` steps).
    logging: whether the study records this step's ``LossOutput.stats`` (an evaluation step).
    """

    config: Any
    data: Any
    reference: Any
    generator: Any
    method: Any
    cache: dict = field(default_factory=dict)
    logging: bool = True  # this step's statistics are recorded: losses may skip computing them otherwise


@dataclass
class LossOutput:
    """A loss with per-member statistics to log: loss Shape (E,), stats {name: Tensor (E,)}.

    A method's loss may return this instead of a bare (E,) tensor; the study logs the statistics
    (TRL's names where they exist, e.g. ``rewards/margins``) beside its metrics.
    """

    loss: Any
    stats: dict = field(default_factory=dict)
