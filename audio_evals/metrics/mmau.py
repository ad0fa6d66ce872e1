"""mmau: the official MMAU string match (Sakshi113/MMAU ``evaluation.py``, ``string_match``).

Prediction, answer and choices become sets of lowercase word tokens (``\\b\\w+\\b``). The
prediction is correct iff it contains every answer token and none of the tokens that only wrong
choices have (a wrong choice's tokens minus the answer's). An empty prediction is wrong. An empty answer has no tokens
to miss, so a reply that names no choice is correct, as in the reference tool; a missing answer,
or a list of them, cannot be tokenised there, and the sample fails.
"""

from __future__ import annotations

import re
from typing import Any

from audio_evals.metrics.base import AccuracyMetric, SampleScore, ScoreItem, failed, short, text_list

#: The name this metric reports in summaries, rows and reports.
NAME = "mmau"

_WORD = re.compile(r"\b\w+\b")


def tokens(text: str) -> set[str]:
    """MMAU's tokeniser: the set of lowercase ``\\w+`` words."""
    return set(_WORD.findall(text.lower()))


def wrong_choice_tokens(answer: set[str], choices: list[str]) -> set[str]:
    """Tokens of the choices that the answer does not have (the answer's own choice adds none)."""
    return set().union(*(tokens(choice) - answer for choice in choices))


class MMAU(AccuracyMetric):
    name = NAME
    description = "MMAU accuracy, official string match (higher is better)"
    normalization = "Lowercase word-token sets; answer tokens present, no token unique to a wrong choice."
    protocol = "reference protocol: UltraEval-Audio choice-strings-match (MMAU string_match)"

    @classmethod
    def reference_problem(cls, reference: Any) -> str | None:
        return None if isinstance(reference, str) else f"expected one answer text, got {short(reference)}"

    def judge(self, item: ScoreItem) -> SampleScore:
        problem = self.reference_problem(item.reference)
        if problem:
            return failed(item, self.name, problem)
        answer = tokens(item.reference)
        predicted = tokens(item.hypothesis)
        if not predicted:
            return self.verdict(item, False, [], sorted(answer), "empty prediction", parsed=False)
        missing = answer - predicted
        wrong = predicted & wrong_choice_tokens(answer, text_list(item.fields.get("choices")))
        reasons = [f"missing answer tokens {sorted(missing)}"] if missing else []
        if wrong:
            reasons.append(f"has wrong-choice tokens {sorted(wrong)}")
        why = "; ".join(reasons) or "has every answer token and no wrong-choice token"
        return self.verdict(item, not reasons, sorted(predicted), sorted(answer), why)


def build() -> MMAU:
    return MMAU()
