"""Hugging Face datasets through a mirror (local folder and S3), through ``datasets`` as with hub
access, and a clear failure without either.

The fixtures are hub-style repos built from the real sample clips in the seed datasets' real
layouts, as ``fixtures/hub_layouts.json`` records them from each dataset card or the hub's parquet
converter commits (file names, README ``configs:``, columns and types, each cited; FLEURS in both
layouts of its README-less ``refs/convert/parquet`` branch), so the loader runs exactly as it would
against a copy of the real repo, and a registry entry naming a split, folder or column the real
repo lacks fails here.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import datasets
import pytest
import soundfile as sf

from audio_evals.data.hf_datasets import hub_revision, iter_hub_samples
from audio_evals.data.hf_mirror import MIRROR_ENV, DatasetUnavailable
from audio_evals.records import Sample, SampleFailure
from audio_evals.registry import load_registry
from audio_evals.registry.entries import HubSource
from tests.hub_fixture import HUB_LAYOUTS, SAMPLE_DIR, build_hub_repo, build_seed_repo, manifest_rows, seed_splits

LIBRISPEECH = {"type": "hf", "repo": "TwinkStart/librispeech", "config": None, "data_dir": None,
               "split": "test_clean", "revision": None, "audio_column": "audio", "reference_column": "text",
               "id_column": None, "lang": "en", "keep_columns": None}
FLEURS = {**LIBRISPEECH, "repo": "google/fleurs", "data_dir": "en_us", "split": "test",
          "revision": "refs/convert/parquet", "reference_column": "raw_transcription", "id_column": "id"}
TEDLIUM = {**LIBRISPEECH, "repo": "TwinkStart/tedlium", "config": "release1", "split": "test"}
HSK = {**LIBRISPEECH, "repo": "TwinkStart/speech-HSK", "split": ["hsk1", "hsk2", "hsk3"],
       "reference_column": "ans_choice", "lang": "zh"}
ENGLISH = [r for r in manifest_rows() if r["lang"] == "en"]
MANDARIN = [r for r in manifest_rows() if r["lang"] == "zh"]


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
    """A mirror root: librispeech (its 4 shards of test_clean), fleurs (2 folders of its parquet
    branch, file names as the converter first wrote them), TED-LIUM (a README config) and
    speech-HSK (3 splits)."""
    root = tmp_path_factory.mktemp("hf-mirror")
    clips = list(manifest.values())
    build_seed_repo(root, "TwinkStart/librispeech", None, "test_clean", clips[:8], "text")
    build_seed_repo(root, "google/fleurs", "en_us", "test", ENGLISH[:4], "raw_transcription")
    build_seed_repo(root, "google/fleurs", "cmn_hans_cn", "test", MANDARIN, "raw_transcription")
    build_seed_repo(root, "TwinkStart/tedlium", "release1", "test", ENGLISH[4:7], "text")
    for number, split in enumerate(HSK["split"]):
        build_seed_repo(root, "TwinkStart/speech-HSK", None, split, clips[3 * number: 3 * number + 3], "ans_choice")
    return root


@pytest.fixture
def hub_api(monkeypatch) -> Iterator[list[str]]:
    """The hub's dataset-info endpoint on loopback, answering the commit of any revision.

    The real hub is unreachable here; with this, the loader takes its hub path (``HfApi`` for the
    commit, then ``datasets.load_dataset(repo, ...)``, which reads a folder of that name in the
    working directory). Yields the paths requested.
    """
    import huggingface_hub.constants

    requested: list[str] = []

    class DatasetInfo(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requested.append(unquote(self.path))
            repo = unquote(self.path).removeprefix("/api/datasets/").split("/revision/")[0]
            body = json.dumps({"id": repo, "sha": hashlib.sha1(self.path.encode()).hexdigest()}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), DatasetInfo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    yield requested
    server.shutdown()
    server.server_close()


def _load(source: dict, audio_dir: Path, limit: int | None = None) -> list[Sample | SampleFailure]:
    return list(iter_hub_samples(HubSource.model_validate(source), str(audio_dir), limit=limit))


def _sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _clip_of(sample: Sample, manifest: dict[str, dict]) -> dict:
    """The manifest row whose clip the sample's audio is (found by content: not every repo has ids)."""
    (row,) = [r for r in manifest.values() if _sha256(SAMPLE_DIR / r["audio"]) == Path(sample.audio).stem]
    return row


