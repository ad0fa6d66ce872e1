"""Where runs are combined (leaderboard, suite report), a figure is the number it claims to be.

Before: the leaderboard took the latest run of each model and dataset whatever happened in it (a
failed run blanked the cell, an 80 %-failed run showed WER 0.00, a ``-P beam_size=1`` or
``--limit`` run replaced the default figure, two files named ``manifest.jsonl`` shared a column),
one bad ``summary.json`` failed it as a whole without naming the file, and names and error texts
reached the markdown as markup.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt
from typer.testing import CliRunner

from audio_evals.report import leaderboard_of_results, render_run_report, render_suite_report
from audio_evals.report.leaderboard import runs_leaderboard
from audio_evals.report.samples import read_run
from audio_evals.run.command import eval_cli
from audio_evals.run.suites import load_suite
from audio_evals.run.summary import RunSummary
from tests.test_report import record, suite_path

COLUMN = "speech-sample (en) wer⬇️"


def run(value: float, created: str, run_id: str = "20261122T080000Z-1a2b3c4d", **changes: Any) -> RunSummary:
    """A run record; ``dataset`` and ``model`` given as mappings update the record's own."""
    parts = {key: changes.pop(key) for key in ("dataset", "model") if key in changes}
    base = record(value=value, created_at=created, run_id=run_id, **changes)
    for key, fields in parts.items():
        base[key].update(fields)
    if "options" in changes and "eval_cli" not in changes:  # the command the run printed, as a run writes it
        base["eval_cli"] = eval_cli({"dataset": base["dataset"]["name"], "model": base["model"]["name"],
                                     **changes["options"]})
    return RunSummary.model_validate(base)


def board_rows(summaries: list[RunSummary]) -> dict[str, dict[str, Any]]:
    return {r["model"]: r for r in runs_leaderboard(summaries).records()}


def test_a_failed_or_mostly_failed_later_run_does_not_replace_the_figure() -> None:
    good = run(3.76, "2026-11-22T08:00:00+00:00")
    mostly_failed = run(0.0, "2026-11-23T08:00:00+00:00", "r2", counts={"samples": 28, "scored": 5, "failed": 23,
                                                                        "fail_rate": 0.82})
    board = runs_leaderboard([good, mostly_failed])
    assert board.records()[0][COLUMN] == 3.76
    assert len(board.excluded) == 0  # the good run answers the cell; the failed one is simply not used
    alone = runs_leaderboard([mostly_failed])
    assert alone.records()[0][COLUMN] == "failed" and "82.0% of samples failed" in alone.excluded[0]


def test_non_default_runs_get_their_own_row_and_never_the_default_figure() -> None:
    default = run(4.51, "2026-11-22T08:00:00+00:00")
    beam = run(6.39, "2026-11-23T08:00:00+00:00", "r2", options={"generation": {"beam_size": 1}})
    smoke = run(9.0, "2026-11-24T08:00:00+00:00", "r3", options={"limit": 4})
    rescored = run(2.0, "2026-11-25T08:00:00+00:00", "r4", options={"inf_file": "/x/samples.jsonl",
                                                                     "evaluator": "cer"})
    rows = board_rows([default, beam, smoke, rescored])
    assert rows["whisper-tiny.en"][COLUMN] == 4.51
    assert rows["whisper-tiny.en [-P beam_size=1]"][COLUMN] == 6.39
    assert rows["whisper-tiny.en [--limit 4]"][COLUMN] == 9.0
    assert rows["whisper-tiny.en [--evaluator cer --inf_file /x/samples.jsonl]"][COLUMN] == 2.0
    assert next(iter(rows)) == "whisper-tiny.en"  # the default row first


def test_datasets_sharing_a_name_but_not_a_source_never_share_a_column() -> None:
    a = run(2.70, "2026-11-22T08:00:00+00:00", dataset={"name": "manifest", "task": "asr-en",
                                                        "source": {"type": "manifest", "path": "/data/a/manifest.jsonl"}})
    b = run(66.67, "2026-11-23T08:00:00+00:00", "r2", dataset={"name": "manifest", "task": "asr-en",
                                                               "source": {"type": "manifest", "path": "/data/b/manifest.jsonl"}})
    [row] = runs_leaderboard([a, b]).records()
    assert row["manifest (/data/a/manifest.jsonl) (en) wer⬇️"] == 2.70
    assert row["manifest (/data/b/manifest.jsonl) (en) wer⬇️"] == 66.67


