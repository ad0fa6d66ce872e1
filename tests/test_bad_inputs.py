"""A corpus of broken and awkward inputs: each gets a clear per-sample cause; the run completes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import soundfile as sf

from audio_evals import storage
from tests.conftest import SAMPLE_DIR


def _write_corpus(folder):
    audio = folder / "audio"
    audio.mkdir(parents=True)
    good = SAMPLE_DIR / "audio" / "spk1_snt1.wav"
    clip, rate = sf.read(good, dtype="float32")
    shutil.copy(good, audio / "good.wav")
    (audio / "truncated.wav").write_bytes(good.read_bytes()[:30])
    (audio / "text.wav").write_text("hello, I am a text file", encoding="utf-8")
    (audio / "zero.wav").write_bytes(b"")
    sf.write(audio / "no_frames.wav", np.zeros(0, dtype="float32"), 16000)
    nan = clip.copy()
    nan[100] = np.nan
    sf.write(audio / "nan.wav", nan, rate, subtype="FLOAT")
    sf.write(audio / "long.wav", np.zeros(8000 * 3600, dtype="int16"), 8000, subtype="PCM_16")  # one hour
    sf.write(audio / "8k.wav", clip[::2], 8000)
    stereo48 = np.repeat(np.interp(np.arange(len(clip) * 3) / 3, np.arange(len(clip)), clip)[:, None], 2, axis=1)
    sf.write(audio / "48k_stereo.wav", stereo48.astype("float32"), 48000)
    ref = "THE CHILD ALMOST HURT THE SMALL DOG"
    rows = [
        {"id": "good", "audio": "audio/good.wav", "text": ref},
        {"id": "truncated", "audio": "audio/truncated.wav", "text": ref},
        {"id": "text-as-wav", "audio": "audio/text.wav", "text": ref},
        {"id": "zero-bytes", "audio": "audio/zero.wav", "text": ref},
        {"id": "no-frames", "audio": "audio/no_frames.wav", "text": ref},
        {"id": "nan", "audio": "audio/nan.wav", "text": ref},
        {"id": "one-hour", "audio": "audio/long.wav", "text": ref},
        {"id": "8k", "audio": "audio/8k.wav", "text": ref},
        {"id": "48k-stereo", "audio": "audio/48k_stereo.wav", "text": ref},
        {"id": "empty-text", "audio": "audio/good.wav", "text": "  "},
        {"id": "no-audio-field", "text": ref},
        {"id": "good", "audio": "audio/8k.wav", "text": ref},
        {"id": "escape", "audio": "../../etc/passwd", "text": ref},
        {"id": "absolute", "audio": "/etc/passwd", "text": ref},
    ]
    lines = [json.dumps(r).encode() for r in rows]
    lines.insert(3, b'{"id": "latin1", "audio": "audio/good.wav", "text": "caf\xe9"}')
    lines.insert(4, b"{not json")
    manifest = folder / "manifest.jsonl"
    manifest.write_bytes(b"\n".join(lines) + b"\n")
    return manifest


def test_every_bad_input_gets_a_clear_cause(prefect_api, tmp_path, scripted_registry):
    from audio_evals import evaluate

    registry = tmp_path / "registry" / "datasets.yaml"
    manifest = _write_corpus(tmp_path / "corpus")
    registry.write_text(
        f"datasets:\n  bad-corpus:\n    task: asr-en\n    source: {{type: manifest, path: {json.dumps(str(manifest))}}}\n",
        encoding="utf-8")
    summary = evaluate(dataset="bad-corpus", model="scripted", registry_paths=[scripted_registry["path"]],
                       cache_dir=str(tmp_path / "cache"), output=str(tmp_path / "out"), max_duration_s=600,
                       retry_delay_s=0.0)
    rows = list(storage.read_jsonl(summary.paths["samples"]))
    by_id: dict[str, list[dict]] = {}
    for r in rows:
        by_id.setdefault(r["id"], []).append(r)
    expect = {
        "truncated": "unreadable audio",
        "text-as-wav": "unreadable audio",
        "zero-bytes": "empty file",
        "no-frames": "zero duration",
        "nan": "non-finite",
        "one-hour": "exceeds max_duration_s=600",
        "empty-text": "empty reference",
        "no-audio-field": "no 'audio'",
        "escape": "escapes the dataset root",
        "absolute": "absolute audio path",
        "line-4": "not UTF-8",
        "line-5": "not valid JSON",
    }
    for sample_id, cause in expect.items():
        (row,) = by_id[sample_id]
        assert row["status"] == "failed" and cause in row["error"], (sample_id, row)
    for sample_id in ("8k", "48k-stereo"):
        assert by_id[sample_id][0]["status"] == "ok", by_id[sample_id]
    good = by_id["good"]
    assert [r["status"] for r in good] == ["ok", "failed"] and "duplicate id" in good[1]["error"]
    assert summary.counts.samples == len(rows) == 16
    assert summary.counts.scored == 3
