"""The score stage: one row per sample (scored, failed, skipped) and one summary per metric.

Nothing vanishes: a sample whose audio was bad, whose shard failed or whose model call errored
is a row with its stage and cause, and is counted next to the metric it would have fed. By
default failed samples are excluded from the figure and reported; ``strict`` scores them as an
empty answer (every reference word deleted, every question wrong).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from audio_evals import postprocess, storage
from audio_evals.metrics import load_metric
from audio_evals.metrics.base import MacroAverage, Metric, SampleScore, ScoreItem, StatsMetric
from audio_evals.metrics.bootstrap import bootstrap_ci
from audio_evals.records import (
    TIME_LIMIT_ERROR,
    ModelOutput,
    PreparedSample,
    SampleFailure,
    SampleRow,
    ShardRef,
    Verdict,
)
from audio_evals.registry.entries import TaskEntry
from audio_evals.run.summary import Counts, Level, MetricResult, Scored


def drop_reason(metric: Metric, score: SampleScore, max_error_rate: float | None) -> str | None:
    """Why ``score``'s sample leaves the aggregate (``--drop-above-wer``), or None to keep it.

    The Step-Audio-R1.1 seed report notes "Filtered abnormal samples (WER > 1000)". Per-sample
    error rates are percent, as the reference's per-sample ``wer%``/``cer%`` are, so a threshold of
    1000 drops a sample with ten times more errors than reference words: a runaway reply, not a
    recognition error. Only error rates are filtered; off (None) by default. A dropped sample
    keeps its row, with status ``dropped`` and this reason, and the run counts it.
    """
    if max_error_rate is None or not metric.error_rate or score.value is None or score.value <= max_error_rate:
        return None
    return f"per-sample {score.metric} {score.value:.1f} > {max_error_rate:g} (--drop-above-wer): abnormal, left out"


def _row(sample_id: str, audio: str | None, lang: str | None, reference: Any, **extra: Any) -> SampleRow:
    """A row with the fields every row carries (unchecked: the values come from validated records)."""
    fields = {"id": sample_id, "audio": audio, "lang": lang, "reference": reference, "hypothesis": None,
              "status": "ok", "stage": None, "error": None, **extra}
    return SampleRow.model_construct(**fields)


def _set(row: SampleRow, **values: Any) -> None:
    """Set fields of ``row`` and mark them set, so the written row carries them."""
    for name, value in values.items():
        setattr(row, name, value)
    row.model_fields_set.update(values)


def _metric_summary(metric: Metric, group: str | None, scores: list[SampleScore], failed: int,
                    ci_seed: int, role: str = "headline", levels: list[str] | None = None,
                    dropped: list[SampleScore] | None = None, timed_out: int = 0) -> MetricResult:
    """One metric's figure, CI and counts; with ``levels`` the figure is the mean over them; with
    ``dropped`` (a ``--drop-above-wer`` filter was on) also their number and the unfiltered figure;
    ``timed_out`` of the ``failed`` samples the per-sample time limit left out."""
    # Unparsed judge replies carry only bookkeeping stats: they are counted unparsed, not scored.
    scored = [s for s in scores if s.value is not None or (s.stats and s.parsed)]
    per_level = None
    if levels and isinstance(metric, StatsMetric):
        per_level = [Level(level=name, value=metric.aggregate(at) if at else None, n=len(at))
                     for i, name in enumerate(levels) for at in [[s for s in scored if s.stats.get("group") == i]]]
        metric = MacroAverage(metric, f"{len(levels)} levels")
    value = metric.aggregate(scored) if scored else None
    ci = tuple(bootstrap_ci(metric, scored, seed=ci_seed)) if scored else None
    asked = [s.stats["asked"] for s in scores if "asked" in s.stats]
    return MetricResult(
        name=metric.name, role=role, group=group, value=value, ci95=ci, n=len(scored), failed=failed,
        unparsed=sum(not s.parsed for s in scores), higher_is_better=metric.higher_is_better,
        description=metric.description, normalization=metric.normalization, protocol=metric.protocol,
        params=metric.params(), levels=per_level, judge_reasked=int(sum(a - 1 for a in asked)) if asked else None,
        dropped=None if dropped is None else len(dropped),
        unfiltered=metric.aggregate(scored + dropped) if dropped is not None and scored + dropped else None,
        timed_out=timed_out or None,
    )


def _lean(score: SampleScore) -> SampleScore:
    """The score as kept in memory for the aggregate: sufficient statistics only."""
    return replace(score, normalized_hypothesis=None, normalized_reference=None, explanation=None)


def output_row(p: PreparedSample, shard: ShardRef, out: ModelOutput | None, shard_error: str | None,
               steps: tuple[str, ...] = ()) -> tuple[SampleRow, str | None]:
    """A prepared sample's row from what the infer stage made of it (None: its shard failed), and
    the type name of a post-processed reply that is not text (its ``str()`` is the hypothesis)."""
    s = p.sample
    row = _row(s.id, s.audio, s.lang, s.reference, duration_s=p.duration_s, shard=shard.index)
    reply_type = None
    if out is None:
        _set(row, status="failed", stage="infer", error=f"shard {shard.index} failed: {shard_error or 'no output'}")
    elif out.error:
        _set(row, status="failed", stage="infer", error=out.error, prompt=out.prompt)
    else:
        answer = out.transcript if out.transcript is not None else out.text
        reply = postprocess.apply(steps, answer) if answer is not None else None
        if answer is not None and not isinstance(reply, str):
            reply_type = "null" if reply is None else type(reply).__name__
            reply = str(reply)
        _set(row, hypothesis=reply, model_text=out.text,
             reasoning=out.reasoning, generated_audio=out.audio_path, latency_s=out.latency_s,
             prompt=out.prompt)
    return row, reply_type


@dataclass
class _Scorer:
    """The state of one scoring pass: metrics built once, and what the aggregates need."""

    task: TaskEntry
    strict: bool
    macro_over: str | None
    drop_above_wer: float | None
    metrics: dict[str, Metric] = field(default_factory=dict)
    #: Lean scores per headline metric, and per ``headline/secondary`` pair.
    scores: dict[str, list[SampleScore]] = field(default_factory=lambda: defaultdict(list))
    #: Lean scores ``--drop-above-wer`` left out, per headline metric.
    dropped: dict[str, list[SampleScore]] = field(default_factory=lambda: defaultdict(list))
    #: Failed samples per metric they would have fed (None: any metric of the task).
    failed: dict[str | None, int] = field(default_factory=lambda: defaultdict(int))
    #: Of those, samples whose model call was past the per-sample time limit.
    timed_out: dict[str | None, int] = field(default_factory=lambda: defaultdict(int))
    statuses: Counter[str] = field(default_factory=Counter)
    levels: dict[str, int] = field(default_factory=dict)

    def metric(self, name: str) -> Metric:
        """Headline metrics take the task's ``metric_params``; secondary ones their defaults."""
        if name not in self.metrics:
            params = {} if name in self.task.secondary_metrics() else self.task.metric_params
            self.metrics[name] = load_metric(name, **params)
        return self.metrics[name]

    def keep(self, key: str, score: SampleScore, item: ScoreItem) -> None:
        """Keep ``score``'s sufficient statistics (with its level's index under ``macro_over``)."""
        if self.macro_over and score.stats:
            level = str(item.fields.get(self.macro_over))
            score.stats["group"] = self.levels.setdefault(level, len(self.levels))
        self.scores[key].append(_lean(score))

    def shard_rows(self, shard: ShardRef, outputs: list[ModelOutput] | None, shard_error: str | None,
                   steps: tuple[str, ...]) -> list[SampleRow]:
        """Every sample of ``shard``, scored metric by metric (a metric scores a batch at once)."""
        by_id = {o.sample_id: o for o in outputs or []}
        rows: list[SampleRow] = []
        pending: dict[str | None, list[tuple[SampleRow, ScoreItem]]] = defaultdict(list)
        for raw in storage.read_jsonl(shard.path):
            p = PreparedSample.from_dict(raw)
            row, reply_type = output_row(p, shard, by_id.get(p.sample.id), shard_error, steps)
            rows.append(row)
            name = self.task.metric_for(p.sample.lang)
            if row.status == "failed":
                self.failed[name] += 1
                self.timed_out[name] += (row.error or "").startswith(TIME_LIMIT_ERROR)
                if not self.strict:
                    continue
            pending[name].append((row, ScoreItem(p.sample.id, row.hypothesis or "", p.sample.reference,
                                                 p.sample.lang, p.sample.fields, reply_type)))
        for name, pairs in pending.items():
            self._score(name, pairs)
        return rows

    def _score(self, name: str, pairs: list[tuple[SampleRow, ScoreItem]]) -> None:
        metric = self.metric(name)
        scored: list[tuple[SampleRow, ScoreItem]] = []
        for (row, item), score in zip(pairs, metric.score([item for _, item in pairs])):
            if score.error:
                # Nothing to score against (the reference tool's evaluator raises here): a failed sample.
                if row.status != "failed":
                    self.failed[name] += 1
                _set(row, status="failed", stage="score", error=score.error, metric=score.metric)
                continue
            scored.append((row, item))
            _set(row, metric=score.metric, value=score.value, stats=score.stats,
                 normalized_hypothesis=score.normalized_hypothesis,
                 normalized_reference=score.normalized_reference, explanation=score.explanation)
            if row.status == "ok" and not score.parsed:
                _set(row, status="unparsed")
            reason = drop_reason(metric, score, self.drop_above_wer) if row.status != "failed" else None
            if reason:
                _set(row, status="dropped", error=reason)
                self.dropped[name].append(_lean(score))
                continue
            self.keep(name, score, item)
        for extra in self.task.secondary_for(name):
            for (row, item), score in zip(scored, self.metric(extra).score([item for _, item in scored])):
                _set(row, secondary={**(row.secondary or {}), extra: Verdict(
                    value=score.value, parsed=score.parsed, explanation=score.explanation or score.error)})
                if row.status != "dropped" and score.error is None:
                    self.keep(f"{name}/{extra}", score, item)

    def failure_row(self, f: SampleFailure) -> SampleRow:
        """A sample lost before inference (or skipped); under ``strict`` a lost one scores as empty."""
        row = _row(f.id, f.audio, f.lang, f.reference, status=f.kind, stage=f.stage, error=f.error)
        if f.kind == "failed":
            name = self.task.metric_for(f.lang)
            self.failed[name] += 1
            if self.strict and name and f.reference is not None:
                # Strict: a clip that could not be used counts as an empty answer, like a failed call.
                item = ScoreItem(f.id, "", f.reference, f.lang)
                [score] = self.metric(name).score([item])
                if score.error is None:
                    _set(row, metric=score.metric, value=score.value, stats=score.stats)
                    self.keep(name, score, item)
        return row

    def summaries(self, ci_seed: int) -> list[MetricResult]:
        """Each headline metric's figure, each followed by the task's secondary measures."""
        task, results = self.task, []
        level_names = list(self.levels) if len(self.levels) > 1 else None
        for name in sorted({m for m in self.scores if "/" not in m} | {m for m in self.failed if m}):
            group = None if isinstance(task.metric, str) else next(
                (lang for lang, m in task.metric.items() if m == name), None)
            # A sample lost before inference (bad clip, bad row) could have fed any metric of the task.
            failed = self.failed.get(name, 0) + self.failed.get(None, 0)
            metric = self.metric(name)
            filtered = self.drop_above_wer is not None and metric.error_rate
            results.append(_metric_summary(metric, group, self.scores.get(name, []), failed, ci_seed,
                                           levels=level_names, dropped=self.dropped.get(name, []) if filtered else None,
                                           timed_out=self.timed_out.get(name, 0)))
            results += [_metric_summary(self.metric(extra), group, self.scores.get(f"{name}/{extra}", []), failed,
                                        ci_seed, role="secondary", levels=level_names)
                        for extra in task.secondary_for(name)]
        return results

    def counts(self) -> Counts:
        statuses = self.statuses
        total = sum(statuses.values())
        return Counts(samples=total, scored=statuses["ok"] + statuses["unparsed"], failed=statuses["failed"],
                      skipped=statuses["skipped"], unparsed=statuses["unparsed"], dropped=statuses["dropped"],
                      fail_rate=round(statuses["failed"] / total, 4) if total else 0.0)


