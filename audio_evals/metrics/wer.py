"""wer: corpus word error rate on Whisper-normalised text, computed with jiwer.

Corpus WER is the sum of word edits (substitutions + deletions + insertions) over the sum of
reference words, x100 -- not the mean of per-sample WERs, which would over-weight short clips.
``EditRate`` is shared with ``cer``; only the normaliser and the token unit differ.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import jiwer
import numpy as np

from audio_evals.metrics import normalize
from audio_evals.metrics.base import SampleScore, ScoreItem, StatsMetric, unscorable

_NORMALIZERS: dict[str, Callable[[str], str]] = {"english": normalize.english, "basic": normalize.basic}


class EditRate(StatsMetric):
    """An edit rate: normalise both sides, align tokens with jiwer, sum edits over reference tokens."""

    higher_is_better = False
    #: Stats key for the number of reference tokens ("ref_words", "ref_chars").
    ref_key: str

    @abc.abstractmethod
    def normalize(self, text: str) -> str:
        """The text both sides are compared as."""

    @abc.abstractmethod
    def units(self, text: str) -> list[str]:
        """The tokens of normalised text (words or characters)."""

    @abc.abstractmethod
    def align(self, reference: str, hypothesis: str) -> Any:
        """jiwer's alignment output for one normalised pair."""

    def counted(self, score: SampleScore) -> bool:
        return super().counted(score) and score.stats[self.ref_key] > 0

    def _score_one(self, item: ScoreItem) -> SampleScore:
        if isinstance(item.reference, list):
            raise TypeError(f"{self.name}: sample {item.sample_id!r} has several references; expected one string")
        reference = self.normalize(item.reference or "")
        hypothesis = self.normalize(item.hypothesis)
        ref_units = len(self.units(reference))
        if not ref_units:
            return unscorable(item, self.name, "reference is empty after normalisation")
        out = self.align(reference, hypothesis)
        edits = out.substitutions + out.deletions + out.insertions
        stats = {"edits": edits, self.ref_key: ref_units,
                 "sub": out.substitutions, "del": out.deletions, "ins": out.insertions}
        return SampleScore(item.sample_id, self.name, 100.0 * edits / ref_units, stats, hypothesis, reference)

    def score(self, items: list[ScoreItem]) -> list[SampleScore]:
        return [self._score_one(item) for item in items]

    def aggregate_arrays(self, arrays: dict[str, np.ndarray]) -> float:
        ref = arrays[self.ref_key].sum()
        # Same float operation order as jiwer: (S + D + I) / N, then percent.
        return 100.0 * float(arrays["edits"].sum() / ref) if ref else float("nan")


class WER(EditRate):
    name = "wer"
    ref_key = "ref_words"
    stat_keys = ("edits", ref_key)
    description = "Word Error Rate, corpus-level (lower is better)"

    def __init__(self, normalizer: str = "english"):
        if normalizer not in _NORMALIZERS:
            raise ValueError(f"wer: unknown normalizer {normalizer!r} (known: {', '.join(_NORMALIZERS)})")
        self.normalizer = normalizer
        self.normalization = f"Whisper {normalizer} text normaliser on hypothesis and reference."

    def params(self) -> dict[str, Any]:
        return {"normalizer": self.normalizer}

    def normalize(self, text: str) -> str:
        return _NORMALIZERS[self.normalizer](text)

    def units(self, text: str) -> list[str]:
        return text.split()

    def align(self, reference: str, hypothesis: str) -> jiwer.WordOutput:
        return jiwer.process_words(reference, hypothesis)


def build(normalizer: str = "english") -> WER:
    return WER(normalizer)
