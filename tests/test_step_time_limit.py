"""Step-Audio-R1.1's per-sample time limit (180 s in its entry, as the reference gives up on a
sample) through a whole run against a real slow OpenAI-compatible server on loopback
(tests/openai_server.py, which answers with the embedded Whisper): the entry's settings with
``base_url`` to that server and a 10 s limit; two requests held 25 s (the others take about a second each).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from audio_evals.records import TIME_LIMIT_ERROR
from audio_evals.registry import load_registry
from audio_evals.report.markdown import render_run_report
from tests.openai_server import API_KEY

pytestmark = pytest.mark.slow


def step_against(folder: Path, base_url: str) -> str:
    """A registry folder with ``step-limit``: the Step entry's request settings, connecting to ``base_url``."""
    step = load_registry().models["step-audio-r1.1"]
    args = {k: v for k, v in step.args.items() if k != "serve"}
    args.update(base_url=base_url, model="Step-Audio-R1.1", api_key_env="OPENAI_API_KEY", timeout_s=10.0)
    folder.mkdir()
    entry = {"backend": step.backend, "args": args, "generation": step.generation}
    (folder / "models.yaml").write_text(yaml.safe_dump({"models": {"step-limit": entry}}), encoding="utf-8")
    return str(folder)


def test_requests_past_the_time_limit_fail_their_samples_and_are_counted_beside_the_figure(
        prefect_api, openai_server, monkeypatch, tmp_path):
    from audio_evals import evaluate

    assert load_registry().models["step-audio-r1.1"].args["timeout_fails_sample"] is True
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    openai_server.slow_next(2, delay_s=25.0)
    run = evaluate(dataset="speech-sample-en", model="step-limit", limit=6, shard_size=6, shard_retries=1,
                   retry_delay_s=0.0, output=str(tmp_path / "results"), cache_dir=str(tmp_path / "cache"),
                   registry_paths=[step_against(tmp_path / "registry", openai_server.base_url)])
    assert run.failed_shards == [], "a request past the limit failed its shard"
    assert openai_server.request_count == 6, "a sample past the limit was sent again"
    assert run.counts.failed == 2 and run.counts.scored == 4
    wer = next(m for m in run.metrics if m.name == "wer")
    assert wer.n == 4 and wer.failed == 2 and wer.timed_out == 2 and wer.value is not None
    assert "2 past the per-sample time limit, left out" in render_run_report(run)
    [rows_file] = Path(tmp_path / "results").rglob("samples.jsonl")
    failed = [r for r in map(yaml.safe_load, rows_file.read_text().splitlines()) if r["status"] == "failed"]
    assert len(failed) == 2 and all(r["error"].startswith(f"{TIME_LIMIT_ERROR} (10 s)") for r in failed)
