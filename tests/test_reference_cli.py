"""The reference tool's command line: each of its options works with the same meaning, or says
in one line why it has nothing to do here.

Runs go through the real ``evaluate`` flow under the session's Prefect API with the ``scripted``
backend, whose calls file counts every sample sent to the model.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audio_evals import storage
from audio_evals.pipeline.infer import model_calls
from cli.main import app
from cli.reference import normalise_argv, save_target
from tests.conftest import calls_made

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _evaluate(tmp_path, registry, **kwargs):
    from audio_evals import evaluate

    params = dict(model="scripted", cache_dir=str(tmp_path / "cache"), output=str(tmp_path / "results"),
                  registry_paths=[registry["path"]], shard_size=5, retry_delay_s=0.0, dataset="speech-sample-en")
    params.update(kwargs)
    return evaluate(**params)


def _rows(summary_or_path) -> dict[str, dict]:
    path = summary_or_path if isinstance(summary_or_path, (str, Path)) else summary_or_path.paths["samples"]
    return {r["id"]: r for r in storage.read_jsonl(str(path))}


def _english(sample_manifest) -> list[dict]:
    return [r for r in sample_manifest if r["lang"] == "en"]


def _summary_under(folder: Path) -> dict:
    (path,) = folder.rglob("summary.json")
    return storage.read_json(str(path))


def test_argv_in_click_spelling():
    assert normalise_argv(["--dataset", "d", "-r", "--post_process", "json_content", "x", "--use_model_pool"]) == [
        "--dataset", "d", "-r", "latest", "--post_process", "json_content", "--post_process", "x",
        "--use_model_pool", "on"]
    assert normalise_argv(["--resume", "old.jsonl", "--use_model_pool", "off"]) == [
        "--resume", "old.jsonl", "--use_model_pool", "off"]


def test_save_names_a_file_as_in_the_reference():
    samples = "results/m/d/20260101T000000Z-abcd/samples.jsonl"
    assert save_target("out/x.jsonl", samples) == "out/x.jsonl"
    assert save_target("first-try", samples) == "results/m/d/first-try.jsonl"  # reference: res/<m>/<d>/<name>.jsonl


def test_inf_file_rescores_an_earlier_run_with_zero_model_calls(prefect_api, tmp_path, scripted_registry,
                                                                 sample_manifest):
    english = _english(sample_manifest)
    answers = {r["id"]: r["text"] for r in english}
    answers[english[0]["id"]] = "completely different words"
    scripted_registry["responses"].write_text(json.dumps(answers), encoding="utf-8")
    first = _evaluate(tmp_path, scripted_registry)
    calls, in_process = calls_made(scripted_registry["calls"]), model_calls()
    scripted_registry["responses"].write_text("{}", encoding="utf-8")  # a model call now would answer nothing

    # A new cache too: nothing comes from the shard cache, every reply from the file.
    result = runner.invoke(app, ["run", "--dataset", "speech-sample-en", "--model", "scripted",
                                 "--registry-path", scripted_registry["path"], "--inf_file", first.paths["samples"],
                                 "--cache-dir", str(tmp_path / "other-cache"), "--output", str(tmp_path / "rescored")])
    assert result.exit_code == 0, result.output
    assert calls_made(scripted_registry["calls"]) == calls and model_calls() == in_process
    assert "(no model calls)" in result.output
    again = _summary_under(tmp_path / "rescored")
    assert [(m["name"], m["value"], m["n"]) for m in again["metrics"]] == [
        (m.name, m.value, m.n) for m in first.metrics]
    assert first.metrics[0].value > 0
    rescored = _rows(next((tmp_path / "rescored").rglob("samples.jsonl")))
    assert {i: r["hypothesis"] for i, r in rescored.items()} == {i: r["hypothesis"] for i, r in _rows(first).items()}
    assert again["model"]["fingerprint"]["backend"] == "inf_file"
    assert again["options"]["inf_file"] == first.paths["samples"]
    assert again["shards"]["from_inf_file"] == again["shards"]["total"] and again["shards"]["computed"] == 0


def test_inf_file_reads_the_reference_record_file(prefect_api, tmp_path, scripted_registry, sample_manifest):
    """The reference's --save jsonl: prompt/inference/error records keyed by row position."""
    english = _english(sample_manifest)
    records = []
    for position, row in enumerate(english):
        records.append({"type": "prompt", "id": position, "data": {"content": [{"role": "user"}]}})
        if position == 1:
            records.append({"type": "error", "id": position,
                            "data": {"info": "Traceback (most recent call last):\nRuntimeError: CUDA out of memory"}})
        else:
            records.append({"type": "inference", "id": position,
                            "data": {"content": json.dumps({"content": row["text"]})}})
    records.append({"type": "inference", "id": 999, "data": {"content": "a row past this run's"}})
    path = tmp_path / "reference.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    summary = _evaluate(tmp_path, scripted_registry, inf_file=str(path), post_process=["json_content"])
    rows = _rows(summary)
    assert calls_made(scripted_registry["calls"]) == []
    assert rows[english[1]["id"]]["status"] == "failed"
    assert rows[english[1]["id"]]["error"] == "reference run failed: RuntimeError: CUDA out of memory"
    assert all(rows[r["id"]]["status"] == "ok" and rows[r["id"]]["value"] == 0.0 for i, r in enumerate(english) if i != 1)
    wer = summary.metrics[0]
    assert (wer.value, wer.n, wer.failed) == (0.0, 25, 1)


