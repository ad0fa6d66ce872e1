"""``wer-oasr`` computes the Open ASR Leaderboard's English WER, per sample and for the corpus.

``fixtures/open_asr_leaderboard.jsonl`` (294 pairs) and ``fixtures/open_asr_leaderboard_corpus.json``
were computed by that project's own code (huggingface/open_asr_leaderboard@d1e99b2: its
``EnglishTextNormalizer``, ``str.split()``, ``kaldialign.batch_error_rate(..., merge_compounds=True)``
as ``normalizer/eval_utils.py::score_results`` calls it; ``kept`` is its ``is_target_text_in_range``
of the normalised reference). See ``fixtures/README.md``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audio_evals.metrics import load_metric
from audio_evals.metrics.base import ScoreItem

FIXTURES = Path(__file__).with_name("fixtures")
ROWS = [json.loads(line) for line in (FIXTURES / "open_asr_leaderboard.jsonl").read_text(encoding="utf-8").splitlines()]
CORPUS = json.loads((FIXTURES / "open_asr_leaderboard_corpus.json").read_text(encoding="utf-8"))


def _score(row: dict):
    return load_metric("wer_oasr").score([ScoreItem(str(row["id"]), row["hypothesis"], row["reference"], "en")])[0]


def test_every_pair_normalises_and_aligns_as_the_leaderboard():
    """Normalised texts, word counts and sub/del/ins of each kept pair; a dropped one has no value."""
    wrong = []
    for row in ROWS:
        score = _score(row)
        if row["kept"]:
            got = (score.normalized_reference, score.normalized_hypothesis,
                   *(score.stats.get(k) for k in ("ref_words", "edits", "sub", "del", "ins")))
            expected = (row["ref_norm"], row["hyp_norm"], row["ref_words"], row["edits"], row["sub"], row["del"], row["ins"])
        else:
            got, expected = (score.value, score.stats, score.error), (None, {}, None)
        if got != expected:
            wrong.append(f"{row['id']} {row['category']}: {expected} != {got}")
    assert len(ROWS) == 294 and not wrong


def test_the_corpus_figure_is_the_leaderboards():
    metric = load_metric("wer_oasr")
    scores = [_score(row) for row in ROWS]
    counted = [s for s in scores if metric.counted(s)]
    assert len(counted) == CORPUS["rows_scored"] == 287
    assert sum(s.stats["edits"] for s in counted) == CORPUS["edits"]
    assert metric.aggregate(scores) == pytest.approx(CORPUS["wer_unrounded"], abs=1e-12)
    assert round(metric.aggregate(scores), 2) == CORPUS["wer"] == 10.31


def test_compounds_cost_nothing_here_and_count_in_the_headline():
    """The leaderboard's compound merge ("white paper" / "whitepaper"); the reference headline counts the split."""
    item = ScoreItem("c", "a whitepaper on wi-fi", "a white paper on wifi", "en")
    oasr, headline = load_metric("wer_oasr").score([item])[0], load_metric("wer").score([item])[0]
    assert oasr.stats["edits"] == 0 and headline.stats["edits"] > 0


def test_english_asr_tasks_report_it_beside_the_headline_and_mandarin_rows_do_not():
    from audio_evals.registry import load_registry

    tasks = load_registry([]).tasks
    assert tasks["asr-en"].secondary_for("wer") == ["wer_oasr"]
    assert tasks["asr"].secondary_for("wer") == ["wer_oasr"] and tasks["asr"].secondary_for("cer") == []
    assert tasks["asr-zh"].secondary_for("cer") == []
