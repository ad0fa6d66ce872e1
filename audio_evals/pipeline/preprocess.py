"""The preprocess stage: decode every clip once, record bad ones, split the rest into shards.

Decoded audio is cached by content hash and sample rate, so a clip shared by datasets or runs
is decoded once. Samples are processed one at a time and written shard by shard: memory does
not grow with the dataset.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

from audio_evals import storage
from audio_evals.cache import blob_record, read_index, stale, verified, write_blob, write_jsonl
from audio_evals.data.audio import AudioError, decode, encode_wav, read_clip
from audio_evals.records import DatasetRef, PreparedRef, PreparedSample, Sample, SampleFailure, ShardRef


def shard_hash(samples: list[PreparedSample]) -> str:
    """What the model sees: ids, languages, prompt fields and audio content (not references)."""
    return storage.stable_hash(
        [[p.sample.id, p.sample.lang, p.sample.fields, p.audio_sha256, p.sample_rate] for p in samples]
    )



def decoded_path(audio_dir: str, rate: int, digest: str) -> str:
    return os.path.join(audio_dir, str(rate), digest[:2], f"{digest}.wav")


def decode_to_cache(sample: Sample, audio_dir: str, rate: int, max_duration_s: float | None = None,
                    reuse: bool = True) -> PreparedSample:
    """Decode a sample's audio into the local cache (once per content hash and rate).

    A decoded file is reused (``reuse``) only while it matches its record; otherwise, and when
    the source no longer has the identity recorded at download, it is decoded again or refused.
    """
    data = read_clip(sample.audio)
    digest = hashlib.sha256(data).hexdigest()
    recorded = sample.audio_identity or ""
    if recorded.startswith("sha256:") and recorded != f"sha256:{digest}":
        raise AudioError(f"audio file {sample.audio} changed while the run was reading it (run again)")
    path = decoded_path(audio_dir, rate, digest)
    record = blob_record(path) if reuse else None
    if record is None:
        samples = decode(data, rate, max_duration_s)
        record = write_blob(path, encode_wav(samples, rate), frames=len(samples))
    duration = record["frames"] / rate
    if max_duration_s is not None and duration > max_duration_s:
        raise AudioError(f"duration {duration:.1f} s exceeds max_duration_s={max_duration_s:g}")
    return PreparedSample(sample=sample, prepared=path, sample_rate=rate, duration_s=duration, audio_sha256=digest)


def miscount(ref: PreparedRef, dataset: DatasetRef) -> str | None:
    """Why the counts of a prepared index do not add up to the dataset's rows, or None when they do.

    Every row of the dataset (good or bad) is either in a shard or a recorded failure, so an index
    that lost a shard, or whose counts were edited, is caught even where each file it lists is intact.
    """
    in_shards = sum(s.n for s in ref.shards)
    if [s.index for s in ref.shards] != list(range(len(ref.shards))) or any(s.record.rows != s.n for s in ref.shards):
        return "lists shards out of order or with row counts that are not their files'"
    if in_shards != ref.n_prepared or ref.failures.rows != ref.n_failed + ref.n_skipped:
        return (f"counts {ref.n_prepared} prepared, {ref.n_failed + ref.n_skipped} failed or skipped, "
                f"but its files hold {in_shards} and {ref.failures.rows}")
    rows = dataset.n_samples + dataset.n_failed
    if in_shards + ref.failures.rows != rows:
        return f"accounts for {in_shards + ref.failures.rows} samples, not the dataset's {rows}"
    return None


def _cached(index_path: str, dataset: DatasetRef) -> PreparedRef | None:
    """The prepared dataset at ``index_path`` if the index and every file it lists match their
    records and its counts add up to ``dataset``'s rows."""
    index = read_index(index_path)
    if index is None:
        return None
    try:
        ref = PreparedRef.from_dict(index)
    except (KeyError, TypeError, ValueError):
        stale(index_path, "is not a prepared-dataset index of this version")
        return None
    why = miscount(ref, dataset)
    if why:
        stale(index_path, why)
        return None
    files = [(s.path, s.record) for s in ref.shards] + [(ref.failures_path, ref.failures)]
    return ref if all(verified(path, record) for path, record in files) else None


def _key(dataset: DatasetRef, sample_rate: int, shard_size: int, max_duration_s: float | None, skip_key: str) -> str:
    """The prepared dataset's cache key: its rows, and how they are decoded, capped, skipped and sharded."""
    return storage.stable_hash([dataset.fingerprint, sample_rate, shard_size, max_duration_s, skip_key])


