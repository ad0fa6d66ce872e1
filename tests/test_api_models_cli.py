"""``audio-evals run`` with the shipped OpenAI-compatible model entries, pointed at a local server.

The server (tests/openai_server.py) answers with the embedded Whisper, so the WER is real; the
planted API key must not reach any file the run writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
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


def _endpoint_registry(folder: Path, base_url: str, max_retries: int) -> str:
    folder.mkdir()
    (folder / "models.yaml").write_text(
        "models:\n  endpoint:\n    backend: openai_api\n"
        f"    args: {{base_url: {base_url}, api_key_env: OPENAI_API_KEY, model: whisper-1, mode: transcriptions,"
        f" max_concurrency: 4, max_retries: {max_retries}}}\n", encoding="utf-8")
    return str(folder)


def test_flaky_endpoint_recovers_and_a_dead_one_leaves_failed_shards_listed(prefect_api, openai_server, monkeypatch,
                                                                           tmp_path):
    from audio_evals import evaluate

    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    params = dict(dataset="speech-sample-en", model="endpoint", limit=6, shard_size=3, shard_retries=1,
                  retry_delay_s=0.0, output=str(tmp_path / "results"))
    openai_server.fail_next(3, 500)
    openai_server.fail_next(1, 429, retry_after="1")
    flaky = evaluate(**params, cache_dir=str(tmp_path / "cache-a"),
                     registry_paths=[_endpoint_registry(tmp_path / "a", openai_server.base_url, max_retries=4)])
    assert flaky.failed_shards == [] and flaky.counts.failed == 0
    assert openai_server.request_count == 6 + 4  # every fault cost one extra request, nothing more

    openai_server.fail_next(10_000, 503)  # down for good
    dead = evaluate(**params, cache_dir=str(tmp_path / "cache-b"),
                    registry_paths=[_endpoint_registry(tmp_path / "b", openai_server.base_url, max_retries=1)])
    assert [s.index for s in dead.failed_shards] == [0, 1] and dead.counts.failed == 6
    assert all("503" in s.error for s in dead.failed_shards)
    assert {m.name: m.failed for m in dead.metrics} == {"wer": 6, "wer-oasr": 6}  # the secondary counts them too


def test_persistent_rate_limit_costs_the_client_retry_budget_per_request(prefect_api, openai_server, monkeypatch,
                                                                          tmp_path):
    """One owner of retries: a 429 that never ends costs max_retries + 1 requests per sample, not that times
    the shard retries (the client already retried each request), and the shards are listed as failed."""
    from audio_evals import evaluate

    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    openai_server.fail_next(10_000, 429, retry_after="0")
    run = evaluate(dataset="speech-sample-en", model="endpoint", limit=6, shard_size=3, shard_retries=2,
                   retry_delay_s=0.0, output=str(tmp_path / "results"), cache_dir=str(tmp_path / "cache"),
                   registry_paths=[_endpoint_registry(tmp_path / "r", openai_server.base_url, max_retries=2)])
    assert [s.index for s in run.failed_shards] == [0, 1]
    assert all("429" in s.error for s in run.failed_shards)
    assert openai_server.request_count == 6 * (2 + 1)


def test_answered_requests_of_a_failed_shard_are_not_sent_again(prefect_api, openai_server, monkeypatch, tmp_path):
    """A shard that failed after the client's retries keeps its answers: running again sends only the rest."""
    from audio_evals import evaluate

    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    params = dict(dataset="speech-sample-en", model="endpoint", limit=3, shard_size=3, retry_delay_s=0.0,
                  output=str(tmp_path / "results"), cache_dir=str(tmp_path / "cache"),
                  registry_paths=[_endpoint_registry(tmp_path / "r", openai_server.base_url, max_retries=0)])
    openai_server.fail_next(1, 429)
    first = evaluate(**params)
    assert [s.index for s in first.failed_shards] == [0] and openai_server.request_count == 3
    second = evaluate(**params)
    assert second.failed_shards == [] and second.counts.failed == 0
    assert openai_server.request_count == 3 + 1  # only the sample the 429 hit
