"""Which runs may stand for a figure, and what makes two runs the same evaluation.

Where runs are combined (a leaderboard, a suite report, a comparison) a figure comes only from a
run that completed under its fail-rate limit; two runs are the same evaluation when everything
that changes the number matches: the dataset's identity (not only its name: two files both named
``manifest.jsonl`` are two datasets), the model, its prompt, and the options of ``number_options``
(generation, backend arguments, limit, random draw, scoring overrides). A run with non-default
options is labelled with them (``--limit 4``), never shown as the default figure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import ValidationError

from audio_evals import storage
from audio_evals.run.command import setting_label
from audio_evals.run.summary import RunSummary, read_summary, summaries_under

#: ``RunSpec.max_fail_rate``'s default, for summaries written before options were recorded.
DEFAULT_MAX_FAIL_RATE = 0.5


def unusable(summary: RunSummary) -> str | None:
    """Why ``summary``'s figures cannot stand for a result (not run, failed, too many failed samples), or None."""
    if not summary.ran:
        return summary.error or "not run"
    if summary.status in ("failed", "not_run"):
        return summary.status.replace("_", " ")
    limit = summary.options.get("max_fail_rate", DEFAULT_MAX_FAIL_RATE)
    if summary.counts.fail_rate > limit:
        return f"failed: {100 * summary.counts.fail_rate:.1f}% of samples failed (limit {100 * limit:g}%)"
    if summary.strict and (summary.counts.failed or summary.failed_shards):
        return "failed: a strict run with failed samples"
    return None


def dataset_identity(summary: RunSummary) -> str:
    """What the dataset is beyond its name: where it is read from (a manifest's path, a hub repo)."""
    return storage.stable_hash(summary.dataset.source)[:8]


def dataset_place(summary: RunSummary) -> str:
    """A readable name for the dataset's source: a manifest's path, a hub repo, else its identity hash."""
    source = summary.dataset.source
    return str(source.get("path") or source.get("repo") or dataset_identity(summary))


def setting(summary: RunSummary) -> str:
    """How the run differs from the default evaluation of its model and dataset ("" when it does not)."""
    return setting_label(summary.eval_cli)


@dataclass(frozen=True)
class Evaluation:
    """What makes runs comparable: a run with the same key repeats the same evaluation."""

    model: str
    setting: str
    dataset: str
    dataset_identity: str
    prompt: str | None

    @classmethod
    def of(cls, summary: RunSummary) -> Evaluation:
        return cls(summary.model.name, setting(summary), summary.dataset.name, dataset_identity(summary),
                   summary.prompt.name)


def latest_usable(summaries: Iterable[RunSummary]) -> tuple[RunSummary | None, str | None]:
    """The newest run that may stand for a figure; without one, the newest run and why it may not."""
    ordered = sorted(summaries, key=lambda s: s.created_at or "", reverse=True)
    for summary in ordered:
        if unusable(summary) is None:
            return summary, None
    return (ordered[0], unusable(ordered[0])) if ordered else (None, None)


def record_problem(error: Exception) -> str:
    """Why a record read back (``summary.json``) is refused, in one line: the first field at fault, or the error."""
    if isinstance(error, ValidationError):
        problems = error.errors()
        first = problems[0]
        where = ".".join(str(part) for part in first["loc"]) or "record"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return f"{where}: {first['msg'].removeprefix('Value error, ')}{more}"
    return " ".join(f"{type(error).__name__}: {error}".split())


def read_runs(results_dir: str) -> tuple[list[tuple[str, RunSummary]], list[tuple[str, str]]]:
    """Every ``<model>/<dataset>/<run>/summary.json`` under ``results_dir`` with its summary, and those
    that cannot be read or fail validation, each with ``record_problem``'s reason."""
    runs, unreadable = [], []
    for path in summaries_under(results_dir, depth=3):
        try:
            runs.append((path, read_summary(path)))
        except (OSError, ValueError) as e:  # pydantic's ValidationError and JSON errors are ValueErrors
            unreadable.append((path, record_problem(e)))
    return runs, unreadable