def _assert_matches_manifest(samples: list[Sample], manifest: dict[str, dict]) -> None:
    """Each sample's audio is the source clip byte for byte and decodes to the same frames."""
    for sample in samples:
        clip = _clip_of(sample, manifest)
        source = SAMPLE_DIR / clip["audio"]
        assert os.path.isabs(sample.audio) and _sha256(sample.audio) == _sha256(source)
        assert sf.info(sample.audio).frames == sf.info(str(source)).frames
        assert sample.reference == clip["text"]


# --- (a) local mirror -------------------------------------------------------------------------


def test_local_mirror_gives_stable_samples(mirror, manifest, tmp_path, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    first = _load(LIBRISPEECH, tmp_path / "a")
    second = _load(LIBRISPEECH, tmp_path / "b")
    # The card has no id column: ids derive from the split and the audio content, in row order.
    clips = list(manifest.values())[:8]
    assert [s.id for s in first] == [s.id for s in second] == [
        f"test_clean-{_sha256(SAMPLE_DIR / c['audio'])[:12]}" for c in clips]
    assert [Path(s.audio).name for s in first] == [Path(s.audio).name for s in second]
    _assert_matches_manifest(first, manifest)
    # The card's other columns (gt, source, WavPath) are kept as fields, with the split.
    assert [s.fields for s in first] == [{"gt": f"gt {c['id']}", "source": f"source {c['id']}",
                                          "WavPath": f"WavPath {c['id']}", "split": "test_clean"} for c in clips]
    assert all(s.lang == "en" for s in first)
    assert sorted(p.name for p in (mirror / "TwinkStart/librispeech/data").iterdir()) == [
        f"test_clean-{i:05d}-of-00004.parquet" for i in range(4)]


def test_data_dir_and_id_column_with_repeated_ids(mirror, manifest, tmp_path, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    samples = _load(FLEURS, tmp_path)
    # FLEURS ids name the sentence, not the recording: two readings of one sentence share an id.
    assert [s.id for s in samples] == ["1000", "1000#2", "1001", "1001#2"]
    assert [s.reference for s in samples] == [r["text"] for r in ENGLISH[:4]]
    assert samples[0].fields == {"id": 1000, "num_samples": 16000, "path": f"{ENGLISH[0]['id']}.wav",
                                 "transcription": ENGLISH[0]["text"].lower(), "gender": 0, "lang_id": 19,
                                 "language": "en", "lang_group_id": 0, "split": "test"}
    assert _load({**FLEURS, "keep_columns": ["gender"]}, tmp_path)[1].fields == {"gender": 1, "split": "test"}
    mandarin = _load({**FLEURS, "data_dir": "cmn_hans_cn", "lang": "zh"}, tmp_path)
    assert [s.reference for s in mandarin] == [r["text"] for r in MANDARIN]  # the folder is the subset


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
    build_hub_repo(tmp_path / "m", "TwinkStart/tedlium", "release1", "test", rows, readme_configs=False)
    build_hub_repo(tmp_path / "m", "TwinkStart/librispeech", None, "test_clean", rows, readme_configs=False)
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "m"))
    for source in (TEDLIUM, LIBRISPEECH):
        samples = _load(source, tmp_path / "audio")
        assert [s.id for s in samples] == list(manifest)[:3]
        _assert_matches_manifest(samples, manifest)


