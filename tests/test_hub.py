"""Hugging Face datasets through a mirror (local folder and S3), and a clear failure without one.

The fixtures are hub-style repos (README ``configs:`` + parquet shards with embedded audio) built
from the real sample clips and named like the registry's datasets, so the loader runs exactly as
it would against a copy of the real repo.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from pathlib import Path

import datasets
import pytest
import soundfile as sf

from audio_evals.data.hub import MIRROR_ENV, DatasetUnavailable, hub_revision, iter_hub_samples
from audio_evals.schema import Sample, SampleFailure
from tests.hub_fixture import SAMPLE_DIR, build_hub_repo, manifest_rows

LIBRISPEECH = {"type": "hf", "repo": "TwinkStart/librispeech", "config": None, "split": "test_clean",
               "revision": None, "audio_column": "audio", "reference_column": "text", "id_column": None,
               "lang": "en", "keep_columns": None}
FLEURS = {**LIBRISPEECH, "repo": "google/fleurs", "config": "en_us", "split": "test",
          "reference_column": "raw_transcription", "id_column": "id"}
HSK = {**LIBRISPEECH, "repo": "TwinkStart/speech-HSK", "split": ["hsk1", "hsk2", "hsk3"],
       "reference_column": "ans_choice", "lang": "zh"}


@pytest.fixture(autouse=True)
def _no_hub(monkeypatch):
    """Nothing here may reach the real hub: offline mode unless a test says otherwise."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv(MIRROR_ENV, raising=False)


@pytest.fixture(scope="module")
def manifest() -> dict[str, dict]:
    return {r["id"]: r for r in manifest_rows()}


@pytest.fixture(scope="module")
def mirror(tmp_path_factory, manifest) -> Path:
    """A mirror root holding librispeech (2 shards), fleurs (2 configs) and speech-HSK (3 splits)."""
    root = tmp_path_factory.mktemp("hf-mirror")
    rows = [{"id": r["id"], "audio": r["audio"], "text": r["text"]} for r in manifest.values()]
    build_hub_repo(root, "TwinkStart/librispeech", None, "test_clean", rows[:8], num_shards=2)
    # FLEURS ids name the sentence, not the recording: two readings of one sentence share an id.
    fleurs = [{"id": 1000 + min(i, 2), "audio": r["audio"], "text": r["text"], "gender": i % 2}
              for i, r in enumerate(rows[:4])]
    for config in ("en_us", "cmn_hans_cn"):
        build_hub_repo(root, "google/fleurs", config, "test", fleurs, reference_column="raw_transcription")
    for number, split in enumerate(HSK["split"]):
        hsk = [{"audio": r["audio"], "text": "ABCD"[i], "level": number + 1}
               for i, r in enumerate(rows[3 * number: 3 * number + 3])]
        build_hub_repo(root, "TwinkStart/speech-HSK", None, split, hsk, reference_column="ans_choice")
    return root


def _load(source: dict, audio_dir: Path, limit: int | None = None) -> list[Sample | SampleFailure]:
    return list(iter_hub_samples(source, str(audio_dir), limit=limit))


def _sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _assert_matches_manifest(samples: list[Sample], manifest: dict[str, dict]) -> None:
    """Each sample's audio is the source clip byte for byte and decodes to the same frames."""
    for sample in samples:
        source = SAMPLE_DIR / manifest[sample.id]["audio"]
        assert os.path.isabs(sample.audio) and Path(sample.audio).stem == _sha256(source)
        assert _sha256(sample.audio) == _sha256(source)
        assert sf.info(sample.audio).frames == sf.info(str(source)).frames
        assert sample.reference == manifest[sample.id]["text"]


# --- (a) local mirror -------------------------------------------------------------------------


