"""Terminal output of the CLI: shard progress bar, result table, where the files are."""

from __future__ import annotations

import logging
import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from audio_evals.records import SampleRow
from audio_evals.run.summary import RunSummary
from flows import progress

#: Piped or redirected output is not folded at 80 columns (rich's width without a terminal): a line
#: stays whole for ``grep`` and logs; a terminal still gets rich's wrapping at its width.
console = Console(stderr=False)
#: Warnings beside a command's output (which may be piped: ``leaderboard --markdown > board.md``).
err_console = Console(stderr=True)


def attach_consoles() -> None:
    """Decide colour and wrapping for the stdout and stderr this process has now: at import, and again
    in a run forked by the warm runner (``cli.warm``), which writes to its caller's terminal."""
    console.__init__(stderr=False, soft_wrap=not sys.stdout.isatty())  # type: ignore[misc]
    err_console.__init__(stderr=True, soft_wrap=not sys.stderr.isatty())  # type: ignore[misc]


attach_consoles()


class ShardProgress:
    """A rich progress bar fed by the flow's shard events (a context manager)."""

    def __init__(self, label: str):
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("shards"), TextColumn("[red]{task.fields[failed]} failed"),
                            TimeElapsedColumn(), console=console)
        self.label = label
        self.task_id: Any = None
        self.failed = 0
        self.done = 0
        self.total: int | None = None

    def __enter__(self) -> "ShardProgress":
        self.unsubscribe = progress.subscribe(self.on_event)
        return self

    def __exit__(self, *exc: object) -> None:
        self.unsubscribe()
        if self.total is not None:
            self.bar.stop()

    def on_event(self, event: str, payload: dict[str, Any]) -> None:
        if event == "start":  # shown from the first shard on: a run stopped before leaves no blank line
            self.bar.start()
            self.total = payload["total"]
            self.task_id = self.bar.add_task(self.label, total=payload["total"], failed=0)
        elif event == "shard" and self.task_id is not None:
            self.done = payload["done"]
            self.failed += not payload["ok"]
            self.bar.update(self.task_id, completed=payload["done"], failed=self.failed)


class _PrefectFailures(logging.Filter):
    """Lets through everything but Prefect's own records at ERROR and above."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR or not record.name.startswith("prefect")


_HIDE_PREFECT_FAILURES = _PrefectFailures()


def hide_prefect_failures() -> None:
    """Keep Prefect's failure records (a traceback per attempt and per level, the message each
    time) off the console: the CLI reports every failure itself, in one ``error:`` line or as
    the failed shards under the table. ``--verbose`` leaves them on; the API records them anyway.
    Call after Prefect is imported, which installs its console handler."""
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler):
            handler.addFilter(_HIDE_PREFECT_FAILURES)


def _print_failure_causes(summary: RunSummary) -> None:
    """Why samples failed, grouped (``3 × preprocess: audio file not found (…)``), most frequent first."""
    samples = summary.paths.get("samples")
    if not (summary.counts.failed and samples):
        return
    from audio_evals import storage
    from audio_evals.report.samples import failure_causes  # jiwer: imported only when a run has failures

    causes, others = failure_causes(SampleRow.model_validate(r) for r in storage.read_jsonl(samples))
    for why, count in causes:
        console.print(f"  {count} × {why}", style="red", markup=False, soft_wrap=True)
    if others:
        console.print(f"  {others} more, of other causes: {samples}", style="red", markup=False, soft_wrap=True)


def print_summary(summary: RunSummary) -> None:
    """The result table a person reads, then counts, speed and file locations."""
    table = Table(title=f"{summary.model.name} on {summary.dataset.name}  (run {summary.run_id})")
    for column in ("task", "measure", "performance", "95% CI", "n", "failed", "unparsed"):
        table.add_column(column, justify="left" if column in ("task", "measure") else "right")
    for m in summary.metrics:
        table.add_row(summary.task_label, m.measure_label, m.value_text, m.ci_text, str(m.n), str(m.failed), str(m.unparsed))
    console.print(table)
    c = summary.counts
    threshold = summary.options.get("drop_above_wer")
    dropped = f", dropped {c.dropped} (per-sample WER/CER > {threshold:g})" if threshold is not None else ""
    console.print(f"samples {c.samples}: scored {c.scored}, failed {c.failed} "
                  f"(fail rate {100 * c.fail_rate:.1f}%), skipped {c.skipped}, unparsed {c.unparsed}{dropped}")
    _print_failure_causes(summary)
    for m in summary.metrics:
        protocol = f"{m.protocol}; " if m.protocol else ""
        console.print(f"  {m.name}: {protocol}{m.normalization}", style="dim", markup=False)
    shards = summary.shards
    if summary.options.get("inf_file"):
        console.print(f"replies from --inf_file {summary.options['inf_file']} (no model calls)", markup=False)
    console.print(f"shards {shards.total}: computed {shards.computed}, cached {shards.cached}, "
                  f"failed {shards.failed};  RTFx {summary.rtfx_text};  "
                  f"wall {summary.timings_s.get('total', 0):.1f} s")
    for failure in summary.failed_shards:
        console.print(f"shard {failure.index} failed: {failure.error}", style="red", markup=False)
    for name, path in summary.paths.items():
        console.print(f"{name:>8}: {path}", soft_wrap=True, markup=False)  # a path stays on its line
