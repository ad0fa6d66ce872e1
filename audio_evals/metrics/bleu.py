"""bleu: sacrebleu corpus BLEU, rebuilt from per-sentence sufficient statistics.

Each sample keeps sacrebleu's own sentence statistics (hypothesis and closest reference length,
matching and total n-grams for n = 1..4). Summing them over all samples and scoring the sums is
exactly what ``sacrebleu.corpus_bleu`` does, and over a subset it is a bootstrap resample's BLEU.
The per-sample value is sacrebleu's sentence BLEU (effective order), for inspection only.

As in the reference tool (whose per-sample BLEU raises on them), a sample fails when it has no
reference translation (``None`` or ``""``; a blank one scores 0) or when its reply's content is
not text (``{"content": ["a"]}``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from sacrebleu.metrics.bleu import BLEU, MAX_NGRAM_ORDER

from audio_evals.metrics.base import SampleScore, ScoreItem, StatsMetric, failed, short, text_list

#: The name this metric reports in summaries, rows and reports.
NAME = "bleu"

_ORDERS = range(1, MAX_NGRAM_ORDER + 1)
#: sacrebleu's statistics layout: [hyp_len, ref_len, correct_1..4, total_1..4].
STAT_KEYS = ("hyp_len", "ref_len", *(f"correct_{n}" for n in _ORDERS), *(f"total_{n}" for n in _ORDERS))
#: Scorers used only to turn statistics into a score, with corpus_bleu's and sentence_bleu's defaults.
_CORPUS = BLEU()
_SENTENCE = BLEU(effective_order=True)


def _stats_to_score(scorer: BLEU, stats: list[int]) -> float:
    return scorer._compute_score_from_stats(stats).score


def target_tokenizer(item: ScoreItem) -> str:
    """``zh`` for a Chinese target, else ``13a``; ``target_lang`` wins over ``lang`` (the speech's)."""
    target = item.fields.get("target_lang") or item.lang or ""
    return "zh" if str(target).lower().startswith("zh") else "13a"


class Bleu(StatsMetric):
    name = NAME
    higher_is_better = True
    description = "BLEU, sacrebleu corpus score (higher is better)"
    stat_keys = STAT_KEYS

    def __init__(self, tokenize: str = "13a"):
        if tokenize != "auto" and tokenize not in BLEU.TOKENIZERS:
            raise ValueError(f"bleu: unknown tokenize {tokenize!r} (known: auto, {', '.join(BLEU.TOKENIZERS)})")
        self.tokenize = tokenize
        self.protocol = f"reference protocol: UltraEval-Audio bleu (sacrebleu corpus_bleu, {tokenize})"
        self.normalization = (f"None beyond sacrebleu's {tokenize!r} tokenisation; case-sensitive."
                              if tokenize != "auto" else
                              "None beyond sacrebleu tokenisation ('zh' for Chinese targets, else '13a'); case-sensitive.")
        self._extractors: dict[str, BLEU] = {}

    def params(self) -> dict[str, Any]:
        return {"tokenize": self.tokenize}

    @classmethod
    def reference_problem(cls, reference: Any) -> str | None:
        texts = [reference] if isinstance(reference, str) else text_list(reference)
        if not any(texts):
            return f"no reference translation ({short(reference)})"
        return None

    def _extractor(self, tokenize: str) -> BLEU:
        if tokenize not in self._extractors:
            self._extractors[tokenize] = BLEU(tokenize=tokenize)
        return self._extractors[tokenize]

    def _sentence_stats(self, tokenize: str, hyps: list[str], refs: list[list[str]]) -> list[list[int]]:
        """sacrebleu's per-sentence statistics; ``None`` pads samples with fewer references."""
        width = max(len(r) for r in refs)
        streams = [[r[k] if k < len(r) else None for r in refs] for k in range(width)]
        return self._extractor(tokenize)._extract_corpus_statistics(hyps, streams)

    def score(self, items: list[ScoreItem]) -> list[SampleScore]:
        results: dict[int, SampleScore] = {}
        groups: dict[str, list[int]] = defaultdict(list)
        refs = [[r for r in text_list(item.reference) if r] for item in items]
        for i, item in enumerate(items):
            problem = self.reference_problem(item.reference)
            if problem or item.reply_type:
                results[i] = failed(item, self.name, problem or f"the reply's content is a {item.reply_type}, not text")
            else:
                groups[self.tokenize if self.tokenize != "auto" else target_tokenizer(item)].append(i)
        for tokenize, members in groups.items():
            stats = self._sentence_stats(tokenize, [items[i].hypothesis for i in members], [refs[i] for i in members])
            for i, row in zip(members, stats):
                results[i] = SampleScore(items[i].sample_id, self.name, _stats_to_score(_SENTENCE, row),
                                         dict(zip(STAT_KEYS, row)), normalized_reference=refs[i])
        return [results[i] for i in range(len(items))]

    def aggregate_arrays(self, arrays: dict[str, np.ndarray]) -> float:
        if not arrays["hyp_len"].size:
            return float("nan")
        return _stats_to_score(_CORPUS, [int(arrays[k].sum()) for k in STAT_KEYS])


def build(tokenize: str = "13a") -> Bleu:
    return Bleu(tokenize)
