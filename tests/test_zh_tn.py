"""The Mandarin normaliser and tokens against what the reference tool's own code produced.

Two sources, neither built from this project's parts:

* ``../shared/data/reference-scoring/asr.jsonl`` (and ``asr-edges.jsonl``): for each Mandarin pair, the
  ``ref_tokens``/``hyp_tokens`` UltraEval-Audio's ``compute_wer`` compared (written by the reference's
  scoring code).
* ``fixtures/reference_normalizers.jsonl``: for 1018 strings (the battery below among them), what
  UltraEval-Audio@9b69da6's ``chinese_normalizer`` (its SpeechColab ``cn_tn`` ``TextNorm``) and its
  zh-language ``compute_wer`` tokenisation make of them, recomputed by
  ``fixtures/regen_reference_normalizers.py`` from the reference's checkout.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audio_evals.metrics.normalize import reference_tokens
from audio_evals.metrics.zh_tn import normalize_zh

SCORING = Path(__file__).resolve().parents[1].parent / "shared/data/reference-scoring"
GOLDENS = Path(__file__).with_name("fixtures") / "reference_normalizers.jsonl"


def _zh_pairs() -> list[dict]:
    rows = []
    for name in ("asr.jsonl", "asr-edges.jsonl"):
        if (SCORING / name).exists():
            rows += [json.loads(line) for line in (SCORING / name).read_text(encoding="utf-8").splitlines()
                     if line.strip()]
    return [row for row in rows if row.get("lang") == "zh"]


ZH_PAIRS = _zh_pairs()
GOLDEN = {row["text"]: row for row in map(json.loads, GOLDENS.read_text(encoding="utf-8").splitlines())}


@pytest.mark.skipif(not ZH_PAIRS, reason=f"reference scoring fixtures not found at {SCORING}")
def test_every_mandarin_pair_tokenises_as_the_reference_tool_did() -> None:
    """Both sides of each fixture pair give the reference's own tokens."""
    wrong = [row["reference"] for row in ZH_PAIRS
             if (reference_tokens(row["reference"], "zh"), reference_tokens(row["hypothesis"], "zh"))
             != (row["ref_tokens"], row["hyp_tokens"])]
    assert len(ZH_PAIRS) == 310 and not wrong


def test_every_golden_string_normalises_and_tokenises_as_the_reference() -> None:
    """The Chinese normaliser alone (``cn_tn``) and the whole zh token pipeline, on every golden."""
    wrong = [text for text, row in GOLDEN.items()
             if (normalize_zh(text), reference_tokens(text, "zh")) != (row["cn_tn"], row["tokens_zh"])]
    assert len(GOLDEN) == 1018 and not wrong


#: Quirks of the reference's cn_tn worth naming; each string's expected output is the golden above.
BATTERY = [
    "2019年我们去了北京",  # a year is read digit by digit
    "我们在2008年8月8日开幕",
    "利率上调了2.5%，达到３０％",  # only an ASCII 0 is dropped: ３０ reads 三十零
    "3/4的人同意",
    "请拨打+86 13812345678联系我",
    "座机010-62345678",
    "P2P和B2C平台",
    "你好，世界！(test)",
    "他今年22岁，家里有200头牛",  # 两 only before 百 and up
    "价格是1002000元",
    "订单号0012345678",  # 4-32 digits read one by one
    "１２３４个",  # full-width digits are converted too
    "00个苹果",  # an all-zero number vanishes
    "x123月 y3月",  # "3月" is replaced at its first occurrence
    "^开头结尾$",  # sentinel stripping eats a raw leading ^ / trailing $
    "",
]


@pytest.mark.parametrize("text", BATTERY)
def test_named_quirks_match_the_reference_golden(text: str) -> None:
    assert normalize_zh(text) == GOLDEN[text]["cn_tn"]
