"""The preprocess stage: decode every clip once, record bad ones, split the rest into shards.

Decoded audio is cached by content hash and sample rate, so a clip shared by datasets or runs
is decoded once. Samples are processed one at a time and written shard by shard: memory does
not grow with the dataset.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass

import soundfile as sf

from audio_evals import storage
from audio_evals.data.audio import AudioError, decode, encode_wav, read_clip
from audio_evals.data.materialise import DatasetRef
from audio_evals.schema import PreparedSample, Sample, SampleFailure, ShardRef


@dataclass(frozen=True)
class PreparedRef:
    """The shards of a prepared dataset and the samples that did not make it into one."""

    key: str
    shards: list[ShardRef]
    failures_path: str
    n_prepared: int
    n_failed: int
    n_skipped: int
    audio_seconds: float

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> "PreparedRef":
        return cls(**{**row, "shards": [ShardRef(**s) for s in row["shards"]]})


def shard_hash(samples: list[PreparedSample]) -> str:
    """What the model sees: ids, languages, prompt fields and audio content (not references)."""
    return storage.stable_hash(
        [[p.sample.id, p.sample.lang, p.sample.fields, p.audio_sha256, p.sample_rate] for p in samples]
    )


def _has_reference(sample: Sample) -> bool:
    ref = sample.reference
    if isinstance(ref, list):
        return any(str(r).strip() for r in ref)
    return ref is not None and bool(str(ref).strip())


def empty_reference(sample: Sample) -> str | None:
    """Why the sample has nothing to be scored against, else None."""
    return None if _has_reference(sample) else "empty reference (no transcript or answer to score against)"


def decode_to_cache(sample: Sample, audio_dir: str, rate: int, max_duration_s: float | None = None) -> PreparedSample:
    """Decode a sample's audio into the local cache (once per content hash and rate)."""
    data = read_clip(sample.audio)
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(audio_dir, str(rate), digest[:2], f"{digest}.wav")
    if not os.path.exists(path):
        samples = decode(data, rate, max_duration_s)
        storage.write_bytes(path, encode_wav(samples, rate))
        duration = len(samples) / rate
    else:
        duration = sf.info(path).frames / rate
        if max_duration_s is not None and duration > max_duration_s:
            raise AudioError(f"duration {duration:.1f} s exceeds max_duration_s={max_duration_s:g}")
    return PreparedSample(sample=sample, prepared=path, sample_rate=rate, duration_s=duration, audio_sha256=digest)


def prepare(
    dataset: DatasetRef,
    cache_dir: str,
    audio_dir: str,
    sample_rate: int,
    shard_size: int,
    max_duration_s: float | None = None,
    skip_reason: Callable[[Sample], str | None] = lambda s: None,
    skip_key: str = "",
    reference_problem: Callable[[Sample], str | None] = empty_reference,
) -> PreparedRef:
    """Decode and shard ``dataset``; ``skip_reason`` marks samples not to run (e.g. language),
    ``reference_problem`` fails samples whose reference cannot be scored.

    Shard files go to ``cache_dir`` (local or a shared store); decoded audio to the local
    ``audio_dir``. ``skip_key`` identifies the skip rule in the cache key.
    """
    if shard_size < 1:
        raise ValueError("shard_size must be at least 1")
    if max_duration_s is not None and not 0 < max_duration_s < float("inf"):
        raise ValueError(f"max_duration_s must be a positive number of seconds, not {max_duration_s}")
    key = storage.stable_hash([dataset.fingerprint, sample_rate, shard_size, max_duration_s, skip_key])
    folder = storage.join(cache_dir, "prepared", key[:24])
    index_path = storage.join(folder, "index.json")
    if storage.exists(index_path):
        ref = PreparedRef.from_dict(storage.read_json(index_path))
        if all(storage.exists(s.path) for s in ref.shards):
            return ref
    failures = [SampleFailure.from_dict(r) for r in storage.read_jsonl(dataset.failures_path)]
    shards: list[ShardRef] = []
    pending: list[PreparedSample] = []
    n_prepared = 0
    audio_seconds = 0.0

    def flush() -> None:
        digest = shard_hash(pending)
        path = storage.join(folder, f"shard-{len(shards):05d}.jsonl")
        storage.write_jsonl(path, (p.to_dict() for p in pending))
        seconds = sum(p.duration_s for p in pending)
        shards.append(ShardRef(index=len(shards), path=path, content_hash=digest, n=len(pending), audio_seconds=seconds))
        pending.clear()

    for row in storage.read_jsonl(dataset.samples_path):
        sample = Sample.from_dict(row)
        reason = skip_reason(sample)
        if reason:
            failures.append(SampleFailure(id=sample.id, stage="preprocess", error=reason, kind="skipped", audio=sample.audio))
            continue
        problem = reference_problem(sample)
        if problem:
            failures.append(SampleFailure(id=sample.id, stage="preprocess", error=problem, audio=sample.audio))
            continue
        try:
            prepared = decode_to_cache(sample, audio_dir, sample_rate, max_duration_s)
        except AudioError as e:
            failures.append(SampleFailure(id=sample.id, stage="preprocess", error=str(e), audio=sample.audio))
            continue
        pending.append(prepared)
        n_prepared += 1
        audio_seconds += prepared.duration_s
        if len(pending) >= shard_size:
            flush()
    if pending:
        flush()
    failures_path = storage.join(folder, "failures.jsonl")
    storage.write_jsonl(failures_path, (f.to_dict() for f in failures))
    ref = PreparedRef(
        key=key,
        shards=shards,
        failures_path=failures_path,
        n_prepared=n_prepared,
        n_failed=sum(f.kind == "failed" for f in failures),
        n_skipped=sum(f.kind == "skipped" for f in failures),
        audio_seconds=audio_seconds,
    )
    storage.write_json(index_path, ref.to_dict())
    return ref
