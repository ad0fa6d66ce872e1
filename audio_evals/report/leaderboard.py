"""Models × datasets: which run and metric answer a suite row, and the table that compares models.

One matcher (``row_result``) serves the seed-format suite report and the leaderboard, so a row
that shows a figure in one shows it in the other. The table follows the Open ASR Leaderboard:
one row per model, the average of each measure across datasets and RTFx (audio seconds per
second of inference, model loading left out) beside the per-dataset figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from audio_evals import storage
from audio_evals.metrics import metric_class, reported_names
from audio_evals.report import markup
from audio_evals.report.runs import Evaluation, dataset_place, latest_usable, read_runs, unusable
from audio_evals.run.suites import Suite, SuiteRow
from audio_evals.run.summary import ARROW, Measure, MetricResult, RunSummary, format_value, speed

NOT_RUN = "not run"
#: A cell whose only run failed or lost more samples than its fail-rate limit allows.
FAILED = "failed"

def metric_key(name: str) -> str:
    """Measures compare case- and separator-insensitively: seeds write ``G-EVAL``, modules ``g_eval``."""
    return name.lower().replace("_", "-")


def known_measure(name: str) -> Measure:
    """A measure as a suite names it, described by the metrics that report it (direction unknown otherwise)."""
    wanted = metric_key(name)
    modules = next((m for reported, m in reported_names().items() if metric_key(reported) == wanted), ())
    classes = [metric_class(m) for m in modules]
    if not classes:
        return Measure(name=name, description=name)
    higher = {c.higher_is_better for c in classes}
    description = classes[0].description if len(classes) == 1 else f"{name}: " + "; or ".join(c.description for c in classes)
    return Measure(name=name, description=description, higher_is_better=higher.pop() if len(higher) == 1 else None)


def pick_metric(summary: RunSummary, measure: str) -> MetricResult | None:
    """The metric named ``measure``; a single-headline run answers whatever the seed calls it (MMAU ``acc``)."""
    named = [m for m in summary.metrics if metric_key(m.name) == metric_key(measure)]
    if named:
        return named[0]
    return summary.headlines[0] if len(summary.headlines) == 1 else None


def matches(summary: RunSummary, dataset: str, model: str, prompt: str | None) -> bool:
    """Same dataset and model; no ``prompt`` accepts the task's default prompt."""
    return (summary.dataset.name == dataset and summary.model.name == model
            and (prompt is None or summary.prompt.name == prompt))


def row_result(summaries: list[RunSummary], row: SuiteRow) -> tuple[RunSummary | None, MetricResult | None]:
    """The latest usable run answering a suite row and its metric for the row's measure; without a usable
    run, the latest run (``unusable`` says why) and no metric."""
    summary, reason = latest_usable(s for s in summaries if matches(s, row.dataset, row.model, row.prompt))
    return summary, (pick_metric(summary, row.measure) if summary and reason is None else None)


@dataclass(frozen=True)
class Column:
    """A dataset and the measure reported on it."""

    dataset: str
    measure: str

    @property
    def key(self) -> tuple[str, str]:
        return self.dataset, metric_key(self.measure)


@dataclass
class Leaderboard:
    """Figures per (model, column); the runs behind them, for RTFx."""

    title: str
    columns: list[Column] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    cells: dict[tuple[str, tuple[str, str]], str | MetricResult] = field(default_factory=dict)
    runs: dict[str, dict[str, RunSummary]] = field(default_factory=dict)
    arrows: dict[str, str] = field(default_factory=dict)
    #: One line per summary.json that could not be read, naming the file and why.
    skipped: list[str] = field(default_factory=list)
    #: One line per evaluation whose runs could not stand for a figure, and why.
    excluded: list[str] = field(default_factory=list)

    def add(self, model: str, column: Column, summary: RunSummary | None, metric: MetricResult | None) -> None:
        """One figure (or why there is none: ``not run``, ``failed``); the first one for a (model, column) stays."""
        if column.key not in {c.key for c in self.columns}:
            self.columns.append(column)
        if model not in self.models:
            self.models.append(model)
        reason = unusable(summary) if summary is not None else None
        if summary is not None and summary.run_id and reason is None:
            self.runs.setdefault(model, {})[summary.run_id] = summary
        if metric is not None:
            self.arrows.setdefault(metric_key(column.measure), metric.arrow)
        cell = (NOT_RUN if not summary.ran else FAILED) if summary is not None and reason else metric
        if cell is not None:
            self.cells.setdefault((model, column.key), cell)

    @property
    def averaged(self) -> list[str]:
        """The measures reported on more than one dataset: those an average says something about."""
        keys = [metric_key(c.measure) for c in self.columns]
        return list(dict.fromkeys(c.measure for c in self.columns if keys.count(metric_key(c.measure)) > 1))

    def _heading(self, measure: str) -> str:
        return measure + self.arrows.get(metric_key(measure), known_measure(measure).arrow)

    def value(self, model: str, column: Column) -> float | None:
        cell = self.cells.get((model, column.key))
        return cell.value if isinstance(cell, MetricResult) else None

    def average(self, model: str, measure: str) -> float | None:
        """The mean over every dataset of ``measure``; None unless the model has a figure on each."""
        values = [self.value(model, c) for c in self.columns if metric_key(c.measure) == metric_key(measure)]
        return sum(values) / len(values) if values and None not in values else None

    def rtfx(self, model: str) -> float | None:
        """The model's RTFx over all its runs here: total audio over total inference time."""
        timed = [(s.shards.audio_seconds, s.infer_seconds) for s in self.runs.get(model, {}).values()
                 if s.infer_seconds]
        return speed(sum(a for a, _ in timed), sum(t for _, t in timed)) if timed else None

    def headings(self) -> list[str]:
        averages = [f"average {self._heading(m)}" for m in self.averaged]
        return ["model", *averages, f"RTFx{ARROW[True]}",
                *(f"{c.dataset} {self._heading(c.measure)}" for c in self.columns)]

    def rows(self) -> list[list[str | float | None]]:
        """One row per model, as ``headings``: figures rounded to 2 decimals, ``not run`` where it did not."""
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 2)

        table = []
        for model in self.models:
            cells = [self.cells.get((model, c.key)) for c in self.columns]
            averages = [rounded(self.average(model, m)) for m in self.averaged]
            table.append([model, *averages, self.rtfx(model),
                          *(rounded(c.value) if isinstance(c, MetricResult) else c for c in cells)])
        return table

    def records(self) -> list[dict[str, str | float | None]]:
        """The rows as dicts keyed by heading (a Prefect table artifact)."""
        return [dict(zip(self.headings(), row)) for row in self.rows()]

    def markdown(self) -> str:
        def text(cell: str | float | None) -> str:
            return markup.cell(markup.text(cell)) if isinstance(cell, str) else format_value(cell)

        lines = ["| " + " | ".join(text(h) for h in self.headings()) + " |", "|" + "---|" * len(self.headings())]
        lines += ["| " + " | ".join(text(c) for c in row) + " |" for row in self.rows()]
        return "\n".join(lines)


