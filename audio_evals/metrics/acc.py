"""acc: speech-QA "has answer" accuracy, the DPR rule the reference tool scores speech QA with.

A free-form answer is correct when the tokens of any acceptable answer occur as a contiguous run
in the reply's tokens. Tokens (DPR's ``SimpleTokenizer``) are runs of letters, digits and marks,
or any other single non-space, non-control character, so punctuation is a token of its own; both
sides are NFD-normalised and lowercased; articles are kept. "It was The Beatles." has the answer
"The Beatles"; "It was Beatles." does not.

References are read as the reference tool reads them: a string is one answer (even one that looks
like a JSON list), a list holds the alternatives, tried in order. An empty answer has no tokens, so
it occurs in every reply (the sample is correct); an empty list has none to occur (wrong); a missing
reference, or a list entry that is not text reached before any answer occurred, cannot be read at
all, so the sample fails.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import regex

from audio_evals.metrics.base import AccuracyMetric, SampleScore, ScoreItem, failed, short

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

    @classmethod
    def reference_problem(cls, reference: Any) -> str | None:
        if not isinstance(reference, (str, list)):
            return f"no reference answer to look for ({short(reference)})"
        return None

    def judge(self, item: ScoreItem) -> SampleScore:
        problem = self.reference_problem(item.reference)
        if problem:
            return failed(item, self.name, problem)
        reply = dpr_tokens(item.hypothesis)
        answers: list[list[str]] = []
        found = None
        # In order, as the reference's has_answer: the first answer that occurs decides; an entry that
        # is not text, reached before any answer occurred, cannot be tokenised and fails the sample.
        for answer in [item.reference] if isinstance(item.reference, str) else item.reference:
            if not isinstance(answer, str):
                return failed(item, self.name, f"answer {short(answer)} of the reference is not text")
            answers.append(dpr_tokens(answer))
            if contains_run(reply, answers[-1]):
                found = answers[-1]
                break
        if not answers:
            why = "the reference lists no answers (the reference protocol counts it wrong)"
        elif found is None:
            why = "contains none of the reference answers"
        elif not found:
            why = "the reference answer is empty, which every reply contains (as in the reference protocol)"
        else:
            why = f"contains answer {' '.join(found)!r}"
        return self.verdict(item, found is not None, reply, answers, why)


def build() -> HasAnswer:
    return HasAnswer()
