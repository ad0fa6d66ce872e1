"""cer: Mandarin character error rate (sum of character edits / sum of reference characters, x100).

Both sides go through ``normalize.mandarin`` (half-width, simplified, no punctuation or spaces),
so every remaining character is a token. The reference is the item's reference -- the upstream
tool passed the two arguments swapped, which divides by the hypothesis length.
"""

from __future__ import annotations

import jiwer

from audio_evals.metrics import normalize
from audio_evals.metrics.wer import EditRate


class CER(EditRate):
    name = "cer"
    ref_key = "ref_chars"
    stat_keys = ("edits", ref_key)
    description = "Character Error Rate for Mandarin, corpus-level (lower is better)"
    normalization = ("NFKC full-width to half-width, traditional to simplified (OpenCC t2s), punctuation, "
                     "symbols and whitespace removed, Latin lowercased.")

    def normalize(self, text: str) -> str:
        return normalize.mandarin(text)

    def units(self, text: str) -> list[str]:
        return list(text)

    def align(self, reference: str, hypothesis: str) -> jiwer.CharacterOutput:
        return jiwer.process_characters(reference, hypothesis)


def build() -> CER:
    return CER()