def test_local_mirror_gives_stable_samples(mirror, manifest, tmp_path, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    first = _load(LIBRISPEECH, tmp_path / "a")
    second = _load(LIBRISPEECH, tmp_path / "b")
    assert [s.id for s in first] == [s.id for s in second] == list(manifest)[:8]
    assert [Path(s.audio).name for s in first] == [Path(s.audio).name for s in second]
    _assert_matches_manifest(first, manifest)
    assert all(s.lang == "en" and s.fields == {"id": s.id, "split": "test_clean"} for s in first)


def test_config_and_id_column_with_repeated_ids(mirror, manifest, tmp_path, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    samples = _load(FLEURS, tmp_path)
    assert [s.id for s in samples] == ["1000", "1001", "1002", "1002#2"]
    assert [s.reference for s in samples] == [r["text"] for r in list(manifest.values())[:4]]
    assert samples[0].fields == {"id": 1000, "gender": 0, "split": "test"}
    assert _load({**FLEURS, "keep_columns": ["gender"]}, tmp_path)[1].fields == {"gender": 1, "split": "test"}
    other = _load({**FLEURS, "config": "cmn_hans_cn"}, tmp_path)
    assert [s.audio for s in other] == [s.audio for s in samples]  # same clips, stored once


def test_list_of_splits_read_in_order(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    samples = _load(HSK, tmp_path)
    assert [s.fields["split"] for s in samples] == ["hsk1"] * 3 + ["hsk2"] * 3 + ["hsk3"] * 3
    assert [s.reference for s in samples] == list("ABC") * 3
    # No id column: ids derive from the split and the audio content, so they survive reordering.
    assert all(s.id == f"{s.fields['split']}-{Path(s.audio).stem[:12]}" for s in samples)
    assert [s.id for s in samples] == [s.id for s in _load(HSK, tmp_path)]


def test_limit_stops_early_and_spans_splits(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    assert [s.id for s in _load(LIBRISPEECH, tmp_path, limit=3)] == [s.id for s in _load(LIBRISPEECH, tmp_path)][:3]
    assert [s.fields["split"] for s in _load(HSK, tmp_path, limit=4)] == ["hsk1"] * 3 + ["hsk2"]
    assert _load(HSK, tmp_path, limit=0) == []


def test_mirror_map_and_root_together(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, f"{tmp_path / 'empty-root'},google/fleurs={mirror / 'google' / 'fleurs'}")
    assert len(_load(FLEURS, tmp_path)) == 4
    with pytest.raises(DatasetUnavailable, match=r"empty-root/TwinkStart/librispeech has no parquet files"):
        _load(LIBRISPEECH, tmp_path)


def test_layout_without_readme_configs(manifest, tmp_path, monkeypatch):
    rows = [{"id": r["id"], "audio": r["audio"], "text": r["text"]} for r in list(manifest.values())[:3]]
    build_hub_repo(tmp_path / "m", "google/fleurs", "en_us", "test", rows, readme_configs=False)
    build_hub_repo(tmp_path / "m", "TwinkStart/librispeech", None, "test_clean", rows, readme_configs=False)
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "m"))
    for source in ({**FLEURS, "id_column": None, "reference_column": "text"}, LIBRISPEECH):
        samples = _load(source, tmp_path / "audio")
        assert [s.id for s in samples] == list(manifest)[:3]
        _assert_matches_manifest(samples, manifest)


def test_misnamed_config_split_or_column_fail_loudly(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    with pytest.raises(ValueError, match="no config 'fr_fr'.*cmn_hans_cn"):
        _load({**FLEURS, "config": "fr_fr"}, tmp_path)
    with pytest.raises(ValueError, match="no split 'validation'.*test"):
        _load({**FLEURS, "split": "validation"}, tmp_path)
    with pytest.raises(ValueError, match=r"no column\(s\) \['transcript'\]"):
        _load({**LIBRISPEECH, "reference_column": "transcript"}, tmp_path)


def test_row_without_audio_is_a_recorded_failure(manifest, tmp_path, monkeypatch):
    good = next(iter(manifest.values()))
    rows = [{"id": "empty", "audio": None, "text": "x"},
            {"id": good["id"], "audio": good["audio"], "text": good["text"]}]
    build_hub_repo(tmp_path / "m", "TwinkStart/librispeech", None, "test_clean", rows)
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "m"))
    failure, sample = _load(LIBRISPEECH, tmp_path / "audio")
    assert isinstance(failure, SampleFailure) and failure.id == "empty" and "no embedded audio" in failure.error
    assert isinstance(sample, Sample) and sample.id == good["id"]


def test_revision_tracks_mirror_content(manifest, tmp_path, monkeypatch):
    rows = [{"id": r["id"], "audio": r["audio"], "text": r["text"]} for r in manifest.values()]
    repo = build_hub_repo(tmp_path / "m", "TwinkStart/librispeech", None, "test_clean", rows[:2])
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "m"))
    before = hub_revision(LIBRISPEECH)
    assert before.startswith(f"mirror:{repo}@") and hub_revision(LIBRISPEECH) == before
    build_hub_repo(tmp_path / "m", "TwinkStart/librispeech", None, "test_clean", rows[:3])
    assert hub_revision(LIBRISPEECH) != before


def test_materialise_reads_a_registry_entry_through_the_mirror(mirror, manifest, tmp_path, monkeypatch):
    from audio_evals.data.materialise import materialise
    from audio_evals.registry.entries import DatasetEntry
    from audio_evals import storage

    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    entry = DatasetEntry(name="librispeech-test-clean", task="asr-en",
                         source={"type": "hf", "repo": "TwinkStart/librispeech", "split": "test_clean"})
    ref = materialise(entry, str(tmp_path / "cache"), limit=5)
    assert ref.n_samples == 5 and ref.revision.startswith("mirror:")
    _assert_matches_manifest([Sample.from_dict(r) for r in storage.read_jsonl(ref.samples_path)], manifest)


