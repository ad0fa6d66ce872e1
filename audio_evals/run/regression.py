"""Regressions between model revisions: find the run to compare with, apply the rule, mark the report.

A new model revision is compared with the latest earlier run of the same evaluation (dataset,
prompt, and the same data: same dataset fingerprint) made with a *different* revision, so an
unchanged model re-run nightly never compares with itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from audio_evals import storage
from audio_evals.paths import folder_name
from audio_evals.run.summary import Regression, RunSummary, read_summary, summaries_under

REGRESSION_DETECTED = "audio_evals.regression.detected"
SECTION_TITLE = "## Regressions"


def other_runs(output: str, model: str, dataset: str, prompt: str | None, exclude_run_id: str | None, *,
               dataset_fingerprint: str | None = None) -> list[RunSummary]:
    """Summaries of every other run of ``model`` on ``dataset`` with ``prompt``, oldest first.

    With ``dataset_fingerprint`` only runs on the same data count (a ``--limit 10`` run is not
    compared with a full one).
    """
    found = []
    for path in summaries_under(storage.join(output, folder_name(model), folder_name(dataset))):
        summary = read_summary(path)
        if (summary.run_id != exclude_run_id and summary.prompt.name == prompt
                and (not dataset_fingerprint or summary.dataset.fingerprint == dataset_fingerprint)):
            found.append(summary)
    return sorted(found, key=lambda s: (s.created_at or "", s.run_id or ""))


def _latest_other_revision(runs: list[RunSummary], revision: str | None) -> RunSummary | None:
    return next((s for s in reversed(runs) if s.model.revision != revision), None)


def previous_run(output: str, model: str, dataset: str, prompt: str | None, exclude_run_id: str,
                 current_revision: str | None, *, dataset_fingerprint: str | None = None) -> RunSummary | None:
    """The latest other run of ``model`` on ``dataset`` with ``prompt`` whose model revision differs.

    ``exclude_run_id`` (the current run) is never returned; ``dataset_fingerprint`` as in ``other_runs``.
    """
    runs = other_runs(output, model, dataset, prompt, exclude_run_id, dataset_fingerprint=dataset_fingerprint)
    return _latest_other_revision(runs, current_revision)


def compare(current: RunSummary, previous: RunSummary) -> list[Regression]:
    """Metrics of ``current`` that regressed against ``previous``.

    Rule: a metric (same name and language group in both runs, a value in both, a known
    direction) regressed when it moved in the bad direction (down for higher-is-better, up for
    lower-is-better) by strictly more than the 95% bootstrap CI half-width of *each* run, i.e.
    ``|new - old| > max(half_width_old, half_width_new)``. A run without a CI counts as 0 wide.
    """
    before = {m.label: m for m in previous.metrics}
    found = []
    for metric in current.metrics:
        old = before.get(metric.label)
        direction = metric.higher_is_better
        if old is None or metric.value is None or old.value is None or direction is None:
            continue
        delta = metric.value - old.value
        threshold = max(old.half_width, metric.half_width)
        if (delta < 0 if direction else delta > 0) and abs(delta) > threshold:
            found.append(Regression(
                model=current.model.name, dataset=current.dataset.name, metric=metric.label,
                old=old.value, new=metric.value, delta=delta, threshold=threshold,
                old_run_id=previous.run_id, new_run_id=current.run_id,
                old_revision=previous.model.revision, new_revision=current.model.revision,
            ))
    return found


@dataclass(frozen=True)
class Check:
    """The outcome of checking one run: what it was compared with and what got worse.

    ``announce`` is False when another run of the same revision already followed ``previous``:
    that run announced these regressions, so a nightly re-run does not alert every night.
    """

    previous: RunSummary | None
    regressions: list[Regression]
    announce: bool


def check(output: str, summary: RunSummary) -> Check:
    """Compare the run of ``summary`` with the previous revision's run on the same data."""
    model, dataset = summary.model, summary.dataset
    runs = other_runs(output, model.name, dataset.name, summary.prompt.name, summary.run_id,
                      dataset_fingerprint=dataset.fingerprint)
    previous = _latest_other_revision(runs, model.revision)
    if previous is None:
        return Check(None, [], False)
    since = runs[runs.index(previous) + 1:]
    announce = not any(run.model.revision == model.revision for run in since)
    return Check(previous, compare(summary, previous), announce)


def render_section(regressions: list[Regression]) -> str:
    """The markdown ``Regressions`` section (a table; says so when there are none)."""
    lines = [SECTION_TITLE, ""]
    if not regressions:
        return "\n".join(lines + ["No regression against the previous model revision.", ""])
    lines += ["| Model | Dataset | Metric | Old | New | Delta | Noise (max CI half-width) | Runs (old → new) |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r.model} | {r.dataset} | {r.metric} | {r.old:.2f} | {r.new:.2f} | {r.delta:+.2f} | "
              f"{r.threshold:.2f} | `{r.old_run_id}` ({r.old_revision}) → `{r.new_run_id}` ({r.new_revision}) |"
              for r in regressions]
    return "\n".join(lines + [""])


def mark_report(report_path: str, regressions: list[Regression]) -> None:
    """Append (or replace) the ``Regressions`` section of a report, atomically."""
    text = storage.read_bytes(report_path).decode("utf-8")
    head, _, _ = text.partition("\n" + SECTION_TITLE + "\n")
    storage.write_text(report_path, head.rstrip("\n") + "\n\n" + render_section(regressions))
