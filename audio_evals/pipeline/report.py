"""The report stage: the run folder's report, sample viewer and, last, its summary.

The rows were written by the score stage; ``summary.json`` is written last, so its presence
means the run is whole. Then the page comparing the run with the previous one of the same
evaluation goes beside it, and the results folder's index is rewritten.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from audio_evals import storage
from audio_evals.report import render_run_report
from audio_evals.report.compare import compare_runs
from audio_evals.report.index import list_runs, write_index
from audio_evals.report.samples import RunRecord, read_run
from audio_evals.report.view import comparison_name, render_view, write_compared
from audio_evals.run.folder import write_run
from audio_evals.run.summary import RunSummary

log = logging.getLogger(__name__)


def report(folder: str, summary: RunSummary) -> tuple[dict[str, str], str]:
    """Write ``report.md``, ``view.html`` and ``summary.json`` into ``folder``; their paths and the report."""
    markdown = render_run_report(summary)
    run = read_run(folder, summary)
    paths = write_run(folder, summary, markdown, render_view(run, folder))
    root = results_root(folder)
    listing = list_runs(root)  # this run included: its summary.json is written
    before = listing.previous(run.run_id)
    if before is not None:
        try:
            paths["compare"] = _write_comparison(storage.parent(before[0]), run)
            listing = replace(listing, pages=listing.pages | {storage.absolute(paths["compare"])})
        except (OSError, ValueError) as e:  # the earlier run is damaged: this one stands without the page
            log.warning("no page comparing run %s with the previous run (%s): %s", run.run_id, before[0], e)
    paths["index"] = write_index(root, listing)
    return paths, markdown


def _write_comparison(before_folder: str, run: RunRecord) -> str:
    """The page comparing ``run`` with the run in ``before_folder``, written into ``run``'s folder."""
    comparison = compare_runs(read_run(before_folder), run)
    return write_compared(comparison, storage.join(run.folder, comparison_name(comparison.before.run_id, run.run_id)))


def results_root(folder: str) -> str:
    """The results folder holding a run folder ``<root>/<model>/<dataset>/<run>``."""
    return storage.parent(storage.parent(storage.parent(folder.rstrip("/"))))
