"""Nothing stale, cut short or planted in a cache is trusted; run records are unique and immutable.

Each test reproduces a failure seen before (issue 13): audio replaced behind an unchanged
manifest, cache files of each kind cut short, a poisoned pickle in the shard cache, two runs in
the same second, ``retry`` after the manifest shrank or the summary was edited, path escapes.
Real Prefect API, the ``scripted`` test backend (real Whisper where the audio itself matters),
real files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from audio_evals import storage
from audio_evals.run import folder as results
from audio_evals.run.summary import RunSummary
from tests.conftest import SAMPLE_DIR, calls_made
from tests.test_pipeline import _evaluate, _rows

runner = CliRunner()


def _wer(summary: RunSummary) -> float:
    return next(m.value for m in summary.metrics if m.name == "wer")


def _metrics(summary: RunSummary) -> list:
    return [(m.name, m.value, m.n) for m in summary.metrics]


def _said_once(log: list[str], path: Path) -> str:
    """Exactly one log line names ``path``; returns it."""
    lines = [line for line in log if str(path) in line]
    assert len(lines) == 1 and "\n" not in lines[0], lines
    return lines[0]


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def log():
    """Messages the library logs (on its own logger: Prefect reconfigures the root logger's handlers)."""
    lines: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger("audio_evals")
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def _manifest(folder: Path, clips: dict[str, str]) -> Path:
    """A manifest of ``id -> sample clip stem`` with each clip copied beside it, references from the sample."""
    texts = {json.loads(line)["id"]: json.loads(line)["text"]
             for line in (SAMPLE_DIR / "manifest.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()}
    (folder / "audio").mkdir(parents=True)
    rows = []
    for sample_id, stem in clips.items():
        shutil.copy(SAMPLE_DIR / "audio" / f"{stem}.wav", folder / "audio" / f"{sample_id}.wav")
        rows.append({"id": sample_id, "audio": f"audio/{sample_id}.wav", "text": texts[stem], "lang": "en"})
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return manifest


# --- 1. content-addressed identity, verified on read -----------------------------------------------

@pytest.mark.slow
def test_audio_replaced_behind_an_unchanged_manifest_is_recomputed(prefect_api, tmp_path):
    """Before: the cached transcripts of the old audio were scored again (WER 0.0 where the truth is 100)."""
    from audio_evals import evaluate

    manifest = _manifest(tmp_path / "data", {"a": "spk1_snt1", "b": "spk1_snt2", "c": "spk1_snt3"})
    params = dict(dataset=str(manifest), model="whisper-tiny.en", cache_dir=str(tmp_path / "cache"),
                  output=str(tmp_path / "results"))
    before = evaluate(**params)
    manifest_bytes = manifest.read_bytes()
    audio = tmp_path / "data" / "audio"
    for target, source in (("a", "spk2_snt1"), ("b", "spk2_snt2"), ("c", "spk2_snt3")):
        shutil.copy(SAMPLE_DIR / "audio" / f"{source}.wav", audio / f"{target}.wav")  # same names, other speech
    assert manifest.read_bytes() == manifest_bytes

    after = evaluate(**params)
    truth = evaluate(**params, fresh=True)
    assert _wer(before) < 25 and _wer(after) == _wer(truth) > 50
    assert after.shards.computed == 1 and after.dataset.fingerprint != before.dataset.fingerprint


def test_audio_identity_is_recorded_and_a_replaced_file_rebuilds_the_dataset(prefect_api, tmp_path, scripted_registry,
                                                                          log):
    manifest = _manifest(tmp_path / "data", {"a": "spk1_snt1", "b": "spk1_snt2"})
    first = _evaluate(tmp_path, scripted_registry, dataset=str(manifest))
    clip = tmp_path / "data" / "audio" / "b.wav"
    shutil.copy(SAMPLE_DIR / "audio" / "spk2_snt2.wav", clip)
    calls = len(calls_made(scripted_registry["calls"]))

    second = _evaluate(tmp_path, scripted_registry, dataset=str(manifest))
    assert calls_made(scripted_registry["calls"])[calls:] == ["a", "b"]  # the shard holding b ran again
    assert second.shards.computed == 1 and second.dataset.fingerprint != first.dataset.fingerprint
    assert "changed" in _said_once(log, clip)


@pytest.mark.parametrize("cut", ["at a line boundary", "mid-line"])
def test_a_prepared_shard_cut_short_is_rebuilt_and_said_once(prefect_api, tmp_path, scripted_registry, log, cut):
    """Before: cut at a line boundary, 3 samples vanished (exit 0); mid-line, a JSONDecodeError naming no file."""
    first = _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en")
    (shard,) = (tmp_path / "cache" / "prepared").rglob("shard-00001.jsonl")
    lines = shard.read_bytes().splitlines(keepends=True)
    shard.write_bytes(b"".join(lines[:2]) + (lines[2][:40] if cut == "mid-line" else b""))

    second = _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en")
    assert len(_rows(second)) == 26 and second.counts.failed == 0
    assert _metrics(second) == _metrics(first) and second.shards.cached == 6
    _said_once(log, shard)


def test_a_downloaded_dataset_cut_short_is_rebuilt_and_said_once(prefect_api, tmp_path, scripted_registry, log):
    first = _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en")
    (samples,) = (tmp_path / "cache" / "datasets").rglob("samples.jsonl")
    samples.write_bytes(samples.read_bytes()[:-700])

    second = _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en")
    assert len(_rows(second)) == 26 and _metrics(second) == _metrics(first)
    _said_once(log, samples)


@pytest.mark.parametrize("reader", ["infer", "preprocess"])
def test_decoded_audio_cut_short_is_decoded_again(prefect_api, tmp_path, scripted_registry, log, reader):
    """Before: the cut file was used as it was (WER 9.60 instead of 3.72 with Whisper, exit 0)."""
    first = _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en")
    decoded = sorted((tmp_path / "cache" / "audio").rglob("*.wav"))[0]
    samples, _ = sf.read(decoded, dtype="float32")
    whole = decoded.read_bytes()
    decoded.write_bytes(whole[: len(whole) // 3])

    # A new model setting makes the infer stage read the decoded audio; a new shard size, preprocessing.
    change = {"generation": {"beam_size": 1}} if reader == "infer" else {"shard_size": 4}
    second = _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en", **change)
    assert np.array_equal(sf.read(decoded, dtype="float32")[0], samples)  # decoded again, whole
    assert second.audio_seconds == first.audio_seconds
    assert _metrics(second) == _metrics(first)
    _said_once(log, decoded)


@pytest.mark.parametrize("damage", ["cut short", "edited"])
def test_a_corrupt_shard_result_is_recomputed_and_said_once(prefect_api, tmp_path, scripted_registry, log, damage):
    first = _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en")
    entries = sorted((tmp_path / "cache" / "entries" / "infer").rglob("*.json"))
    assert len(entries) == 6
    if damage == "cut short":
        entries[0].write_bytes(entries[0].read_bytes()[:120])
    else:
        entry = json.loads(entries[0].read_text(encoding="utf-8"))
        entry["payload"]["outputs"][0]["text"] = "a planted answer"
        entries[0].write_text(json.dumps(entry), encoding="utf-8")

    second = _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en")
    assert second.shards.computed == 1 and second.shards.cached == 5
    assert _metrics(second) == _metrics(first)
    _said_once(log, entries[0])


def test_a_shard_changed_during_a_run_fails_naming_the_file(tmp_path):
    from audio_evals import cache
    from audio_evals.pipeline.infer import ShardChanged, infer_shard
    from audio_evals.records import ShardRef

    path = tmp_path / "shard-00000.jsonl"
    record = cache.write_jsonl(str(path), [{"sample": {"id": "a"}}, {"sample": {"id": "b"}}])
    path.write_bytes(path.read_bytes().splitlines(keepends=True)[0])
    shard = ShardRef(index=0, path=str(path), content_hash="h", n=2, audio_seconds=1.0, record=record)
    with pytest.raises(ShardChanged, match=f"prepared shard {path} has .* bytes where {record.size} were written"):
        infer_shard(shard, backend=None, prompt=None, audio_dir=str(tmp_path))


def test_fresh_recomputes_every_stage(prefect_api, tmp_path, scripted_registry):
    _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en")
    cache = tmp_path / "cache"
    stages = [next(cache.rglob("dataset.json")), next(cache.rglob("index.json")),
              next((cache / "audio").rglob("*.wav")), next((cache / "entries").rglob("*.json"))]
    written = [p.stat().st_mtime_ns for p in stages]
    again = _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en", fresh=True)
    assert again.shards.computed == 6
    assert all(p.stat().st_mtime_ns > t for p, t in zip(stages, written))  # download, preprocess, decode, infer


# --- 2. results that cannot run code ---------------------------------------------------------------

class _Exploit:
    """Unpickling this runs a shell command (what a crafted cache file did before)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _poison(marker: Path, kind: str) -> bytes:
    if kind == "raw pickle":
        return pickle.dumps(_Exploit(marker))
    from prefect.results import ResultRecord, ResultRecordMetadata
    from prefect.serializers import PickleSerializer

    # A Prefect result record naming the pickle serializer: Prefect unpickles it whatever the task's serializer.
    return ResultRecord(metadata=ResultRecordMetadata(serializer=PickleSerializer(), storage_key="x"),
                        result=_Exploit(marker)).serialize()


@pytest.mark.parametrize("kind", ["prefect pickle record", "raw pickle"])
def test_a_poisoned_shard_cache_is_never_unpickled(prefect_api, tmp_path, scripted_registry, log, kind):
    first = _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en")
    marker = tmp_path / "pwned"
    poison = _poison(marker, kind)
    cache = tmp_path / "cache"
    entries = sorted((cache / "entries").rglob("*.json"))
    for entry in entries:  # the shard cache, and where Prefect kept its pickled results before
        entry.write_bytes(poison)
        (cache / "prefect-results").mkdir(exist_ok=True)
        (cache / "prefect-results" / entry.stem).write_bytes(poison)

    second = _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en")
    assert not marker.exists()
    assert second.shards.computed == 6 and _metrics(second) == _metrics(first)
    for entry in entries:
        _said_once(log, entry)
    assert not list(cache.rglob("*.pkl")) and all(json.loads(e.read_text())["payload"] for e in entries)

    pickle.loads(pickle.dumps(_Exploit(marker)))  # the planted payload is live: unpickled, it runs
    assert marker.exists()


def test_a_poisoned_shared_store_is_never_unpickled(prefect_api, tmp_path, monkeypatch, scripted_registry, s3_bucket):
    import s3fs

    from audio_evals import evaluate

    store = f"s3://{s3_bucket}/poisoned"
    params = dict(dataset="speech-sample-en", model="scripted", registry_paths=[scripted_registry["path"]],
                  cache_dir=f"{store}/cache", output=f"{store}/results", shard_size=13)
    monkeypatch.setenv("AUDIO_EVALS_LOCAL_CACHE", str(tmp_path / "machine-a"))
    first = evaluate(**params)
    marker = tmp_path / "pwned"
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    entries = fs.find(f"{s3_bucket}/poisoned/cache/entries")
    assert len(entries) == 2
    for entry in entries:
        fs.pipe_file(entry, _poison(marker, "prefect pickle record"))

    monkeypatch.setenv("AUDIO_EVALS_LOCAL_CACHE", str(tmp_path / "machine-b"))
    second = evaluate(**params)
    assert not marker.exists() and second.shards.computed == 2 and _metrics(second) == _metrics(first)


# --- 3. run records: unique, immutable, checked --------------------------------------------------

def test_runs_in_the_same_instant_keep_separate_folders(prefect_api, tmp_path, scripted_registry, monkeypatch):
    """Before: ids were the UTC second plus a config hash, so the second run overwrote the first."""
    instant = results._utcnow()
    monkeypatch.setattr(results, "_utcnow", lambda: instant)
    runs = [_evaluate(tmp_path, scripted_registry, dataset="speech-sample-en") for _ in range(2)]
    assert runs[0].run_id != runs[1].run_id and runs[0].run_id[:23] == runs[1].run_id[:23]
    for summary in runs:
        assert storage.read_json(summary.paths["summary"])["run_id"] == summary.run_id
        assert len(_rows(summary)) == 26

    with pytest.raises(ValueError, match="already exists"):
        _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en", run_id=runs[0].run_id)
    assert len(_rows(runs[0])) == 26


def test_a_run_folder_is_created_exclusively(tmp_path):
    folder = str(tmp_path / "m" / "d" / "run")
    results.create_run_dir(folder)
    with pytest.raises(ValueError, match="already exists"):
        results.create_run_dir(folder)


@pytest.mark.parametrize("run_id", ["../../x", "a/b", "..", ".hidden", "x" * 200, ""])
def test_run_ids_that_leave_the_results_root_are_refused_in_one_line(tmp_path, run_id):
    result = runner.invoke(_cli_app(), ["run", "--dataset", "speech-sample-en", "--model", "whisper-tiny.en",
                                        "--run-id", run_id, "--output", str(tmp_path / "results")])
    assert result.exit_code == 2 and "is not allowed" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "results").exists() and not (tmp_path.parent / "x").exists()


def test_model_and_dataset_names_never_leave_the_results_root(tmp_path):
    plan = SimpleNamespace(model=SimpleNamespace(name=".."), dataset=SimpleNamespace(name="../.."))
    folder = results.run_dir(str(tmp_path), plan, "run-1")
    assert os.path.commonpath([folder, str(tmp_path)]) == str(tmp_path) and ".." not in Path(folder).parts


def _cli_app():
    from cli.main import app

    return app


def _failed_run(tmp_path, registry, sample_manifest, **kwargs) -> tuple[RunSummary, Path, str]:
    """A run whose shard 1 failed; the fault is then cleared. Returns (summary, folder, victim id)."""
    victim = [r["id"] for r in sample_manifest if r["lang"] == "en"][7]
    registry["faults"].write_text(json.dumps({"fail_shard_ids": [victim]}), encoding="utf-8")
    first = _evaluate(tmp_path, registry, shard_retries=0, **kwargs)
    registry["faults"].write_text("{}", encoding="utf-8")
    assert len(first.failed_shards) == 1
    return first, Path(first.paths["summary"]).parent, victim


def test_retry_after_the_manifest_shrank_is_refused_saying_what_changed(prefect_api, tmp_path, scripted_registry,
                                                                       sample_manifest):
    """Before: the retry replaced a 24-sample run with a 12-sample one under the same id ("now 0 failed")."""
    rows = [dict(r, audio=str(SAMPLE_DIR / r["audio"])) for r in sample_manifest if r["lang"] == "en"][:24]
    manifest = tmp_path / "mine.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    first, folder, _ = _failed_run(tmp_path, scripted_registry, sample_manifest, dataset=str(manifest))
    before = _snapshot(folder)
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows[:12]), encoding="utf-8")

    result = runner.invoke(_cli_app(), ["retry", str(folder)])
    message = result.output.strip()
    assert result.exit_code == 2 and len(message.splitlines()) == 1, result.output
    assert f"run {first.run_id} cannot be retried" in message and "dataset.samples 24 → 12" in message
    assert _snapshot(folder) == before and len(list(folder.parent.iterdir())) == 1


@pytest.mark.parametrize(("field", "value", "said"), [
    ("limit", -1, "options.limit: must be at least 1, not -1"),
    ("shard_size", "five", "options.shard_size: Input should be a valid integer"),
    ("run_id", "../../x", "run_id: run id '../../x' is not allowed"),
    ("options", None, "options: Input should be a valid dictionary"),
])
def test_an_edited_summary_is_validated_like_any_input(prefect_api, tmp_path, scripted_registry, sample_manifest,
                                                       field, value, said):
    """Before: an edited copy with ``limit: -1`` emptied the original run's samples.jsonl."""
    _, folder, _ = _failed_run(tmp_path, scripted_registry, sample_manifest, dataset="speech-sample")
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    if field in ("limit", "shard_size"):
        summary["options"][field] = value
    else:
        summary[field] = value
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    before = _snapshot(folder)

    result = runner.invoke(_cli_app(), ["retry", str(folder)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.startswith(f"error: {folder / 'summary.json'}: {said}"), result.output
    assert len(result.output.strip().splitlines()) == 1
    assert _snapshot(folder) == before and len(list(folder.parent.iterdir())) == 1


def test_retry_of_a_copied_run_from_another_directory_writes_a_new_run_beside_the_copy(
        prefect_api, tmp_path, scripted_registry, sample_manifest, monkeypatch):
    """Before: a copy's retry rewrote the original, and from another directory it wrote somewhere else."""
    first, folder, victim = _failed_run(tmp_path, scripted_registry, sample_manifest, dataset="speech-sample")
    copy = tmp_path / "elsewhere" / folder.relative_to(tmp_path / "results")
    shutil.copytree(folder, copy)
    originals = _snapshot(folder), _snapshot(copy)
    calls = len(calls_made(scripted_registry["calls"]))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")

    result = runner.invoke(_cli_app(), ["retry", str(copy)])
    assert result.exit_code == 0, result.output
    rerun = calls_made(scripted_registry["calls"])[calls:]
    assert victim in rerun and len(rerun) == 5  # only the failed shard; the others hit the cache
    assert (_snapshot(folder), _snapshot(copy)) == originals
    assert len(list(folder.parent.iterdir())) == 1 and not list((tmp_path / "cwd").iterdir())
    (new,) = [p for p in copy.parent.iterdir() if p != copy]
    retried = json.loads((new / "summary.json").read_text(encoding="utf-8"))
    assert retried["parent_run_id"] == first.run_id and retried["run_id"] == new.name != first.run_id
    assert retried["failed_shards"] == [] and retried["identity"] == first.identity
    assert sorted(r["id"] for r in storage.read_jsonl(str(new / "samples.jsonl"))) == sorted(
        r["id"] for r in sample_manifest)
