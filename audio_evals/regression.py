"""Regressions between model revisions: find the run to compare with, apply the rule, mark the report.

A new model revision is compared with the latest earlier run of the same evaluation (dataset,
prompt, and the same data: same dataset fingerprint) made with a *different* revision, so an
unchanged model re-run nightly never compares with itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from audio_evals import storage
from audio_evals.results import SUMMARY_FILE, _safe as folder_name

REGRESSION_DETECTED = "audio_evals.regression.detected"
SECTION_TITLE = "## Regressions"


@dataclass(frozen=True)
class Regression:
    """One metric that got worse by more than the noise of both runs."""

    model: str
    dataset: str
    metric: str
    old: float
    new: float
    delta: float
    threshold: float
    old_run_id: str
    new_run_id: str
    old_revision: str | None
    new_revision: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _summaries_under(folder: str) -> list[str]:
    """``<folder>/*/summary.json`` locally or in an object store (listing not cached)."""
    fs, root = storage.filesystem(folder)
    fs.invalidate_cache(root)
    found = fs.glob(f"{root.rstrip('/')}/*/{SUMMARY_FILE}")
    return sorted(fs.unstrip_protocol(p) if storage.is_remote(folder) else p for p in found)


def other_runs(output: str, model: str, dataset: str, prompt: str | None, exclude_run_id: str, *,
               dataset_fingerprint: str | None = None) -> list[dict[str, Any]]:
    """Summaries of every other run of ``model`` on ``dataset`` with ``prompt``, oldest first.

    With ``dataset_fingerprint`` only runs on the same data count (a ``--limit 10`` run is not
    compared with a full one).
    """
    found = []
    for path in _summaries_under(storage.join(output, folder_name(model), folder_name(dataset))):
        summary = storage.read_json(path)
        if (summary["run_id"] != exclude_run_id and (summary.get("prompt") or {}).get("name") == prompt
                and (not dataset_fingerprint or summary["dataset"].get("fingerprint") == dataset_fingerprint)):
            found.append(summary)
    return sorted(found, key=lambda s: (s.get("created_at") or "", s["run_id"]))


def _latest_other_revision(runs: list[dict[str, Any]], revision: str | None) -> dict[str, Any] | None:
    return next((s for s in reversed(runs) if s["model"].get("revision") != revision), None)


def previous_run(output: str, model: str, dataset: str, prompt: str | None, exclude_run_id: str,
                 current_revision: str | None, *, dataset_fingerprint: str | None = None) -> dict[str, Any] | None:
    """The latest other run of ``model`` on ``dataset`` with ``prompt`` whose model revision differs.

    ``exclude_run_id`` (the current run) is never returned; ``dataset_fingerprint`` as in ``other_runs``.
    """
    runs = other_runs(output, model, dataset, prompt, exclude_run_id, dataset_fingerprint=dataset_fingerprint)
    return _latest_other_revision(runs, current_revision)


def _half_width(metric: dict[str, Any]) -> float:
    ci = metric.get("ci95")
    return (ci[1] - ci[0]) / 2 if ci else 0.0


def _label(metric: dict[str, Any]) -> str:
    return metric["name"] + (f" ({metric['group']})" if metric.get("group") else "")


def compare(current: dict[str, Any], previous: dict[str, Any]) -> list[Regression]:
    """Metrics of ``current`` that regressed against ``previous``.

    Rule: a metric (same name and language group in both runs, a value in both, a known
    direction) regressed when it moved in the bad direction (down for higher-is-better, up for
    lower-is-better) by strictly more than the 95% bootstrap CI half-width of *each* run, i.e.
    ``|new - old| > max(half_width_old, half_width_new)``. A run without a CI counts as 0 wide.
    """
    before = {_label(m): m for m in previous.get("metrics", [])}
    found = []
    for metric in current.get("metrics", []):
        old = before.get(_label(metric))
        direction = metric.get("higher_is_better")
        if old is None or metric["value"] is None or old["value"] is None or direction is None:
            continue
        delta = metric["value"] - old["value"]
        threshold = max(_half_width(old), _half_width(metric))
        if (delta < 0 if direction else delta > 0) and abs(delta) > threshold:
            found.append(Regression(
                model=current["model"]["name"], dataset=current["dataset"]["name"], metric=_label(metric),
                old=old["value"], new=metric["value"], delta=delta, threshold=threshold,
                old_run_id=previous["run_id"], new_run_id=current["run_id"],
                old_revision=previous["model"].get("revision"), new_revision=current["model"].get("revision"),
            ))
    return found


@dataclass(frozen=True)
class Check:
    """The outcome of checking one run: what it was compared with and what got worse.

    ``announce`` is False when another run of the same revision already followed ``previous``:
    that run announced these regressions, so a nightly re-run does not alert every night.
    """

    previous: dict[str, Any] | None
    regressions: list[Regression]
    announce: bool


def check(output: str, summary: dict[str, Any]) -> Check:
    """Compare the run of ``summary`` with the previous revision's run on the same data."""
    model, dataset = summary["model"], summary["dataset"]
    runs = other_runs(output, model["name"], dataset["name"], summary["prompt"]["name"], summary["run_id"],
                      dataset_fingerprint=dataset.get("fingerprint"))
    previous = _latest_other_revision(runs, model.get("revision"))
    if previous is None:
        return Check(None, [], False)
    since = runs[runs.index(previous) + 1:]
    announce = not any(run["model"].get("revision") == model.get("revision") for run in since)
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
