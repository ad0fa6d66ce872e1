"""The viewer tells the whole truth: every row keeps its language and reference, each sample its own full
cause and (where the backend timed it) latency, and the run page shows the request every sample was sent.

Before: skipped rows lost their language and reference (``#lang=zh`` showed 0 of 28), causes showed
"…" where samples.jsonl had the line number and path, and no page showed the prompt sent or a latency.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from audio_evals import storage
from tests.test_pipeline import _evaluate
from tests.test_view import page_data


def test_skipped_rows_keep_language_and_reference_and_the_page_shows_the_request(prefect_api, tmp_path,
                                                                                 scripted_registry) -> None:
    models = Path(scripted_registry["path"]) / "models.yaml"
    models.write_text(models.read_text(encoding="utf-8") + "    languages: [en]\n", encoding="utf-8")  # an English-only model
    summary = _evaluate(tmp_path, scripted_registry, dataset="speech-sample", shard_size=32, generation={})
    rows = {r["id"]: r for r in storage.read_jsonl(summary.paths["samples"])}
    skipped = [r for r in rows.values() if r["status"] == "skipped"]
    assert len(skipped) == 2 and all(r["lang"] == "zh" and r["reference"] for r in skipped)
    page = Path(summary.paths["view"]).read_text(encoding="utf-8")
    data = page_data(page)
    assert sum(s.get("l") == "zh" for s in data["rows"]) == 2
    assert "request sent per sample" in page and html.escape(json.dumps(summary.prompt.name)) in page
    assert "listen the audio, output the audio content" in page  # the prompt's own text, not only its name
    assert "command: <code>python audio_evals/main.py --dataset speech-sample --model scripted" in page


def test_each_answered_row_keeps_the_rendered_prompt_it_was_sent(prefect_api, tmp_path, scripted_registry) -> None:
    """Every answered sample's row (and its entry on the page) holds the prompt as rendered for that sample,
    audio parts shown as ``<audio>`` rather than a path of this machine."""
    summary = _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en", shard_size=32, generation={})
    rows = [r for r in storage.read_jsonl(summary.paths["samples"]) if r["status"] == "ok"]
    assert rows and all(r["prompt"].startswith("user: ") and "<audio>" in r["prompt"] for r in rows)
    assert all("listen the audio, output the audio content" in r["prompt"] for r in rows)
    assert not any("/" in r["prompt"].replace("listen the audio, output the audio content", "") for r in rows)
    page_rows = {s["i"]: s for s in page_data(Path(summary.paths["view"]).read_text(encoding="utf-8"))["rows"]}
    assert all(page_rows[r["id"]]["p"] == r["prompt"] for r in rows)


def test_each_failed_row_shows_its_own_full_cause(tmp_path) -> None:
    from audio_evals.records import SampleRow
    from audio_evals.report.samples import cause, sample_record

    error = "bad manifest row: /data/set-a/manifest.jsonl line 17: 'text' is not a string"
    row = SampleRow.model_validate({"id": "x", "status": "failed", "stage": "download", "error": error,
                                    "latency_s": 1.234})
    record = sample_record(row, lambda path: path, {})
    assert "…" in cause(row) and record["e"] == error  # the filter groups; the row says exactly
    assert record["lt"] == 1.23  # where the backend timed the request, the page shows it


def test_the_results_index_lists_every_run_as_runs_finish(prefect_api, tmp_path, scripted_registry) -> None:
    """Before: there was no page listing runs."""
    import re

    first = _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en", shard_size=32)
    second = _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en", shard_size=32, limit=5)
    index = tmp_path / "results" / "index.html"
    assert second.paths["index"] == str(index)
    page = index.read_text(encoding="utf-8")
    assert page.index(second.run_id) < page.index(first.run_id)  # newest first
    assert "--limit 5" in page and "default" in page and "wer 0.00" in page
    links = re.findall(r'href="([^"]+)"', page)
    assert len(links) == 4 and all((index.parent / link).is_file() for link in links)
    assert f"audio-evals view {first.run_id} {second.run_id}" not in page  # different evaluations
    (tmp_path / "results" / "scripted" / "speech-sample-en" / "cut").mkdir()
    (tmp_path / "results" / "scripted" / "speech-sample-en" / "cut" / "summary.json").write_text("{", encoding="utf-8")
    third = _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en", shard_size=32)
    page = index.read_text(encoding="utf-8")
    assert "Unreadable summaries" in page
    compare = Path(third.paths["compare"])  # the same evaluation as the first: compared with it
    assert compare == Path(third.paths["summary"]).parent / f"compare-{first.run_id}-{third.run_id}.html"
    assert f'href="{compare.relative_to(index.parent)}">compare</a>' in page
    assert first.run_id in compare.read_text(encoding="utf-8") and third.run_id in compare.read_text(encoding="utf-8")


def test_the_index_gives_the_comparison_command_for_a_run_made_before_comparison_pages(
        prefect_api, tmp_path, scripted_registry) -> None:
    from audio_evals.report.index import write_index

    first = _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en", shard_size=32)
    second = _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en", shard_size=32)
    Path(second.paths["compare"]).unlink()
    page = Path(write_index(str(tmp_path / "results"))).read_text(encoding="utf-8")
    assert f"<code>audio-evals view {first.run_id} {second.run_id}</code>" in page and ">compare</a>" not in page
