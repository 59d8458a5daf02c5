"""Metrics averaged over a logging interval: exact means over every example (or token) of every
micro-batch and every process, whatever the gradient accumulation and the number of processes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch


@dataclass(frozen=True)
class Metric:
    """A metric of one batch as a sum and the number of items (examples or tokens) it sums over."""

    total: torch.Tensor  # 0-dim, detached
    count: int

    @staticmethod
    def mean_of(values: torch.Tensor) -> Metric:
        """Metric whose mean is values.mean(); values: Shape (N,)."""
        return Metric(values.detach().float().sum(), int(values.numel()))

    @property
    def mean(self) -> float:
        return float(self.total) / self.count


class LMLoss(NamedTuple):
    """What an objective returns: the scalar loss (in the graph) and its metrics by ``METRICS`` name."""

    loss: torch.Tensor
    metrics: dict[str, Metric]


class MetricAccumulator:
    """Sums and counts per metric name between two logs.

    ``add`` takes an objective's metrics (no device sync); ``pop_means`` sums every total and count
    over the processes with ``reduce_sum`` (e.g. accelerate's reduce; identity on one process),
    returns total / count per name, and starts a new interval. Every process must call pop_means
    at the same points with the same names (it is a collective).
    """

    def __init__(self) -> None:
        self._totals: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}

    def add(self, metrics: dict[str, Metric]) -> None:
        for name, m in metrics.items():
            total = m.total.detach().to(torch.float64)
            self._totals[name] = self._totals[name] + total if name in self._totals else total
            self._counts[name] = self._counts.get(name, 0) + m.count

    def __len__(self) -> int:
        return len(self._totals)

    def pop_means(
        self, reduce_sum: Callable[[torch.Tensor], torch.Tensor] | None = None, device: torch.device | None = None
    ) -> dict[str, float]:
        names = sorted(self._totals)
        if not names:
            return {}
        totals = torch.stack([self._totals[n].to(device) for n in names])  # (M,)
        counts = torch.tensor([float(self._counts[n]) for n in names], dtype=torch.float64, device=totals.device)
        both = torch.cat([totals, counts])  # (2M,)
        if reduce_sum is not None:
            both = reduce_sum(both)
        self._totals, self._counts = {}, {}
        sums, ns = both[: len(names)].tolist(), both[len(names) :].tolist()
        return {n: s / c for n, s, c in zip(names, sums, ns, strict=True) if c > 0}
