"""Chinese text normalisation applied before Mandarin CER in the reference protocol.

This reproduces, output for output, the normaliser UltraEval-Audio runs on both sides of a Mandarin
pair: SpeechColab's ``cn_tn.TextNorm`` with every option off and ``cc_mode=""``. That call only
rewrites "non-standard words" (dates, money, phone numbers, fractions, percentages, counted numbers,
long digit runs, plain numbers) into Chinese characters and then turns punctuation into spaces; there
is no traditional-to-simplified or full-to-half-width step.

It is a fresh implementation, not a copy, but it keeps the reference's observable quirks on purpose,
because scores must match the reference tool:

* ``\\d`` is Unicode-aware, so full-width and other decimal digits are converted too, while only an
  ASCII ``"0"`` counts as a leading zero (``"０５"`` reads 零十五).
* Each rule collects its matches first, then replaces the *first occurrence* of each matched string in
  the already-rewritten text, which is not always where it was found.
* Leading zeros are spoken (``"012"`` reads 零一十二) and an all-zero run of two or more digits vanishes.
* Text is wrapped in ``^...$`` sentinels that are stripped greedily at the end, so a raw leading ``^``
  or trailing ``$`` disappears instead of becoming a space.
"""

from __future__ import annotations

import re
import string
from typing import Callable

_DIGITS = "零一二三四五六七八九"
# Unit powers of ten, largest first ("mid" system: each unit from 亿 up is 10^4 times the previous).
_UNITS = tuple(zip((44, 40, 36, 32, 28, 24, 20, 16, 12, 8, 4, 3, 2, 1), "载正涧沟穰秭垓京兆亿万千百十"))

_CURRENCY_UNITS = "((亿|千万|百万|万|千|百)|(亿|千万|百万|万|千|百|)元|(亿|千万|百万|万|千|百|)块|角|毛|分)"
# Measure words after which a number is read as a cardinal; 千/微 only count before 克 or 米.
_QUANTIFIERS = (
    "匹张座回场尾条个首阙阵网炮顶丘棵只支袭辆挑担颗壳窠曲墙群腔砣客贯扎捆刀令打手罗坡山岭江溪钟队单双对出口头"
    "脚板跳枝件贴针线管名位身堂课本页家户层丝毫厘分钱两斤铢石钧锱忽寸尺丈里寻常铺程撮勺合升斗盘碗碟叠桶笼盆盒"
    "杯斛锅簋篮罐瓶壶卮盏箩箱煲啖袋钵年月日季刻时周天秒旬纪岁世更夜春夏秋冬代伏辈丸泡粒幢堆根道面片块"
)

_DATE = re.compile(r"\D+((([089]\d|(19|20)\d{2})年)?(\d{1,2}月(\d{1,2}[日号])?)?)")
_MONEY = re.compile(rf"\D+((\d+(\.\d+)?)[多余几]?{_CURRENCY_UNITS}(\d{_CURRENCY_UNITS}?)?)")
_MOBILE = re.compile(r"\D((\+?86 ?)?1([38]\d|5[0-35-9]|7[678]|9[89])\d{8})\D")
_LANDLINE = re.compile(r"\D((0(10|2[1-3]|[3-9]\d{2})-?)?[1-9]\d{6,7})\D")
_FRACTION = re.compile(r"(\d+/\d+)")
_PERCENT = re.compile(r"(\d+(\.\d+)?%)")
_COUNTED = re.compile(rf"(\d+(\.\d+)?)[多余几]?(?:[{_QUANTIFIERS}]|[千微][克米])")
_DIGIT_RUN = re.compile(r"(\d{4,32})")
_NUMBER = re.compile(r"(\d+(\.\d+)?)")
_LATIN_2_LATIN = re.compile(r"([a-zA-Z]+二[a-zA-Z]+)")  # "P2P" after the 2 was read as 二

# zhon-derived Chinese punctuation plus ASCII punctuation, exactly the reference's PUNCS.
_CN_PUNCS = (
    "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃《》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿"
    "–—‘’‛“”„‟…‧﹏·〈〉-"
)
_PUNCS = _CN_PUNCS + string.punctuation
_PUNCS_TO_SPACE = str.maketrans(_PUNCS, " " * len(_PUNCS))


def _spell_digits(digits: str) -> str:
    """Read digits one by one (years, phone numbers, long codes): 2019 -> 二零一九."""
    return "".join(_DIGITS[int(c)] for c in digits)


