"""Planted secrets (an API key given with --param, credentials inside the endpoint URL) are never written.

The run goes through the real CLI against the local OpenAI-compatible server, under the session's
Prefect API; then results, cache, console output and the Prefect database (flow-run parameters and
names, states, logs, artifacts, events) are searched for each planted value.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audio_evals.redaction import MARK, redact, redact_strings, redact_text, secret_name
from tests.openai_server import API_KEY

ROOT = Path(__file__).resolve().parents[1]
URL_USER, URL_PASSWORD = "planted-user", "planted-URL-pass-77"


def _prefect_db() -> str:
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    return PREFECT_SERVER_DATABASE_CONNECTION_URL.value().split(":///", 1)[1]


def wait_for_events_to_settle(timeout_s: float = 20) -> int:
    """The server stores events in batches after the run: wait until their count stops growing."""
    counts: list[int] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and (len(counts) < 3 or len(set(counts[-3:])) > 1):
        with sqlite3.connect(_prefect_db()) as db:
            counts.append(db.execute("SELECT count(*) FROM events").fetchone()[0])
        time.sleep(1)
    return counts[-1]


def prefect_db_hits(needle: str) -> dict[str, int]:
    """Rows of each table of the session's Prefect database that contain ``needle``."""
    path = _prefect_db()
    hits: dict[str, int] = {}
    with sqlite3.connect(path) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            rows = db.execute(f'SELECT * FROM "{table}"').fetchall()
            hits[table] = sum(any(needle in (v.decode(errors="replace") if isinstance(v, bytes) else str(v))
                                  for v in row) for row in rows)
    return {table: n for table, n in hits.items() if n}


def file_hits(folder: Path, needle: str) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


@pytest.mark.slow
def test_an_api_key_param_and_url_credentials_are_never_written(prefect_api, openai_server, tmp_path):
    from prefect.settings import PREFECT_API_URL

    host = openai_server.base_url.removeprefix("http://")
    env = {**{k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}, "PREFECT_API_URL": PREFECT_API_URL.value(),
           "OPENAI_BASE_URL": f"http://{URL_USER}:{URL_PASSWORD}@{host}"}
    openai_server.fail_next(1, 400)  # a careless server echoes the key in an error body
    command = [sys.executable, "-m", "cli", "run", "--dataset", "speech-sample-en", "--model", "openai-transcribe",
               "--limit", "4", "--shard-size", "2", "--param", f"api_key={API_KEY}", "--param", "temperature=0",
               "--output", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--verbose"]
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    console = run.stdout + run.stderr
    assert run.returncode == 0, console
    (summary_file,) = (tmp_path / "results").rglob("summary.json")
    summary = json.loads(summary_file.read_text())
    assert summary["counts"]["scored"] == 3 and summary["counts"]["failed"] == 1  # the 400, recorded scrubbed
    assert summary["options"]["generation"] == {"api_key": MARK, "temperature": 0}
    assert summary["model"]["fingerprint"]["base_url"] == f"http://{MARK}@{host}"
    # The key reached the server as the Authorization header (it answers 401 otherwise), never as a form field.
    assert openai_server.request_count == 4 and not [b for b in openai_server.bodies if API_KEY in json.dumps(b)]

    assert wait_for_events_to_settle() > 0
    found = {}
    for needle in (API_KEY, URL_PASSWORD, f"{URL_USER}:"):
        found[needle] = {"results": file_hits(tmp_path / "results", needle), "cache": file_hits(tmp_path / "cache", needle),
                         "console": console.count(needle), "prefect": prefect_db_hits(needle)}
    assert all(not f["results"] and not f["cache"] and not f["console"] and not f["prefect"] for f in found.values()), found
    assert prefect_db_hits("speech-sample-en") and file_hits(tmp_path / "results", MARK)  # the search does find things

    from typer.testing import CliRunner

    from cli.main import app

    retry = CliRunner().invoke(app, ["retry", str(summary_file.parent)])  # "***" must never be sent as the key
    assert retry.exit_code == 2 and "was given secrets, which are never recorded" in retry.output


def test_dry_run_prints_no_secret(monkeypatch):
    from typer.testing import CliRunner

    from cli.main import app

    result = CliRunner().invoke(app, ["run", "--model", "openai-transcribe", "--param", "api_key=sk-dry-run-secret",
                                      "--dry-run"])
    assert result.exit_code == 0 and "sk-dry-run-secret" not in result.output and MARK in result.output


@pytest.mark.parametrize("name, secret", [
    ("api_key", True), ("apiKey", True), ("APIKEY", True), ("HF_TOKEN", True), ("access_token", True),
    ("client_secret", True), ("db_password", True), ("passwd", True), ("X-Api-Key", True),
    ("api_key_env", False), ("max_tokens", False), ("max_new_tokens", False), ("keywords", False),
    ("temperature", False), ("tokenizer", False),
])
def test_which_names_are_secret(name, secret):
    assert secret_name(name) is secret


def test_redaction_masks_values_and_url_credentials_not_structure():
    value = {"generation": {"api_key": "sk-1", "max_tokens": 5, "token": None}, "api_key_env": "OPENAI_API_KEY",
             "base_url": "https://u:p@host/v1", "urls": ["s3://bucket/key@1", "see http://tok@h.example/x"]}
    assert redact(value) == {"generation": {"api_key": MARK, "max_tokens": 5, "token": None},
                             "api_key_env": "OPENAI_API_KEY", "base_url": f"https://{MARK}@host/v1",
                             "urls": ["s3://bucket/key@1", f"see http://{MARK}@h.example/x"]}
    assert redact_text("curl https://user:p%40ss@api.example.com/v1 -d x") == f"curl https://{MARK}@api.example.com/v1 -d x"
    record = {"identity": {"key": "b05d12bc"}, "audio": "https://u:p@host/a.wav"}  # a record, not parameters
    assert redact_strings(record) == {"identity": {"key": "b05d12bc"}, "audio": f"https://{MARK}@host/a.wav"}
