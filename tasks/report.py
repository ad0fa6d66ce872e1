"""report: write the run folder and publish the results as Prefect artifacts."""

from __future__ import annotations

import re
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from audio_evals.report import render_run_report
from audio_evals.results import write_run
from audio_evals.summary import RunSummary


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")[:100]


def metrics_table(summary: RunSummary) -> list[dict[str, Any]]:
    """One row per metric: the run's figures as the UI's table artifact shows them."""
    return [{"dataset": summary.dataset.name, "model": summary.model.name, "metric": m.label,
             "value": None if m.value is None else round(m.value, 2), "ci95": m.ci_text if m.ci95 else None,
             "n": m.n, "failed": m.failed, "unparsed": m.unparsed} for m in summary.metrics]


@task(name="report", cache_policy=NO_CACHE)
def report(folder: str, summary: RunSummary) -> dict[str, str]:
    markdown = render_run_report(summary)
    paths = write_run(folder, summary, markdown)
    key = artifact_key("eval", summary.model.name, summary.dataset.name)
    create_table_artifact(key=key, table=metrics_table(summary), description=f"Metrics of run {summary.run_id}")
    create_markdown_artifact(key=key + "-report", markdown=markdown, description=f"Report of run {summary.run_id}")
    return paths
