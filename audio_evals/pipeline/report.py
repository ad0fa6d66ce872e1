"""The report stage: the run folder's report, sample viewer and, last, its summary.

The rows were written by the score stage; ``summary.json`` is written last, so its presence
means the run is whole.
"""

from __future__ import annotations

from audio_evals.report import render_run_report
from audio_evals.report.samples import read_run
from audio_evals.report.view import render_view
from audio_evals.run.folder import write_run
from audio_evals.run.summary import RunSummary


def report(folder: str, summary: RunSummary) -> tuple[dict[str, str], str]:
    """Write ``report.md``, ``view.html`` and ``summary.json`` into ``folder``; their paths and the report."""
    markdown = render_run_report(summary)
    paths = write_run(folder, summary, markdown, render_view(read_run(folder, summary), folder))
    return paths, markdown