def score_run(
    task: TaskEntry,
    shards: list[ShardRef],
    shard_outputs: dict[int, list[ModelOutput]],
    shard_errors: dict[int, str],
    failures: Iterable[SampleFailure],
    sink: Callable[[Iterator[SampleRow]], Any],
    strict: bool = False,
    ci_seed: int = 0,
    post_process: tuple[str, ...] = (),
    macro_over: str | None = None,
    drop_above_wer: float | None = None,
) -> Scored:
    """Score every sample, shard by shard; ``shard_outputs`` holds the outputs of completed shards.

    Each reply goes through the ``post_process`` steps first; the task's ``secondary`` metrics
    score the same items as its headline metric, and each sample row keeps both verdicts. With
    ``macro_over`` (a sample field, e.g. ``split``) each figure is the mean of the per-value
    figures, which the summary also lists. ``drop_above_wer`` (percent, off when None) leaves out
    samples whose per-sample WER/CER exceeds it (``drop_reason``); their rows get status ``dropped``.

    Rows stream to ``sink`` (which consumes an iterator, e.g. a JSONL writer) in sample order;
    only each sample's sufficient statistics stay in memory, so memory stays flat as the dataset
    grows.
    """
    scorer = _Scorer(task, strict, macro_over, drop_above_wer)

    def rows() -> Iterator[SampleRow]:
        for shard in shards:
            for row in scorer.shard_rows(shard, shard_outputs.get(shard.index), shard_errors.get(shard.index),
                                         post_process):
                scorer.statuses[row.status] += 1
                yield row
        for f in failures:
            scorer.statuses[f.kind] += 1
            yield scorer.failure_row(f)

    sink(rows())
    return Scored(metrics=scorer.summaries(ci_seed), counts=scorer.counts())
