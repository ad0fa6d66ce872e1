"""choice: multiple-choice accuracy with the chosen option extracted from free text.

``fields["choices"]`` lists the option texts in order (lettered A, B, C, ...); the reference is
the correct letter or the correct option's text. A dataset that ships no option texts (only the
letter as reference) is scored on letters A-D (or up to the reference letter). The answer is
read, in order of evidence, from a bare letter ("B", "(B)", "B."), an answer marker ("Answer: B",
"the answer is B) foo", "选B", "答案是C"), an option label ("(B)", "B) foo", "B. foo") or the
text of exactly one option. When the strongest evidence names two options, or nothing is found,
the sample is unparsed and wrong: there is no default letter. It is reported beside the
reference protocol's ``first_option`` headline, which defaults to "A".
"""

from __future__ import annotations

import re
import string
import unicodedata
from typing import Any

from audio_evals.metrics.base import AccuracyMetric, SampleScore, ScoreItem, text_list, unscorable

#: The name this metric reports in summaries, rows and reports.
NAME = "strict-acc"

_LETTER = r"[(\[]?([A-Z])(?![A-Za-z])"
#: After an answer marker, a hedge naming a second letter ("A or B", "A或B") makes it ambiguous.
_OR_LETTER = r"(?:\s*(?:或者|或|和|/|,|、|(?i:or|and))\s*" + _LETTER + ")?"
#: The whole reply is one letter, possibly bracketed or punctuated ("b", "(B)", "B.").
_BARE = re.compile(r"^\W*([A-Za-z])\W*$")
#: A phrase that announces the answer, then the letter.
_MARKERS = (
    re.compile(r"(?i:\b(?:answer|(?:correct|best|right)\s+(?:option|choice)|I\s+(?:would\s+)?(?:choose|chose|pick|select))\b"
               r"(?:\s+(?:is|would\s+be|should\s+be))?)\s*:?\s*(?i:(?:option|choice)\s*)?" + _LETTER + _OR_LETTER),
    re.compile(r"(?:答案|选择|选)\s*(?:应该是|应该|是|为|选)?\s*:?\s*" + _LETTER + _OR_LETTER),
)
#: Option labels: "(B)" or "B)" anywhere, "B." / "B:" / "B、" at a line start, or a line that is only "B".
_LABELS = (
    re.compile(r"[(\[]([A-Z])[)\]]"),
    re.compile(r"(?<![A-Za-z])([A-Z])\)"),
    re.compile(r"(?m)^\s*([A-Z])\s*[.:、,，]"),
    re.compile(r"(?m)^\W*([A-Z])\W*$"),
)


def options(choices: Any) -> dict[str, str]:
    """Letter -> option text for the non-empty options, lettered by position."""
    return {letter: str(text).strip() for letter, text in zip(string.ascii_uppercase, choices or [])
            if text is not None and str(text).strip()}


def letters_only(reference: Any) -> dict[str, str]:
    """Options without texts, for datasets whose reference is a bare letter and that ship no choices."""
    refs = text_list(reference)
    letter = refs[0].strip().upper() if len(refs) == 1 else ""
    if len(letter) != 1 or letter not in string.ascii_uppercase:
        return {}
    return dict.fromkeys(string.ascii_uppercase[:max(4, string.ascii_uppercase.index(letter) + 1)], "")


def _key(text: str) -> str:
    """Comparison form of an option text: NFKC, case-folded, single spaces."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _spans(text: str, option: str) -> list[tuple[int, int]]:
    """Where ``option`` occurs in ``text`` (both in ``_key`` form), not inside a longer Latin word."""
    before = r"(?<![a-z0-9])" if option[0].isascii() and option[0].isalnum() else ""
    after = r"(?![a-z0-9])" if option[-1].isascii() and option[-1].isalnum() else ""
    return [m.span() for m in re.finditer(before + re.escape(option) + after, text)]


def mentioned_options(text: str, opts: dict[str, str]) -> set[str]:
    """Letters of the options whose text occurs in ``text``, not counting an occurrence that lies
    inside a longer option's occurrence ("red" within "red apple")."""
    text = _key(text)
    found = [(letter, span) for letter, option in opts.items() if option for span in _spans(text, _key(option))]

    def inside_longer(a: int, b: int) -> bool:
        return any(s <= a and b <= e and e - s > b - a for _, (s, e) in found)

    return {letter for letter, (a, b) in found if not inside_longer(a, b)}


def _letters_found(patterns: tuple[re.Pattern[str], ...], text: str, opts: dict[str, str]) -> set[str]:
    return {g for p in patterns for m in p.finditer(text) for g in m.groups() if g in opts}


def extract_choice(reply: str, opts: dict[str, str]) -> tuple[str | None, str]:
    """The chosen letter (None when absent or ambiguous) and how it was found, or why not."""
    text = unicodedata.normalize("NFKC", reply).replace("*", "").strip()
    bare = _BARE.match(text)
    if bare and bare.group(1).upper() in opts:
        return bare.group(1).upper(), "bare letter"
    for evidence, found in (("answer marker", _letters_found(_MARKERS, text, opts)),
                            ("option label", _letters_found(_LABELS, text, opts)),
                            ("option text", mentioned_options(text, opts))):
        if len(found) == 1:
            return found.pop(), evidence
        if found:
            return None, f"ambiguous: {evidence}s name {' and '.join(sorted(found))}"
    return None, "no option letter or option text found"


def reference_letter(reference: str, opts: dict[str, str]) -> str | None:
    """The correct letter from a reference that is a letter or one option's text."""
    reference = reference.strip()
    if reference.upper() in opts:
        return reference.upper()
    return next((letter for letter, text in opts.items() if _key(text) == _key(reference)), None)


class Choice(AccuracyMetric):
    name = NAME
    description = "Strict multiple-choice accuracy: no default answer, unparseable answers count as wrong (higher is better)"
    normalization = "NFKC; the chosen option is extracted from a letter, an answer phrase or one option's text."
    protocol = "audio-evals strict extraction (beside the reference headline, never instead of it)"

    def judge(self, item: ScoreItem) -> SampleScore:
        opts = options(item.fields.get("choices")) or letters_only(item.reference)
        if not opts:
            return unscorable(item, self.name, "sample has no choices and its reference is not a letter")
        refs = text_list(item.reference)
        correct = reference_letter(refs[0], opts) if len(refs) == 1 else None
        if correct is None:
            return unscorable(item, self.name, f"reference {item.reference!r} is neither an option letter nor an option text")
        chosen, how = extract_choice(item.hypothesis, opts)
        why = how if chosen is None else f"chose {chosen} ({how})"
        score = self.verdict(item, chosen == correct, chosen, correct, why, parsed=chosen is not None)
        score.stats["parsed"] = int(chosen is not None)
        return score


def build() -> Choice:
    return Choice()
