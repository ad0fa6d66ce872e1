"""The report stage: the run folder's report, sample viewer and, last, its summary.

The rows were written by the score stage; ``summary.json`` is written last, so its presence
means the run is whole.
"""

from __future__ import annotations

import os
import posixpath

from audio_evals import storage
from audio_evals.report import render_run_report
from audio_evals.report.index import write_index
from audio_evals.report.samples import read_run
from audio_evals.report.view import render_view
from audio_evals.run.folder import write_run
from audio_evals.run.summary import RunSummary


def report(folder: str, summary: RunSummary) -> tuple[dict[str, str], str]:
    """Write ``report.md``, ``view.html`` and ``summary.json`` into ``folder``; their paths and the report."""
    markdown = render_run_report(summary)
    paths = write_run(folder, summary, markdown, render_view(read_run(folder, summary), folder))
    paths["index"] = write_index(results_root(folder))  # the results folder's page of runs, this one included
    return paths, markdown


def results_root(folder: str) -> str:
    """The results folder holding a run folder ``<root>/<model>/<dataset>/<run>``."""
    path = posixpath if storage.is_remote(folder) else os.path
    return path.dirname(path.dirname(path.dirname(folder.rstrip("/"))))
