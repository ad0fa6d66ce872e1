"""``audio-evals run`` with the shipped OpenAI-compatible model entries, pointed at a local server.

The server (tests/openai_server.py) answers with the embedded Whisper, so the WER is real; the
planted API key must not reach any file the run writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tests.openai_server import API_KEY

pytestmark = pytest.mark.slow
runner = CliRunner()


@pytest.mark.parametrize("model", ["openai-transcribe", "openai-audio-chat"])
def test_run_with_openai_compatible_endpoint(model, prefect_api, openai_server, monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    out = tmp_path / "results"
    result = runner.invoke(app, ["run", "--dataset", "speech-sample-en", "--model", model, "--shard-size", "8",
                                 "--output", str(out), "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    [summary_file] = (out / model / "speech-sample-en").glob("*/summary.json")
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    wer = next(m for m in summary["metrics"] if m["name"] == "wer")
    assert wer["n"] == 26 and 0.5 < wer["value"] < 10.0
    assert openai_server.request_count == 26
    chat = model == "openai-audio-chat"
    assert all(("messages" in body) == chat for body in openai_server.bodies)
    written = [p for p in Path(tmp_path).rglob("*") if p.is_file()]
    assert written and not [p for p in written if API_KEY.encode() in p.read_bytes()]
    assert API_KEY not in result.output
