"""acc: speech-QA "has answer" accuracy (the DPR / open-domain QA rule).

A free-form answer is correct when the normalised tokens of any acceptable reference answer occur
as a contiguous run in the normalised answer: "It was Paris, France." has the answer "paris".
"""

from __future__ import annotations

from audio_evals.metrics import normalize
from audio_evals.metrics.base import AccuracyMetric, SampleScore, ScoreItem, text_list, unscorable


def contains_run(tokens: list[str], run: list[str]) -> bool:
    """Whether ``run`` (non-empty) occurs contiguously in ``tokens``."""
    width = len(run)
    return any(tokens[i:i + width] == run for i in range(len(tokens) - width + 1))


class HasAnswer(AccuracyMetric):
    name = "acc"
    description = "Has-answer accuracy: a reference answer occurs in the reply (higher is better)"
    normalization = "NFD, lowercase, punctuation and symbols to spaces, articles a/an/the removed, token match."

    def judge(self, item: ScoreItem) -> SampleScore:
        answers = [tokens for tokens in map(normalize.qa, text_list(item.reference)) if tokens]
        if not answers:
            return unscorable(item, self.name, "no reference answer left after normalisation")
        reply = normalize.qa(item.hypothesis)
        found = next((a for a in answers if contains_run(reply, a)), None)
        why = f"contains answer {' '.join(found)!r}" if found else "contains none of the reference answers"
        return self.verdict(item, found is not None, reply, answers, why)


def build() -> HasAnswer:
    return HasAnswer()