def test_misnamed_config_split_or_column_fail_loudly(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    with pytest.raises(ValueError, match=r"no config 'release2'.*\['release1'\]"):
        _load({**TEDLIUM, "config": "release2"}, tmp_path)
    with pytest.raises(ValueError, match="no split 'validation'.*test"):
        _load({**TEDLIUM, "split": "validation"}, tmp_path)
    with pytest.raises(DatasetUnavailable, match=r"data_dir=fr_fr.*no parquet files.*fr_fr/test/\*\.parquet"):
        _load({**FLEURS, "data_dir": "fr_fr"}, tmp_path)
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
    before = hub_revision(HubSource.model_validate(LIBRISPEECH))
    assert before.startswith(f"mirror:{repo}@") and hub_revision(HubSource.model_validate(LIBRISPEECH)) == before
    build_hub_repo(tmp_path / "m", "TwinkStart/librispeech", None, "test_clean", rows[:3])
    assert hub_revision(HubSource.model_validate(LIBRISPEECH)) != before


def test_download_reads_a_registry_entry_through_the_mirror(mirror, manifest, tmp_path, monkeypatch):
    from audio_evals import storage
    from audio_evals.pipeline.download import download
    from audio_evals.registry.entries import DatasetEntry

    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    entry = DatasetEntry(name="librispeech-test-clean", task="asr-en",
                         source={"type": "hf", "repo": "TwinkStart/librispeech", "split": "test_clean"})
    ref = download(entry, str(tmp_path / "cache"), limit=5)
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
    revision = hub_revision(HubSource.model_validate(LIBRISPEECH))
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
    assert "--revision refs/convert/parquet" in message
    assert hub_revision(HubSource.model_validate({**FLEURS, "revision": None})) is None
    assert hub_revision(HubSource.model_validate(FLEURS)) == "refs/convert/parquet"


def test_unresponsive_hub_is_bounded_by_the_timeout(tmp_path, monkeypatch):
    """A hub host that accepts connections but never answers costs one short timeout, no retries."""
    import huggingface_hub.constants

    from audio_evals import hf_hub as audio_hub

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(audio_hub, "HUB_TIMEOUT_S", 1.0)
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


@pytest.mark.parametrize("source", [LIBRISPEECH, FLEURS, TEDLIUM, HSK], ids=["librispeech", "fleurs", "tedlium", "hsk"])
def test_mirror_rows_equal_load_dataset_of_the_folder(mirror, tmp_path, monkeypatch, source):
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    samples = _load(source, tmp_path)
    splits = [source["split"]] if isinstance(source["split"], str) else source["split"]
    expected = []
    for split in splits:
        ds = datasets.load_dataset(str(mirror / source["repo"]), source["config"], data_dir=source["data_dir"],
                                   split=split, streaming=True)
        for row in ds.cast_column("audio", datasets.Audio(decode=False)):
            audio = row.pop("audio")
            reference = row.pop(source["reference_column"])
            expected.append((hashlib.sha256(audio["bytes"]).hexdigest(), reference, {**row, "split": split}))
    assert [(Path(s.audio).stem, s.reference, s.fields) for s in samples] == expected


# --- (f) the hub path: datasets.load_dataset(repo, data_dir=...) on the parquet branch --------

#: FLEURS's parquet branch as the converter first wrote it (en_us/fleurs-test.parquet), and as since.
FLEURS_LAYOUTS = {"first": 0, "renamed": 1}


def _fleurs_parquet_branch(root: Path, layout: int) -> None:
    """google/fleurs as its refs/convert/parquet branch: a folder per config, no README."""
    build_seed_repo(root, "google/fleurs", "en_us", "test", ENGLISH[:3], "raw_transcription", layout)
    build_seed_repo(root, "google/fleurs", "en_us", "train", ENGLISH[3:7], "raw_transcription", layout)
    build_seed_repo(root, "google/fleurs", "en_us", "validation", ENGLISH[7:8], "raw_transcription", layout)
    build_seed_repo(root, "google/fleurs", "cmn_hans_cn", "test", MANDARIN, "raw_transcription", layout)


@pytest.mark.parametrize("layout", list(FLEURS_LAYOUTS))
def test_fleurs_loads_through_datasets_with_data_dir(hub_api, tmp_path, monkeypatch, layout):
    """The test split of each folder and nothing else, whichever file names the branch has."""
    from audio_evals import storage
    from audio_evals.pipeline.download import download

    _fleurs_parquet_branch(tmp_path / "hub", FLEURS_LAYOUTS[layout])
    monkeypatch.chdir(tmp_path / "hub")  # datasets.load_dataset("google/fleurs") reads ./google/fleurs
    assert not (tmp_path / "hub" / "google" / "fleurs" / "README.md").exists()
    expected = "en_us/fleurs-test.parquet" if layout == "first" else "en_us/test/0000.parquet"
    assert (tmp_path / "hub" / "google" / "fleurs" / expected).is_file()
    registry = load_registry([])
    for name, clips in (("fleurs-en_us", ENGLISH[:3]), ("fleurs-zh", MANDARIN)):
        ref = download(registry.dataset(name), str(tmp_path / "cache"))
        samples = [Sample.from_dict(r) for r in storage.read_jsonl(ref.samples_path)]
        assert [s.reference for s in samples] == [c["text"] for c in clips]  # test split of its folder only
        assert ref.revision == hashlib.sha1(b"/api/datasets/google/fleurs/revision/refs%2Fconvert%2Fparquet").hexdigest()
    assert set(hub_api) == {"/api/datasets/google/fleurs/revision/refs/convert/parquet"}
    # The former entry named the folder as a config, which datasets cannot know without a README.
    with pytest.raises(ValueError, match="BuilderConfig 'en_us' not found. Available: \\['default'\\]"):
        _load({**FLEURS, "data_dir": None, "config": "en_us"}, tmp_path / "audio")


@pytest.mark.parametrize("layout", list(FLEURS_LAYOUTS))
def test_fleurs_mirror_copy_reads_either_file_naming(tmp_path, monkeypatch, layout):
    """A mirror holding a copy of the parquet branch gives the same rows as ``datasets`` does."""
    _fleurs_parquet_branch(tmp_path / "hub", FLEURS_LAYOUTS[layout])
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "hub"))
    assert [s.reference for s in _load(FLEURS, tmp_path / "audio")] == [c["text"] for c in ENGLISH[:3]]
    assert [s.reference for s in _load({**FLEURS, "split": "train"}, tmp_path / "audio")] == [
        c["text"] for c in ENGLISH[3:7]]


