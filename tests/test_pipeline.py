"""The whole evaluate flow under a real Prefect API: sharding, caching, failures, bad input.

Uses the deterministic ``scripted`` backend (canned answers and fault switches) so these tests
prove orchestration behaviour fast; tests/test_real_model.py runs the real Whisper model.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from audio_evals import storage
from tests.conftest import calls_made


def _evaluate(tmp_path, registry, **kwargs):
    from audio_evals import evaluate

    params = dict(model="scripted", cache_dir=str(tmp_path / "cache"), output=str(tmp_path / "results"),
                  registry_paths=[registry["path"]], shard_size=5, retry_delay_s=0.0)
    params.update(kwargs)
    return evaluate(**params)


def _rows(summary):
    return {r["id"]: r for r in storage.read_jsonl(summary.paths["samples"])}


def test_scripted_run_scores_every_sample(prefect_api, tmp_path, scripted_registry):
    summary = _evaluate(tmp_path, scripted_registry, dataset="speech-sample")
    metrics = {m.name: m for m in summary.metrics}
    # The scripted model answers with the reference: zero errors, every clip scored.
    assert metrics["wer"].value == 0.0 and metrics["wer"].n == 26
    assert metrics["cer"].value == 0.0 and metrics["cer"].n == 2
    # The Open ASR Leaderboard's WER stands beside the English headline (not beside CER), in the report too.
    assert [(m.name, m.role) for m in summary.metrics] == [("cer", "headline"), ("wer", "headline"),
                                                           ("wer-oasr", "secondary")]
    assert metrics["wer-oasr"].value == 0.0 and metrics["wer-oasr"].n == 26
    report = Path(summary.paths["report"]).read_text(encoding="utf-8")
    assert "| asr(en) | speech-sample | wer-oasr⬇️ | 0.00 | [1] | secondary measure, beside the headline;" in report
    assert "Open ASR Leaderboard protocol" in report
    assert summary.counts.samples == 28 and summary.counts.failed == 0
    assert summary.shards.model_dump(include={"total", "computed", "cached", "failed"}) == {
        "total": 6, "computed": 6, "cached": 0, "failed": 0}
    assert len(_rows(summary)) == 28
    saved = storage.read_json(summary.paths["summary"])
    assert saved["dataset"]["revision"].startswith("sha256:")
    assert saved["code"]["version"] and saved["eval_cli"].startswith("python audio_evals/main.py --dataset speech-sample")


def test_failed_shard_leaves_others_and_rerun_computes_only_it(prefect_api, tmp_path, scripted_registry, sample_manifest):
    english = [r["id"] for r in sample_manifest if r["lang"] == "en"]
    victim = english[7]  # shard 1 with shard_size 5 (ids in manifest order, zh rows included)
    scripted_registry["faults"].write_text(json.dumps({"fail_shard_ids": [victim]}), encoding="utf-8")
    first = _evaluate(tmp_path, scripted_registry, dataset="speech-sample", shard_retries=1)
    assert [f.index for f in first.failed_shards] == [1]
    assert "injected shard fault" in first.failed_shards[0].error
    assert first.shards.computed == 5 and first.shards.failed == 1
    rows = _rows(first)
    assert rows[victim]["status"] == "failed" and rows[victim]["stage"] == "infer"
    assert first.counts.failed == 5 and first.counts.samples == 28
    assert {m.name: m.failed for m in first.metrics}["wer"] == 5

    before = calls_made(scripted_registry["calls"])
    scripted_registry["faults"].write_text("{}", encoding="utf-8")
    second = _evaluate(tmp_path, scripted_registry, dataset="speech-sample")
    rerun = calls_made(scripted_registry["calls"])[len(before):]
    assert second.shards.computed == 1 and second.shards.cached == 5
    assert victim in rerun and len(rerun) == 5
    assert second.failed_shards == [] and second.counts.failed == 0


def test_a_shard_retry_sends_only_the_samples_it_has_no_answer_for(prefect_api, tmp_path, scripted_registry,
                                                                    sample_manifest):
    """A backend that fails mid-shard keeps the answers it got: the retry sends the rest only."""
    victim = [r["id"] for r in sample_manifest if r["lang"] == "en"][7]
    scripted_registry["faults"].write_text(json.dumps({"fail_once_ids": [victim]}), encoding="utf-8")
    run = _evaluate(tmp_path, scripted_registry, dataset="speech-sample", shard_retries=1)
    assert run.failed_shards == [] and run.counts.failed == 0
    sent = Counter(calls_made(scripted_registry["calls"]))
    assert sent[victim] == 2 and {n for i, n in sent.items() if i != victim} == {1}
    assert _rows(run)[victim]["status"] == "ok"


def test_fresh_run_ignores_every_cache(prefect_api, tmp_path, scripted_registry):
    first = _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en")
    again = _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en", fresh=True)
    assert first.shards.computed == again.shards.computed == 6 and again.shards.cached == 0
    assert len(calls_made(scripted_registry["calls"])) == 2 * 26
    assert [m.value for m in again.metrics] == [m.value for m in first.metrics]


def test_cli_retry_reruns_only_failed_shards_into_a_new_run_recording_its_parent(prefect_api, tmp_path,
                                                                               scripted_registry, sample_manifest):
    from typer.testing import CliRunner

    from cli.main import app

    victim = [r["id"] for r in sample_manifest if r["lang"] == "en"][7]
    scripted_registry["faults"].write_text(json.dumps({"fail_shard_ids": [victim]}), encoding="utf-8")
    first = _evaluate(tmp_path, scripted_registry, dataset="speech-sample", shard_retries=0)
    folder = Path(first.paths["summary"]).parent
    original = {p.name: p.read_bytes() for p in folder.iterdir()}
    before = calls_made(scripted_registry["calls"])
    scripted_registry["faults"].write_text("{}", encoding="utf-8")

    result = CliRunner().invoke(app, ["retry", str(folder)])
    assert result.exit_code == 0, result.output
    assert f"retried 1 failed shard(s) of run {first.run_id} as run" in " ".join(result.output.split())
    rerun = calls_made(scripted_registry["calls"])[len(before):]
    assert victim in rerun and len(rerun) == 5
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == original  # the earlier run is a record: unchanged
    (new,) = [p for p in folder.parent.iterdir() if p != folder]
    retried = storage.read_json(str(new / "summary.json"))
    assert retried["parent_run_id"] == first.run_id and retried["run_id"] == new.name
    assert retried["failed_shards"] == [] and retried["shards"]["computed"] == 1 and retried["shards"]["cached"] == 5
    rows = list(storage.read_jsonl(str(new / "samples.jsonl")))
    assert sorted(r["id"] for r in rows) == sorted(r["id"] for r in sample_manifest)  # one row each, none lost
    assert all(r["status"] == "ok" for r in rows)


def test_manifest_without_lang_is_scored_for_a_one_language_model(prefect_api, tmp_path, scripted_registry,
                                                                    bad_manifest):
    rows = [json.loads(line) for line in bad_manifest.read_text(encoding="utf-8").splitlines()]
    bad_manifest.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "lang"}) + "\n" for r in rows),
                            encoding="utf-8")
    models = Path(scripted_registry["path"]) / "models.yaml"
    models.write_text(models.read_text() + models.read_text().split("\n", 1)[1].replace("scripted:", "scripted-en:")
                      + "    languages: [en]\n", encoding="utf-8")
    english = _evaluate(tmp_path, scripted_registry, dataset=str(bad_manifest), model="scripted-en")
    causes = {r["id"]: (r["status"], r["error"] or "") for r in _rows(english).values()}
    assert causes["good"][0] == "ok" and "missing" in causes["missing"][1].lower()
    assert {m.name for m in english.metrics} == {"wer", "wer-oasr"}

    anylang = _evaluate(tmp_path, scripted_registry, dataset=str(bad_manifest))
    assert all(r["status"] == "skipped" and "add 'lang'" in r["error"] for r in _rows(anylang).values())


def test_bad_input_is_reported_with_its_cause(prefect_api, tmp_path, scripted_registry, bad_manifest):
    scripted_registry["responses"].write_text(json.dumps({"good": "the child almost hurt the small dog"}))
    summary = _evaluate(tmp_path, scripted_registry, dataset=str(bad_manifest))
    rows = _rows(summary)
    assert rows["good"]["status"] == "ok" and rows["good"]["value"] == 0.0
    assert rows["missing"]["status"] == "failed" and "not found" in rows["missing"]["error"]
    assert rows["corrupt"]["status"] == "failed" and "unreadable audio" in rows["corrupt"]["error"]
    assert rows["empty-transcript"]["status"] == "failed" and "empty reference" in rows["empty-transcript"]["error"]
    assert summary.counts.failed == 3 and summary.counts.fail_rate == 0.75
    # The metric's own failed count includes the samples lost before inference.
    wer, oasr = summary.metrics
    assert (wer.name, wer.role, oasr.name, oasr.role) == ("wer", "headline", "wer-oasr", "secondary")
    assert wer.n == oasr.n == 1 and wer.failed == oasr.failed == 3


def test_strict_run_fails_after_writing_the_summary(prefect_api, tmp_path, scripted_registry, bad_manifest):
    from flows.evaluate import StrictModeFailure

    scripted_registry["responses"].write_text(json.dumps({"good": "the child almost hurt the small dog"}))
    with pytest.raises(StrictModeFailure, match="summary") as info:
        _evaluate(tmp_path, scripted_registry, dataset=str(bad_manifest), strict=True)
    path = str(info.value).rsplit("summary: ", 1)[1]
    summary = storage.read_json(path)
    assert summary["counts"]["failed"] == 3
    # Strict scores the missing and corrupt clips (read, with their references) as empty answers:
    # every word deleted. The empty transcript has nothing to score against.
    wer = next(m for m in summary["metrics"] if m["role"] == "headline")
    rows = {r["id"]: r for r in storage.read_jsonl(str(Path(path).with_name("samples.jsonl")))}
    assert rows["corrupt"]["value"] == 100.0 and rows["corrupt"]["stats"]["del"] == 1
    assert rows["missing"]["value"] == 100.0 and rows["empty-transcript"].get("value") is None
    assert wer["n"] == 3 and wer["value"] == pytest.approx(100 * 2 / (7 + 1 + 1))


def test_a_mostly_failed_run_exits_non_zero(prefect_api, tmp_path, scripted_registry, bad_manifest):
    from typer.testing import CliRunner

    from cli.main import app

    args = ["run", "--dataset", str(bad_manifest), "--model", "scripted", "--registry-path", scripted_registry["path"],
            "--cache-dir", str(tmp_path / "cache"), "--output", str(tmp_path / "results")]
    failed = CliRunner().invoke(app, args)  # 3 of 4 samples fail: over the default --max-fail-rate 0.5
    assert failed.exit_code == 1 and "75.0% of samples failed (more than --max-fail-rate 0.5)" in failed.output
    assert CliRunner().invoke(app, [*args, "--max-fail-rate", "0.8"]).exit_code == 0
