"""The Chinese normaliser against the reference tool's own outputs.

Expected strings below were produced by running the reference's cn_tn ``TextNorm`` (cc_mode "",
every option off); the fixture rows were scored by the reference tool itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sacrebleu.tokenizers.tokenizer_zh import TokenizerZh
from whisper_normalizer.english import EnglishTextNormalizer

from audio_evals.metrics.zh_tn import normalize_zh

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared/data/reference-scoring"
ASR_ROWS = FIXTURES / "asr.jsonl"


def _zh_rows() -> list[dict]:
    if not ASR_ROWS.exists():
        return []
    with open(ASR_ROWS, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [row for row in rows if row.get("lang") == "zh"]


ZH_ROWS = _zh_rows()
_english = EnglishTextNormalizer()
_tokenize = TokenizerZh()


def _reference_tokens(text: str) -> list[str]:
    """The reference Mandarin pipeline: English normaliser, Chinese normaliser, sacrebleu zh, lowercase."""
    return _tokenize(normalize_zh(_english(text))).lower().split()


@pytest.mark.skipif(not ZH_ROWS, reason=f"reference scoring fixtures not found at {FIXTURES}")
@pytest.mark.parametrize("row", ZH_ROWS, ids=[f"zh{i}" for i in range(len(ZH_ROWS))])
def test_reference_tokens(row: dict) -> None:
    assert _reference_tokens(row["reference"]) == row["ref_tokens"]
    assert _reference_tokens(row["hypothesis"]) == row["hyp_tokens"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019年我们去了北京", "二零一九年我们去了北京"),  # year digit by digit
        ("我们在2008年8月8日开幕", "我们在二零零八年八月八日开幕"),
        ("利率上调了2.5%，达到３０％", "利率上调了百分之二点五 达到百分之三十零"),  # only an ASCII 0 is dropped: ３０ reads 三十零
        ("3/4的人同意", "四分之三的人同意"),
        ("请拨打+86 13812345678联系我", "请拨打八六一三八一二三四五六七八联系我"),
        ("座机010-62345678", "座机零一零六二三四五六七八"),
        ("圆周率约为3.14", "圆周率约为三点一四"),
        ("P2P和B2C平台", "P2P和B2C平台"),
        ("你好，世界！(test)", "你好 世界  test "),
        ("他今年22岁，家里有200头牛", "他今年二十二岁 家里有两百头牛"),  # 两 only before 百 and up
        ("10个人", "十个人"),
        ("价格是1002000元", "价格是一百万两千元"),
        ("订单号0012345678", "订单号零零一二三四五六七八"),  # 4-32 digits read one by one
        ("１２３４个", "一千两百三十四个"),  # full-width digits are converted too
        ("5块5", "五块五"),
        ("00个苹果", "个苹果"),  # an all-zero number vanishes
        ("x123月 y3月", "x十二三月 y三月"),  # "3月" is replaced at its first occurrence
        ("^开头结尾$", "开头结尾"),  # sentinel stripping eats a raw leading ^ / trailing $
        ("", ""),
    ],
)
def test_normalize_zh_matches_reference(text: str, expected: str) -> None:
    assert normalize_zh(text) == expected
