"""Typed records that travel between the stages.

Stages exchange these as JSON lines on disk and pass *references* (paths, hashes) between
Prefect tasks, never audio arrays or model objects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True)
class Sample:
    """One evaluation item as the download stage writes it.

    ``id`` is stable across runs (taken from the source, never a positional index). ``audio`` is
    an absolute local path or an fsspec URL. ``reference`` is the target text, or a list of
    acceptable answers for QA. ``fields`` keeps every other source column (question, choices,
    provenance) so prompts and metrics can use them. ``audio_identity`` is the content identity of
    the audio file when the dataset was downloaded (``audio_evals.cache.ContentIndex``): the
    cached dataset is used only while every file still has it.
    """

    id: str
    audio: str
    reference: str | list[str] | None = None
    lang: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    audio_identity: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "Sample":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})


@dataclass(frozen=True)
class PreparedSample:
    """A sample whose audio decoded cleanly: ``prepared`` is a mono WAV at the model's rate."""

    sample: Sample
    prepared: str
    sample_rate: int
    duration_s: float
    audio_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "sample": self.sample.to_dict(),
            "prepared": self.prepared,
            "sample_rate": self.sample_rate,
            "duration_s": self.duration_s,
            "audio_sha256": self.audio_sha256,
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "PreparedSample":
        return cls(
            sample=Sample.from_dict(row["sample"]),
            prepared=row["prepared"],
            sample_rate=int(row["sample_rate"]),
            duration_s=float(row["duration_s"]),
            audio_sha256=row["audio_sha256"],
        )


@dataclass(frozen=True)
class SampleFailure:
    """A sample that produced no usable output, with the stage and the cause.

    Failures are kept and reported (count and rate); they never silently vanish from a score.
    ``kind`` is ``failed`` (bad input or model error) or ``skipped`` (deliberately not run, e.g.
    a language the model does not support).
    """

    id: str
    stage: str
    error: str
    kind: str = "failed"
    audio: str | None = None
    #: The sample's targets when it was read before failing, so ``strict`` can score it as an empty answer.
    reference: str | list[str] | None = None
    lang: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "SampleFailure":
        return cls(**row)


#: Starts the error of a sample whose model call had no answer within the per-sample time limit
#: (the score stage counts these beside the figure).
TIME_LIMIT_ERROR = "past the per-sample time limit"


@dataclass
class ModelOutput:
    """One sample's result: text (and generated audio for speech-out models) or an error.

    ``reasoning`` keeps text a reasoning model produced inside think tags; it is stripped from
    ``text`` before scoring but stays in the results. Speech-out models set ``audio_path``.
    """

    sample_id: str
    text: str | None = None
    audio_path: str | None = None
    reasoning: str | None = None
    error: str | None = None
    latency_s: float | None = None
    #: For speech-out models: the ASR transcript of ``audio_path``, which is what gets scored.
    transcript: str | None = None
    #: The rendered prompt this reply answers (``ModelRequest.sent``), for the sample's page.
    prompt: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "ModelOutput":
        return cls(**row)


@dataclass(frozen=True)
class FileRecord:
    """What a cache file held when it was written: checked before the file is used again."""

    size: int
    sha256: str
    rows: int | None = None  # JSON lines in the file, for JSONL files

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "FileRecord":
        return cls(size=int(row["size"]), sha256=str(row["sha256"]), rows=row.get("rows"))


@dataclass(frozen=True)
class ShardRef:
    """A reference to a shard of prepared samples: a JSONL file, its record and its content hash.

    ``content_hash`` covers the sample ids, languages, prompt fields and audio hashes, so it
    is a sound cache key for inference: same hash, same model inputs. ``record`` is the file's
    size and SHA-256, checked whenever the file is read back from the cache.
    """

    index: int
    path: str
    content_hash: str
    n: int
    audio_seconds: float
    record: FileRecord

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "ShardRef":
        return cls(**{**row, "record": FileRecord.from_dict(row["record"])})

