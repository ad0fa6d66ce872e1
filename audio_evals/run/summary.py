"""The run record: ``RunSummary``, written as ``summary.json`` and read by every report.

One typed model instead of a dict read with ``.get`` in ten places: what a metric's label,
direction arrow, CI text and formatted value look like is decided here, once. Every field
has a default except the dataset and model names, so summaries written by older versions
(without the newer keys) still load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from audio_evals import storage
from audio_evals.redaction import redact_strings
from audio_evals.run.spec import check_run_id

MISSING = "—"
SAMPLES_FILE = "samples.jsonl"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.md"
#: The sample viewer (audio_evals.report.view), written by the report stage beside report.md.
VIEW_FILE = "view.html"

#: Emoji arrows, as the seed reports write them after a measure.
ARROW = {True: "⬆️", False: "⬇️", None: ""}
DIRECTION = {True: "higher is better", False: "lower is better", None: ""}


def format_value(value: float | None) -> str:
    """A figure as every table prints it: two decimals, ``—`` when there is none."""
    return MISSING if value is None else f"{value:.2f}"


class _Record(BaseModel):
    """Unknown keys are ignored (a newer writer may add some); missing ones take their defaults."""

    model_config = ConfigDict(extra="ignore")


class Measure(_Record):
    """What a measure is, independent of any figure: its name, wording and direction."""

    name: str
    description: str = ""
    higher_is_better: bool | None = None
    normalization: str = ""
    #: Whose protocol the figure follows ("reference protocol: UltraEval-Audio compute_wer, 13a").
    protocol: str = ""

    @property
    def arrow(self) -> str:
        return ARROW[self.higher_is_better]

    @property
    def direction(self) -> str:
        return DIRECTION[self.higher_is_better]

    @property
    def measure(self) -> str:
        """``wer⬇️``: the measure cell of the seed tables."""
        return self.name + self.arrow


class Level(_Record):
    """One level of a macro-averaged metric (e.g. an HSK level)."""

    level: str
    value: float | None = None
    n: int = 0


class MetricResult(Measure):
    """One metric's figure with its 95% bootstrap CI and everything that did not feed it."""

    role: Literal["headline", "secondary"] = "headline"
    #: The sample language the metric scores (``en`` for WER, ``zh`` for CER), when split by language.
    group: str | None = None
    value: float | None = None
    ci95: tuple[float, float] | None = None
    n: int = 0
    failed: int = 0
    unparsed: int = 0
    params: dict[str, Any] = Field(default_factory=dict)
    #: Per-level figures when the value is their mean (written only then).
    levels: list[Level] | None = Field(default=None, exclude_if=lambda v: v is None)
    #: Judge calls asked again after an unreadable verdict (written only for judged metrics).
    judge_reasked: int | None = Field(default=None, exclude_if=lambda v: v is None)
    #: With ``--drop-above-wer``: samples the filter left out of ``value``, and the figure with them
    #: kept (written only for a filtered error rate), so the reference-style number has its raw one beside it.
    dropped: int | None = Field(default=None, exclude_if=lambda v: v is None)
    unfiltered: float | None = Field(default=None, exclude_if=lambda v: v is None)
    #: Of ``failed``: samples the per-sample time limit left out (written only when there are some).
    timed_out: int | None = Field(default=None, exclude_if=lambda v: v is None)

    @property
    def label(self) -> str:
        """``wer (en)``: the metric's name with its language group."""
        return self.name + (f" ({self.group})" if self.group else "")

    @property
    def measure_label(self) -> str:
        """``wer⬇️ (en)``: the measure with its direction and language group."""
        return self.measure + (f" ({self.group})" if self.group else "")

    @property
    def value_text(self) -> str:
        return format_value(self.value)

    @property
    def ci_text(self) -> str:
        """``[2.10, 5.90]``, or ``—`` without a CI."""
        return f"[{self.ci95[0]:.2f}, {self.ci95[1]:.2f}]" if self.ci95 else MISSING

    @property
    def half_width(self) -> float:
        """Half the CI's width: the noise a change must exceed (0 without a CI)."""
        return (self.ci95[1] - self.ci95[0]) / 2 if self.ci95 else 0.0


class DatasetInfo(_Record):
    name: str = Field(min_length=1)
    task: str = ""
    task_label: str = ""
    family: str = ""
    source: dict[str, Any] = Field(default_factory=dict)
    #: The resolved revision of the data (hub commit, manifest digest).
    revision: str | None = None
    fingerprint: str | None = None


