"""Errors a person can act on, and the flags people expect.

A user error (a dataset that cannot be reached, an endpoint not configured, a missing suite file, a
backend argument the backend does not take, a GPU that is not there) is one ``error:`` line saying
what to do, found before Prefect starts where it can be and never retried; failure causes are
printed grouped; ``list --json`` is machine-readable; help reads at 80 columns.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audio_evals.data.hf_mirror import MIRROR_ENV
from audio_evals.records import SampleRow
from audio_evals.registry import load_registry
from audio_evals.report.samples import failure_causes
from cli.main import app
from tasks.download import download
from tests.conftest import SAMPLE_DIR
from tests.hub_fixture import build_hub_repo, manifest_rows

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
#: What the download stage's retries used to add to a failure that cannot succeed (2 s + 10 s).
OLD_RETRY_DELAYS_S = 12


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def _one_error_line(output: str) -> str:
    """The output's only line, which must be an ``error:`` line without a traceback."""
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    assert "Traceback" not in output
    return lines[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_hub_dataset_is_one_error_line_at_once(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", MIRROR_ENV)}
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "cli", "run", "--dataset", "librispeech-test-clean",
                           "--limit", "1", "--cache-dir", str(tmp_path / "cache"), "--output", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stdout + done.stderr
    line = _one_error_line(done.stdout + done.stderr)
    assert "TwinkStart/librispeech" in line and "unreachable" in line and f"{MIRROR_ENV}=" in line
    assert elapsed < OLD_RETRY_DELAYS_S / 2, f"{elapsed:.1f} s: retried, or Prefect started"
    assert not (tmp_path / "cache" / "datasets").exists()


def test_a_hub_dataset_in_offline_mode_is_refused_before_prefect_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    result = runner.invoke(app, ["run", "--dataset", "fleurs-en_us", "--cache-dir", str(tmp_path), "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert "HF_HUB_OFFLINE is set" in _one_error_line(result.output)


def test_the_download_stage_is_never_retried_by_prefect():
    """One owner of retries: the hub client retries the hub's 5xx; a wrong column or an unreachable
    hub fails the same on every try, so the stage task itself has no retries."""
    assert download.retries == 0


def test_an_error_inside_the_flow_is_one_error_line_without_prefect_tracebacks(tmp_path):
    """The mirror has the dataset (the pre-flight passes) but not the column the entry names:
    the download stage fails once, and the console shows the CLI's line only."""
    build_hub_repo(tmp_path / "mirror", "acme/speech", None, "test", manifest_rows()[:2])
    (tmp_path / "registry").mkdir()
    (tmp_path / "registry" / "datasets.yaml").write_text(
        "datasets:\n  acme-speech:\n    description: a copy\n    task: asr\n    lang: en\n"
        "    source: {type: hf, repo: acme/speech, split: test, reference_column: transcript}\n", encoding="utf-8")
    done = _cli("run", "--dataset", "acme-speech", "--registry-path", str(tmp_path / "registry"),
                "--cache-dir", str(tmp_path / "cache"), "--output", str(tmp_path / "out"),
                env={MIRROR_ENV: str(tmp_path / "mirror"), "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no column(s) ['transcript']" in _one_error_line(done.stdout + done.stderr)


def test_an_endpoint_that_is_not_configured_is_one_error_line(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    result = runner.invoke(app, ["run", "--model", "openai-transcribe", "--cache-dir", str(tmp_path), "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert "set the OPENAI_BASE_URL environment variable" in _one_error_line(result.output)


def test_a_missing_suite_file_is_one_error_line(tmp_path):
    done = _cli("suite", str(tmp_path / "nightly.yaml"))
    assert done.returncode == 2
    assert "no suite file" in _one_error_line(done.stdout + done.stderr)


def test_causes_are_grouped_most_frequent_first():
    rows = ([{"status": "failed", "stage": "preprocess", "error": f"audio file not found: /data/clip{i}.wav"}
             for i in range(3)]
            + [{"status": "failed", "stage": "infer", "error": "openai_api: HTTP 400"}]
            + [{"status": "failed", "stage": "preprocess", "error": f"odd error {chr(97 + i)}"} for i in range(6)]
            + [{"status": "ok"}, {"status": "skipped", "stage": "preprocess", "error": "not English"}])
    causes, others = failure_causes((SampleRow.model_validate({"id": str(i), **r}) for i, r in enumerate(rows)), top=5)
    assert causes[0] == ("preprocess: audio file not found: …", 3)
    assert len(causes) == 5 and others == 3  # 7 causes of one row each, 4 of them shown
    assert all(n == 1 for _, n in causes[1:])


def test_a_run_prints_its_failure_causes_grouped_and_records_its_backend_arguments(tmp_path, scripted_registry):
    folder = tmp_path / "data"
    (folder / "audio").mkdir(parents=True)
    shutil.copy(SAMPLE_DIR / "audio" / "spk1_snt1.wav", folder / "audio" / "good.wav")
    (folder / "audio" / "corrupt.wav").write_text("not audio", encoding="utf-8")
    rows = [{"id": "good", "audio": "audio/good.wav", "text": "the child almost hurt the small dog", "lang": "en"},
            {"id": "corrupt", "audio": "audio/corrupt.wav", "text": "x", "lang": "en"},
            *({"id": f"gone{i}", "audio": f"audio/gone{i}.wav", "text": "x", "lang": "en"} for i in range(3))]
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    done = _cli("run", "--dataset", str(manifest), "--model", "scripted", "--registry-path", scripted_registry["path"],
                "--model-args", "default_answer=the child", "--cache-dir", str(tmp_path / "cache"),
                "--output", str(tmp_path / "out"), "--max-fail-rate", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    causes = [line.strip() for line in done.stdout.splitlines() if " × " in line]
    assert len(causes) == 2 and causes[0].startswith("3 × preprocess:") and causes[1].startswith("1 × preprocess:")
    assert "Traceback" not in done.stdout + done.stderr
    summary = json.loads(next((tmp_path / "out").rglob("summary.json")).read_text(encoding="utf-8"))
    assert summary["model"]["args"]["default_answer"] == "the child"
    assert summary["options"]["model_args"] == {"default_answer": "the child"}


def test_backend_arguments_are_validated_against_what_the_backend_takes(tmp_path):
    result = runner.invoke(app, ["run", "--model-args", "beam=5", "--dry-run"])
    assert result.exit_code == 2
    line = _one_error_line(result.output)
    assert "takes no argument beam" in line and "compute_type, cpu_threads, device" in line
    result = runner.invoke(app, ["run", "-A", "cpu_threads=many", "--dry-run"])
    assert result.exit_code == 2 and "takes int values" in _one_error_line(result.output)
    result = runner.invoke(app, ["run", "--model", "openai-transcribe", "--device", "cuda", "--dry-run"])
    assert result.exit_code == 2 and "takes no argument device" in _one_error_line(result.output)
    result = runner.invoke(app, ["run", "--batch-size", "0", "--dry-run"])
    assert result.exit_code == 2 and "--batch-size must be at least 1" in _one_error_line(result.output)
    result = runner.invoke(app, ["run", "-A", "compute_type=float32", "--batch-size", "4", "--dry-run"])
    assert result.exit_code == 0, result.output
    args = json.loads(result.output)["model"]["args"]
    assert args["compute_type"] == "float32" and args["batch_size"] == 4


def test_device_cuda_is_refused_here_before_any_work(tmp_path):
    ctranslate2 = pytest.importorskip("ctranslate2")
    if ctranslate2.get_cuda_device_count():
        pytest.skip("this machine has a CUDA device")
    result = runner.invoke(app, ["run", "--device", "cuda", "--cache-dir", str(tmp_path), "-o", str(tmp_path)])
    assert result.exit_code == 2
    line = _one_error_line(result.output)
    assert "'cuda'" in line and "no CUDA device" in line and "--device cpu" in line
    assert not (tmp_path / "datasets").exists()


@pytest.mark.parametrize("kind", ["datasets", "models", "prompts", "tasks"])
def test_list_json_parses(kind):
    result = runner.invoke(app, ["list", kind, "--json"])
    assert result.exit_code == 0, result.output
    entries = json.loads(result.output)
    assert [e["name"] for e in entries] == sorted(getattr(load_registry(), kind))
    assert all(e["description"] for e in entries)


COMMANDS = [[], ["run"], ["retry"], ["list"], ["view"], ["suite"], ["publish"], ["watch"], ["server"],
            ["server", "start"], ["server", "status"], ["server", "stop"], ["serve"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "audio-evals")
def test_help_reads_at_80_columns(command):
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    _assert_plain_and_narrow(result.output)


def test_run_help_at_80_columns_in_a_terminal_of_80():
    done = _cli("run", "--help", env={"COLUMNS": "80"})
    assert done.returncode == 0
    _assert_plain_and_narrow(done.stdout)
    assert "--model-args KEY=VALUE" in done.stdout and "--device" in done.stdout and "--batch-size" in done.stdout


def _assert_plain_and_narrow(text: str) -> None:
    wide = [line for line in text.splitlines() if len(line) > 80]
    assert not wide, wide
    for markup in ("[bold", "[/", "``", "`", "…", "╭", "\x1b["):
        assert markup not in text, (markup, text)
