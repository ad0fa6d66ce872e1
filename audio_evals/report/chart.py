"""A results chart: one panel per metric, bars per dataset grouped by model, 95% CI whiskers.

The y axis follows the figures, not the widest interval: a whisker reaching past
``HEADROOM`` × the typical top (see ``_axis_top``) is cut at the axis top and marked with a
triangle and its true bound written under the value, so one n=3 interval of [0, 300] does not flatten every other bar. Value labels sit
above the whisker (or the cut) with a gap, on a white box, never on a cap.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from audio_evals.run.summary import MetricResult, RunSummary

# Matplotlib's default font has the plain arrows, not the emoji the markdown legend uses.
_DIRECTION = {True: "↑ higher is better", False: "↓ lower is better", None: ""}
#: The axis reaches at most this many times the typical top; whiskers beyond are cut and marked.
HEADROOM = 2.0


@dataclass(frozen=True)
class _Bar:
    dataset: str
    model: str
    metric: MetricResult

    @property
    def value(self) -> float:
        return self.metric.value or 0.0


def _bars(summaries: list[RunSummary]) -> list[_Bar]:
    """One bar per scored metric of the latest run of each (dataset, model): a re-run supersedes."""
    newest: dict[tuple[str, str], RunSummary] = {}
    for summary in sorted(summaries, key=lambda s: s.created_at or ""):
        newest[(summary.dataset.name, summary.model.name)] = summary
    return [_Bar(dataset + (f" ({m.group})" if m.group else ""), model, m)
            for (dataset, model), summary in newest.items() for m in summary.metrics if m.value is not None]


def _axis_top(bars: list[_Bar]) -> float:
    """The y limit: the highest whisker, but at most ``HEADROOM`` × the typical top (the tallest
    bar, or the median whisker top when higher); longer whiskers are cut there. A lone bar's
    whisker is its own median, so it is never cut."""
    tops = [max(b.value, b.metric.ci95[1] if b.metric.ci95 else b.value) for b in bars]
    typical = max(max(b.value for b in bars), statistics.median_low(tops))
    return (min(max(tops), HEADROOM * typical) if typical > 0 else max(tops)) or 1.0


def _panel(ax: Any, name: str, bars: list[_Bar], models: list[str]) -> None:
    datasets = list(dict.fromkeys(b.dataset for b in bars))
    present = [m for m in models if any(b.model == m for b in bars)]
    width = min(0.4, 0.8 / len(present))
    top = _axis_top(bars)
    for slot, model in enumerate(present):
        mine = [b for b in bars if b.model == model]
        xs = [datasets.index(b.dataset) + (slot - (len(present) - 1) / 2) * width for b in mine]
        ax.bar(xs, [b.value for b in mine], width, label=model, color=f"C{models.index(model)}")
        for x, b in zip(xs, mine):
            _whisker(ax, x, b, top)
    direction = _DIRECTION[bars[0].metric.higher_is_better]
    ax.set_title(f"{name.upper()}  ({direction})" if direction else name.upper())
    ax.set_xticks(range(len(datasets)), datasets, rotation=20, ha="right", fontsize=8)
    ax.set_xlim(-0.5, len(datasets) - 0.5)
    ax.set_ylim(min(0.0, min(b.value for b in bars)), top * 1.25)  # room for the labels above the top
    ax.set_ylabel(name)


def _whisker(ax: Any, x: float, bar: _Bar, top: float) -> None:
    """The 95% CI as a whisker, cut at ``top`` with a marker; the value written above it."""
    label, above = f"{bar.value:.2f}", bar.value
    if bar.metric.ci95:
        lo, hi = bar.metric.ci95
        shown = min(hi, top)
        ax.errorbar([x], [bar.value], yerr=[[max(0.0, bar.value - lo)], [max(0.0, shown - bar.value)]],
                    fmt="none", ecolor="black", elinewidth=1, capsize=0 if hi > top else 3)
        if hi > top:
            ax.plot([x], [top], marker="^", color="black", markersize=5)
            label += f"\nCI to {hi:.4g}"
        above = max(above, shown)
    ax.annotate(label, (x, above), xytext=(0, 7), textcoords="offset points", ha="center", va="bottom",
                fontsize=7, linespacing=1.1, bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                                                   "alpha": 0.85})


def render_suite_chart(summaries: list[RunSummary], path: str) -> str:
    """Draw every scored metric of the runs into one PNG at ``path`` and return ``path``."""
    # Imported here so that writing a run report (every run) does not pay for matplotlib.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    bars = _bars(summaries)
    metrics = list(dict.fromkeys(b.metric.name for b in bars))
    models = list(dict.fromkeys(b.model for b in bars))
    widest = max((len({(b.dataset, b.model) for b in bars if b.metric.name == m}) for m in metrics), default=1)
    figure = Figure(figsize=(min(24.0, max(6.0, 1.5 + 0.6 * widest)), 3.8 * max(1, len(metrics))))
    FigureCanvasAgg(figure)
    axes = figure.subplots(max(1, len(metrics)), 1, squeeze=False)[:, 0]
    for ax, metric in zip(axes, metrics):
        _panel(ax, metric, [b for b in bars if b.metric.name == metric], models)
    if not metrics:
        axes[0].text(0.5, 0.5, "no scored runs", ha="center", va="center")
        axes[0].set_axis_off()
    # One legend for every panel, above them: it never covers a bar or a label.
    handles = [Patch(color=f"C{i}", label=model) for i, model in enumerate(models)]
    legend_h = 0.35 / figure.get_figheight() if models else 0.0
    if models:
        figure.legend(handles=handles, loc="upper center", ncol=min(len(models), 4), fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0, 1, 1 - legend_h * ((len(models) + 3) // 4)))
    figure.savefig(path, dpi=110)
    return path
