"""Percentile bootstrap confidence intervals over utterances.

Utterances are resampled with replacement and the metric's own corpus aggregate is recomputed on
each resample, so a corpus WER's interval reflects sums of edits, not a mean of sample WERs.
For a ``StatsMetric`` a resample is one row gather on its stats matrix (10k samples x 1000
resamples in about a second); any other metric is re-aggregated from resampled score lists.
Two runs of the same utterances are compared by resampling the utterances jointly (paired).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from audio_evals.metrics.base import Metric, SampleScore, StatsMetric


def _resample_aggregate(metric: Metric, scores: list[SampleScore]) -> tuple[int, Callable[[np.ndarray], float]]:
    """How many units are resampled and the aggregate of one resample given as row indices."""
    if isinstance(metric, StatsMetric):
        matrix = metric.stats_matrix(scores)
        return len(matrix), lambda rows: metric.aggregate_arrays(metric.columns(matrix[rows]))
    return len(scores), lambda rows: metric.aggregate([scores[i] for i in rows])


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def bootstrap_ci(metric: Metric, scores: list[SampleScore], n_resamples: int = 1000, seed: int = 0,
                 confidence: float = 0.95) -> tuple[float, float]:
    """The ``confidence`` percentile interval of ``metric.aggregate`` under utterance resampling.

    Deterministic for a given ``seed`` (numpy ``default_rng``). NaN bounds when nothing is scored.
    """
    n, aggregate = _resample_aggregate(metric, scores)
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    return _interval(np.array([aggregate(rng.integers(0, n, size=n)) for _ in range(n_resamples)]), confidence)


def paired_difference_ci(metric: Metric, before: list[SampleScore], after: list[SampleScore],
                         n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> tuple[float, float]:
    """The interval of ``aggregate(after) - aggregate(before)`` when both runs are resampled jointly.

    ``before[i]`` and ``after[i]`` are the same utterance, each counted by ``metric``; drawing the
    same utterances for both runs removes the between-utterance variance the two figures share,
    so the interval is far narrower than two independent intervals suggest.
    """
    n, aggregate_before = _resample_aggregate(metric, before)
    n_after, aggregate_after = _resample_aggregate(metric, after)
    if n != n_after:
        raise ValueError(f"paired scores differ in length: {n} counted before, {n_after} after")
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = (rng.integers(0, n, size=n) for _ in range(n_resamples))
    return _interval(np.array([aggregate_after(rows) - aggregate_before(rows) for rows in draws]), confidence)
