"""Shared fixtures: one real Prefect API for the session, isolated caches per test."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")

# Test-only backends live in tests/backends/, outside the installed package: named through the
# environment (audio_evals/plugins.py), importable by every subprocess a test starts.
ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("AUDIO_EVALS_EXTRA_BACKENDS", "tests.backends.scripted")
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

from audio_evals.paths import ASSETS_DIR  # noqa: E402

# Servers shared by the whole session: defined here once, so every module gets the same instance.
from tests.openai_server import openai_server, openai_server_session  # noqa: E402, F401
from tests.s3_server import moto_server, s3_bucket  # noqa: E402, F401

SAMPLE_DIR = Path(ASSETS_DIR) / "speech-sample"


def _prefect_console_handlers() -> list:
    import logging

    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in list(logging.root.manager.loggerDict))]
    return [h for lg in loggers for h in getattr(lg, "handlers", []) if isinstance(h, PrefectConsoleHandler)]


@pytest.fixture(autouse=True)
def _prefect_console_on_stderr():
    """Prefect's console handlers keep the stream they were built with; one built inside a
    ``CliRunner`` invocation keeps that run's stream after it is closed, and every later log line
    becomes a "Logging error". Point them back at the process's stderr around each test."""
    def reset() -> None:
        for handler in _prefect_console_handlers():
            if getattr(handler.stream, "closed", False):
                handler.stream = handler.console.file = sys.__stderr__  # setStream would flush the closed one

    reset()
    yield
    reset()


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory):
    """A real Prefect API (test harness server on a temporary database) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture
def sample_manifest() -> list[dict]:
    with open(SAMPLE_DIR / "manifest.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture
def scripted_registry(tmp_path, sample_manifest) -> dict:
    """A registry folder with a ``scripted`` model answering every sample with its reference.

    Returns the folder and the files a test flips: ``faults`` (fault switches) and ``calls``
    (one line per sample sent to the model).
    """
    folder = tmp_path / "registry"
    folder.mkdir()
    responses = tmp_path / "responses.json"
    responses.write_text(json.dumps({r["id"]: r["text"] for r in sample_manifest}), encoding="utf-8")
    faults = tmp_path / "faults.json"
    calls = tmp_path / "calls.txt"
    (folder / "models.yaml").write_text(
        "models:\n"
        "  scripted:\n"
        "    backend: scripted\n"
        f"    args: {{responses_file: {json.dumps(str(responses))}, faults_file: {json.dumps(str(faults))},"
        f" calls_file: {json.dumps(str(calls))}}}\n",
        encoding="utf-8",
    )
    return {"path": str(folder), "faults": faults, "calls": calls, "responses": responses}


def calls_made(calls_file: Path) -> list[str]:
    return calls_file.read_text(encoding="utf-8").split() if calls_file.exists() else []


def slow_scripted(registry: dict, delay_s: float, **extra: str) -> None:
    """Give the scripted model a per-sample delay (and extra args) in its registry entry."""
    models = Path(registry["path"]) / "models.yaml"
    args = "".join(f"{k}: {json.dumps(v)}, " for k, v in extra.items())
    models.write_text(models.read_text().replace("calls_file:", f"delay_s: {delay_s}, {args}calls_file:"),
                      encoding="utf-8")


def scripted_run_command(registry: str, tmp_path: Path, tag: str) -> list[str]:
    """``audio-evals run`` of the scripted model on the English sample, 4 samples a shard, cache and
    results under ``tmp_path`` (suffixed ``tag``); run with ``cwd`` at the repository root."""
    return [sys.executable, "-m", "cli", "run", "--dataset", "speech-sample-en", "--model", "scripted",
            "--registry-path", registry, "--shard-size", "4", "--cache-dir", str(tmp_path / f"cache-{tag}"),
            "--output", str(tmp_path / f"results-{tag}")]


@pytest.fixture
def bad_manifest(tmp_path) -> Path:
    """A manifest with one good clip, a missing file, a corrupt file and an empty transcript."""
    folder = tmp_path / "bad"
    (folder / "audio").mkdir(parents=True)
    shutil.copy(SAMPLE_DIR / "audio" / "spk1_snt1.wav", folder / "audio" / "good.wav")
    shutil.copy(SAMPLE_DIR / "audio" / "spk1_snt2.wav", folder / "audio" / "silent_ref.wav")
    (folder / "audio" / "corrupt.wav").write_text("this is not audio", encoding="utf-8")
    rows = [
        {"id": "good", "audio": "audio/good.wav", "text": "THE CHILD ALMOST HURT THE SMALL DOG", "lang": "en"},
        {"id": "missing", "audio": "audio/missing.wav", "text": "anything", "lang": "en"},
        {"id": "corrupt", "audio": "audio/corrupt.wav", "text": "anything", "lang": "en"},
        {"id": "empty-transcript", "audio": "audio/silent_ref.wav", "text": "", "lang": "en"},
    ]
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return manifest
