"""wer-oasr: English WER as the Open ASR Leaderboard computes it, beside the reference headline.

Its ``normalizer/eval_utils.py::score_results`` normalises both sides with the leaderboard's
``EnglishTextNormalizer`` (``english_text.OPEN_ASR``), splits on whitespace, aligns each pair with
``kaldialign`` and ``merge_compounds=True`` (``white paper`` against ``whitepaper`` costs nothing),
and divides the summed edits by the summed reference words. The leaderboard never transcribes a
sample whose normalised reference is empty (or reads "ignore time segment in scoring"), so such a
sample has no value here and stays out of this figure; the headline decides the sample's status.
A figure here stands beside that leaderboard's; the seed tables' figure is the ``wer`` headline.
"""

from __future__ import annotations

from audio_evals.metrics import normalize
from audio_evals.metrics.base import SampleScore, ScoreItem
from audio_evals.metrics.wer import EditRate

#: The name this metric reports in summaries, rows and reports.
NAME = "wer-oasr"

#: A normalised reference the leaderboard leaves out, besides an empty one (``data_utils.is_target_text_in_range``).
IGNORED_REFERENCE = "ignore time segment in scoring"


class OpenAsrWER(EditRate):
    name = NAME
    ref_key = "ref_words"
    stat_keys = ("edits", ref_key)
    description = "Word Error Rate with compound-aware alignment, corpus-level (lower is better)"
    tokenizers = {"open_asr": lambda text: normalize.open_asr(text).split()}
    legends = {"open_asr": ("the leaderboard's English normaliser (Whisper's, with more fillers, compounds, names "
                            "and letter runs joined), whitespace words, compound-aware alignment.")}
    protocols = {"open_asr": ("Open ASR Leaderboard protocol: normalizer/eval_utils.py score_results "
                              "(kaldialign merge_compounds), beside the reference headline")}

    def reference_tokens(self, reference: str) -> list[str]:
        words = self.tokens(reference)
        return [] if " ".join(words) == IGNORED_REFERENCE else words

    def align(self, reference: list[str], hypothesis: list[str]) -> tuple[int, int, int]:
        from kaldialign import edit_distance

        out = edit_distance(reference, hypothesis, merge_compounds=True)
        return out["sub"], out["del"], out["ins"]

    def no_reference_tokens(self, item: ScoreItem, problem: str | None) -> SampleScore:
        return SampleScore(item.sample_id, self.name, None,
                           explanation="reference empty after the leaderboard's normalisation: it leaves the sample out")


def build(normalizer: str | None = None) -> OpenAsrWER:
    return OpenAsrWER(normalizer)
