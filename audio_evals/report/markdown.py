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
from dataclasses import dataclass, replace
from typing import Any

from audio_evals.suites import Suite, SuiteRow, SuiteSection

HEADER = ("task", "dataset", "measure", "performance", "eval_cli", "note")
MISSING = "—"
ARROW = {True: "⬆️", False: "⬇️", None: ""}

# Direction and wording for measures a suite names before any run of them exists.
_KNOWN_METRICS: dict[str, tuple[str, bool]] = {
    "wer": ("Word Error Rate", False),
    "cer": ("Character Error Rate", False),
    "bleu": ("BLEU Score", True),
    "acc": ("Accuracy", True),
    "g-eval": ("G-Eval score of an LLM judge", True),
}


def metric_key(name: str) -> str:
    """Measures compare case- and separator-insensitively: seeds write ``G-EVAL``, modules ``g_eval``."""
    return name.lower().replace("_", "-")


@dataclass(frozen=True)
class MetricInfo:
    """What the legend and the measure cell say about a metric."""

    name: str
    description: str
    higher_is_better: bool | None
    normalization: str = ""
    #: Whose protocol the figure follows ("reference protocol: UltraEval-Audio compute_wer, 13a").
    protocol: str = ""

    @classmethod
    def of_run(cls, metric: dict[str, Any], name: str | None = None) -> "MetricInfo":
        return cls(name or metric["name"], metric.get("description") or metric["name"],
                   metric.get("higher_is_better"), metric.get("normalization") or "", metric.get("protocol") or "")

    @classmethod
    def known(cls, name: str) -> "MetricInfo":
        description, higher = _KNOWN_METRICS.get(metric_key(name), (name, None))
        return cls(name, description, higher)

    @property
    def measure(self) -> str:
        return self.name + ARROW[self.higher_is_better]

    def legend_line(self) -> str:
        direction = {True: "higher is better", False: "lower is better", None: ""}[self.higher_is_better]
        text = self.description
        if direction and direction not in text:
            text += f" ({direction})"
        if self.protocol:
            text += f" — {self.protocol}"
        if self.normalization:
            text += f" — normalisation: {self.normalization}"
        return f"- **{self.name.upper()}{ARROW[self.higher_is_better]}**: {text}"


def _fmt(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}"


def _run_date(summary: dict[str, Any]) -> str | None:
    """The run's date in the seeds' ``YYYY/MM/DD`` form."""
    created = summary.get("created_at")
    return dt.datetime.fromisoformat(created).strftime("%Y/%m/%d") if created else None


