"""Opt-in removal of abnormal samples from a WER/CER figure (``--drop-above-wer``).

The Step-Audio-R1.1 seed report notes "Filtered abnormal samples (WER > 1000)". Per-sample error
rates here are percent (x100), as the reference's per-sample ``wer%``/``cer%`` are, so a threshold
of 1000 drops a sample with ten times more errors than reference words: a runaway reply, not a
recognition error. (The reference's ``PracticeWERFilter`` aggregate, registered for no seed row,
keeps ``wer% < 100`` instead; ``--drop-above-wer 100`` is close to it, but keeps exactly 100.)
Off by default; a dropped sample stays in ``samples.jsonl`` with status ``dropped`` and its reason,
and the run counts them.
"""

from __future__ import annotations

from audio_evals.metrics.base import SampleScore

#: The per-sample error rates a threshold applies to; other metrics are never filtered.
ERROR_RATE_METRICS = frozenset({"wer", "cer"})


def drop_reason(score: SampleScore, max_error_rate: float | None) -> str | None:
    """Why ``score``'s sample leaves the aggregate, or None to keep it (always None when off)."""
    if max_error_rate is None or score.metric not in ERROR_RATE_METRICS or score.value is None:
        return None
    if score.value <= max_error_rate:
        return None
    return f"per-sample {score.metric} {score.value:.1f} > {max_error_rate:g} (--drop-above-wer): abnormal, left out"
