"""The score stage: one row per sample (scored, failed, skipped) and one summary per metric.

Nothing vanishes: a sample whose audio was bad, whose shard failed or whose model call errored
is a row with its stage and cause, and is counted next to the metric it would have fed. By
default failed samples are excluded from the figure and reported; ``strict`` scores them as an
empty answer (every reference word deleted, every question wrong).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from audio_evals import storage
from audio_evals.metrics import load_metric
from audio_evals.metrics.base import Metric, SampleScore, ScoreItem
from audio_evals.metrics.bootstrap import bootstrap_ci
from audio_evals.registry.entries import TaskEntry
from audio_evals.schema import PreparedSample, SampleFailure, ShardRef


@dataclass
class Scored:
    rows: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    counts: dict[str, Any]


def _row(sample_id: str, audio: str | None, lang: str | None, reference: Any, **extra: Any) -> dict[str, Any]:
    return {"id": sample_id, "audio": audio, "lang": lang, "reference": reference, "hypothesis": None,
            "status": "ok", "stage": None, "error": None, **extra}


def _metric_summary(metric: Metric, group: str | None, scores: list[SampleScore], failed: int,
                    ci_seed: int) -> dict[str, Any]:
    scored = [s for s in scores if s.value is not None or s.stats]
    value = metric.aggregate(scored) if scored else None
    ci = list(bootstrap_ci(metric, scored, seed=ci_seed)) if scored else None
    return {
        "name": metric.name,
        "group": group,
        "value": value,
        "ci95": ci,
        "n": len(scored),
        "failed": failed,
        "unparsed": sum(not s.parsed for s in scores),
        "higher_is_better": metric.higher_is_better,
        "description": metric.description,
        "normalization": metric.normalization,
        "params": metric.params(),
    }


def score_run(
    task: TaskEntry,
    shards: list[ShardRef],
    shard_outputs: dict[int, list[dict[str, Any]]],
    shard_errors: dict[int, str],
    failures: Iterable[SampleFailure],
    strict: bool = False,
    ci_seed: int = 0,
) -> Scored:
    """Score every sample of the run; ``shard_outputs`` holds the outputs of completed shards."""
    rows: list[dict[str, Any]] = []
    items: dict[str, list[tuple[int, ScoreItem]]] = defaultdict(list)
    failed_by_metric: dict[str, int] = defaultdict(int)

    def queue(row_index: int, lang: str | None, item: ScoreItem, failed: bool) -> None:
        name = task.metric_for(lang)
        if failed:
            failed_by_metric[name] += 1
            if not strict:
                return
        items[name].append((row_index, item))

    for shard in shards:
        outputs = {o["sample_id"]: o for o in shard_outputs.get(shard.index, [])}
        for raw in storage.read_jsonl(shard.path):
            p = PreparedSample.from_dict(raw)
            s = p.sample
            row = _row(s.id, s.audio, s.lang, s.reference, duration_s=p.duration_s, shard=shard.index)
            out = outputs.get(s.id)
            if out is None:
                row.update(status="failed", stage="infer", error=f"shard {shard.index} failed: {shard_errors.get(shard.index, 'no output')}")
            elif out.get("error"):
                row.update(status="failed", stage="infer", error=out["error"])
            else:
                spoken = out.get("transcript")
                row.update(hypothesis=spoken if spoken is not None else out.get("text"), model_text=out.get("text"),
                           reasoning=out.get("reasoning"), generated_audio=out.get("audio_path"),
                           latency_s=out.get("latency_s"))
            failed = row["status"] == "failed"
            rows.append(row)
            queue(len(rows) - 1, s.lang, ScoreItem(s.id, row["hypothesis"] or "", s.reference, s.lang, s.fields), failed)

    for f in failures:
        rows.append(_row(f.id, f.audio, None, None, status=f.kind, stage=f.stage, error=f.error))
        if f.kind == "failed":
            failed_by_metric[None] += 1

    metrics = []
    for name in sorted(set(items) | {m for m in failed_by_metric if m}):
        metric = load_metric(name, **task.metric_params)
        pairs = items.get(name, [])
        scores = metric.score([item for _, item in pairs]) if pairs else []
        for (row_index, _), score in zip(pairs, scores):
            row = rows[row_index]
            row.update(metric=score.metric, value=score.value, stats=score.stats,
                       normalized_hypothesis=score.normalized_hypothesis,
                       normalized_reference=score.normalized_reference, explanation=score.explanation)
            if row["status"] == "ok" and not score.parsed:
                row["status"] = "unparsed"
        group = None if isinstance(task.metric, str) else next(
            (lang for lang, m in task.metric.items() if m == name), None)
        metrics.append(_metric_summary(metric, group, scores, failed_by_metric.get(name, 0), ci_seed))

    total = len(rows)
    failed_total = sum(r["status"] == "failed" for r in rows)
    counts = {
        "samples": total,
        "scored": sum(r["status"] in ("ok", "unparsed") for r in rows),
        "failed": failed_total,
        "skipped": sum(r["status"] == "skipped" for r in rows),
        "unparsed": sum(r["status"] == "unparsed" for r in rows),
        "fail_rate": round(failed_total / total, 4) if total else 0.0,
    }
    return Scored(rows=rows, metrics=metrics, counts=counts)
