"""wer: corpus word error rate, by default exactly as the reference tool computes it.

Corpus WER is the sum of token edits (substitutions + deletions + insertions) over the sum of
reference tokens, x100 -- not the mean of per-sample WERs, which would over-weight short clips.
``EditRate`` is shared with ``cer``; only the tokenisation differs. The ``reference`` tokeniser
(the default, the seed headline) is UltraEval-Audio's ``compute_wer``; ``english`` and ``basic``
are Whisper's normalisers with whitespace words, kept as named alternatives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jiwer
import numpy as np

from audio_evals.metrics import normalize
from audio_evals.metrics.base import SampleScore, ScoreItem, StatsMetric, unscorable

#: The name this metric reports in summaries, rows and reports.
NAME = "wer"

REFERENCE_PROTOCOL = "reference protocol: UltraEval-Audio compute_wer, {tokenizer}"


class EditRate(StatsMetric):
    """An edit rate: tokenise both sides, align tokens with jiwer, sum edits over reference tokens."""

    higher_is_better = False
    one_reference = True
    error_rate = True
    #: Stats key for the number of reference tokens ("ref_words", "ref_chars").
    ref_key: str
    #: Tokenisers by name: text -> tokens. The first is the default.
    tokenizers: dict[str, Callable[[str], list[str]]]
    #: What each tokeniser does, for the report legend.
    legends: dict[str, str]
    #: Protocol line of each tokeniser.
    protocols: dict[str, str]

    def __init__(self, normalizer: str | None = None):
        normalizer = normalizer or next(iter(self.tokenizers))
        if normalizer not in self.tokenizers:
            raise ValueError(f"{self.name}: unknown normalizer {normalizer!r} (known: {', '.join(self.tokenizers)})")
        self.normalizer = normalizer
        self.normalization = self.legends[normalizer]
        self.protocol = self.protocols[normalizer]

    def params(self) -> dict[str, Any]:
        return {"normalizer": self.normalizer}

    def tokens(self, text: str) -> list[str]:
        return self.tokenizers[self.normalizer](text)

    def counted(self, score: SampleScore) -> bool:
        return super().counted(score) and score.stats[self.ref_key] > 0

    def _score_one(self, item: ScoreItem) -> SampleScore:
        if isinstance(item.reference, list):
            raise TypeError(f"{self.name}: sample {item.sample_id!r} has several references; expected one string")
        reference = self.tokens(item.reference or "")
        hypothesis = self.tokens(item.hypothesis)
        if not reference:
            return unscorable(item, self.name, "reference is empty after normalisation")
        out = jiwer.process_words(" ".join(reference), " ".join(hypothesis))
        edits = out.substitutions + out.deletions + out.insertions
        stats = {"edits": edits, self.ref_key: len(reference),
                 "sub": out.substitutions, "del": out.deletions, "ins": out.insertions}
        return SampleScore(item.sample_id, self.name, 100.0 * edits / len(reference), stats,
                           " ".join(hypothesis), " ".join(reference))

    def score(self, items: list[ScoreItem]) -> list[SampleScore]:
        return [self._score_one(item) for item in items]

    def aggregate_arrays(self, arrays: dict[str, np.ndarray]) -> float:
        ref = arrays[self.ref_key].sum()
        # Same float operation order as the reference: edits / tokens, then percent.
        return 100.0 * float(arrays["edits"].sum() / ref) if ref else float("nan")


class WER(EditRate):
    name = NAME
    ref_key = "ref_words"
    stat_keys = ("edits", ref_key)
    description = "Word Error Rate, corpus-level (lower is better)"
    tokenizers = {
        "reference": lambda text: normalize.reference_tokens(text, "en"),
        "english": lambda text: normalize.english(text).split(),
        "basic": lambda text: normalize.basic(text).split(),
    }
    legends = {
        "reference": "lowercase, Whisper English normaliser, sacrebleu 13a tokens.",
        "english": "Whisper English normaliser, whitespace words.",
        "basic": "Whisper basic normaliser, whitespace words.",
    }
    protocols = {
        "reference": REFERENCE_PROTOCOL.format(tokenizer="13a"),
        "english": "audio-evals alternative: Whisper English normaliser, whitespace words",
        "basic": "audio-evals alternative: Whisper basic normaliser, whitespace words",
    }


def build(normalizer: str | None = None) -> WER:
    return WER(normalizer)
