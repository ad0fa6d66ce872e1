"""first_option: multiple-choice accuracy as the reference tool scores speech-CMMLU and speech-HSK.

The reference reads the chosen letter with its ``first_option_with_default_a`` step: an ordered
list of Chinese and English answer patterns, tried case-insensitively; the first that matches and
whose captured text contains an option letter decides (the first letter, in option order, found
in the capture); when none does, the answer is "A". The letter is then compared with the stripped
reference by exact match. Defaulting to "A" credits a model for saying nothing on a quarter of
the items, so the task also reports ``choice`` (strict: unparsed is wrong) beside this headline,
and a sample with no pattern match is marked unparsed here.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from audio_evals.metrics.base import AccuracyMetric, SampleScore, ScoreItem

#: The name this metric reports in summaries, rows and reports.
NAME = "acc"

#: The reference's patterns in its order; ``{o}`` is the option character class (e.g. ``[ABCD]``).
#: Two entries are one pattern in the reference (a missing comma joins "故选" and "只有选项…是对").
PATTERNS: tuple[str, ...] = (
    r"答案是?\s*({o})", r"答案是?\s*：\s*({o})", r"答案是?\s*:\s*({o})", r"答案是选项?\s*:\s*({o})",
    r"答案选项应?该?是\s*({o})", r"答案选项应?该?为\s*({o})", r"答案应该?是\s*({o})", r"答案应该?选\s*({o})",
    r"答案选项为?\s*：\s*({o})", r"答案选项为?\s+\(?\*?\*?({o})\*?\*?\)?", r"选项为?\s+\(?\*?\*?({o})\*?\*?\)?",
    r"答案选项是?\s*:\s*({o})", r"答案为\s*({o})", r"答案选\s*({o})", r"选择?\s*({o})",
    r"故选?\s*({o})只有选?项?\s?({o})\s?是?对",
    r"只有选?项?\s?({o})\s?是?错", r"只有选?项?\s?({o})\s?不?正确", r"只有选?项?\s?({o})\s?错误",
    r"说法不?对选?项?的?是\s?({o})", r"说法不?正确选?项?的?是\s?({o})", r"说法错误选?项?的?是\s?({o})",
    r"({o})\s?是正确的", r"({o})\s?是正确答案", r"选项\s?({o})\s?正确", r"所以答\s?({o})",
    r"所以\s?({o}[.。$]?$)", r"所有\s?({o}[.。$]?$)", r"[\s，：:,]({o})[。，,\.]?$",
    r"[\s，,：:][故即]({o})[。\.]?$", r"[\s，,：:]因此({o})[。\.]?$", r"[是为。]\s?({o})[。\.]?$",
    r"因此\s?({o})[。\.]?$", r"显然\s?({o})[。\.]?$",
    r"答案是\s?(\S+)(?:。|$)", r"答案应该是\s?(\S+)(?:。|$)", r"答案为\s?(\S+)(?:。|$)",
    r"(?i)ANSWER\s*:\s*({o})",
    r"[Tt]he answer is:?\s+\(?({o})\)?", r"[Tt]he answer is:?\s+\(?\*?\*?({o})\*?\*?\)?",
    r"[Tt]he answer is option:?\s+\(?({o})\)?", r"[Tt]he correct answer is:?\s+\(?({o})\)?",
    r"[Tt]he correct answer is option:?\s+\(?({o})\)?", r"[Tt]he correct answer is:?.*?boxed{{({o})}}",
    r"[Tt]he correct option is:?.*?boxed{{({o})}}", r"[Tt]he correct answer option is:?.*?boxed{{({o})}}",
    r"[Tt]he answer to the question is:?\s+\(?({o})\)?",
    r"^选项\s?({o})", r"^({o})\s?选?项", r"(\s|^){o}[\s。，,：:\.$]",
    r"1.\s?(.*?)$", r"1.\s?({o})[.。$]?$", r"答案:\s*({o})", r"故此为\s*({o})", r"boxed\{{({o})\}}",
    # The reference's last resort: any option character anywhere.
    r"({o}):", r"({o})",
)


@lru_cache(maxsize=16)
def _compiled(options: str) -> tuple[re.Pattern[str], ...]:
    option_class = "[" + options + "]"
    return tuple(re.compile(p.format(o=option_class), re.DOTALL | re.IGNORECASE)
                 for p in PATTERNS)


def first_option(reply: str, options: str = "ABCD") -> str | None:
    """The option the reference's extraction reads from ``reply``, or None where it would default."""
    text = reply.strip()
    for pattern in _compiled(options):
        match = pattern.search(text)
        if not match:
            continue
        captured = match.group(1) or match.group(0)
        chosen = next((o for o in options if o.upper() in captured.upper()), None)
        if chosen is not None:
            return chosen
    return None


class FirstOption(AccuracyMetric):
    name = NAME
    description = "Multiple-choice accuracy, the reference's first-option extraction with default A (higher is better)"
    normalization = "First matching answer pattern (case-insensitive, Chinese and English), else option A; exact letter match."
    protocol = "reference protocol: UltraEval-Audio first_option_with_default_a + em"

    def __init__(self, options: str = "ABCD", default_option: str = "A"):
        self.options = options
        self.default_option = default_option

    def params(self) -> dict[str, Any]:
        return {"options": self.options, "default_option": self.default_option}

    def judge(self, item: ScoreItem) -> SampleScore:
        # The reference's exact match strips a text answer; any other (missing, a list) never equals a letter.
        answer = item.reference.strip() if isinstance(item.reference, str) else item.reference
        found = first_option(item.hypothesis, self.options)
        chosen = found or self.default_option
        correct = chosen == answer
        how = f"chose {chosen}" if found else f"no answer pattern matched: default {self.default_option}"
        if not isinstance(answer, str):
            how += f"; the answer {answer!r} is not a letter"
        return self.verdict(item, correct, chosen, answer, how, parsed=found is not None)


def build(options: str = "ABCD", default_option: str = "A") -> FirstOption:
    return FirstOption(options, default_option)