class ModelInfo(_Record):
    name: str = Field(min_length=1)
    backend: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    #: The resolved revision of the weights (hub commit, weights digest).
    revision: str | None = None
    fingerprint: dict[str, Any] = Field(default_factory=dict)
    generation: dict[str, Any] = Field(default_factory=dict)
    #: What every model call carried: generation after the backend's defaults and mappings.
    sent: dict[str, Any] = Field(default_factory=dict)
    #: Speech-out models: who transcribed the spoken answers, per sample language.
    transcribers: dict[str, Any] = Field(default_factory=dict)


class PromptInfo(_Record):
    name: str | None = None
    messages: list[Any] = Field(default_factory=list)


class Counts(_Record):
    samples: int = 0
    scored: int = 0
    failed: int = 0
    skipped: int = 0
    unparsed: int = 0
    dropped: int = 0
    fail_rate: float = 0.0


class FailedShard(_Record):
    index: int
    error: str = ""


class ShardStats(_Record):
    """Shards of the run; times and audio are summed over the shards computed now (not cached)."""

    total: int = 0
    computed: int = 0
    cached: int = 0
    failed: int = 0
    inference_s: float = 0.0
    audio_seconds: float = 0.0
    #: Seconds spent waiting for the model to load, summed over shards (a shard finding it loaded adds ~0).
    model_load_s: float = 0.0
    #: Shards whose replies came from ``--inf_file`` (no model calls).
    from_inf_file: int = 0
    #: Peak memory (MB) of the model's own process (``own_process`` backends) over the shards computed
    #: now; None when the model ran in the flow's process (``peak_rss_mb`` covers it) or none was computed.
    engine_peak_rss_mb: float | None = None


class CodeVersion(_Record):
    version: str = "unknown"
    git_commit: str | None = None
    git_dirty: bool | None = None
    python: str | None = None
    platform: str | None = None
    packages: dict[str, str] = Field(default_factory=dict)


class RunFiles(_Record):
    """The run folder's files, relative to it."""

    samples: str = SAMPLES_FILE
    summary: str = SUMMARY_FILE
    report: str = REPORT_FILE
    view: str | None = VIEW_FILE

    @field_validator("samples", "summary", "report", "view")
    @classmethod
    def _file_name(cls, value: str | None) -> str | None:
        """Read back from a summary.json: a file of the run folder, never a path out of it."""
        if value is not None and (not value or "/" in value or "\\" in value or value in (".", "..")):
            raise ValueError(f"must be a file name inside the run folder, not {value!r}")
        return value


class Regression(BaseModel):
    """One metric that got worse by more than the noise of both runs."""

    model_config = ConfigDict(frozen=True)

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


@dataclass
class Scored:
    """Metric summaries and counts; the per-sample rows went to the sink, not into memory."""

    metrics: list[MetricResult]
    counts: Counts


Status = Literal["completed", "completed_with_failures", "failed", "not_run"]


