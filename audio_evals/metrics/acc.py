"""acc: speech-QA "has answer" accuracy, the DPR rule the reference tool scores speech QA with.

A free-form answer is correct when the tokens of any acceptable answer occur as a contiguous run
in the reply's tokens. Tokens (DPR's ``SimpleTokenizer``) are runs of letters, digits and marks,
or any other single non-space, non-control character, so punctuation is a token of its own; both
sides are NFD-normalised and lowercased; articles are kept. "It was The Beatles." has the answer
"The Beatles"; "It was Beatles." does not.
"""

from __future__ import annotations

import unicodedata

import regex

from audio_evals.metrics.base import AccuracyMetric, SampleScore, ScoreItem, text_list

#: The name this metric reports in summaries, rows and reports.
NAME = "acc"

_TOKEN = regex.compile(r"([\p{L}\p{N}\p{M}]+)|([^\p{Z}\p{C}])", regex.IGNORECASE | regex.UNICODE | regex.MULTILINE)


def dpr_tokens(text: str) -> list[str]:
    """DPR's uncased tokens of NFD-normalised ``text``."""
    return [m.group().lower() for m in _TOKEN.finditer(unicodedata.normalize("NFD", text))]


def contains_run(tokens: list[str], run: list[str]) -> bool:
    """Whether ``run`` occurs contiguously in ``tokens`` (an empty run occurs everywhere, as in DPR)."""
    width = len(run)
    return any(tokens[i:i + width] == run for i in range(len(tokens) - width + 1))


class HasAnswer(AccuracyMetric):
    name = NAME
    description = "Has-answer accuracy: a reference answer occurs in the reply (higher is better)"
    normalization = "NFD, lowercase, DPR tokens (letter/digit runs; each punctuation character a token), contiguous match."
    protocol = "reference protocol: UltraEval-Audio qa-exist-match (DPR has_answer)"

    def judge(self, item: ScoreItem) -> SampleScore:
        answers = [dpr_tokens(a) for a in text_list(item.reference)]
        reply = dpr_tokens(item.hypothesis)
        found = next((a for a in answers if contains_run(reply, a)), None)
        if not answers:
            why = "no reference answer (the reference protocol counts it wrong)"
        elif found is None:
            why = "contains none of the reference answers"
        else:
            why = f"contains answer {' '.join(found)!r}"
        return self.verdict(item, found is not None, reply, answers, why)


def build() -> HasAnswer:
    return HasAnswer()
