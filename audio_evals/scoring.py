"""The score stage: one row per sample (scored, failed, skipped) and one summary per metric.

Nothing vanishes: a sample whose audio was bad, whose shard failed or whose model call errored
is a row with its stage and cause, and is counted next to the metric it would have fed. By
default failed samples are excluded from the figure and reported; ``strict`` scores them as an
empty answer (every reference word deleted, every question wrong).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from audio_evals import postprocess, storage
from audio_evals.metrics import load_metric
from audio_evals.metrics.base import MacroAverage, Metric, SampleScore, ScoreItem, StatsMetric
from audio_evals.metrics.bootstrap import bootstrap_ci
from audio_evals.registry.entries import TaskEntry
from audio_evals.sample_filter import drop_reason
from audio_evals.schema import PreparedSample, SampleFailure, ShardRef
from audio_evals.summary import Counts, Level, MetricResult


@dataclass
class Scored:
    """Metric summaries and counts; the per-sample rows went to the sink, not into memory."""

    metrics: list[MetricResult]
    counts: Counts


def _row(sample_id: str, audio: str | None, lang: str | None, reference: Any, **extra: Any) -> dict[str, Any]:
    return {"id": sample_id, "audio": audio, "lang": lang, "reference": reference, "hypothesis": None,
            "status": "ok", "stage": None, "error": None, **extra}


def _metric_summary(metric: Metric, group: str | None, scores: list[SampleScore], failed: int,
                    ci_seed: int, role: str = "headline", levels: list[str] | None = None) -> MetricResult:
    """One metric's figure, CI and counts; with ``levels`` the figure is the mean over them."""
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
    )


def _lean(score: SampleScore) -> SampleScore:
    """The score as kept in memory for the aggregate: sufficient statistics only."""
    return replace(score, normalized_hypothesis=None, normalized_reference=None, explanation=None)


def _secondary_key(headline: str, extra: str) -> str:
    return f"{headline}/{extra}"


def _output_row(p: PreparedSample, shard: ShardRef, out: dict[str, Any] | None, shard_error: str | None,
                steps: tuple[str, ...] = ()) -> dict[str, Any]:
    s = p.sample
    row = _row(s.id, s.audio, s.lang, s.reference, duration_s=p.duration_s, shard=shard.index)
    if out is None:
        row.update(status="failed", stage="infer", error=f"shard {shard.index} failed: {shard_error or 'no output'}")
    elif out.get("error"):
        row.update(status="failed", stage="infer", error=out["error"])
    else:
        spoken = out.get("transcript")
        answer = spoken if spoken is not None else out.get("text")
        row.update(hypothesis=postprocess.apply(steps, answer) if answer is not None else None, model_text=out.get("text"),
                   reasoning=out.get("reasoning"), generated_audio=out.get("audio_path"),
                   latency_s=out.get("latency_s"))
    return row


