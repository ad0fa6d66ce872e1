"""The report stage task: write the run folder (``audio_evals.pipeline.report``) and publish the
results as Prefect artifacts."""

from __future__ import annotations

import re
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from audio_evals.pipeline import report as stage
from audio_evals.report.links import link
from audio_evals.run.spec import RunSpec
from audio_evals.run.summary import VIEW_FILE, RunSummary


def artifact_key(*parts: str, variant: str = "") -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only, 100 at most; ``variant``
    (a hash of what changes the numbers) is kept whole however long the readable part is."""
    suffix = f"-{variant}" if variant else ""
    readable = re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")
    return readable[:100 - len(suffix)].rstrip("-") + suffix


def run_key(kind: str, spec: RunSpec) -> str:
    """The key of one evaluation's ``kind`` artifact: ``eval-whisper-tiny-en-speech-sample-en-limit-26-<hash>``."""
    return artifact_key(kind, spec.title, variant=spec.variant)


def metrics_table(summary: RunSummary) -> list[dict[str, Any]]:
    """One row per metric: the run's figures as the UI's table artifact shows them."""
    return [{"dataset": summary.dataset.name, "model": summary.model.name, "metric": m.label,
             "value": None if m.value is None else round(m.value, 2), "ci95": m.ci_text if m.ci95 else None,
             "n": m.n, "failed": m.failed, "unparsed": m.unparsed} for m in summary.metrics]


def _linked_view(markdown: str, view_path: str) -> str:
    """The report's relative link to the sample viewer, made absolute: the UI shows the report elsewhere."""
    return markdown.replace(f"]({VIEW_FILE})", f"]({link(view_path)})")


@task(name="report", cache_policy=NO_CACHE)
def report(folder: str, summary: RunSummary, table_key: str, report_key: str) -> dict[str, str]:
    """Write the run folder; publish the metrics table and the report (``run_key`` makes the keys)."""
    paths, markdown = stage.report(folder, summary)
    create_table_artifact(key=table_key, table=metrics_table(summary), description=f"Metrics of run {summary.run_id}")
    create_markdown_artifact(key=report_key, markdown=_linked_view(markdown, paths["view"]),
                             description=f"Report of run {summary.run_id}")
    return paths