def _latest(summaries: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The most recent of several runs of the same evaluation (a re-run supersedes)."""
    return max(summaries, key=lambda s: s.get("created_at") or "", default=None)


def _cell(text: Any) -> str:
    """Table cells are one line and may not contain a bare ``|``."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("-" * (len(h) + 2) for h in HEADER) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _legend(infos: Iterable[MetricInfo]) -> list[str]:
    """One line per measure, in order of first appearance."""
    unique: dict[str, MetricInfo] = {}
    for info in infos:
        unique.setdefault(metric_key(info.name), info)
    return [info.legend_line() for info in unique.values()]


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
        lines += [f"[{number}] `{command}`", ""]
    return lines


def _task_label(summary: dict[str, Any], metric: dict[str, Any]) -> str:
    """``asr`` scored per language reads ``asr(en)`` / ``asr(zh)``, as in the seeds."""
    label = summary["dataset"].get("task_label") or summary["dataset"]["task"]
    group = metric.get("group")
    return f"{label.split('(')[0]}({group})" if group else label


def _run_note(summary: dict[str, Any], metric: dict[str, Any] | None) -> list[str]:
    """CI, n and everything that did not feed the figure, so the number can be trusted."""
    parts = []
    if metric and metric.get("role") == "secondary":
        parts.append("secondary measure, beside the headline")
    if metric and metric.get("levels"):
        parts.append("mean of levels " + ", ".join(f"{lv['level']} {_fmt(lv['value'])}" for lv in metric["levels"]))
    if metric and metric.get("judge_reasked"):
        parts.append(f"judge re-asked {metric['judge_reasked']}×")
    if metric and metric.get("ci95"):
        lo, hi = metric["ci95"]
        parts.append(f"95% CI [{lo:.2f}, {hi:.2f}]")
    if metric:
        parts.append(f"n={metric.get('n', 0)}")
    counts = summary.get("counts", {})
    if counts.get("failed"):
        how = "scored as errors" if summary.get("strict") else "excluded"
        parts.append(f"failed {counts['failed']} ({how})")
    if counts.get("skipped"):
        parts.append(f"skipped {counts['skipped']}")
    if counts.get("unparsed"):
        parts.append(f"unparsed {counts['unparsed']} (counted wrong)")
    if summary.get("failed_shards"):
        parts.append("failed shards " + ", ".join(str(s["index"]) for s in summary["failed_shards"]))
    return parts


def _join(parts: list[str]) -> str:
    return "; ".join(p for p in parts if p)


def _run_details(summary: dict[str, Any]) -> list[str]:
    model, dataset, counts = summary["model"], summary["dataset"], summary.get("counts", {})
    generation = ", ".join(f"`{k}={v}`" for k, v in (model.get("generation") or {}).items()) or "model defaults"
    timings = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in (summary.get("timings_s") or {}).items())
    code = summary.get("code") or {}
    lines = [
        "## Run Details",
        "",
        f"- **Run**: `{summary['run_id']}` ({summary.get('status', 'unknown')}"
        + (", strict" if summary.get("strict") else "") + ")",
        f"- **Dataset revision**: `{dataset.get('revision') or 'unknown'}`",
        f"- **Model**: backend `{model.get('backend')}`, revision `{model.get('revision') or 'unknown'}`",
        f"- **Prompt**: `{(summary.get('prompt') or {}).get('name') or 'none'}`",
        f"- **Generation**: {generation}",
        f"- **Samples**: {counts.get('samples', 0)} (scored {counts.get('scored', 0)}, failed {counts.get('failed', 0)}, "
        f"skipped {counts.get('skipped', 0)}, unparsed {counts.get('unparsed', 0)}; "
        f"fail rate {100 * (counts.get('fail_rate') or 0):.1f}%)",
        f"- **Audio**: {summary.get('audio_seconds') or 0:.1f} s; RTFx {summary.get('rtfx') or MISSING}",
        f"- **Stage timings**: {timings or MISSING}",
        f"- **Code**: audio-evals {code.get('version', 'unknown')} (git `{code.get('git_commit') or 'unknown'}`)",
    ]
    lines += [f"- **Failed shard {s['index']}**: {_cell(s.get('error', ''))}" for s in summary.get("failed_shards", [])]
    return lines + [""]


def render_run_report(summary: dict[str, Any]) -> str:
    """The report of one run: the seed layout, plus the details needed to reproduce it."""
    model, dataset = summary["model"]["name"], summary["dataset"]["name"]
    metrics = summary.get("metrics", [])
    rows = [(_task_label(summary, m), dataset, MetricInfo.of_run(m).measure, _fmt(m["value"]), "[1]",
             _join(_run_note(summary, m))) for m in metrics]
    if not rows:  # every sample failed before scoring: say so where the figure would be
        reason = summary.get("error") or "no scored samples"
        rows = [(_task_label(summary, {}), dataset, MISSING, MISSING, "[1]", _join([reason, *_run_note(summary, None)]))]
    fields = [f"**Model**: {model} (backend `{summary['model'].get('backend')}`)",
              f"**Dataset**: {dataset} (task `{summary['dataset']['task']}`)",
              f"**Evaluation Date**: {_run_date(summary) or MISSING}"]
    view = (summary.get("files") or {}).get("view")
    if view:
        fields.append(f"**Samples**: [{view}]({view}) (every sample: audio, edits, score, cause)")
    lines = _header(f"{model} on {dataset}", fields, _legend(MetricInfo.of_run(m) for m in metrics))
    lines += _section(summary["dataset"].get("family") or "Results", rows)
    lines += _commands([summary["eval_cli"]])
    lines += _run_details(summary)
    return "\n".join(lines)


