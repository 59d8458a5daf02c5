"""Robust statistics for comparing methods over seeds, with rliable's definitions.

Agarwal et al., "Deep Reinforcement Learning at the Edge of the Statistical Precipice" (NeurIPS
2021; the ``rliable`` library) recommend, for few runs: the interquartile mean (IQM, the mean of the
middle 50% of runs), stratified bootstrap confidence intervals, and the probability of improvement
P(X > Y), the chance that a random run of X beats a random run of Y (ties count one half):

    P(X > Y) = 1 / (n m) * sum_i sum_j [ 1[x_i > y_j] + 1/2 * 1[x_i = y_j] ]

(the Mann-Whitney U statistic over n m). rliable itself fails at import beside pandas 3, so the
bootstrap is ``scipy.stats.bootstrap`` (percentile intervals; stratified by task when runs come from
several tasks, e.g. sweep cells) and the IQM ``scipy.stats.trim_mean(x, 0.25)``. scipy is optional
(the ``stats`` extra): without it the IQM and its interval are None, P(improvement) needs numpy only.
"""

from __future__ import annotations

import numpy as np

CLAIM_THRESHOLD = 0.75  # a "better" in a claim needs P(improvement) >= this (rliable reports it; we judge by it)
BOOTSTRAP_RESAMPLES = 2000


def probability_of_improvement(x, y, higher_is_better: bool = True) -> float:
    """P(a run of x is better than a run of y), ties counting 1/2. Shapes: x (n,), y (m,) -> float in [0, 1]."""
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if x.size == 0 or y.size == 0:
        raise ValueError("probability_of_improvement needs at least one run on each side")
    diff = x[:, None] - y[None, :]  # (n, m)
    if not higher_is_better:
        diff = -diff
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def _scipy_stats():
    try:
        from scipy import stats
    except ImportError:
        return None
    return stats


def iqm(x) -> float:
    """Interquartile mean: the mean of the middle 50% of the runs (``scipy.stats.trim_mean(x, 0.25)``)."""
    stats = _scipy_stats()
    x = np.asarray(x, dtype=np.float64).ravel()
    if stats is None:
        return float("nan")
    return float(stats.trim_mean(x, 0.25))


def iqm_ci(
    x, confidence: float = 0.95, n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0, strata=None
) -> tuple[float, float] | None:
    """Bootstrap percentile interval of the IQM; stratified by ``strata`` (Shape (n,) labels) if given.

    Returns (low, high), or None with fewer than 2 runs, without scipy, or when every run is equal
    (a degenerate interval, reported as the value itself).
    """
    stats = _scipy_stats()
    x = np.asarray(x, dtype=np.float64).ravel()
    if stats is None or x.size < 2 or not np.isfinite(x).all():  # a diverged run (NaN) has no interval
        return None
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    if strata is None:
        res = stats.bootstrap(
            (x,),
            lambda a, axis: stats.trim_mean(a, 0.25, axis=axis),
            confidence_level=confidence,
            n_resamples=n_resamples,
            method="percentile",
            vectorized=True,
            random_state=rng,
        )
        return float(res.confidence_interval.low), float(res.confidence_interval.high)
    strata = np.asarray(strata)
    groups = [x[strata == s] for s in np.unique(strata)]

    def stat(*gs, axis=-1):  # resample within each stratum, pool, then the IQM
        return stats.trim_mean(np.concatenate(gs, axis=axis), 0.25, axis=axis)

    res = stats.bootstrap(
        groups,
        stat,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        vectorized=True,
        random_state=rng,
        paired=False,
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)
