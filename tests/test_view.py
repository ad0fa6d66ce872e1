"""The sample viewer: what each page holds, how big it gets, and what a browser shows of it."""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlparse

import pytest
from typer.testing import CliRunner

from audio_evals.metrics import load_metric
from audio_evals.metrics.base import SampleScore, ScoreItem
from audio_evals.metrics.bootstrap import bootstrap_ci
from audio_evals.metrics.wer import WER
from audio_evals.records import SampleRow
from audio_evals.report.compare import compare_runs
from audio_evals.report.markdown import render_run_report
from audio_evals.report.samples import FileLinks, alignment, cause, read_run, sample_record
from audio_evals.report.view import write_comparison, write_view
from audio_evals.run.summary import RunSummary
from tests.synthetic_runs import AUDIO_DIR, asr_row, asr_rows, failed_row, summary, write_run

CHROMIUM = "/usr/bin/chromium"
HOSTILE = '</script><img src=x onerror="alert(1)"><b>bold</b>'


def page_data(page: str) -> dict[str, Any]:
    """The rows a page embeds (gzipped JSON in base64), as its script reads them."""
    packed = re.search(r'<script id="view-data" type="application/gzip">([^<]*)</script>', page).group(1)
    return json.loads(gzip.decompress(base64.b64decode(packed)))


def edit_counts(segments: list[Any]) -> dict[str, int]:
    """Token counts per edit kind (whitespace tokens)."""
    counts = {"sub": 0, "del": 0, "ins": 0}
    for seg in segments:
        if isinstance(seg, list):
            counts[{"s": "sub", "d": "del", "i": "ins"}[seg[0]]] += len(seg[1].split())
    return counts


# --- per-sample records ---------------------------------------------------------------------------


@pytest.mark.parametrize("reference, hypothesis", [
    ("He was not an ill disposed young man.", "He was not an old-sposed young man."),
    ("IF THE READER WILL EXCUSE ME", "if the reader will accuse me me"),
    ("four of clubs", ""),
    ("10 of clubs", "ten of clubs and hearts"),
])
def test_alignment_has_the_edits_the_metric_counted(reference: str, hypothesis: str) -> None:
    [score] = WER().score([ScoreItem("x", hypothesis, reference)])
    segments = alignment(score.normalized_reference, score.normalized_hypothesis)
    assert edit_counts(segments) == {k: score.stats[k] for k in ("sub", "del", "ins")}
    ref_side = [s if isinstance(s, str) else s[1] for s in segments if isinstance(s, str) or s[0] != "i"]
    assert " ".join(ref_side).split() == score.normalized_reference.split()


def test_character_edits_read_as_text() -> None:
    """CER tokens are characters: shown side by side, Latin words still apart."""
    [score] = load_metric("cer").score([ScoreItem("z", "今天天汽好 hello", "今天天气很好 hello", "zh")])
    segments = alignment(score.normalized_reference, score.normalized_hypothesis)
    assert segments[0] == "今天天" and ["s", "气", "汽"] in segments
    assert sum(isinstance(s, list) for s in segments) == score.stats["edits"]
    assert segments[-1].endswith("好 hello")


def _verdict_row(metric: str, item: ScoreItem, **extra: Any) -> dict[str, Any]:
    """A row as scoring writes it for ``item`` under ``metric``."""
    [score] = load_metric(metric).score([item])
    return {"id": item.sample_id, "audio": "/data/x.wav", "lang": "en", "reference": item.reference,
            "hypothesis": item.hypothesis, "status": "ok" if score.parsed else "unparsed", "stage": None, "error": None,
            "model_text": item.hypothesis, "metric": score.metric, "value": score.value, "stats": score.stats,
            "normalized_hypothesis": score.normalized_hypothesis, "normalized_reference": score.normalized_reference,
            "explanation": score.explanation, **extra}


