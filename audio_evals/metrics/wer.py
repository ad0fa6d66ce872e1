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
from audio_evals.metrics.base import SampleScore, ScoreItem, StatsMetric, failed, short

#: The name this metric reports in summaries, rows and reports.
NAME = "wer"

REFERENCE_PROTOCOL = "reference protocol: UltraEval-Audio compute_wer, {tokenizer}"


class EditRate(StatsMetric):
    """An edit rate: tokenise both sides, align the tokens, sum edits over reference tokens.

    A reference with no tokens leaves nothing to count errors against: the reference tool's
    ``compute_wer`` divides by zero there and the sample fails, counted in its fail rate. Here such
    a sample fails with that cause: an empty reference before inference (``reference_problem``),
    one that normalises to nothing (``"(laughs)"``, ``"uh hmm"``, ``"。，"``) when it is scored.
    """

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

    @classmethod
    def reference_problem(cls, reference: Any) -> str | None:
        if reference is None or (isinstance(reference, str) and not reference.strip()):
            return f"empty reference {short(reference)}: no transcript to count errors against"
        return None

    def tokens(self, text: str) -> list[str]:
        return self.tokenizers[self.normalizer](text)

    def counted(self, score: SampleScore) -> bool:
        return super().counted(score) and score.stats[self.ref_key] > 0

    def align(self, reference: list[str], hypothesis: list[str]) -> tuple[int, int, int]:
        """Substitutions, deletions and insertions of the minimum edit alignment (jiwer)."""
        out = jiwer.process_words(" ".join(reference), " ".join(hypothesis))
        return out.substitutions, out.deletions, out.insertions

    def reference_tokens(self, reference: str) -> list[str]:
        """The reference's tokens (a protocol may leave out more references than empty ones)."""
        return self.tokens(reference)

    def no_reference_tokens(self, item: ScoreItem, problem: str | None) -> SampleScore:
        """A sample whose reference is empty (``problem``) or normalises to no tokens: failed."""
        return failed(item, self.name, problem or f"reference {short(item.reference)} is empty after "
                                                  "normalisation: no words to count errors against")

    def _score_one(self, item: ScoreItem) -> SampleScore:
        if isinstance(item.reference, list):
            raise TypeError(f"{self.name}: sample {item.sample_id!r} has several references; expected one string")
        problem = self.reference_problem(item.reference)
        reference = [] if problem else self.reference_tokens(item.reference)
        if not reference:
            return self.no_reference_tokens(item, problem)
        hypothesis = self.tokens(item.hypothesis)
        sub, dele, ins = self.align(reference, hypothesis)
        edits = sub + dele + ins
        stats = {"edits": edits, self.ref_key: len(reference), "sub": sub, "del": dele, "ins": ins}
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