# --- (b) S3 mirror ----------------------------------------------------------------------------


def _upload(local_root: Path, bucket: str, prefix: str) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    for folder, _, names in os.walk(local_root):
        for name in names:
            path = Path(folder) / name
            fs.put_file(str(path), f"{bucket}/{prefix}/{path.relative_to(local_root).as_posix()}")


def test_s3_mirror_gives_the_same_samples(mirror, manifest, tmp_path, monkeypatch, s3_bucket):
    _upload(mirror, s3_bucket, "hf")
    for source in (LIBRISPEECH, FLEURS, HSK):
        monkeypatch.setenv(MIRROR_ENV, str(mirror))
        local = _load(source, tmp_path / "local")
        monkeypatch.setenv(MIRROR_ENV, f"s3://{s3_bucket}/hf")
        remote = _load(source, tmp_path / "s3")
        assert [(s.id, s.reference, Path(s.audio).name, s.fields) for s in remote] == [
            (s.id, s.reference, Path(s.audio).name, s.fields) for s in local
        ]
    _assert_matches_manifest(_load(LIBRISPEECH, tmp_path / "s3"), manifest)
    revision = hub_revision(LIBRISPEECH)
    assert revision.startswith(f"mirror:s3://{s3_bucket}/hf/TwinkStart/librispeech@")
    assert "testing" not in revision  # credentials never end up in results


def test_s3_mirror_outage_is_a_clear_error(mirror, tmp_path, monkeypatch, moto_server, s3_bucket):
    """A store that is down (or came back without the data) names the mirror, not a boto error."""
    import boto3

    _upload(mirror, s3_bucket, "hf")
    monkeypatch.setenv(MIRROR_ENV, f"s3://{s3_bucket}/hf")
    moto_server.stop()
    with pytest.raises(DatasetUnavailable, match=rf"mirror at s3://{s3_bucket}/hf/\S+ cannot be read"):
        _load(LIBRISPEECH, tmp_path)
    moto_server.start()  # back, but empty: moto keeps its state in memory
    with pytest.raises(DatasetUnavailable, match="cannot be read"):
        _load(LIBRISPEECH, tmp_path)
    boto3.client("s3").create_bucket(Bucket=s3_bucket)
    _upload(mirror, s3_bucket, "hf")
    assert len(_load(LIBRISPEECH, tmp_path)) == 8


# --- (c) no mirror ----------------------------------------------------------------------------


def test_offline_without_mirror_fails_fast_and_says_how_to_fix(tmp_path):
    started = time.monotonic()
    with pytest.raises(DatasetUnavailable) as caught:
        _load(FLEURS, tmp_path)
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "google/fleurs" in message and "en_us" in message and "test" in message
    assert "HF_HUB_OFFLINE" in message and f"{MIRROR_ENV}=" in message
    assert hub_revision(FLEURS) is None
    assert hub_revision({**FLEURS, "revision": "abc123"}) == "abc123"


def test_unresponsive_hub_is_bounded_by_the_timeout(tmp_path, monkeypatch):
    """A hub host that accepts connections but never answers costs one short timeout, no retries."""
    import huggingface_hub.constants

    from audio_evals.data import hub

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "HUB_TIMEOUT_S", 1.0)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        started = time.monotonic()
        with pytest.raises(DatasetUnavailable, match=r"TwinkStart/librispeech.*unreachable.*AUDIO_EVALS_HF_MIRROR"):
            _load(LIBRISPEECH, tmp_path)
        assert time.monotonic() - started < 8


# --- (d) no decoding --------------------------------------------------------------------------


def test_audio_is_never_decoded(mirror, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("audio was decoded")

    monkeypatch.setattr(datasets.Audio, "decode_example", refuse)
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    samples = _load(LIBRISPEECH, tmp_path)
    assert len(samples) == 8 and all(isinstance(s, Sample) for s in samples)


# --- (e) same rows as datasets' own loader ----------------------------------------------------


@pytest.mark.parametrize("source", [LIBRISPEECH, FLEURS, HSK], ids=["librispeech", "fleurs", "hsk"])
def test_mirror_rows_equal_load_dataset_of_the_folder(mirror, tmp_path, monkeypatch, source):
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    samples = _load(source, tmp_path)
    splits = [source["split"]] if isinstance(source["split"], str) else source["split"]
    expected = []
    for split in splits:
        ds = datasets.load_dataset(str(mirror / source["repo"]), source["config"], split=split, streaming=True)
        for row in ds.cast_column("audio", datasets.Audio(decode=False)):
            audio = row.pop("audio")
            reference = row.pop(source["reference_column"])
            expected.append((hashlib.sha256(audio["bytes"]).hexdigest(), reference, {**row, "split": split}))
    assert [(Path(s.audio).stem, s.reference, s.fields) for s in samples] == expected
