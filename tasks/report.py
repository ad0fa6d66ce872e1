"""The report stage task: write the run folder and publish the results as Prefect artifacts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from audio_evals import storage
from audio_evals.report import render_run_report
from audio_evals.report.samples import read_run
from audio_evals.report.view import render_view
from audio_evals.results import write_run
from audio_evals.summary import VIEW_FILE, RunSummary


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")[:100]


def metrics_table(summary: RunSummary) -> list[dict[str, Any]]:
    """One row per metric: the run's figures as the UI's table artifact shows them."""
    return [{"dataset": summary.dataset.name, "model": summary.model.name, "metric": m.label,
             "value": None if m.value is None else round(m.value, 2), "ci95": m.ci_text if m.ci95 else None,
             "n": m.n, "failed": m.failed, "unparsed": m.unparsed} for m in summary.metrics]


def _linked_view(markdown: str, view_path: str) -> str:
    """The report's relative link to the sample viewer, made absolute: the UI shows the report elsewhere."""
    url = view_path if storage.is_remote(view_path) else Path(view_path).resolve().as_uri()
    return markdown.replace(f"]({VIEW_FILE})", f"]({url})")


@task(name="report", cache_policy=NO_CACHE)
def report(folder: str, summary: RunSummary) -> dict[str, str]:
    markdown = render_run_report(summary)
    paths = write_run(folder, summary, markdown, render_view(read_run(folder, summary), folder))
    key = artifact_key("eval", summary.model.name, summary.dataset.name)
    create_table_artifact(key=key, table=metrics_table(summary), description=f"Metrics of run {summary.run_id}")
    create_markdown_artifact(key=key + "-report", markdown=_linked_view(markdown, paths["view"]),
                             description=f"Report of run {summary.run_id}")
    return paths