def _matches(summary: dict[str, Any], row: SuiteRow) -> bool:
    """Same dataset and model; a row without a prompt accepts the task's default prompt."""
    prompt = (summary.get("prompt") or {}).get("name")
    return (summary["dataset"]["name"] == row.dataset and summary["model"]["name"] == row.model
            and (row.prompt is None or prompt == row.prompt))


def _pick_metric(summary: dict[str, Any], measure: str) -> dict[str, Any] | None:
    """The metric named by the row; a single-metric run answers whatever the seed calls it (MMAU ``acc``)."""
    metrics = summary.get("metrics", [])
    named = [m for m in metrics if metric_key(m["name"]) == metric_key(measure)]
    if named:
        return named[0]
    headlines = [m for m in metrics if m.get("role", "headline") == "headline"]
    return headlines[0] if len(headlines) == 1 else None


def _performance(value: float | None, official: float | None) -> str:
    return _fmt(value) + (f"({official:g})" if official is not None else "")


def _row_info(row: SuiteRow, metric: dict[str, Any] | None, known: dict[str, MetricInfo]) -> MetricInfo:
    """Described by the row's run, else by any run of that measure, else by name; named as the suite names it."""
    if metric:
        return MetricInfo.of_run(metric, row.measure)
    return replace(known.get(metric_key(row.measure)) or MetricInfo.known(row.measure), name=row.measure)


@dataclass(frozen=True)
class _SuiteLine:
    """One table row of a suite report and what the header needs from it."""

    cells: tuple[str, ...]
    info: MetricInfo
    date: str | None


def _suite_line(number: int, section: SuiteSection, row: SuiteRow, summaries: list[dict[str, Any]],
                known: dict[str, MetricInfo]) -> _SuiteLine:
    summary = _latest(s for s in summaries if _matches(s, row))
    metric = _pick_metric(summary, row.measure) if summary else None
    info = _row_info(row, metric, known)
    value = metric["value"] if metric else None
    if summary is None:
        status = ["not run"]
    else:
        reason = [summary.get("error") or f"no {row.measure} result"] if value is None else []
        status = reason + _run_note(summary, metric)
    cells = (section.task, row.label or row.dataset, info.measure, _performance(value, row.official),
             f"[{number}]", _join([row.note, *status]))
    return _SuiteLine(cells, info, _run_date(summary) if summary else None)


def _date_range(dates: Iterable[str | None]) -> str:
    present = sorted({d for d in dates if d})
    if not present:
        return "not run yet"
    return present[0] if len(present) == 1 else f"{present[0]}-{present[-1]}"


def render_suite_report(summaries: list[dict[str, Any]], suite: Suite | dict[str, Any]) -> str:
    """A suite's report: one row per suite row, in the suite's order, whether it ran or not."""
    suite = suite if isinstance(suite, Suite) else Suite.model_validate(suite)
    known = {metric_key(m["name"]): MetricInfo.of_run(m) for s in summaries for m in s.get("metrics", [])}
    table_lines = [_suite_line(n, section, row, summaries, known) for n, (section, row) in enumerate(suite.rows(), 1)]
    models = ", ".join(dict.fromkeys(row.model for _, row in suite.rows()))
    fields = [f"**Model**: {models}", f"**Evaluation Date**: {_date_range(x.date for x in table_lines)}",
              *suite.model_card]
    lines = _header(suite.title, fields, _legend(x.info for x in table_lines))
    in_order = iter(table_lines)
    for section in suite.sections:
        rows = [next(in_order).cells for _ in section.rows]
        lines += _section(section.family, rows, official=any(r.official is not None for r in section.rows))
    lines += _commands([suite.eval_cli(row) for _, row in suite.rows()])
    return "\n".join(lines)
