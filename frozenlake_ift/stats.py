"""Robust statistics for comparing methods over seeds, with rliable's definitions.

Agarwal et al., "Deep Reinforcement Learning at the Edge of the Statistical Precipice" (NeurIPS
2021; the ``rliable`` library) recommend, for few runs: the interquartile mean (IQM, the mean of the
middle 50% of runs), stratified bootstrap confidence intervals, and the probability of improvement
P(X > Y), the chance that a random run of X beats a random run of Y (ties count one half):

    P(X > Y) = 1 / (n m) * sum_i sum_j [ 1[x_i > y_j] + 1/2 * 1[x_i = y_j] ]

(the Mann-Whitney U statistic over n m). rliable itself fails at import beside pandas 3, so the
IQM is ``scipy.stats.trim_mean(x, 0.25)`` and its interval ``scipy.stats.bootstrap``'s percentile
interval, both computed with numpy alone as scipy computes them (the same resample draws, the same
trimmed mean and type-7 quantiles: tested equal to scipy's), so a run's summary needs no scipy
import. The stratified interval (runs from several tasks, e.g. sweep cells: ``iqm_ci(x, strata=)``)
calls scipy, which is optional (the ``stats`` extra): without it that interval is None.
P(improvement) needs numpy only.

``binomial_interval`` gives the Clopper-Pearson (exact) or Wilson interval of a success rate (the
Monte-Carlo checks of ``agents.evaluate``), with no scipy either.
"""

from __future__ import annotations

import math

import numpy as np

CLAIM_THRESHOLD = 0.75  # a "better" in a claim needs P(improvement) >= this (rliable reports it; we judge by it)
BOOTSTRAP_RESAMPLES = 2000
INTERVAL_METHODS = ("clopper-pearson", "wilson")  # binomial_interval
DEFAULT_CONFIDENCE = 0.99  # of a Monte-Carlo success rate (agents.evaluate)


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
    """Interquartile mean: the mean of the middle 50% of the runs (``scipy.stats.trim_mean(x, 0.25)``, ``iqm_rows``)."""
    return float(iqm_rows(np.asarray(x, dtype=np.float64).reshape(1, -1))[0])


def trimmed_mean(a: np.ndarray, axis: int = -1, proportion: float = 0.25) -> np.ndarray:
    """``scipy.stats.trim_mean(a, proportion, axis)`` by a sort (several times faster than its partition on
    the bootstrap's (k, n_resamples, n) blocks); equal up to the order of summation. Shape: reduces ``axis``."""
    a = np.moveaxis(np.asarray(a, dtype=np.float64), axis, -1)
    n = a.shape[-1]
    cut = _cut(n, proportion)
    return np.sort(a, axis=-1)[..., cut : n - cut].mean(-1)


def _cut(n: int, proportion: float) -> int:
    """How many values a trimmed mean drops at each end (scipy's trim_mean: int(proportion * n))."""
    cut = int(proportion * n)
    if cut >= n - cut:
        raise ValueError(f"proportion {proportion} trims all {n} values")
    return cut


def iqm_rows(x) -> np.ndarray:
    """The IQM of each row of x. Shape: (k, n) -> (k,).

    Computed as ``scipy.stats.trim_mean(x, 0.25, axis=-1)`` computes it (a partition at the two cuts, then
    the mean of the middle), with numpy alone: the same numbers, without importing scipy.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    cut = _cut(n, 0.25)
    return np.partition(x, (cut, n - cut - 1), axis=-1)[..., cut : n - cut].mean(-1).reshape(x.shape[0])


def _quantile_linear(theta: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The p-quantiles of each row (Hyndman & Fan type 7, "linear", as ``scipy.stats.quantile`` and
    ``np.quantile`` define it), formed as scipy forms them. Shapes: theta (k, m), p (q,) -> (k, q)."""
    y = np.sort(theta, axis=-1)
    m = y.shape[-1]
    jg = p * m + (1 - p)
    jp1 = jg // 1
    j = jp1 - 1
    g = np.where(j < 0, 0.0, jg % 1)
    j, jp1 = np.clip(j, 0.0, m - 1).astype(np.int64), np.clip(jp1, 0.0, m - 1).astype(np.int64)
    return (1 - g) * y[..., j] + g * y[..., jp1]


