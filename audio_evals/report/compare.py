"""Two runs of the same samples: what changed per sample, and whether the corpus figure moved.

Samples are joined by id (the k-th row of an id with the k-th, so duplicate ids stay apart).
The difference of a corpus metric comes with a paired bootstrap interval: the same utterances
are drawn for both runs and the metric's own aggregate is recomputed from the recorded stats
(a corpus WER stays a ratio of sums), so a change smaller than the noise shows as such.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from audio_evals.metrics import metric_reported_as
from audio_evals.metrics.base import MacroAverage, Metric, SampleScore, StatsMetric
from audio_evals.metrics.bootstrap import paired_difference_ci
from audio_evals.models.base import BackendUnavailable
from audio_evals.plugins import UnknownName
from audio_evals.records import SampleRow
from audio_evals.report.runs import setting, unusable
from audio_evals.report.samples import RunRecord
from audio_evals.run.summary import MetricResult, RunSummary

#: Per-sample changes, in the order the page lists them.
CHANGES = ("better", "worse", "same", "unscored", "only A", "only B")


@dataclass(frozen=True)
class SamplePair:
    """One sample in both runs (or in one); ``gain`` is how much B improved on A, in score units."""

    before: SampleRow | None
    after: SampleRow | None
    change: str
    gain: float | None = None


@dataclass(frozen=True)
class MetricDifference:
    """One metric on the samples both runs counted: the two corpus figures and the paired CI of B - A."""

    name: str
    group: str | None
    higher_is_better: bool | None
    n: int
    before: float | None = None
    after: float | None = None
    ci95: tuple[float, float] | None = None
    changes: dict[str, int] | None = None
    #: Why there is no figure or interval (the metric cannot be rebuilt here, nothing paired).
    note: str | None = None

    @property
    def difference(self) -> float | None:
        return None if self.before is None or self.after is None else self.after - self.before

    @property
    def verdict(self) -> str:
        """Whether the interval excludes 0, said in the metric's direction."""
        if self.ci95 is None or self.higher_is_better is None:
            return "—"
        low, high = self.ci95
        if low <= 0 <= high:
            return "no clear difference"
        return "B better" if (low > 0) == self.higher_is_better else "B worse"


@dataclass(frozen=True)
class Comparison:
    """Run B (``after``) against run A (``before``): every sample's change and each metric's."""

    before: RunRecord
    after: RunRecord
    pairs: list[SamplePair]
    metrics: list[MetricDifference]


def _headline(summary: RunSummary, name: str) -> MetricResult | None:
    return next((m for m in summary.headlines if m.name == name), None)


def _scored(row: SampleRow | None) -> bool:
    return row is not None and row.value is not None and row.status != "dropped"


def _pair(before: SampleRow | None, after: SampleRow | None, higher: dict[str, bool | None]) -> SamplePair:
    if before is None or after is None:
        return SamplePair(before, after, "only A" if after is None else "only B")
    metric = before.metric
    if not (_scored(before) and _scored(after)) or metric != after.metric or higher.get(metric) is None:
        return SamplePair(before, after, "unscored")
    gain = (after.value - before.value) * (1 if higher[metric] else -1)
    return SamplePair(before, after, "better" if gain > 1e-9 else "worse" if gain < -1e-9 else "same", gain)


def _keyed(rows: list[SampleRow]) -> dict[tuple[str, int], SampleRow]:
    seen: Counter[str] = Counter()
    keyed = {}
    for row in rows:
        keyed[(row.id, seen[row.id])] = row
        seen[row.id] += 1
    return keyed


def pair_samples(before: RunRecord, after: RunRecord) -> list[SamplePair]:
    """Every sample of either run: A's in A's order, then those only B has."""
    higher = {m.name: m.higher_is_better for summary in (after.summary, before.summary) for m in summary.metrics}
    a, b = _keyed(before.rows), _keyed(after.rows)
    return [_pair(a.get(key), b.get(key), higher) for key in [*a, *(k for k in b if k not in a)]]


def _metric(name: str, summary: RunSummary) -> Metric:
    """The metric as the run aggregated it: the mean over levels when the summary lists them."""
    metric = metric_reported_as(name)
    headline = _headline(summary, name)
    levels = headline.levels if headline else None
    return MacroAverage(metric, f"{len(levels)} levels") if levels and isinstance(metric, StatsMetric) else metric


def _score(row: SampleRow) -> SampleScore:
    return SampleScore(row.id, row.metric, row.value, row.stats)


def _counted(metric: Metric, score: SampleScore) -> bool:
    return metric.counted(score) if isinstance(metric, StatsMetric) else score.value is not None


def _difference(name: str, pairs: list[SamplePair], before: RunRecord, n_resamples: int, seed: int) -> MetricDifference:
    headline = _headline(before.summary, name)
    group, higher = (headline.group, headline.higher_is_better) if headline else (None, None)
    scored = [p for p in pairs if p.gain is not None and p.before.metric == name]
    try:
        metric = _metric(name, before.summary)
    except (UnknownName, BackendUnavailable) as e:
        return MetricDifference(name, group, higher, len(scored), note=f"no corpus figure: {e}")
    counted = [(p, a, b) for p, a, b in ((p, _score(p.before), _score(p.after)) for p in scored)
               if _counted(metric, a) and _counted(metric, b)]
    if not counted:
        return MetricDifference(name, group, higher, 0, note="no sample is counted in both runs")
    first, second = [a for _, a, _ in counted], [b for _, _, b in counted]
    changes = Counter(p.change for p, _, _ in counted)
    return MetricDifference(name, group, metric.higher_is_better, len(counted), metric.aggregate(first),
                            metric.aggregate(second), paired_difference_ci(metric, first, second, n_resamples, seed),
                            {c: changes[c] for c in ("better", "worse", "same")})


def compare_runs(before: RunRecord, after: RunRecord, n_resamples: int = 1000, seed: int = 0) -> Comparison:
    """Run B (``after``) against run A (``before``), sample by sample and per headline metric."""
    pairs = pair_samples(before, after)
    names = dict.fromkeys(p.before.metric for p in pairs if p.gain is not None)
    return Comparison(before, after, pairs, [_difference(n, pairs, before, n_resamples, seed) for n in names])


def console_lines(comparison: Comparison) -> list[str]:
    """What a terminal shows of a comparison: each metric's A → B, B − A with its paired CI and verdict,
    a run that is not a usable result (over its fail-rate limit), and how the runs' settings differ
    when they are not the same evaluation."""
    lines = []
    for d in comparison.metrics:
        label = d.name + (f" ({d.group})" if d.group else "")
        if d.difference is None:
            lines.append(f"{label}: {d.note or 'no paired figure'}")
            continue
        ci = f" [{d.ci95[0]:+.2f}, {d.ci95[1]:+.2f}]" if d.ci95 else ""
        lines.append(f"{label}: A {d.before:.2f} → B {d.after:.2f}, B − A {d.difference:+.2f}{ci} "
                     f"(95% paired CI, n={d.n}): {d.verdict}")
    for tag, run in (("A", comparison.before), ("B", comparison.after)):
        if (why := unusable(run.summary)) is not None:
            lines.append(f"note: {tag} ({run.run_id}) is not a usable result: {why}")
    a, b = (setting(r.summary) or "default options" for r in (comparison.before, comparison.after))
    if a != b:
        lines.append(f"note: the runs differ in options that change numbers: A {a}; B {b}")
    return lines