@dataclass(frozen=True)
class DatasetRef:
    """Where a downloaded dataset lives, with the identity recorded in results.

    ``fingerprint`` covers the entry's spec, ``limit``, the source revision and the content of
    both files (so every audio file's identity); ``samples`` and ``failures`` are the files'
    records, checked before the cached dataset is used again.
    """

    name: str
    samples_path: str
    failures_path: str
    fingerprint: str
    revision: str | None
    n_samples: int
    n_failed: int
    samples: FileRecord
    failures: FileRecord

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> "DatasetRef":
        return cls(**{**row, "samples": FileRecord.from_dict(row["samples"]),
                      "failures": FileRecord.from_dict(row["failures"])})


@dataclass(frozen=True)
class PreparedRef:
    """The shards of a prepared dataset and the samples that did not make it into one."""

    key: str
    shards: list[ShardRef]
    failures_path: str
    failures: FileRecord
    n_prepared: int
    n_failed: int
    n_skipped: int
    audio_seconds: float

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> "PreparedRef":
        return cls(**{**row, "shards": [ShardRef.from_dict(s) for s in row["shards"]],
                      "failures": FileRecord.from_dict(row["failures"])})


@dataclass
class ShardResult:
    """What the infer stage returns for one shard (and caches): every sample's output, in shard
    order, and the time it took. ``model_load_s`` is left out of ``inference_s`` (RTFx)."""

    index: int
    content_hash: str
    outputs: list[ModelOutput]
    inference_s: float = 0.0
    model_load_s: float = 0.0
    audio_seconds: float = 0.0
    #: Peak memory (MB) of the model's own process (``Backend.own_process``) when the shard was done; None in-process.
    engine_peak_rss_mb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "outputs": [o.to_dict() for o in self.outputs]}

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "ShardResult":
        return cls(**{**row, "outputs": [ModelOutput.from_dict(o) for o in row["outputs"]]})


Status = Literal["ok", "failed", "skipped", "unparsed", "dropped"]


class Verdict(BaseModel):
    """A secondary metric's verdict on a sample, beside the headline's."""

    model_config = ConfigDict(extra="ignore")

    value: float | None = None
    parsed: bool = True
    explanation: str | None = None


class SampleRow(BaseModel):
    """One row of ``samples.jsonl``: a sample, what the model answered and how it was scored.

    Every sample of a run has one, whatever happened to it (``status``; ``stage`` and ``error``
    say where and why it failed, was skipped or dropped). Rows are written with the fields that
    were set (``exclude_unset``); unknown keys of newer writers are ignored and missing ones
    take their defaults, so every version's files read back.
    """

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    id: str
    audio: str | None = None
    lang: str | None = None
    #: The target text, or the acceptable answers.
    reference: str | list[str] | None = None
    #: The post-processed reply (or the transcript of a spoken one): what was scored.
    hypothesis: str | None = None
    status: Status = "ok"
    stage: str | None = None
    error: str | None = None
    duration_s: float | None = None
    shard: int | None = None
    #: The reply as the model gave it, before post-processing.
    model_text: str | None = None
    reasoning: str | None = None
    generated_audio: str | None = None
    latency_s: float | None = None
    #: The rendered prompt the model was sent (audio parts as ``<audio>``).
    prompt: str | None = None
    metric: str | None = None
    value: float | None = None
    #: The metric's sufficient statistics (edits and reference tokens, correct, rating).
    stats: dict[str, Any] = Field(default_factory=dict)
    normalized_hypothesis: Any = None
    normalized_reference: Any = None
    explanation: str | None = None
    secondary: dict[str, Verdict] | None = None

    def to_json(self) -> dict[str, Any]:
        """The row as ``samples.jsonl`` holds it: the fields that were set."""
        return self.model_dump(mode="json", exclude_unset=True)


def samples_schema() -> dict[str, Any]:
    """The JSON schema of one ``samples.jsonl`` line, as published in ``schemas/samples.schema.json``."""
    schema = SampleRow.model_json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "audio-evals samples.jsonl row",
            **{k: v for k, v in schema.items() if k != "title"}}


if __name__ == "__main__":  # python -m audio_evals.records > schemas/samples.schema.json
    import json

    print(json.dumps(samples_schema(), indent=2, ensure_ascii=False))
