"""Seed-format markdown reports, for one run and for a suite of runs.

The layout follows the published reports we are compared with (title, model, date, metrics
legend, ``---``, one ``| task | dataset | measure | performance | eval_cli | note |`` table per
task family, numbered evaluation commands), so our tables parse the same way theirs do. What
the seeds leave out and a reader needs to trust a number (95% CI, failed/skipped/unparsed
counts, failed shards) goes in the note column, never into the performance cell.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from audio_evals.report import markup
from audio_evals.report.leaderboard import known_measure, metric_key, row_result, suite_leaderboard
from audio_evals.report.runs import setting, unusable
from audio_evals.run.suites import Suite, SuiteRow, SuiteSection
from audio_evals.run.summary import MISSING, Measure, MetricResult, RunSummary, format_value

HEADER = ("task", "dataset", "measure", "performance", "eval_cli", "note")
LEADERBOARD_TITLE = "## Models × Datasets"

def _as_measure(metric: Measure, name: str | None = None) -> Measure:
    """What the legend says about a metric, named as the table names it."""
    return Measure(name=name or metric.name, description=metric.description or metric.name,
                   higher_is_better=metric.higher_is_better, normalization=metric.normalization,
                   protocol=metric.protocol)


def _legend_line(measure: Measure) -> str:
    text = measure.description
    if measure.direction and measure.direction not in text:
        text += f" ({measure.direction})"
    if measure.protocol:
        text += f" — {measure.protocol}"
    if measure.normalization:
        text += f" — normalisation: {measure.normalization}"
    return f"- **{measure.name.upper()}{measure.arrow}**: {text}"


def _run_date(summary: RunSummary) -> str | None:
    """The run's date in the seeds' ``YYYY/MM/DD`` form."""
    return dt.datetime.fromisoformat(summary.created_at).strftime("%Y/%m/%d") if summary.created_at else None


def _table(rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("-" * (len(h) + 2) for h in HEADER) + "|"]
    lines += ["| " + " | ".join(markup.cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _legend(measures: Iterable[Measure]) -> list[str]:
    """One line per measure, in order of first appearance."""
    unique: dict[str, Measure] = {}
    for measure in measures:
        unique.setdefault(metric_key(measure.name), measure)
    return [_legend_line(m) for m in unique.values()]


def _header(title: str, fields: list[str], legend: list[str]) -> list[str]:
    lines = [f"# {title}", ""]
    for field in fields:
        lines += [field, ""]
    lines += ["**Metrics Legend**:", "", *legend, "", "---", ""]
    return lines


def _section(family: str, rows: list[tuple[str, ...]], official: bool = False) -> list[str]:
    lines = [f"## {family}", ""]
    if official:
        lines += ["> () indicate the official reported result", ""]
    return lines + [_table(rows), ""]


def _commands(commands: list[str]) -> list[str]:
    lines = ["## Evaluation Commands", ""]
    for number, command in enumerate(commands, 1):
        lines += [f"[{number}] {markup.code(command)}", ""]
    return lines


def filter_note(threshold: float) -> str:
    """The seed report's note for a ``--drop-above-wer`` filter (it says WER for CER rows too)."""
    return f"Filtered abnormal samples (WER > {threshold:g})"


def _run_note(summary: RunSummary, metric: MetricResult | None) -> list[str]:
    """CI, n and everything that did not feed the figure, so the number can be trusted."""
    parts = []
    if metric and metric.role == "secondary":
        parts.append("secondary measure, beside the headline")
    threshold = summary.options.get("drop_above_wer")
    if metric and metric.dropped is not None and threshold is not None:
        parts += [filter_note(threshold), f"dropped {metric.dropped}, unfiltered {format_value(metric.unfiltered)}"]
    if metric and metric.levels:
        parts.append("mean of levels " + ", ".join(f"{lv.level} {format_value(lv.value)}" for lv in metric.levels))
    if metric and metric.timed_out:
        parts.append(f"{metric.timed_out} past the per-sample time limit, left out")
    if metric and metric.judge_reasked:
        parts.append(f"judge re-asked {metric.judge_reasked}×")
    if metric and metric.ci95:
        parts.append(f"95% CI {metric.ci_text}")
    if metric:
        parts.append(f"n={metric.n}")
    counts = summary.counts
    if counts.failed:
        parts.append(f"failed {counts.failed} ({'scored as errors' if summary.strict else 'excluded'})")
    if counts.skipped:
        parts.append(f"skipped {counts.skipped}")
    if counts.unparsed:
        parts.append(f"unparsed {counts.unparsed} (counted wrong)")
    if summary.failed_shards:
        parts.append("failed shards " + ", ".join(str(s.index) for s in summary.failed_shards))
    if setting(summary):  # a smoke or non-default run says so beside its figure
        parts.append(f"run with {markup.text(setting(summary))}")
    return parts


def _join(parts: list[str]) -> str:
    return "; ".join(p for p in parts if p)


