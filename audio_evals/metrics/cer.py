"""cer: Mandarin character error rate, by default exactly as the reference tool computes it.

The ``reference`` tokeniser (the default, the seed headline) is UltraEval-Audio's
``compute_wer(..., "zh")``: Chinese text normalisation, then one token per CJK character and one
per Latin word. ``mandarin`` is this project's alternative: NFKC (full width to half width),
traditional to simplified, every character a token. Either way the item's reference is the
reference (the upstream CER aggregator swapped the arguments; its seed rows use compute_wer).
"""

from __future__ import annotations

from audio_evals.metrics import normalize
from audio_evals.metrics.wer import REFERENCE_PROTOCOL, EditRate

#: The name this metric reports in summaries, rows and reports.
NAME = "cer"


class CER(EditRate):
    name = NAME
    ref_key = "ref_chars"
    stat_keys = ("edits", ref_key)
    description = "Character Error Rate for Mandarin, corpus-level (lower is better)"
    tokenizers = {
        "reference": lambda text: normalize.reference_tokens(text, "zh"),
        "mandarin": lambda text: list(normalize.mandarin(text)),
    }
    legends = {
        "reference": ("lowercase, Whisper English normaliser, Chinese text normalisation (numbers, dates, "
                      "percentages, phone numbers to characters; punctuation removed), sacrebleu zh tokens "
                      "(a CJK character or a Latin word each)."),
        "mandarin": ("NFKC full-width to half-width, traditional to simplified (OpenCC t2s), punctuation, "
                     "symbols and whitespace removed, Latin lowercased, every character a token."),
    }
    protocols = {
        "reference": REFERENCE_PROTOCOL.format(tokenizer="zh"),
        "mandarin": "audio-evals alternative: NFKC, traditional to simplified, characters",
    }


def build(normalizer: str | None = None) -> CER:
    return CER(normalizer)
