"""Run folders written directly, shaped as the flow writes them: LibriSpeech-like ASR rows at any size.

Rows have what a real whisper run's rows have (raw and normalised texts, jiwer edit stats, a clip
path in a dataset cache, a few failed and skipped samples), so a page built from 10k of them
weighs what a real 10k run's page weighs. Used by tests/test_view.py and benchmarks/view_10k.py.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import jiwer

from audio_evals.metrics.base import SampleScore
from audio_evals.metrics.wer import WER

_SYLLABLES = ["an", "ber", "cal", "do", "el", "for", "ga", "hin", "is", "jo", "ka", "lu", "men", "no", "or", "pe",
              "qui", "ra", "sto", "ti", "un", "ver", "wa", "yo", "the", "and", "of", "to", "in", "he"]
VOCABULARY = sorted({"".join(random.Random(k).choices(_SYLLABLES, k=1 + k % 3)) for k in range(400)})
AUDIO_DIR = "/root/.cache/audio-evals/datasets/librispeech-test-clean/3f2a9c/audio"


def _corrupt(words: list[str], rng: random.Random, error_rate: float) -> list[str]:
    """Substitute, drop or add words at ``error_rate`` per reference word."""
    out = []
    for word in words:
        roll = rng.random()
        if roll < error_rate / 2:
            out.append(rng.choice(VOCABULARY))
        elif roll < 3 * error_rate / 4:
            continue
        elif roll < error_rate:
            out += [word, rng.choice(VOCABULARY)]
        else:
            out.append(word)
    return out


def asr_row(sample_id: str, reference: str, hypothesis: str, lang: str = "en", **changes: Any) -> dict[str, Any]:
    """A scored ASR row as scoring writes it (whitespace tokens, jiwer stats)."""
    nr, nh = reference.lower(), hypothesis.lower().rstrip(".")
    out = jiwer.process_words(nr, nh)
    edits = out.substitutions + out.deletions + out.insertions
    n = len(nr.split())
    row = {"id": sample_id, "audio": f"{AUDIO_DIR}/{sample_id}.flac", "lang": lang, "reference": reference,
           "hypothesis": hypothesis, "status": "ok", "stage": None, "error": None, "duration_s": round(0.4 * n, 2),
           "shard": 0, "model_text": hypothesis, "reasoning": None, "generated_audio": None, "latency_s": 0.5,
           "metric": "wer", "value": 100.0 * edits / n,
           "stats": {"edits": edits, "ref_words": n,
                     "sub": out.substitutions, "del": out.deletions, "ins": out.insertions},
           "normalized_hypothesis": nh, "normalized_reference": nr, "explanation": None}
    row.update(changes)
    return row


def failed_row(sample_id: str, status: str, stage: str, error: str) -> dict[str, Any]:
    return {"id": sample_id, "audio": f"{AUDIO_DIR}/{sample_id}.flac", "lang": "en", "reference": None,
            "hypothesis": None, "status": status, "stage": stage, "error": error}


def asr_rows(n: int, seed: int = 0, error_rate: float = 0.08) -> list[dict[str, Any]]:
    """``n`` rows; the references depend only on the row number, so two seeds are two models on one dataset."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = random.Random(i).choices(VOCABULARY, k=random.Random(-i).randint(5, 35))
        sample_id = f"{1000 + i % 97}-{130000 + i}-{i:04d}"
        if i % 100 == 7:
            rows.append(failed_row(sample_id, "failed", "preprocess", f"cannot decode {AUDIO_DIR}/{sample_id}.flac: "
                                                                      "Error opening: Format not recognised"))
            continue
        if i % 200 == 11:
            rows.append(failed_row(sample_id, "skipped", "preprocess", "clip is 41.2 s long (--max-duration 30)"))
            continue
        hypothesis = " ".join(_corrupt(words, rng, error_rate)).capitalize() + "."
        rows.append(asr_row(sample_id, " ".join(words).upper(), hypothesis))
    return rows


def summary(run_id: str, rows: list[dict[str, Any]], model: str = "whisper-tiny.en",
            dataset: str = "librispeech-test-clean") -> dict[str, Any]:
    """The parts of summary.json the viewer reads; the WER figure recomputed from the rows' stats."""
    metric = WER()
    scores = [SampleScore(r["id"], "wer", r["value"], r["stats"]) for r in rows if r.get("stats")]
    statuses = [r["status"] for r in rows]
    return {
        "run_id": run_id, "created_at": "2026-12-01T08:00:00+00:00", "status": "completed", "strict": False,
        "dataset": {"name": dataset, "task": "asr", "source": {"type": "hub", "repo": "openslr/librispeech_asr"}},
        "model": {"name": model, "backend": "faster_whisper"},
        "metrics": [{"name": "wer", "role": "headline", "group": "en", "value": metric.aggregate(scores),
                     "ci95": [1.0, 2.0], "n": len(scores), "failed": statuses.count("failed"), "unparsed": 0,
                     "higher_is_better": False, "description": metric.description, "normalization": "",
                     "protocol": ""}],
        "counts": {"samples": len(rows), "scored": len(scores), "failed": statuses.count("failed"),
                   "skipped": statuses.count("skipped"), "unparsed": 0, "dropped": 0},
        "files": {"samples": "samples.jsonl", "summary": "summary.json", "report": "report.md", "view": "view.html"},
    }


def write_run(folder: Path, rows: list[dict[str, Any]], run_id: str | None = None, **names: str) -> Path:
    """A run folder with ``samples.jsonl`` and ``summary.json``; its path."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "samples.jsonl").open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    (folder / "summary.json").write_text(json.dumps(summary(run_id or folder.name, rows, **names)), encoding="utf-8")
    return folder