def score_run(
    task: TaskEntry,
    shards: list[ShardRef],
    shard_outputs: dict[int, list[dict[str, Any]]],
    shard_errors: dict[int, str],
    failures: Iterable[SampleFailure],
    sink: Callable[[Iterator[dict[str, Any]]], Any],
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
    samples whose per-sample WER/CER exceeds it (``audio_evals.sample_filter``); their rows get
    status ``dropped``.

    Rows stream to ``sink`` (which consumes an iterator, e.g. a JSONL writer) in sample order;
    only each sample's sufficient statistics stay in memory, so memory stays flat as the dataset
    grows.
    """
    metrics: dict[str, Metric] = {}
    scores: dict[str, list[SampleScore]] = defaultdict(list)
    failed_by_metric: dict[str | None, int] = defaultdict(int)
    statuses: Counter[str] = Counter()
    levels: dict[str, int] = {}

    def metric(name: str) -> Metric:
        """Headline metrics take the task's ``metric_params``; secondary ones their defaults."""
        if name not in metrics:
            metrics[name] = load_metric(name, **({} if name in task.secondary else task.metric_params))
        return metrics[name]

    def lean(score: SampleScore, sample: ScoreItem) -> SampleScore:
        if macro_over and score.stats:
            level = str(sample.fields.get(macro_over))
            score.stats["group"] = levels.setdefault(level, len(levels))
        return _lean(score)

    def scored_shard(shard: ShardRef) -> list[dict[str, Any]]:
        outputs = {o["sample_id"]: o for o in shard_outputs.get(shard.index, [])}
        rows, pending = [], defaultdict(list)
        for raw in storage.read_jsonl(shard.path):
            p = PreparedSample.from_dict(raw)
            row = _output_row(p, shard, outputs.get(p.sample.id), shard_errors.get(shard.index), post_process)
            rows.append(row)
            name = task.metric_for(p.sample.lang)
            if row["status"] == "failed":
                failed_by_metric[name] += 1
                if not strict:
                    continue
            pending[name].append((row, ScoreItem(p.sample.id, row["hypothesis"] or "", p.sample.reference,
                                                 p.sample.lang, p.sample.fields)))
        for name, pairs in pending.items():
            for (row, item), score in zip(pairs, metric(name).score([item for _, item in pairs])):
                row.update(metric=score.metric, value=score.value, stats=score.stats,
                           normalized_hypothesis=score.normalized_hypothesis,
                           normalized_reference=score.normalized_reference, explanation=score.explanation)
                if row["status"] == "ok" and not score.parsed:
                    row["status"] = "unparsed"
                reason = drop_reason(score, drop_above_wer) if row["status"] != "failed" else None
                if reason:
                    row.update(status="dropped", error=reason)
                    continue
                scores[name].append(lean(score, item))
            for extra in task.secondary:
                verdicts = metric(extra).score([item for _, item in pairs])
                for (row, item), score in zip(pairs, verdicts):
                    row.setdefault("secondary", {})[extra] = {"value": score.value, "parsed": score.parsed,
                                                              "explanation": score.explanation}
                    if row["status"] != "dropped":
                        scores[_secondary_key(name, extra)].append(lean(score, item))
        return rows

    def all_rows() -> Iterator[dict[str, Any]]:
        for shard in shards:
            for row in scored_shard(shard):
                statuses[row["status"]] += 1
                yield row
        for f in failures:
            statuses[f.kind] += 1
            row = _row(f.id, f.audio, f.lang, f.reference, status=f.kind, stage=f.stage, error=f.error)
            if f.kind == "failed":
                name = task.metric_for(f.lang) if f.reference is not None else None
                failed_by_metric[name] += 1
                if strict and name:
                    # Strict: a clip that could not be used counts as an empty answer, like a failed call.
                    item = ScoreItem(f.id, "", f.reference, f.lang)
                    [score] = metric(name).score([item])
                    row.update(metric=score.metric, value=score.value, stats=score.stats)
                    scores[name].append(lean(score, item))
            yield row

    sink(all_rows())
    summaries = []
    for name in sorted({m for m in scores if "/" not in m} | {m for m in failed_by_metric if m}):
        group = None if isinstance(task.metric, str) else next(
            (lang for lang, m in task.metric.items() if m == name), None)
        # A sample lost before inference (bad clip, bad row) could have fed any metric of the task.
        failed = failed_by_metric.get(name, 0) + failed_by_metric.get(None, 0)
        level_names = list(levels) if len(levels) > 1 else None
        summaries.append(_metric_summary(metric(name), group, scores.get(name, []), failed, ci_seed,
                                         levels=level_names))
        summaries += [_metric_summary(metric(extra), group, scores.get(_secondary_key(name, extra), []), failed,
                                      ci_seed, role="secondary", levels=level_names) for extra in task.secondary]
    total = sum(statuses.values())
    counts = Counts(samples=total, scored=statuses["ok"] + statuses["unparsed"], failed=statuses["failed"],
                    skipped=statuses["skipped"], unparsed=statuses["unparsed"], dropped=statuses["dropped"],
                    fail_rate=round(statuses["failed"] / total, 4) if total else 0.0)
    return Scored(metrics=summaries, counts=counts)