def test_a_suite_report_row_does_not_show_an_over_limit_runs_figure() -> None:
    failed = run(0.0, "2026-11-23T08:00:00+00:00", dataset={"name": "speech-sample-en", "task": "asr-en",
                                                            "task_label": "asr(en)"},
                 counts={"samples": 26, "scored": 4, "failed": 22, "fail_rate": 0.85})
    text = render_suite_report([failed], load_suite(suite_path("sample.yaml")))
    assert "| asr(en) | speech-sample-en | wer⬇️ | — | [1] | failed: 85.0% of samples failed (limit 50%)" in text


def test_a_smoke_runs_suite_report_says_so_and_no_card_claims_another_count() -> None:
    smoke = run(5.0, "2026-11-23T08:00:00+00:00", dataset={"name": "speech-sample-en", "task": "asr-en",
                                                           "task_label": "asr(en)"}, options={"limit": 4})
    smoke.metrics[0].n = 4
    text = render_suite_report([smoke], load_suite(suite_path("sample.yaml")))
    assert "n=4" in text and "run with --limit 4" in text and "26 real clips" not in text
    assert "[1] `python audio_evals/main.py --dataset speech-sample-en --model whisper-tiny.en --limit 4`" in text


def _write(folder: Path, summary: dict[str, Any] | str) -> Path:
    folder.mkdir(parents=True)
    path = folder / "summary.json"
    path.write_text(summary if isinstance(summary, str) else json.dumps(summary), encoding="utf-8")
    return path


def test_one_bad_summary_is_named_and_skipped_not_fatal(tmp_path: Path) -> None:
    from cli.main import app

    _write(tmp_path / "whisper-tiny.en" / "speech-sample" / "r1", record())
    cut = _write(tmp_path / "whisper-tiny.en" / "speech-sample" / "r2", json.dumps(record())[:50])
    renamed = _write(tmp_path / "whisper-tiny.en" / "speech-sample" / "r3", record(run_id="../../etc"))
    board = leaderboard_of_results(str(tmp_path))
    assert board.records()[0][COLUMN] == 3.76
    assert [line.split(":")[0] for line in board.skipped] == [f"skipped {cut}", f"skipped {renamed}"]
    assert "run_id: run id '../../etc' is not allowed" in board.skipped[1]
    result = CliRunner().invoke(app, ["leaderboard", str(tmp_path), "--markdown"])
    assert result.exit_code == 0 and f"warning: skipped {cut}" in result.output and "| 3.76 |" in result.output


def test_view_names_the_summary_it_cannot_read(tmp_path: Path) -> None:
    from cli.main import app

    bad = _write(tmp_path / "run", record(files={"samples": "../../../etc/passwd"}))
    result = CliRunner().invoke(app, ["view", str(tmp_path / "run")])
    assert result.exit_code == 2 and f"error: {bad} cannot be read: files.samples: must be a file name" in result.output
    try:
        read_run(str(tmp_path / "run"))
    except ValueError as e:
        assert str(bad) in str(e)


HOSTILE = '<img src=x onerror="alert(1)">'
LINK = "[click](http://attacker.example/)"


def _rendered(markdown: str) -> str:
    """What a Markdown viewer that does pass raw HTML through shows (GitHub's and Prefect's sanitise less)."""
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)


def test_names_and_server_errors_reach_markdown_as_text_not_markup() -> None:
    hostile = run(3.0, "2026-11-22T08:00:00+00:00", model={"name": HOSTILE, "backend": "openai_api"},
                  dataset={"name": LINK, "task": "asr-en", "source": {}},
                  failed_shards=[{"index": 0, "error": f"HTTP 500: {HOSTILE} {LINK}"}])
    unscored = hostile.model_copy(update={"metrics": [], "error": f"not run: {HOSTILE}"})
    board = runs_leaderboard([hostile]).markdown()
    for markdown in (render_run_report(hostile), render_run_report(unscored), board):
        page = _rendered(markdown)
        assert "<img" not in page and 'href="http://attacker' not in page, markdown
        assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page  # shown, as text
    assert "[click](http://attacker.example/)" in _rendered(render_run_report(hostile))