def _integer_symbols(digits: str) -> list[tuple[str, int]]:
    """Split an integer into (character, unit power) symbols; power 0 marks a digit.

    Mirrors the reference's recursion: take the largest unit shorter than the zero-stripped number,
    spell the part above it (leading zeros included, which is where a spoken 零 comes from) and the
    part below it.
    """
    core = digits.lstrip("0")
    if not core:
        return []
    if len(core) == 1:
        zero = [("零", 0)] if core != digits else []
        return zero + [(_DIGITS[int(core)], 0)]
    power, unit = next(u for u in _UNITS if u[0] < len(core))
    return _integer_symbols(digits[:-power]) + [(unit, power)] + _integer_symbols(digits[-power:])


def _cardinal(number: str) -> str:
    """Read a number with units: 105 -> 一百零五, 12 -> 十二, 2000 -> 两千, 3.14 -> 三点一四."""
    whole, _, fraction = number.partition(".")
    if len(whole) > 1:
        symbols = _integer_symbols(whole)
    else:
        symbols = [(_DIGITS[int(c)], 0) for c in whole]
    # 二 before a unit above 十 reads 两 when it opens the number or follows a unit above 十:
    # 两百, 一万两千, but 二十, 十二万, 零二千.
    for i, (char, _power) in enumerate(symbols):
        before_big_unit = i + 1 < len(symbols) and symbols[i + 1][1] > 1
        after_unit_or_start = i == 0 or symbols[i - 1][1] > 1
        if char == "二" and before_big_unit and after_unit_or_start:
            symbols[i] = ("两", 0)
    text = "".join(char for char, _ in symbols)
    if fraction:
        text += "点" + _spell_digits(fraction)
    if text.startswith("点"):  # the integer part was all zeros: "00.5" -> 零点五
        return "零" + text
    if text.startswith("一十"):  # 10-19 (and 10万, 15亿, ...) drop the leading 一
        return text[1:]
    return text


def _date(date: str) -> str:
    """[YYYY年][M月[D日|号]]: the year digit by digit, month and day as cardinals."""
    year, has_year, rest = date.partition("年")
    out = _spell_digits(year) + "年" if has_year else ""
    rest = rest if has_year else date
    if rest:  # the date pattern guarantees "M月" or "M月D日"
        month, _, day = rest.partition("月")
        out += _cardinal(month) + "月"
        if day:
            out += _cardinal(day[:-1]) + day[-1]
    return out


def _fraction(fraction: str) -> str:
    """a/b is read denominator first: 3/4 -> 四分之三."""
    numerator, denominator = fraction.split("/")
    return _cardinal(denominator) + "分之" + _cardinal(numerator)


def _rewrite(text: str, pattern: re.Pattern[str], convert: Callable[[str], str]) -> str:
    """Convert every group-1 match, the reference's way.

    Matches are collected on the text as it stands, then each is replaced at its *first occurrence*
    in the progressively rewritten text; that can be a different spot than the one matched.
    """
    for found in [m.group(1) for m in pattern.finditer(text)]:
        if found:
            text = text.replace(found, convert(found), 1)
    return text


def normalize_zh(text: str) -> str:
    """Return exactly what the reference's ``TextNorm(cc_mode="", all options False)(text)`` returns."""
    # The sentinels give the \D-anchored patterns something to match at the very start and end.
    text = "^" + text + "$"
    text = _rewrite(text, _DATE, _date)
    text = _rewrite(text, _MONEY, lambda money: _rewrite(money, _NUMBER, _cardinal))
    text = _rewrite(text, _MOBILE, lambda phone: _spell_digits(phone.replace("+", "").replace(" ", "")))
    text = _rewrite(text, _LANDLINE, lambda phone: _spell_digits(phone.replace("-", "")))
    text = _rewrite(text, _FRACTION, _fraction)
    text = text.replace("％", "%")
    text = _rewrite(text, _PERCENT, lambda percent: "百分之" + _cardinal(percent[:-1]))
    text = _rewrite(text, _COUNTED, _cardinal)
    text = _rewrite(text, _DIGIT_RUN, _spell_digits)
    text = _rewrite(text, _NUMBER, _cardinal)
    text = _rewrite(text, _LATIN_2_LATIN, lambda word: word.replace("二", "2"))
    return text.lstrip("^").rstrip("$").translate(_PUNCS_TO_SPACE)
