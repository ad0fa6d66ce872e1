"""A results chart: one panel per metric, bars per dataset grouped by model, 95% CI whiskers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Matplotlib's default font has the plain arrows, not the emoji the markdown legend uses.
_DIRECTION = {True: "↑ higher is better", False: "↓ lower is better", None: ""}


@dataclass(frozen=True)
class _Bar:
    metric: str
    dataset: str
    model: str
    value: float
    ci95: tuple[float, float] | None
    higher_is_better: bool | None


def _bars(summaries: list[dict[str, Any]]) -> list[_Bar]:
    """One bar per scored metric of the latest run of each (dataset, model): a re-run supersedes."""
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for summary in sorted(summaries, key=lambda s: s.get("created_at") or ""):
        newest[(summary["dataset"]["name"], summary["model"]["name"])] = summary
    return [
        _Bar(metric["name"], f"{dataset} ({metric['group']})" if metric.get("group") else dataset, model,
             metric["value"], tuple(metric["ci95"]) if metric.get("ci95") else None, metric.get("higher_is_better"))
        for (dataset, model), summary in newest.items()
        for metric in summary.get("metrics", [])
        if metric["value"] is not None
    ]


def _panel(ax: Any, metric: str, bars: list[_Bar], models: list[str]) -> None:
    datasets = list(dict.fromkeys(b.dataset for b in bars))
    present = [m for m in models if any(b.model == m for b in bars)]
    width = min(0.4, 0.8 / len(present))
    for slot, model in enumerate(present):
        mine = [b for b in bars if b.model == model]
        xs = [datasets.index(b.dataset) + (slot - (len(present) - 1) / 2) * width for b in mine]
        ax.bar(xs, [b.value for b in mine], width, label=model, color=f"C{models.index(model)}")
        for x, b in zip(xs, mine):
            _whisker(ax, x, b)
    direction = _DIRECTION[bars[0].higher_is_better]
    ax.set_title(f"{metric.upper()}  ({direction})" if direction else metric.upper())
    ax.set_xticks(range(len(datasets)), datasets, rotation=20, ha="right", fontsize=8)
    ax.set_xlim(-0.5, len(datasets) - 0.5)
    ax.set_ylabel(metric)
    ax.margins(y=0.15)
    ax.legend(fontsize=8, title="model", title_fontsize=8)


def _whisker(ax: Any, x: float, bar: _Bar) -> None:
    """The 95% CI as a whisker, and the value written above it so the two never overlap."""
    top = bar.value
    if bar.ci95:
        lo, hi = bar.ci95
        ax.errorbar([x], [bar.value], yerr=[[max(0.0, bar.value - lo)], [max(0.0, hi - bar.value)]],
                    fmt="none", ecolor="black", elinewidth=1, capsize=3)
        top = max(top, hi)
    ax.annotate(f"{bar.value:.2f}", (x, top), xytext=(0, 3), textcoords="offset points", ha="center", fontsize=7)


def render_suite_chart(summaries: list[dict[str, Any]], path: str) -> str:
    """Draw every scored metric of the runs into one PNG at ``path`` and return ``path``."""
    # Imported here so that writing a run report (every run) does not pay for matplotlib.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    bars = _bars(summaries)
    metrics = list(dict.fromkeys(b.metric for b in bars))
    models = list(dict.fromkeys(b.model for b in bars))
    widest = max((len({(b.dataset, b.model) for b in bars if b.metric == m}) for m in metrics), default=1)
    figure = Figure(figsize=(min(24.0, max(6.0, 1.5 + 0.6 * widest)), 3.8 * max(1, len(metrics))))
    FigureCanvasAgg(figure)
    axes = figure.subplots(max(1, len(metrics)), 1, squeeze=False)[:, 0]
    for ax, metric in zip(axes, metrics):
        _panel(ax, metric, [b for b in bars if b.metric == metric], models)
    if not metrics:
        axes[0].text(0.5, 0.5, "no scored runs", ha="center", va="center")
        axes[0].set_axis_off()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path
