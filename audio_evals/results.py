"""The run folder: per-sample rows, ``summary.json`` and the seed-format ``report.md``.

``results/<model>/<dataset>/<run-id>/`` holds everything needed to reproduce and audit a
number: dataset and model revisions, prompt, generation parameters, code version, timings.
Secrets never reach it: only names of environment variables are recorded, never values, and
what else is written goes through ``audio_evals.redaction``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterable
from typing import Any

from audio_evals import storage
from audio_evals.data import DatasetRef, PreparedRef
from audio_evals.plan import EvalPlan
from audio_evals.provenance import code_version
from audio_evals.redaction import redact_strings
from audio_evals.scoring import Scored

SAMPLES_FILE = "samples.jsonl"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.md"


def new_run_id(plan_key: str) -> str:
    """Sortable and unique: UTC time plus a short hash of the configuration."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{plan_key[:8]}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def run_dir(output: str, plan: EvalPlan, run_id: str) -> str:
    return storage.join(output, _safe(plan.model.name), _safe(plan.dataset.name), run_id)


def build_summary(
    *,
    run_id: str,
    plan: EvalPlan,
    dataset: DatasetRef,
    prepared: PreparedRef,
    model_fingerprint: dict[str, Any],
    scored: Scored,
    failed_shards: list[dict[str, Any]],
    shard_stats: dict[str, Any],
    timings: dict[str, float],
    options: dict[str, Any],
    command: str,
    peak_rss_mb: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The JSON record of one run (valid JSON, never a Python repr)."""
    inference_s = shard_stats.get("inference_s") or 0.0
    audio_s = shard_stats.get("audio_seconds") or 0.0
    return {
        "run_id": run_id,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "status": "completed" if not failed_shards else "completed_with_failures",
        "strict": options.get("strict", False),
        "dataset": {
            "name": plan.dataset.name,
            "task": plan.task.name,
            "task_label": plan.task.label,
            "family": plan.task.family,
            "source": plan.dataset.source.model_dump(mode="json"),
            "revision": dataset.revision,
            "fingerprint": dataset.fingerprint,
        },
        "model": {
            "name": plan.model.name,
            "backend": plan.model.backend,
            "args": plan.model.args,
            "revision": plan.model.args.get("revision") or model_fingerprint.get("revision")
            or model_fingerprint.get("weights_sha256"),
            "fingerprint": model_fingerprint,
            "generation": plan.generation,
        },
        "prompt": {"name": plan.prompt.name, "messages": plan.prompt.model_dump(mode="json")["messages"]},
        "metrics": scored.metrics,
        "counts": scored.counts,
        "failed_shards": failed_shards,
        "shards": {"total": len(prepared.shards), **shard_stats},
        "timings_s": timings,
        # Peak resident memory of the flow process once each stage is done (MB): flat as the
        # dataset grows when streaming works.
        "peak_rss_mb": peak_rss_mb or {},
        "audio_seconds": round(prepared.audio_seconds, 3),
        "rtfx": round(audio_s / inference_s, 2) if inference_s > 0 else None,
        "options": options,
        "code": code_version(),
        "command": command,
        "eval_cli": plan.eval_cli(),
        "files": {"samples": SAMPLES_FILE, "summary": SUMMARY_FILE, "report": REPORT_FILE},
    }


def _keep_generated_audio(folder: str, row: dict[str, Any]) -> dict[str, Any]:
    """Copy a speech-out model's generated clip into the run folder; the row points at the copy."""
    source = row.get("generated_audio")
    if source and storage.exists(source):
        name = f"generated/{_safe(row['id'])}{os.path.splitext(source)[1] or '.wav'}"
        storage.write_bytes(storage.join(folder, name), storage.read_bytes(source))
        row["generated_audio"] = name
    return row


def write_rows(folder: str, rows: Iterable[dict[str, Any]]) -> int:
    """Stream the per-sample rows into the run folder (generated audio copied alongside, secrets masked)."""
    return storage.write_jsonl(storage.join(folder, SAMPLES_FILE),
                               (redact_strings(_keep_generated_audio(folder, r)) for r in rows))


def write_run(folder: str, summary: dict[str, Any], report_md: str) -> dict[str, str]:
    """Write the report and (last, so its presence means the run is whole) the summary.

    The rows were written by ``write_rows`` during scoring.
    """
    paths = {name: storage.join(folder, f) for name, f in summary["files"].items()}
    storage.write_text(paths["report"], report_md)
    storage.write_json(paths["summary"], summary)
    return paths