class RunSummary(_Record):
    """The record of one run, as ``summary.json`` holds it (``model_dump(mode="json")``)."""

    #: None only for a row that never ran (``not_run``). A folder name, checked when read.
    run_id: str | None = None
    #: The run this one retried, if any.
    parent_run_id: str | None = None
    created_at: str | None = None
    status: Status = "completed"
    strict: bool = False
    dataset: DatasetInfo
    model: ModelInfo
    prompt: PromptInfo = Field(default_factory=PromptInfo)
    metrics: list[MetricResult] = Field(default_factory=list)
    counts: Counts = Field(default_factory=Counts)
    failed_shards: list[FailedShard] = Field(default_factory=list)
    shards: ShardStats = Field(default_factory=ShardStats)
    #: Wall time per stage (download, preprocess, infer, score, total).
    timings_s: dict[str, float] = Field(default_factory=dict)
    #: Peak resident memory of the flow process once each stage is done (MB); a model in a process of
    #: its own is counted apart (``shards.engine_peak_rss_mb``).
    peak_rss_mb: dict[str, float] = Field(default_factory=dict)
    audio_seconds: float = 0.0
    #: Audio seconds of the shards computed now over the infer stage's wall time less model
    #: loading, as the Open ASR Leaderboard measures it (None when every shard was cached).
    rtfx: float | None = None
    #: Seconds of the infer stage's wall time spent waiting for the model to load: the longest wait of
    #: one shard (shards loading at once overlap; a shard finding the model loaded takes ~0; a load
    #: started beside preprocessing counts only what was left of it).
    model_load_s: float | None = None
    #: The options the run was started with (what ``audio-evals retry`` re-runs).
    options: dict[str, Any] = Field(default_factory=dict)
    #: What the run evaluated, as a retry compares it.
    identity: dict[str, Any] = Field(default_factory=dict)
    code: CodeVersion = Field(default_factory=CodeVersion)
    command: str = ""
    eval_cli: str = ""
    files: RunFiles = Field(default_factory=RunFiles)

    # Known once the record is written and checked; not part of summary.json.
    #: Why the row has no figure (a suite row that did not run, or whose every shard failed).
    error: str | None = Field(default=None, exclude=True)
    #: Where the run's files were written.
    paths: dict[str, str] = Field(default_factory=dict, exclude=True)
    #: What got worse against the previous model revision.
    regressions: list[Regression] = Field(default_factory=list, exclude=True)

    @field_validator("run_id")
    @classmethod
    def _run_id(cls, value: str | None) -> str | None:
        return value if value is None else check_run_id(value)

    @classmethod
    def not_run(cls, dataset: str, model: str, prompt: str | None, error: BaseException | str) -> "RunSummary":
        """A suite row whose evaluation could not run here: its report row shows ``error``."""
        why = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        return cls(status="not_run", dataset=DatasetInfo(name=dataset), model=ModelInfo(name=model),
                   prompt=PromptInfo(name=prompt), error=f"not run: {why}")

    def redacted(self) -> "RunSummary":
        """The record as written: URL credentials and known secrets masked in every text."""
        return RunSummary.model_validate(redact_strings(self.model_dump(mode="json")))

    @property
    def headlines(self) -> list[MetricResult]:
        return [m for m in self.metrics if m.role == "headline"]

    @property
    def task_label(self) -> str:
        return self.dataset.task_label or self.dataset.task

    def task_label_of(self, metric: MetricResult | None) -> str:
        """``asr`` scored per language reads ``asr(en)`` / ``asr(zh)``, as in the seeds."""
        group = metric.group if metric else None
        return f"{self.task_label.split('(')[0]}({group})" if group else self.task_label

    @property
    def ran(self) -> bool:
        """Whether the evaluation ran: a not-run row, or one whose every shard failed, did not."""
        return self.error is None

    def mark_unrunnable(self) -> "RunSummary":
        """This summary marked not run when every shard failed and nothing was scored (a model
        that cannot load here); otherwise unchanged."""
        if self.failed_shards and not self.counts.scored:
            return self.model_copy(update={"error": f"not run: {self.failed_shards[0].error}"})
        return self

    @property
    def rtfx_text(self) -> str:
        """``6.84 (excl. load 1.8 s)``: RTFx, saying what loading the model took apart from it."""
        load = self.model_load_s or 0.0
        return f"{self.rtfx or MISSING}" + (f" (excl. load {load:.1f} s)" if load >= 0.05 else "")

    @property
    def infer_seconds(self) -> float | None:
        """The denominator of RTFx: the infer stage's wall time less model loading."""
        wall = self.timings_s.get("infer") or 0.0
        net = wall - (self.model_load_s or 0.0)
        return net if self.shards.audio_seconds and net > 0 else None


def speed(audio_seconds: float, infer_seconds: float | None) -> float | None:
    """RTFx: seconds of audio per second of inference (None when nothing was computed)."""
    return round(audio_seconds / infer_seconds, 2) if audio_seconds and infer_seconds else None


def read_summary(path: str) -> RunSummary:
    """A ``summary.json`` as written by this or an older version."""
    return RunSummary.model_validate(storage.read_json(path))


def summaries_under(folder: str, depth: int = 1) -> list[str]:
    """Paths of ``<folder>/*/summary.json`` (``depth`` folder levels down), locally or in an
    object store; the listing is not cached, so a run written a moment ago is found."""
    return storage.glob(folder, f"{'*/' * depth}{SUMMARY_FILE}")


def json_schema() -> dict[str, Any]:
    """The JSON schema of ``summary.json``, as published in ``schemas/summary.schema.json``."""
    schema = RunSummary.model_json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "audio-evals summary.json",
            **{k: v for k, v in schema.items() if k != "title"}}


if __name__ == "__main__":  # python -m audio_evals.run.summary > schemas/summary.schema.json
    print(json.dumps(json_schema(), indent=2, ensure_ascii=False))