def iqm_ci_rows(
    x, confidence: float = 0.95, n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> list[tuple[float, float] | None]:
    """``iqm_ci`` of every row of x at once (one bootstrap). Shape: (k, n) -> k intervals.

    ``scipy.stats.bootstrap(..., method="percentile", vectorized=True)`` with ``trimmed_mean`` as the
    statistic, done with numpy: every call draws the resample indices (n_resamples, n) scipy draws from
    a fresh ``default_rng(seed)`` and applies that one draw to every row, so each row gets the interval
    it gets alone (``iqm_ci(row)``); the interval is the type-7 quantile pair scipy forms.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"iqm_ci_rows needs a 2-d array (k rows, n runs), got shape {x.shape}")
    out: list[tuple[float, float] | None] = [None] * x.shape[0]
    if x.shape[1] < 2:
        return out
    finite = np.isfinite(x).all(-1)  # a diverged run (NaN) has no interval
    flat = finite & (x == x[:, :1]).all(-1)  # every run equal: the value itself
    rows = np.flatnonzero(finite & ~flat)
    for i in np.flatnonzero(flat):
        out[i] = (float(x[i, 0]), float(x[i, 0]))
    if rows.size:
        n = x.shape[1]
        idx = np.random.default_rng(seed).integers(0, n, (n_resamples, n))  # the resamples scipy draws
        theta = trimmed_mean(x[rows][:, idx], axis=-1)  # (k, n_resamples): the IQM of every resample
        alpha = np.float64((1 - confidence) / 2)
        ci = _quantile_linear(theta, np.stack([alpha, 1 - alpha]))  # (k, 2)
        for j, i in enumerate(rows):
            out[i] = (float(ci[j, 0]), float(ci[j, 1]))
    return out


def iqm_ci(
    x, confidence: float = 0.95, n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0, strata=None
) -> tuple[float, float] | None:
    """Bootstrap percentile interval of the IQM; stratified by ``strata`` (Shape (n,) labels) if given.

    Returns (low, high), or None with fewer than 2 runs, when stratified without scipy, or when a run is
    not finite;
    when every run is equal, the degenerate interval (value, value).
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    if strata is None:
        return iqm_ci_rows(x.reshape(1, -1), confidence, n_resamples, seed)[0]
    stats = _scipy_stats()
    if stats is None or x.size < 2 or not np.isfinite(x).all():
        return None
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
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


# ----------------------------------------------------------------- a binomial proportion's interval
def _log_choose(n: int) -> np.ndarray:
    """log C(n, k) for k = 0..n. Shape (n + 1,)."""
    return np.array([math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) for k in range(n + 1)])


def _tail(log_choose: np.ndarray, k: int, p: float, upper: bool) -> float:
    """P(X >= k) (upper) or P(X <= k), X ~ Binomial(n, p), n = len(log_choose) - 1."""
    n = len(log_choose) - 1
    if p <= 0:
        return float(k <= 0) if upper else 1.0
    if p >= 1:
        return 1.0 if upper else float(k >= n)
    j = np.arange(k, n + 1) if upper else np.arange(0, k + 1)
    lp = log_choose[j] + j * math.log(p) + (n - j) * math.log1p(-p)  # log P(X = j)
    m = lp.max()
    return float(min(1.0, math.exp(m) * np.exp(lp - m).sum()))


def _bisect(f, lo: float = 0.0, hi: float = 1.0, iters: int = 60) -> float:
    """Root of an increasing f on [lo, hi] by bisection (to 2^-60)."""
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if f(mid) < 0 else (lo, mid)
    return 0.5 * (lo + hi)


def binomial_interval(
    successes: int, trials: int, confidence: float = DEFAULT_CONFIDENCE, method: str = "clopper-pearson"
) -> tuple[float, float]:
    """Two-sided interval for a binomial proportion: (low, high).

    clopper-pearson: low solves P(X >= k | low) = alpha / 2, high solves P(X <= k | high) = alpha / 2
    (0 and 1 at k = 0 and k = n); wilson: the score interval. alpha = 1 - confidence.
    """
    for name, v in (("successes", successes), ("trials", trials)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, got {v!r}")
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"need trials >= 1 and 0 <= successes <= trials, got successes={successes}, trials={trials}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    if method not in INTERVAL_METHODS:
        raise ValueError(f"method must be one of {INTERVAL_METHODS}, got {method!r}")
    n, k, alpha = int(trials), int(successes), 1.0 - confidence
    if method == "wilson":
        from statistics import NormalDist

        z = NormalDist().inv_cdf(1 - alpha / 2)
        p, denom = k / n, 1 + z * z / n
        centre, half = (p + z * z / (2 * n)) / denom, z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
        return max(0.0, centre - half), min(1.0, centre + half)
    lc = _log_choose(n)
    low = 0.0 if k == 0 else _bisect(lambda p: _tail(lc, k, p, upper=True) - alpha / 2)
    high = 1.0 if k == n else _bisect(lambda p: alpha / 2 - _tail(lc, k, p, upper=False))
    return low, high
