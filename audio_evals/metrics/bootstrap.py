"""Percentile bootstrap confidence intervals over utterances.

Utterances are resampled with replacement and the metric's own corpus aggregate is recomputed on
each resample, so a corpus WER's interval reflects sums of edits, not a mean of sample WERs.
For a ``StatsMetric`` a resample is one row gather on its stats matrix (10k samples x 1000
resamples in about a second); any other metric is re-aggregated from resampled score lists.
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


def bootstrap_ci(metric: Metric, scores: list[SampleScore], n_resamples: int = 1000, seed: int = 0,
                 confidence: float = 0.95) -> tuple[float, float]:
    """The ``confidence`` percentile interval of ``metric.aggregate`` under utterance resampling.

    Deterministic for a given ``seed`` (numpy ``default_rng``). NaN bounds when nothing is scored.
    """
    n, aggregate = _resample_aggregate(metric, scores)
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.array([aggregate(rng.integers(0, n, size=n)) for _ in range(n_resamples)])
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)
