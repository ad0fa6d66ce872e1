"""The embedded default end to end: real Whisper tiny.en on the real sample clips, real Prefect."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from audio_evals import storage
from audio_evals.pipeline.infer import model_calls

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def first_and_second_run(prefect_api, tmp_path_factory):
    from audio_evals import evaluate

    tmp = tmp_path_factory.mktemp("real")
    params = dict(dataset="speech-sample", model="whisper-tiny.en", cache_dir=str(tmp / "cache"), output=str(tmp / "results"))
    calls0 = model_calls()
    first = evaluate(**params)
    calls1 = model_calls()
    second = evaluate(**params)
    return first, second, calls1 - calls0, model_calls() - calls1


def test_english_wer_in_sane_range_and_files_parse(first_and_second_run):
    first, _, calls, _ = first_and_second_run
    wer = next(m for m in first.metrics if m.name == "wer").model_dump(mode="json")
    # Measured here: 3.76 % (Whisper English normaliser, corpus level, beam 5).
    assert 0.5 < wer["value"] < 10.0
    assert wer["n"] == 26 and wer["ci95"][0] <= wer["value"] <= wer["ci95"][1]
    assert calls == 26  # the English-only model is never sent the 2 Mandarin clips
    rows = list(storage.read_jsonl(first.paths["samples"]))
    assert len(rows) == 28
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert len(skipped) == 2 and all("supports en only" in r["error"] for r in skipped)
    summary = json.loads(open(first.paths["summary"], encoding="utf-8").read())
    assert summary["model"]["fingerprint"]["weights_sha256"] and summary["rtfx"] > 1
    assert set(summary["timings_s"]) >= {"download", "preprocess", "infer", "score", "total"}
    report = open(first.paths["report"], encoding="utf-8").read()
    assert "| task | dataset | measure | performance | eval_cli | note |" in report.replace("  ", " ")


def test_second_identical_run_makes_no_model_calls(first_and_second_run):
    first, second, _, calls = first_and_second_run
    assert calls == 0
    assert second.shards.cached == second.shards.total and second.shards.computed == 0
    assert [m.value for m in second.metrics] == [m.value for m in first.metrics]
    assert second.run_id != first.run_id


def test_reference_tool_command_form_runs(tmp_path):
    """``python audio_evals/main.py --dataset ... --model ...`` in a fresh process (ephemeral API)."""
    out = subprocess.run(
        [sys.executable, "audio_evals/main.py", "--dataset", "speech-sample-en", "--model", "whisper-tiny.en",
         "--limit", "3", "--output", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1],
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "wer" in out.stdout and "summary:" in out.stdout
    summaries = list((tmp_path / "results" / "whisper-tiny.en" / "speech-sample-en").glob("*/summary.json"))
    assert len(summaries) == 1
    assert json.loads(summaries[0].read_text())["counts"]["samples"] == 3