def test_rand_scores_a_seeded_subset_recorded_in_the_summary(prefect_api, tmp_path, scripted_registry,
                                                             sample_manifest):
    english = [r["id"] for r in _english(sample_manifest)]
    args = ["run", "--dataset", "speech-sample-en", "--model", "scripted", "--registry-path", scripted_registry["path"],
            "--cache-dir", str(tmp_path / "cache"), "--rand", "5", "--seed", "3"]
    result = runner.invoke(app, [*args, "--output", str(tmp_path / "first")])
    assert result.exit_code == 0, result.output
    summary = _summary_under(tmp_path / "first")
    drawn = set(_rows(next((tmp_path / "first").rglob("samples.jsonl"))))
    assert drawn == {english[i] for i in random.Random(3).sample(range(len(english)), 5)}
    assert summary["counts"]["samples"] == 5 and (summary["options"]["rand"], summary["options"]["seed"]) == (5, 3)

    assert runner.invoke(app, [*args, "--output", str(tmp_path / "again")]).exit_code == 0
    assert set(_rows(next((tmp_path / "again").rglob("samples.jsonl")))) == drawn  # same command, same samples
    other = _evaluate(tmp_path, scripted_registry, rand=5, seed=4)
    assert set(_rows(other)) != drawn and len(_rows(other)) == 5


def test_drop_above_wer_leaves_out_runaway_replies_and_counts_them(prefect_api, tmp_path, scripted_registry,
                                                                 sample_manifest):
    english = _english(sample_manifest)
    victim = english[2]
    answers = {r["id"]: r["text"] for r in english}
    answers[victim["id"]] = " ".join([victim["text"]] * 12)  # eleven insertions per reference word: WER 1100
    scripted_registry["responses"].write_text(json.dumps(answers), encoding="utf-8")

    plain = _evaluate(tmp_path, scripted_registry)
    assert plain.metrics[0].value > 0 and plain.metrics[0].n == 26 and plain.counts.dropped == 0
    assert _rows(plain)[victim["id"]]["value"] == pytest.approx(1100.0)

    filtered = _evaluate(tmp_path, scripted_registry, drop_above_wer=1000)
    row = _rows(filtered)[victim["id"]]
    assert row["status"] == "dropped" and "wer 1100.0 > 1000" in row["error"] and row["value"] == pytest.approx(1100.0)
    assert (filtered.metrics[0].value, filtered.metrics[0].n) == (0.0, 25)
    assert filtered.counts.dropped == 1 and filtered.counts.scored == 25
    # The unfiltered figure and the dropped count stay beside the filtered headline, and the report says so.
    assert (filtered.metrics[0].dropped, filtered.metrics[0].unfiltered) == (1, plain.metrics[0].value)
    assert plain.metrics[0].dropped is None and plain.metrics[0].unfiltered is None
    report = Path(filtered.paths["report"]).read_text(encoding="utf-8")
    assert f"Filtered abnormal samples (WER > 1000); dropped 1, unfiltered {plain.metrics[0].value:.2f}" in report
    assert filtered.options["drop_above_wer"] == 1000
    assert _evaluate(tmp_path, scripted_registry, drop_above_wer=1200).counts.dropped == 0  # exceeds, not reaches


@pytest.mark.parametrize("args, message", [
    (["--evaluator", "em"], "--evaluator 'em' has no equivalent here"),
    (["--post_process", "first_option"], "unknown post-processing step 'first_option' (known: json_content)"),
    (["--use_model_pool", "sometimes"], "--use_model_pool takes one of auto, on, off"),
    (["--agg", "wer"], "--agg 'wer': not selectable here"),
    (["--dataset_ref_col", "sentence"], "--dataset_ref_col 'sentence': not supported"),
])
def test_reference_options_without_an_equivalent_say_so_in_one_line(args, message):
    result = runner.invoke(app, ["run", "--dataset", "speech-sample-en", *args])
    assert result.exit_code == 2 and message in result.output.replace("\n", " ")
    assert len(result.output.strip().splitlines()) <= 2 and "Traceback" not in result.output  # one line, wrapped


def test_the_reference_form_with_its_options(prefect_api, tmp_path, scripted_registry, sample_manifest):
    """``python audio_evals/main.py`` as its published commands spell the options."""
    from prefect.settings import PREFECT_API_URL

    command = [sys.executable, "audio_evals/main.py", "--dataset", "speech-sample-en", "--model", "scripted",
               "--registry_path", scripted_registry["path"], "-r", "--use_model_pool", "--workers", "2", "--two_phase",
               "--post_process", "json_content", "--evaluator", "wer", "--limit", "10", "--rand", "4",
               "--save", str(tmp_path / "saved" / "run.jsonl"),
               "--cache-dir", str(tmp_path / "cache"), "--output", str(tmp_path / "results")]
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "note: -r/--resume: finished shards are always reused from the cache" in done.stdout
    assert "note: --use_model_pool: no model pool here" in done.stdout
    assert "note: --two_phase: inference and scoring are separate stages" in done.stdout
    saved = list(storage.read_jsonl(str(tmp_path / "saved" / "run.jsonl")))
    overall = storage.read_json(str(tmp_path / "saved" / "run-overall.json"))
    assert len(saved) == 4 and overall["counts"]["samples"] == 4
    assert overall["options"]["post_process"] == ["json_content"] and overall["options"]["rand"] == 4
    first_ten = {r["id"] for r in _english(sample_manifest)[:10]}
    assert {r["id"] for r in saved} <= first_ten  # --rand draws after --limit, as in the reference