def will_decode(dataset: DatasetRef, cache_dir: str, sample_rate: int, shard_size: int,
                max_duration_s: float | None = None, skip_key: str = "", fresh: bool = False) -> bool:
    """Whether ``preprocess`` with these arguments decodes anew (``fresh``, or no index from an earlier
    run): a check of one file's existence, made before it runs so that other work can start beside it."""
    key = _key(dataset, sample_rate, shard_size, max_duration_s, skip_key)
    return fresh or not storage.exists(storage.join(_folder(cache_dir, key), "index.json"))


def _folder(cache_dir: str, key: str) -> str:
    """Where the prepared dataset of ``key`` keeps its index and shards."""
    return storage.join(cache_dir, "prepared", key[:24])


def preprocess(
    dataset: DatasetRef,
    cache_dir: str,
    audio_dir: str,
    sample_rate: int,
    shard_size: int,
    max_duration_s: float | None = None,
    skip_reason: Callable[[Sample], str | None] = lambda s: None,
    skip_key: str = "",
    fresh: bool = False,
    reference_problem: Callable[[Sample], str | None] = lambda s: None,
) -> PreparedRef:
    """Decode and shard ``dataset``; ``skip_reason`` marks samples not to run (e.g. language),
    ``reference_problem`` fails samples whose reference cannot be scored.

    Shard files go to ``cache_dir`` (local or a shared store); decoded audio to the local
    ``audio_dir``. ``skip_key`` identifies the skip rule in the cache key. Cached shards and
    decoded audio are reused only while they match their records; ``fresh`` redoes everything.
    """
    if shard_size < 1:
        raise ValueError("shard_size must be at least 1")
    if max_duration_s is not None and not 0 < max_duration_s < float("inf"):
        raise ValueError(f"max_duration_s must be a positive number of seconds, not {max_duration_s}")
    key = _key(dataset, sample_rate, shard_size, max_duration_s, skip_key)
    folder = _folder(cache_dir, key)
    index_path = storage.join(folder, "index.json")
    cached = None if fresh else _cached(index_path, dataset)
    if cached is not None:
        return cached
    failures = [SampleFailure.from_dict(r) for r in storage.read_jsonl(dataset.failures_path)]
    shards: list[ShardRef] = []
    pending: list[PreparedSample] = []
    n_prepared = 0
    audio_seconds = 0.0

    def flush() -> None:
        digest = shard_hash(pending)
        path = storage.join(folder, f"shard-{len(shards):05d}.jsonl")
        record = write_jsonl(path, (p.to_dict() for p in pending))
        seconds = sum(p.duration_s for p in pending)
        shards.append(ShardRef(index=len(shards), path=path, content_hash=digest, n=len(pending),
                               audio_seconds=seconds, record=record))
        pending.clear()

    for row in storage.read_jsonl(dataset.samples_path):
        sample = Sample.from_dict(row)
        reason = skip_reason(sample)
        if reason:
            failures.append(SampleFailure(id=sample.id, stage="preprocess", error=reason, kind="skipped", audio=sample.audio,
                                          reference=sample.reference, lang=sample.lang))  # the viewer filters by both
            continue
        problem = reference_problem(sample)
        if problem:
            failures.append(SampleFailure(id=sample.id, stage="preprocess", error=problem, audio=sample.audio,
                                          reference=sample.reference, lang=sample.lang))
            continue
        try:
            prepared = decode_to_cache(sample, audio_dir, sample_rate, max_duration_s, reuse=not fresh)
        except AudioError as e:
            failures.append(SampleFailure(id=sample.id, stage="preprocess", error=str(e), audio=sample.audio,
                                          reference=sample.reference, lang=sample.lang))
            continue
        pending.append(prepared)
        n_prepared += 1
        audio_seconds += prepared.duration_s
        if len(pending) >= shard_size:
            flush()
    if pending:
        flush()
    failures_path = storage.join(folder, "failures.jsonl")
    ref = PreparedRef(
        key=key,
        shards=shards,
        failures_path=failures_path,
        failures=write_jsonl(failures_path, (f.to_dict() for f in failures)),
        n_prepared=n_prepared,
        n_failed=sum(f.kind == "failed" for f in failures),
        n_skipped=sum(f.kind == "skipped" for f in failures),
        audio_seconds=audio_seconds,
    )
    storage.write_json(index_path, ref.to_dict())
    return ref
