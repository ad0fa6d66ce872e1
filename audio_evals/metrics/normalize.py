"""Named text normalisation pipelines applied to both hypothesis and reference before scoring.

Each pipeline is a plain function so a metric's ``normalization`` legend can name it and a test
can pin its behaviour. Heavy normalisers (Whisper's, OpenCC, sacrebleu's tokenisers) are built
once, on first use. ``reference_tokens`` is the seed headline's protocol (UltraEval-Audio's
``compute_wer``); ``english``/``basic``/``mandarin`` are this project's named alternatives, and
``open_asr`` is the Open ASR Leaderboard's English normaliser.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable

from audio_evals.metrics import english_text

_ARTICLES = frozenset({"a", "an", "the"})


@functools.cache
def _whisper_basic() -> Callable[[str], str]:
    from whisper_normalizer.basic import BasicTextNormalizer

    return BasicTextNormalizer()


@functools.cache
def _sacrebleu_tokenizer(name: str) -> Callable[[str], str]:
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
    from sacrebleu.tokenizers.tokenizer_zh import TokenizerZh

    return {"13a": Tokenizer13a, "zh": TokenizerZh}[name]()


@functools.cache
def _t2s() -> Callable[[str], str]:
    from opencc import OpenCC

    return OpenCC("t2s").convert


def _is_punct_or_symbol(char: str) -> bool:
    return unicodedata.category(char)[0] in "PS"


def english(text: str) -> str:
    """Whisper's English normaliser as the reference tool's copy of it runs (``english_text.REFERENCE``).

    Lowercases; drops text in brackets/parentheses (and Latin words in full-width parentheses)
    and fillers (hmm, uh); standardises spelled numbers ("one two three" -> "123"), British
    spellings ("colour" -> "color") and titles ("mr" -> "mister"); removes punctuation and
    diacritics; collapses whitespace. Colloquial forms (kinda, dunno, cause) stay as they are.
    """
    return english_text.normalize(text)


def open_asr(text: str) -> str:
    """The Open ASR Leaderboard's English normaliser (``english_text.OPEN_ASR``)."""
    return english_text.normalize(text, english_text.OPEN_ASR)


def reference_tokens(text: str, lang: str | None) -> list[str]:
    """The tokens the reference tool's WER/CER compares (UltraEval-Audio ``compute_wer``).

    Lowercase, the reference's English normaliser (``english``; for every language, as the reference does), then
    for Mandarin the SpeechColab Chinese normaliser (numbers, dates, percentages, fractions and
    phone numbers read out in characters, punctuation to spaces; no traditional-to-simplified, no
    full-to-half width) and sacrebleu's ``zh`` tokeniser (one token per CJK character, a Latin
    word stays one token); otherwise sacrebleu's ``13a`` tokeniser. Tokens are lowercased.
    """
    text = english(text.lower())
    if lang == "zh":
        from audio_evals.metrics.zh_tn import normalize_zh

        return _sacrebleu_tokenizer("zh")(normalize_zh(text)).lower().split()
    return _sacrebleu_tokenizer("13a")(text).lower().split()


def basic(text: str) -> str:
    """Whisper's language-agnostic normaliser: lowercase, drop bracketed text, punctuation to spaces."""
    return _whisper_basic()(text)


def mandarin(text: str) -> str:
    """Mandarin CER normalisation, applied character by character.

    NFKC (full-width letters, digits and punctuation become half-width), traditional to
    simplified characters (OpenCC ``t2s``), removal of every punctuation (Unicode P*) and symbol
    (S*) character and of all whitespace, then lowercasing of Latin letters.
    """
    simplified = _t2s()(unicodedata.normalize("NFKC", text))
    return "".join(c for c in simplified if not (c.isspace() or _is_punct_or_symbol(c))).lower()


def qa(text: str) -> list[str]:
    """Answer tokens for has-answer matching (DPR/SQuAD style).

    Unicode NFD, lowercase, every punctuation or symbol character replaced by a space (so
    "New York-based" splits like DPR's tokenizer), whitespace split, articles a/an/the removed.
    """
    lowered = unicodedata.normalize("NFD", text).lower()
    spaced = "".join(" " if _is_punct_or_symbol(c) else c for c in lowered)
    return [t for t in spaced.split() if t not in _ARTICLES]
