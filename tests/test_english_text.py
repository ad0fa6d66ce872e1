"""The headline English normaliser equals the reference tool's own, and cannot drift silently.

``fixtures/reference_normalizers.jsonl`` holds what UltraEval-Audio's code (commit 9b69da6, its
pinned sacrebleu 1.5.1) makes of 1018 strings: the hand-written battery (numbers, currencies,
ordinals, British spellings, contractions, colloquial words, brackets, full-width parentheses,
fillers, diacritics, other scripts, CJK mixed text) plus every string of the Open ASR
Leaderboard and asr-edges fixtures. ``fixtures/regen_reference_normalizers.py`` says how it was
made. A release of ``whisper-normalizer`` whose number normaliser, spelling table or symbol
removal behaves differently makes these tests fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audio_evals.metrics import english_text, normalize

GOLDENS = Path(__file__).with_name("fixtures") / "reference_normalizers.jsonl"


def goldens() -> list[dict]:
    return [json.loads(line) for line in GOLDENS.read_text(encoding="utf-8").splitlines()]


def english_disagreements(rows: list[dict]) -> list[str]:
    """Each golden whose normalised text or 13a tokens differ here, as ``text: reference != ours``."""
    out = []
    for row in rows:
        ours = (normalize.english(row["text"]), normalize.reference_tokens(row["text"], "en"))
        if ours != (row["english"], row["tokens_13a"]):
            out.append(f"{row['text']!r}: {(row['english'], row['tokens_13a'])!r} != {ours!r}")
    return out


def test_english_normaliser_and_tokens_equal_the_reference_on_every_golden():
    rows = goldens()
    assert len(rows) == 1018
    assert not english_disagreements(rows)


def test_the_goldens_hold_the_edges_the_package_gets_wrong():
    """The battery has the rows where the whisper-normalizer package and the reference differ."""
    by_text = {row["text"]: row["english"] for row in goldens()}
    assert by_text["kinda"] == "kinda" and by_text["dunno"] == "dunno" and by_text["'cause"] == "cause"
    assert by_text["安妮·弗兰克（Anne Frank）"] == "安妮 弗兰克"
    assert by_text["（2019）"] != ""  # only Latin words in full-width parentheses are deleted


@pytest.mark.parametrize("component, change", [
    ("EnglishNumberNormalizer", lambda cls: setattr(cls, "postprocess", lambda self, s: s)),
    ("EnglishSpellingNormalizer", lambda cls: setattr(cls, "__init__", lambda self: setattr(self, "mapping", {}))),
])
def test_a_changed_package_component_turns_the_goldens_red(monkeypatch, component, change):
    """A package release that changes a component the normaliser reuses is caught by the goldens."""
    import whisper_normalizer.english as package

    cls = getattr(package, component)
    monkeypatch.setattr(package, component, type(component, (cls,), {}))
    change(getattr(package, component))
    for cached in (english_text._numbers, english_text._whisper_spellings, english_text._spellings):
        cached.cache_clear()
    try:
        assert english_disagreements(goldens())
    finally:
        monkeypatch.undo()
        for cached in (english_text._numbers, english_text._whisper_spellings, english_text._spellings):
            cached.cache_clear()
