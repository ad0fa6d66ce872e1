"""The metric interface: per-sample scores with sufficient statistics, then a corpus aggregate.

Scorers are pure: they take post-processed model outputs and references and return one
``SampleScore`` per item. Corpus metrics (WER, CER, BLEU) are ratios of sums of the per-sample
``stats``, so the aggregate over any subset (a bootstrap resample) is exact and cheap.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class ScoreItem:
    """What a metric sees for one sample: the model's (post-processed) text and the targets.

    ``reply_type`` names the type of a reply that post-processing made something other than text
    (``{"content": ["a", "b"]}`` gives a list); ``hypothesis`` is then its ``str()``, which is what
    the reference's evaluators compare (its BLEU alone does not convert, and fails the sample).
    """

    sample_id: str
    hypothesis: str
    reference: str | list[str] | None
    lang: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    reply_type: str | None = None


@dataclass
class SampleScore:
    """One sample's score.

    ``value`` is the per-sample figure in report units (e.g. 12.5 for a 12.5% sample WER, 100/0
    for correct/wrong); ``stats`` are the sufficient statistics the corpus aggregate sums.
    ``parsed`` is False when no answer could be extracted (counted as wrong and as ``unparsed``).
    ``error`` is set when the sample cannot be scored at all (where the reference tool's evaluator
    raises, e.g. a reference with no words left after normalisation): the sample is failed, with
    this cause, and counts in the fail rate instead of the figure.
    """

    sample_id: str
    metric: str
    value: float | None
    stats: dict[str, float] = field(default_factory=dict)
    normalized_hypothesis: Any = None
    normalized_reference: Any = None
    parsed: bool = True
    explanation: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "SampleScore":
        return cls(**row)


class Metric(abc.ABC):
    """A named metric. Subclasses set the class attributes and implement both methods."""

    #: Short name used in reports ("wer", "cer", "bleu", "acc", "g-eval").
    name: str
    #: Arrow in the report legend: ⬆️ when True, ⬇️ when False.
    higher_is_better: bool
    #: One sentence on the normalisation applied before scoring, shown in the report legend.
    normalization: str
    #: One line for the legend: "Word Error Rate (lower is better)".
    description: str
    #: Whose scoring protocol the figure follows, in one line, e.g. "reference protocol:
    #: UltraEval-Audio compute_wer, 13a" (seed headlines), or what this project adds instead.
    protocol: str = ""
    #: Whether a sample is scored against one reference text (a list of answers is an input error).
    one_reference: ClassVar[bool] = False
    #: Whether the per-sample value is an error rate in percent (what ``--drop-above-wer`` filters).
    error_rate: ClassVar[bool] = False

    def params(self) -> dict[str, Any]:
        """Parameters this metric was built with, recorded in results."""
        return {}

    @classmethod
    def reference_problem(cls, reference: Any) -> str | None:
        """Why no reply could be scored against ``reference``, checked before inference (None: it can
        be). By default every reference is scored, empty ones included, as the reference tool scores
        them for QA, multiple choice and MMAU."""
        return None

    @abc.abstractmethod
    def score(self, items: list[ScoreItem]) -> list[SampleScore]:
        """One score per item, same order. Batch-level so a judge can run requests concurrently."""

    @abc.abstractmethod
    def aggregate(self, scores: list[SampleScore]) -> float:
        """The corpus figure in report units (percent for rates and accuracies, BLEU points)."""


def unscorable(item: ScoreItem, metric: str, why: str) -> SampleScore:
    """A sample this metric reads no answer from: no value and no stats, so aggregates skip it."""
    return SampleScore(item.sample_id, metric, None, parsed=False, explanation=why)


def failed(item: ScoreItem, metric: str, why: str) -> SampleScore:
    """A sample that cannot be scored at all: a failed sample whose cause is ``metric: why``."""
    return SampleScore(item.sample_id, metric, None, error=f"{metric}: {why}")


def text_list(value: str | list[Any] | None) -> list[str]:
    """The texts in a reference (or choices) field: a string is one text, a list several.

    A string is never parsed: ``'["a", "b"]'`` is one answer, as the reference tool reads it; a
    real list (a dataset's sequence column) is a list of acceptable answers. ``None`` entries are
    dropped.
    """
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value if v is not None]


def short(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters, for one-line causes."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


class StatsMetric(Metric):
    """A metric whose corpus figure is a function of per-sample stats columns.

    ``aggregate`` and the bootstrap share ``aggregate_arrays`` so a resample is a row gather on a
    stats matrix, not a rebuild of ``SampleScore`` lists.
    """

    #: The stats every counted sample carries, in matrix column order.
    stat_keys: tuple[str, ...]

    def counted(self, score: SampleScore) -> bool:
        """Whether the sample enters the aggregate (unscorable samples carry no stats)."""
        return all(k in score.stats for k in self.stat_keys)

    def stats_matrix(self, scores: list[SampleScore]) -> np.ndarray:
        """One row per counted sample, one column per ``stat_keys`` entry."""
        rows = [[s.stats[k] for k in self.stat_keys] for s in scores if self.counted(s)]
        return np.array(rows, dtype=np.float64).reshape(len(rows), len(self.stat_keys))

    def columns(self, matrix: np.ndarray) -> dict[str, np.ndarray]:
        """The matrix as ``stat_keys`` -> column, the form ``aggregate_arrays`` takes."""
        return dict(zip(self.stat_keys, matrix.T))

    @abc.abstractmethod
    def aggregate_arrays(self, arrays: dict[str, np.ndarray]) -> float:
        """The corpus figure from per-sample stats columns (NaN when there are no samples)."""

    def aggregate(self, scores: list[SampleScore]) -> float:
        return self.aggregate_arrays(self.columns(self.stats_matrix(scores)))


class AccuracyMetric(StatsMetric):
    """Percent of samples judged correct: value 100/0, stats ``correct`` 1/0."""

    higher_is_better = True
    stat_keys = ("correct",)

    def verdict(self, item: ScoreItem, correct: bool, hypothesis: Any, reference: Any,
                explanation: str | None = None, parsed: bool = True) -> SampleScore:
        """The sample's score; ``hypothesis``/``reference`` are what the rule compared."""
        return SampleScore(item.sample_id, self.name, 100.0 if correct else 0.0, {"correct": int(correct)},
                           hypothesis, reference, parsed, explanation)

    @abc.abstractmethod
    def judge(self, item: ScoreItem) -> SampleScore:
        """One sample's verdict (see ``verdict``), or ``unscorable`` when its reference is unusable."""

    def score(self, items: list[ScoreItem]) -> list[SampleScore]:
        return [self.judge(item) for item in items]

    def aggregate_arrays(self, arrays: dict[str, np.ndarray]) -> float:
        correct = arrays["correct"]
        # 100 * right / total, the reference's operation order (the mean first can differ in the last digit).
        return 100.0 * float(correct.sum()) / correct.size if correct.size else float("nan")


class MacroAverage(StatsMetric):
    """The mean of ``inner``'s figure over sample groups (e.g. the six speech-HSK levels).

    Each counted score carries a ``group`` stat (the group's index). A published figure that is
    the mean of per-level accuracies cannot be reproduced by pooling the items, whose levels
    differ in size; the bootstrap resamples utterances and re-averages the groups present.
    """

    def __init__(self, inner: StatsMetric, over: str):
        self.inner = inner
        self.name = inner.name
        self.higher_is_better = inner.higher_is_better
        self.description = inner.description
        self.normalization = inner.normalization
        self.protocol = f"{inner.protocol}; mean over {over}" if inner.protocol else f"mean over {over}"
        self.stat_keys = (*inner.stat_keys, "group")

    def params(self) -> dict[str, Any]:
        return self.inner.params()

    def score(self, items: list[ScoreItem]) -> list[SampleScore]:
        return self.inner.score(items)

    def counted(self, score: SampleScore) -> bool:
        return self.inner.counted(score) and "group" in score.stats

    def aggregate_arrays(self, arrays: dict[str, np.ndarray]) -> float:
        groups = arrays["group"]
        figures = [self.inner.aggregate_arrays({k: arrays[k][groups == g] for k in self.inner.stat_keys})
                   for g in np.unique(groups)]
        return float(np.mean(figures)) if figures else float("nan")