def test_every_task_family_gets_its_record(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", [asr_row("s1", "four of clubs", "Four of clothes.")])
    links, causes = FileLinks(read_run(str(run)), str(run)), {}
    mcq = _verdict_row("first_option", ScoreItem("q1", "I think the answer is B", "A"),
                       secondary={"choice": {"value": 0.0, "parsed": True, "explanation": "chose B"}})
    unparsed = _verdict_row("first_option", ScoreItem("q2", "hmm", "C"))
    bleu = _verdict_row("bleu", ScoreItem("t1", "the cat sat on a mat", ["the cat sat on the mat"]))
    rows = [read_run(str(run)).rows[0], *(SampleRow.model_validate(r) for r in (mcq, unparsed, bleu))]
    records = [sample_record(r, links, causes) for r in rows]
    wer, acc, guess, translation = records
    assert wer["al"] == ["four of", ["s", "clubs", "clothes"]] and wer["d"].startswith("edits 1 of 3 reference tokens")
    assert acc["d"] == "wrong" and acc["nh"] == "B" and acc["sec"] == [["choice", 0.0, "chose B"]]
    assert "al" not in acc and acc["x"].startswith("chose B")
    assert guess["s"] == "unparsed" and guess["c"] == causes["no answer pattern matched: default A"]
    assert "al" not in translation and translation["m"] == "bleu" and 0 < translation["v"] < 100
    assert translation["r"] == "the cat sat on the mat" and "nr" not in translation


def test_rows_failing_alike_share_one_cause() -> None:
    first = SampleRow.model_validate(failed_row("a", "failed", "preprocess", "cannot decode /data/a.flac: Format not recognised"))
    second = SampleRow.model_validate(failed_row("b", "failed", "preprocess", "cannot decode /data/sub/b.flac: Format not recognised"))
    shard = SampleRow.model_validate(failed_row("c", "failed", "infer", "shard 3 failed: timeout after 120.5 s"))
    assert cause(first) == cause(second) == "preprocess: cannot decode … Format not recognised"
    assert cause(shard) == "infer: shard … failed: timeout after … s"
    assert cause(SampleRow.model_validate(asr_row("d", "a b", "a b"))) is None


def test_clips_are_addressed_from_the_page(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "audio").mkdir(parents=True)
    (data / "manifest.jsonl").write_text("", encoding="utf-8")
    run_dir = write_run(tmp_path / "results" / "m" / "d" / "run", [asr_row("s1", "a", "a")])
    run = read_run(str(run_dir))
    run.summary.dataset.source = {"type": "manifest", "path": str(data / "manifest.jsonl")}
    links = FileLinks(run, str(run_dir))
    assert links(str(data / "audio" / "a b#1.wav")) == "../../../../data/audio/a%20b%231.wav"
    assert links("generated/s1.wav") == "generated/s1.wav"
    assert links("/elsewhere/c.flac") == "file:///elsewhere/c.flac"
    assert links("https://host/c.wav") == "https://host/c.wav" and links("s3://bucket/c.wav") is None
    assert links(None) is None
    elsewhere = FileLinks(run, str(tmp_path))  # a comparison page written beside the results
    assert elsewhere("generated/s1.wav") == "results/m/d/run/generated/s1.wav"
    assert elsewhere(str(data / "audio" / "x.wav")) == "data/audio/x.wav"


# --- pages ----------------------------------------------------------------------------------------


def test_run_page_holds_every_sample_and_escapes_their_text(tmp_path: Path) -> None:
    rows = asr_rows(30) + [asr_row("<i>x</i>", "a b c", HOSTILE)]
    run = write_run(tmp_path / "run", rows, model="<script>m</script>")
    page = Path(write_view(str(run))).read_text(encoding="utf-8")
    assert Path(run / "view.html").exists()
    data = page_data(page)
    assert len(data["rows"]) == 31 and data["base"] == Path(AUDIO_DIR).as_uri() + "/"
    assert data["rows"][-1]["h"] == HOSTILE and data["rows"][-1]["i"] == "<i>x</i>"
    assert "<img" not in page and "<b>bold" not in page and "<script>m" not in page and "&lt;script&gt;m" in page
    assert {r["s"] for r in data["rows"]} == {"ok", "failed", "skipped"}
    assert data["causes"][data["rows"][7]["c"]] == "preprocess: cannot decode … Error opening: Format not recognised"
    assert "https://" not in page.replace("https://host", "")  # nothing fetched from a network


def test_report_links_the_view() -> None:
    run = {**summary("r1", asr_rows(3)), **_report_fields()}
    assert "[view.html](view.html)" in render_run_report(RunSummary.model_validate(run))
    run["files"] = {**run["files"], "view": None}
    assert "view.html" not in render_run_report(RunSummary.model_validate(run))


def _report_fields() -> dict[str, Any]:
    return {"eval_cli": "python audio_evals/main.py --dataset d --model m", "model": {"name": "m", "backend": "b"},
            "dataset": {"name": "d", "task": "asr"}}


def test_the_ui_artifact_links_the_view_by_its_full_address(tmp_path: Path) -> None:
    from tasks.report import _linked_view

    markdown = render_run_report(RunSummary.model_validate({**summary("r1", asr_rows(3)), **_report_fields()}))
    linked = _linked_view(markdown, str(tmp_path / "view.html"))
    assert f"]({(tmp_path / 'view.html').as_uri()})" in linked and "](view.html)" not in linked


# --- comparisons ----------------------------------------------------------------------------------


def test_samples_are_joined_by_id_and_changes_counted(tmp_path: Path) -> None:
    before = [asr_row("a", "one two three four", "one two three four"), asr_row("b", "one two", "one"),
              asr_row("dup", "x y", "x y"), asr_row("dup", "x y", "x"), asr_row("gone", "z", "z"),
              failed_row("f", "failed", "infer", "timeout")]
    after = [asr_row("b", "one two", "one two"), asr_row("a", "one two three four", "one two three"),
             asr_row("dup", "x y", "x y"), asr_row("dup", "x y", "x"), asr_row("f", "q", "q"), asr_row("new", "n", "n")]
    comparison = compare_runs(read_run(str(write_run(tmp_path / "a", before))),
                              read_run(str(write_run(tmp_path / "b", after))))
    assert [(p.before and p.before.id, p.after and p.after.id, p.change) for p in comparison.pairs] == [
        ("a", "a", "worse"), ("b", "b", "better"), ("dup", "dup", "same"), ("dup", "dup", "same"),
        ("gone", None, "only A"), ("f", "f", "unscored"), (None, "new", "only B")]
    [wer] = comparison.metrics
    assert wer.n == 4 and wer.changes == {"better": 1, "worse": 1, "same": 2}
    # Corpus WER over the paired samples is a ratio of sums: A 2 edits / 10 words, B 2 / 10.
    assert wer.before == pytest.approx(20.0) and wer.after == pytest.approx(20.0) and wer.difference == pytest.approx(0)


def test_paired_interval_of_the_corpus_difference(tmp_path: Path) -> None:
    """B is A with every fourth sample transcribed exactly: the same utterances stay hard for both."""
    a_rows = asr_rows(2000, seed=1, error_rate=0.10)
    b_rows = [asr_row(r["id"], r["reference"], r["reference"].capitalize()) if r.get("stats") and k % 4 == 0 else r
              for k, r in enumerate(a_rows)]
    a, b = read_run(str(write_run(tmp_path / "a", a_rows))), read_run(str(write_run(tmp_path / "b", b_rows)))
    [better] = compare_runs(a, b).metrics
    assert better.ci95[0] < better.difference < better.ci95[1] < 0 and better.verdict == "B better"
    assert better.changes["worse"] == 0 and better.changes["better"] > 300
    [worse] = compare_runs(b, a).metrics
    assert worse.verdict == "B worse" and worse.difference == pytest.approx(-better.difference)
    [same] = compare_runs(a, a).metrics
    assert same.difference == 0 and tuple(same.ci95) == (0.0, 0.0) and same.verdict == "no clear difference"
    # Pairing removes the variance the runs share: narrower than either run's own interval.
    scores = [SampleScore(r.id, "wer", r.value, r.stats) for r in a.rows if r.stats]
    low, high = bootstrap_ci(WER(), scores)
    assert better.ci95[1] - better.ci95[0] < high - low


def test_a_metric_that_cannot_be_rebuilt_here_gets_no_interval(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A judge's figure needs its judge to be rebuilt: said in the note, never guessed."""
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    rows = [asr_row("q", "a", "a", metric="g-eval", value=70.0, stats={"score": 7, "asked": 1})]
    run = read_run(str(write_run(tmp_path / "a", rows)))
    run.summary.metrics[0] = run.summary.metrics[0].model_copy(update={"name": "g-eval", "higher_is_better": True})
    [judged] = compare_runs(run, run).metrics
    assert judged.ci95 is None and "no endpoint configured" in judged.note and judged.n == 1


def test_comparison_page_sets_the_runs_side_by_side(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", asr_rows(50, seed=1, error_rate=0.2), "run-a")
    b = write_run(tmp_path / "b", asr_rows(50, seed=2, error_rate=0.0) + [asr_row("extra", "a", HOSTILE)], "run-b")
    path = write_comparison(str(a), str(b), str(tmp_path))
    assert path == str(tmp_path / "compare-run-a-run-b.html")
    page = Path(path).read_text(encoding="utf-8")
    rows = page_data(page)["rows"]
    assert len(rows) == 51 and rows[-1]["k"] == "only B" and rows[-1]["B"]["h"] == HOSTILE and "A" not in rows[-1]
    assert {r["k"] for r in rows} >= {"better", "same", "unscored", "only B"}
    assert "B better" in page and "<img" not in page


# --- size at 10k ----------------------------------------------------------------------------------


def test_pages_of_10k_samples_stay_small(tmp_path: Path) -> None:
    """At 10k LibriSpeech-like samples (samples.jsonl 11.5 MB) a run's page stays under 3 MB and a
    comparison's under 4 MB: about a quarter of what they show, opened in well under a second.
    Time is measured by benchmarks/view_10k.py, not here."""
    a = write_run(tmp_path / "a", asr_rows(10_000, seed=1), "run-a")
    b = write_run(tmp_path / "b", asr_rows(10_000, seed=2, error_rate=0.05), "run-b")
    assert os.path.getsize(write_view(str(a))) < 3_000_000
    assert os.path.getsize(write_comparison(str(a), str(b), str(tmp_path))) < 4_000_000


# --- command line ---------------------------------------------------------------------------------


def test_cli_view_writes_the_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.main import app

    a = write_run(tmp_path / "a", asr_rows(5), "run-a")
    b = write_run(tmp_path / "b", asr_rows(5, seed=3), "run-b")
    runner = CliRunner()
    result = runner.invoke(app, ["view", str(a / "summary.json")])
    assert result.exit_code == 0 and result.output.strip() == str(a / "view.html") and (a / "view.html").exists()
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["view", str(a), str(b)])
    assert result.exit_code == 0 and (tmp_path / "compare-run-a-run-b.html").exists()
    result = runner.invoke(app, ["view", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "error:" in result.output and "has no summary.json" in result.output


@pytest.mark.slow
def test_a_run_writes_its_view_linked_from_the_report(prefect_api, tmp_path: Path) -> None:
    from audio_evals import evaluate

    result = evaluate(dataset="speech-sample-en", model="whisper-tiny.en", limit=3, cache_dir=str(tmp_path / "cache"),
                      output=str(tmp_path / "results"))
    view = Path(result.paths["view"])
    assert view.parent == Path(result.paths["report"]).parent
    assert "[view.html](view.html)" in Path(result.paths["report"]).read_text(encoding="utf-8")
    data = page_data(view.read_text(encoding="utf-8"))
    assert len(data["rows"]) == 3 and all("al" in r for r in data["rows"])
    # The embedded sample's clips lie in the dataset's folder: addressed relative to the page.
    clips = [urljoin(view.as_uri(), data["base"] + r["a"]) for r in data["rows"]]
    assert not data["base"].startswith("file:") and all(Path(unquote(urlparse(c).path)).is_file() for c in clips)


# --- in a browser ---------------------------------------------------------------------------------


def chromium(url: str, *flags: str) -> str:
    """What headless Chromium (loopback only) prints for ``url`` with ``flags`` (e.g. ``--dump-dom``)."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        out = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                              "--disable-background-networking", f"--user-data-dir={profile}",
                              "--virtual-time-budget=5000", "--window-size=1400,1800", *flags, url],
                             capture_output=True, text=True, timeout=90, check=True)
    return out.stdout


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} not installed (apt-get install chromium)")
def test_pages_render_in_chromium(tmp_path: Path) -> None:
    mcq = _verdict_row("first_option", ScoreItem("mcq", "The answer is B", "A"))
    rows = asr_rows(249, seed=1) + [asr_row("hostile", "a b c", HOSTILE), mcq]
    a = write_run(tmp_path / "a", rows, "run-a")
    b = write_run(tmp_path / "b", asr_rows(250, seed=2, error_rate=0.0), "run-b")
    page = Path(write_view(str(a))).as_uri()
    dom = chromium(page, "--dump-dom")
    assert "page 1 of 3 · 251 of 251 samples" in dom
    assert dom.count('<tr><td class="head">') == 100 and '<span class="sub"' in dom
    failed = chromium(page + "#status=failed", "--dump-dom")
    assert "page 1 of 1 · 3 of 251 samples" in failed and failed.count('<tr><td class="head">') == 3
    hostile = chromium(page + "#text=hostile", "--dump-dom")
    assert "&lt;/script&gt;&lt;img src=x" in hostile and "<img" not in hostile and "<b>bold" not in hostile
    verdict = chromium(page + "#text=mcq", "--dump-dom")
    assert ">B  vs  A<" in verdict and ">wrong<" in verdict and ">chose B<" in verdict
    compare = Path(write_comparison(str(a), str(b), str(tmp_path))).as_uri()
    dom = chromium(compare + "#sort=worse", "--dump-dom")
    # 252: A's 251 samples and the one only B has.
    assert "page 1 of 3 · 252 of 252 samples" in dom and "B better" in dom and 'class="badge c-better"' in dom
    shot = tmp_path / "compare.png"
    chromium(compare, f"--screenshot={shot}", "--hide-scrollbars")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