def suite_leaderboard(suite: Suite, summaries: list[RunSummary]) -> Leaderboard:
    """The suite's rows as models × datasets, each figure found by ``row_result``."""
    board = Leaderboard(suite.title)
    for _, row in suite.rows():
        summary, metric = row_result(summaries, row)
        board.add(row.model, Column(row.label or row.dataset, row.measure), summary, metric)
    return board


def _dataset_labels(runs: dict[Evaluation, RunSummary]) -> dict[Evaluation, str]:
    """Each evaluation's dataset as its column names it: the source is added where two datasets share a
    name (two files named ``manifest.jsonl``), the prompt where one dataset was asked with several."""
    sources: dict[str, set[str]] = {}
    prompts: dict[tuple[str, str], set[str | None]] = {}
    for e in runs:
        sources.setdefault(e.dataset, set()).add(e.dataset_identity)
        prompts.setdefault((e.dataset, e.dataset_identity), set()).add(e.prompt)
    labels = {}
    for e, summary in runs.items():
        label = e.dataset + (f" ({dataset_place(summary)})" if len(sources[e.dataset]) > 1 else "")
        labels[e] = label + (f" · prompt {e.prompt}" if len(prompts[(e.dataset, e.dataset_identity)]) > 1 else "")
    return labels


def runs_leaderboard(summaries: list[RunSummary], title: str = "Leaderboard") -> Leaderboard:
    """Every headline metric of the latest usable run of each evaluation (``Evaluation``), without a suite.

    A model's runs with options that change the numbers (``--limit 4``, ``-P beam_size=1``) make a row
    of their own, labelled with those options; the model's own row holds only default runs.
    """
    groups: dict[Evaluation, list[RunSummary]] = {}
    for summary in summaries:
        groups.setdefault(Evaluation.of(summary), []).append(summary)
    chosen = {e: latest_usable(runs) for e, runs in groups.items()}
    labels = _dataset_labels({e: s for e, (s, _) in chosen.items() if s is not None})
    board = Leaderboard(title)
    for e in sorted(chosen, key=lambda e: (e.model, e.setting != "", e.setting, labels[e])):
        summary, reason = chosen[e]
        row = e.model + (f" [{e.setting}]" if e.setting else "")
        if reason:
            board.excluded.append(f"{row} on {labels[e]}: run {summary.run_id} not used: {reason}")
        for metric in summary.headlines or [MetricResult(name=summary.dataset.task or "result")]:
            dataset = labels[e] + (f" ({metric.group})" if metric.group else "")
            board.add(row, Column(dataset, metric.name), summary, None if reason else metric)
    return board


def leaderboard_of_results(results_dir: str) -> Leaderboard:
    """The models × datasets table of the runs under ``results_dir`` (``<model>/<dataset>/<run>``), no suite file.

    A ``summary.json`` that cannot be read or fails validation is left out, named in ``skipped``.
    """
    if not storage.exists(results_dir):
        raise FileNotFoundError(f"no results folder at {results_dir}")
    runs, unreadable = read_runs(results_dir)
    board = runs_leaderboard([summary for _, summary in runs], f"Leaderboard of {results_dir}")
    board.skipped = [f"skipped {path}: {why}" for path, why in unreadable]
    return board
