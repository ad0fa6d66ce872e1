"""The run record: RunSummary, its published JSON schema, the leaderboard built from runs, RTFx without loading."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from audio_evals.report import render_suite_chart, render_suite_report, suite_leaderboard
from audio_evals.report.chart import HEADROOM, _axis_top, _bars
from audio_evals.run.suites import load_suite
from audio_evals.run.summary import MetricResult, RunSummary, json_schema
from tests.conftest import slow_scripted
from tests.test_pipeline import _evaluate
from tests.test_report import record, suite_path, with_metric

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "schemas" / "summary.schema.json"


def test_committed_schema_is_the_generated_one() -> None:
    """Regenerate with ``python -m audio_evals.run.summary > schemas/summary.schema.json``."""
    assert json.loads(SCHEMA.read_text(encoding="utf-8")) == json_schema()


def test_metric_formatting_lives_on_the_metric() -> None:
    wer = MetricResult(name="wer", group="en", value=3.756, ci95=(2.1, 5.9), higher_is_better=False)
    assert (wer.label, wer.measure, wer.measure_label, wer.arrow) == ("wer (en)", "wer⬇️", "wer⬇️ (en)", "⬇️")
    assert (wer.value_text, wer.ci_text, wer.half_width) == ("3.76", "[2.10, 5.90]", pytest.approx(1.9))
    bare = MetricResult(name="acc", higher_is_better=True)
    assert (bare.value_text, bare.ci_text, bare.measure, bare.direction) == ("—", "—", "acc⬆️", "higher is better")
    assert "levels" not in bare.model_dump() and "judge_reasked" not in bare.model_dump()


def test_an_older_summary_without_the_newer_keys_still_loads() -> None:
    old = {"run_id": "r", "dataset": {"name": "d"}, "model": {"name": "m"},
           "metrics": [{"name": "wer", "value": 1.0, "ci95": [0.5, 1.5]}], "shards": {"total": 1, "computed": 1}}
    summary = RunSummary.model_validate(old)
    assert summary.model_load_s is None and summary.shards.model_load_s == 0.0 and summary.metrics[0].protocol == ""
    assert summary.model_dump(mode="json")["metrics"][0]["ci95"] == [0.5, 1.5]


def test_not_run_row_says_why_and_is_left_out_of_figures() -> None:
    row = RunSummary.not_run("d", "m", None, RuntimeError("no GPU"))
    assert not row.ran and row.status == "not_run" and row.error == "not run: RuntimeError: no GPU"
    assert "error" not in row.model_dump()  # known at run time, never written


def test_the_step_audio_mmau_row_is_in_the_report_and_the_leaderboard() -> None:
    """Before: report.md showed the MMAU figure (``acc`` answered by the run's single ``mmau``
    metric) while the leaderboard, matching names itself, showed "—"."""
    mmau = with_metric(record("mmau-test-mini", "step-audio-r1.1", prompt={"name": "step_audio_r1_mmau"}), "mmau", 73.8)
    suite = load_suite(suite_path("step-audio-r1.1.yaml"))
    [row] = suite_leaderboard(suite, [mmau]).records()
    assert row["mmau-test-mini acc⬆️"] == 73.8
    text = render_suite_report([mmau], suite)
    assert "| mmau | mmau-test-mini | acc⬆️ | 73.80(77.7) | [8] |" in text
    assert "| step-audio-r1.1 | — | — | — | 2.10" not in text and "| 73.80 |" in text


def test_suite_report_compares_models_with_averages_and_rtfx() -> None:
    suite = load_suite(suite_path("sample.yaml")).model_copy(deep=True)
    section = suite.sections[0]
    rows = [section.rows[0].model_copy(update={"dataset": d, "model": m})
            for m in ("tiny", "base") for d in ("a", "b")]
    suite = suite.model_copy(update={"sections": [section.model_copy(update={"rows": rows})]})
    runs = []
    for model, values in (("tiny", (4.0, 8.0)), ("base", (2.0, None))):
        for dataset, value in zip("ab", values):
            if value is not None:
                runs.append(RunSummary.model_validate(record(
                    dataset, model, value, timings_s={"infer": 12.0}, model_load_s=2.0,
                    shards={"audio_seconds": 50.0, "computed": 1})))
    board = suite_leaderboard(suite, runs)
    assert board.headings() == ["model", "average wer⬇️", "RTFx⬆️", "a wer⬇️", "b wer⬇️"]
    assert board.rows() == [["tiny", 6.0, 5.0, 4.0, 8.0], ["base", None, 5.0, 2.0, None]]  # 100 s audio / 20 s
    text = render_suite_report(runs, suite)
    assert "| model | average wer⬇️ | RTFx⬆️ | a wer⬇️ | b wer⬇️ |" in text and "| tiny | 6.00 | 5.00 | 4.00 | 8.00 |" in text


def test_chart_axis_is_not_hostage_to_one_wide_interval(tmp_path: Path) -> None:
    narrow = RunSummary.model_validate(record("a", "m", 4.0))
    wide = record("b", "m", 8.0)
    wide["metrics"][0]["ci95"] = [0.0, 300.0]
    bars = _bars([narrow, RunSummary.model_validate(wide)])
    assert _axis_top(bars) == HEADROOM * 8.0  # not 300: the wide whisker is cut there and marked
    assert _axis_top(bars[:1]) == 5.9  # a lone bar keeps its whole whisker
    path = tmp_path / "chart.png"
    render_suite_chart([narrow, RunSummary.model_validate(wide)], str(path))
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_rtfx_leaves_model_loading_out_and_the_summary_keeps_it(prefect_api, tmp_path, scripted_registry) -> None:
    slow_scripted(scripted_registry, 0.0, load_s=1.0)
    summary = _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en", shard_size=32)
    assert 1.0 <= summary.model_load_s < 3.0 and summary.shards.model_load_s == pytest.approx(summary.model_load_s,
                                                                                               abs=1e-3)
    infer = summary.timings_s["infer"]
    assert summary.rtfx == round(summary.shards.audio_seconds / (infer - summary.model_load_s), 2)
    assert summary.shards.inference_s < infer - 1.0  # the load is not inference time either
    saved = json.loads(Path(summary.paths["summary"]).read_text(encoding="utf-8"))
    jsonschema.validate(saved, json.loads(SCHEMA.read_text(encoding="utf-8")))  # a real summary.json
    assert RunSummary.model_validate(saved).model_dump(mode="json") == saved  # read back unchanged
    assert saved["model_load_s"] == summary.model_load_s


def test_leaderboard_command_builds_the_table_from_existing_runs(prefect_api, tmp_path, scripted_registry) -> None:
    from cli.main import app

    models = Path(scripted_registry["path"]) / "models.yaml"
    models.write_text(models.read_text() + models.read_text().split("\n", 1)[1].replace("scripted:", "scripted-en:"),
                      encoding="utf-8")  # a second model: the same answers under another name
    _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en")
    _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en", model="scripted-en")
    result = CliRunner().invoke(app, ["leaderboard", str(tmp_path / "results"), "--markdown"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "| model | RTFx⬆️ | speech-sample-en wer⬇️ |" in lines
    assert {line.split(" | ")[0] for line in lines if line.startswith("| scripted")} == {"| scripted", "| scripted-en"}
    missing = CliRunner().invoke(app, ["leaderboard", str(tmp_path / "nothing-here")])
    assert missing.exit_code == 2 and "no results folder" in missing.output