def _run_details(summary: RunSummary) -> list[str]:
    model, dataset, counts, code = summary.model, summary.dataset, summary.counts, summary.code
    generation = ", ".join(markup.code(f"{k}={v}") for k, v in model.generation.items()) or "model defaults"
    timings = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in summary.timings_s.items())
    lines = [
        "## Run Details",
        "",
        f"- **Run**: {markup.code(summary.run_id)} ({summary.status}" + (", strict" if summary.strict else "") + ")",
        f"- **Dataset revision**: {markup.code(dataset.revision or 'unknown')}",
        f"- **Model**: backend {markup.code(model.backend)}, revision {markup.code(model.revision or 'unknown')}",
        f"- **Prompt**: {markup.code(summary.prompt.name or 'none')}",
        f"- **Generation**: {generation}",
        f"- **Samples**: {counts.samples} (scored {counts.scored}, failed {counts.failed}, "
        f"skipped {counts.skipped}, unparsed {counts.unparsed}; fail rate {100 * counts.fail_rate:.1f}%)",
        f"- **Audio**: {summary.audio_seconds:.1f} s; RTFx {summary.rtfx_text}",
        f"- **Stage timings**: {timings or MISSING}",
        f"- **Code**: audio-evals {markup.text(code.version)} (git {markup.code(code.git_commit or 'unknown')})",
    ]
    lines += [f"- **Failed shard {s.index}**: {markup.text(s.error)}" for s in summary.failed_shards]
    return lines + [""]


def render_run_report(summary: RunSummary) -> str:
    """The report of one run: the seed layout, plus the details needed to reproduce it."""
    model, dataset = markup.text(summary.model.name), markup.text(summary.dataset.name)
    rows = [(summary.task_label_of(m), dataset, m.measure, m.value_text, "[1]", _join(_run_note(summary, m)))
            for m in summary.metrics]
    if not rows:  # every sample failed before scoring: say so where the figure would be
        reason = markup.text(summary.error or "no scored samples")
        rows = [(summary.task_label, dataset, MISSING, MISSING, "[1]", _join([reason, *_run_note(summary, None)]))]
    fields = [f"**Model**: {model} (backend {markup.code(summary.model.backend)})",
              f"**Dataset**: {dataset} (task {markup.code(summary.dataset.task)})",
              f"**Evaluation Date**: {_run_date(summary) or MISSING}"]
    if summary.files.view:
        fields.append(f"**Samples**: [{summary.files.view}]({summary.files.view}) (every sample: audio, edits, score, cause)")
    lines = _header(f"{model} on {dataset}", fields, _legend(_as_measure(m) for m in summary.metrics))
    lines += _section(summary.dataset.family or "Results", rows)
    lines += _commands([summary.eval_cli])
    lines += _run_details(summary)
    return "\n".join(lines)


def _performance(value: float | None, official: float | None) -> str:
    return format_value(value) + (f"({official:g})" if official is not None else "")


def _row_measure(row: SuiteRow, metric: MetricResult | None, known: dict[str, Measure]) -> Measure:
    """Described by the row's run, else by any run of that measure, else by name; named as the suite names it."""
    return _as_measure(metric or known.get(metric_key(row.measure)) or known_measure(row.measure), row.measure)


@dataclass(frozen=True)
class _SuiteLine:
    """One table row of a suite report and what the header needs from it."""

    cells: tuple[str, ...]
    measure: Measure
    date: str | None


def _suite_line(number: int, section: SuiteSection, row: SuiteRow, summaries: list[RunSummary],
                known: dict[str, Measure]) -> _SuiteLine:
    summary, metric = row_result(summaries, row)
    measure = _row_measure(row, metric, known)
    value = metric.value if metric else None
    if summary is None:
        status = ([filter_note(row.drop_above_wer)] if row.drop_above_wer is not None else []) + ["not run"]
    else:
        why = markup.text(summary.error) if summary.error else unusable(summary) or f"no {row.measure} result"
        reason = [why] if value is None else []
        status = reason + _run_note(summary, metric)
    cells = (section.task, markup.text(row.label or row.dataset), measure.measure, _performance(value, row.official),
             f"[{number}]", _join([row.note, *status]))
    return _SuiteLine(cells, measure, _run_date(summary) if summary else None)


def _date_range(dates: Iterable[str | None]) -> str:
    present = sorted({d for d in dates if d})
    if not present:
        return "not run yet"
    return present[0] if len(present) == 1 else f"{present[0]}-{present[-1]}"


def render_suite_report(summaries: list[RunSummary], suite: Suite) -> str:
    """A suite's report: the models × datasets table, then one row per suite row in the
    suite's order, whether it ran or not."""
    known = {metric_key(m.name): m for s in summaries for m in s.metrics}
    table_lines = [_suite_line(n, section, row, summaries, known) for n, (section, row) in enumerate(suite.rows(), 1)]
    models = ", ".join(dict.fromkeys(markup.text(row.model) for _, row in suite.rows()))
    fields = [f"**Model**: {models}", f"**Evaluation Date**: {_date_range(x.date for x in table_lines)}",
              *suite.model_card]
    lines = _header(suite.title, fields, _legend(x.measure for x in table_lines))
    lines += [LEADERBOARD_TITLE, "", suite_leaderboard(suite, summaries).markdown(), ""]
    in_order = iter(table_lines)
    for section in suite.sections:
        rows = [next(in_order).cells for _ in section.rows]
        lines += _section(section.family, rows, official=any(r.official is not None for r in section.rows))
    lines += _commands([_row_command(suite, row, summaries) for _, row in suite.rows()])
    return "\n".join(lines)


def _row_command(suite: Suite, row: SuiteRow, summaries: list[RunSummary]) -> str:
    """The command of the run behind a row (it carries the suite's options, ``--limit 4``), else the row's own."""
    summary, _ = row_result(summaries, row)
    return summary.eval_cli if summary is not None and summary.eval_cli else suite.eval_cli(row)
