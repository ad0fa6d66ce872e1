"""Typed records that travel between the stages.

Stages exchange these as JSON lines on disk and pass *references* (paths, hashes) between
Prefect tasks, never audio arrays or model objects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


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