# --- (g) every seed dataset's registry entry against its real layout --------------------------


def _hub_entries() -> list[str]:
    return sorted(n for n, e in load_registry([]).datasets.items() if isinstance(e.source, HubSource))


def test_every_seed_repo_has_a_recorded_layout_with_its_evidence():
    """Each hub repo the registry reads is in ``fixtures/hub_layouts.json``, with where it was read."""
    registry = load_registry([])
    repos = {registry.dataset(name).source.repo for name in _hub_entries()}
    assert repos <= set(HUB_LAYOUTS)
    assert all(layout["evidence"] for repo in repos for layout in HUB_LAYOUTS[repo]["layouts"])


@pytest.mark.parametrize("name", _hub_entries())
def test_registry_entry_reads_its_real_layout(name, tmp_path, monkeypatch):
    """The entry's folder, split(s) and columns exist in its repo's recorded layout (not in one built
    from the entry itself), the loader reads them there, and every field the entry builds is filled."""
    from audio_evals import storage
    from audio_evals.pipeline.download import download

    entry = load_registry([]).dataset(name)
    source = entry.source
    folder = source.data_dir or source.config
    splits = [source.split] if isinstance(source.split, str) else source.split
    assert set(splits) <= set(seed_splits(source.repo, folder)), f"{name}: {splits} not in {source.repo}/{folder}"
    read = {source.reference_column, *(c for spec in entry.fields.values() for c in spec.split(","))}
    assert read <= set(HUB_LAYOUTS[source.repo]["features"]), f"{name} reads columns the repo lacks"
    clips = MANDARIN + ENGLISH[:2] if source.lang == "zh" else ENGLISH[:3]
    for split in splits:
        build_seed_repo(tmp_path / "hub", source.repo, folder, split, clips, source.reference_column)
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "hub"))
    ref = download(entry, str(tmp_path / "cache"))
    samples = [Sample.from_dict(r) for r in storage.read_jsonl(ref.samples_path)]
    assert ref.n_failed == 0 and len(samples) == len(clips) * len(splits)
    assert [s.fields["split"] for s in samples] == [split for split in splits for _ in clips]
    assert all(s.reference and s.lang == source.lang for s in samples)
    for field in entry.fields:
        values = [v for s in samples for v in (s.fields[field] if isinstance(s.fields[field], list) else [s.fields[field]])]
        assert values and None not in values, field


def test_speech_hsk_is_its_six_levels(tmp_path, monkeypatch):
    from audio_evals import storage
    from audio_evals.pipeline.download import download

    registry = load_registry([])
    levels = [f"hsk{n}" for n in range(1, 7)]
    assert registry.dataset("speech-hsk").source.split == levels
    for number, level in enumerate(levels):
        assert registry.dataset(level).source.split == level and registry.dataset(level).task == "speech-mcq"
        build_seed_repo(tmp_path / "hub", "TwinkStart/speech-HSK", None, level, MANDARIN[: 1 + number % 2],
                        "ans_choice")
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "hub"))
    rows = list(storage.read_jsonl(download(registry.dataset("speech-hsk"), str(tmp_path / "cache")).samples_path))
    assert [r["fields"]["split"] for r in rows] == [level for n, level in enumerate(levels) for _ in range(1 + n % 2)]
    hsk3 = list(storage.read_jsonl(download(registry.dataset("hsk3"), str(tmp_path / "cache")).samples_path))
    assert [r["id"] for r in hsk3] == [r["id"] for r in rows if r["fields"]["split"] == "hsk3"]
