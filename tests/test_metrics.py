"""Metrics against hand-computed cases and against their reference implementations.

Reference implementations: jiwer (WER/CER), sacrebleu API and CLI (BLEU), Whisper's normalisers,
the official MMAU string match, DPR's has-answer rule.
"""

from __future__ import annotations

import subprocess
import sys
import time
import unicodedata

import jiwer
import numpy as np
import pytest
import sacrebleu

from audio_evals.metrics import available_metrics, load_metric
from audio_evals.metrics.base import Metric, SampleScore, ScoreItem, text_list
from audio_evals.metrics.bootstrap import bootstrap_ci
from audio_evals.metrics.choice import extract_choice, options
from audio_evals.metrics.normalize import basic, english, mandarin, qa
from audio_evals.plugins import UnknownName


def items(hyps: list[str], refs: list, **fields) -> list[ScoreItem]:
    return [ScoreItem(f"s{i}", h, r, fields=dict(fields)) for i, (h, r) in enumerate(zip(hyps, refs))]


def run(metric: Metric, hyps: list[str], refs: list, **fields) -> tuple[list[SampleScore], float]:
    scores = metric.score(items(hyps, refs, **fields))
    return scores, metric.aggregate(scores)


# --------------------------------------------------------------------------------------------
# Registry


def test_available_metrics_are_the_metric_modules_only():
    names = available_metrics()
    assert {"wer", "cer", "bleu", "acc", "choice", "mmau"} <= set(names)
    assert not {"base", "bootstrap", "normalize"} & set(names)


def test_load_metric_passes_params_and_rejects_unknown_names():
    assert load_metric("bleu", tokenize="zh").params() == {"tokenize": "zh"}
    assert load_metric("wer").params() == {"normalizer": "reference"}
    with pytest.raises(UnknownName, match="did you mean: wer"):
        load_metric("werr")
    with pytest.raises(UnknownName):
        load_metric("bootstrap")
    with pytest.raises(TypeError):
        load_metric("cer", tokenize="zh")


# --------------------------------------------------------------------------------------------
# Normalisers


@pytest.mark.parametrize("text, expected", [
    ("one two three", "123"),                                  # spelled numbers become digits
    ("Hello (laughs) world [noise]", "hello world"),           # bracketed text removed
    ("Mr. Smith's colour, isn't it?", "mister smith is color is not it"),
    ("I'm twenty-five", "i am 25"),
    ("uh hmm yes", "yes"),                                     # fillers removed
])
def test_english_is_whispers_english_normaliser(text, expected):
    assert english(text) == expected


def test_basic_keeps_words_but_drops_brackets_and_punctuation():
    assert basic("one two three").split() == ["one", "two", "three"]
    assert basic("Hello, World! (x) [y]").split() == ["hello", "world"]


def test_mandarin_normalisation():
    # Traditional 們 -> 们; full-width ＡＢＣ -> abc; ，！＃ and spaces removed; Latin lowercased.
    assert mandarin("我們ＡＢＣ，你好！ hello World ＃1") == "我们abc你好helloworld1"
    assert mandarin("今天天氣很好。") == "今天天气很好"
    assert mandarin("「引號」《書名》") == "引号书名"


def test_qa_tokens():
    # NFD + lowercase; "." and "-" become spaces; articles dropped.
    assert qa("The U.S. Open-Air café, an apple") == ["u", "s", "open", "air", unicodedata.normalize("NFD", "café"), "apple"]
    assert qa("A  the AN") == []


@pytest.mark.parametrize("value, expected", [
    (None, []),
    ("Paris", ["Paris"]),
    (["Paris", None, "City of Light"], ["Paris", "City of Light"]),
    ('["Barack Obama", "Obama"]', ['["Barack Obama", "Obama"]']),  # a string is one answer, as in the reference
    ("[laughter] yes", ["[laughter] yes"]),
])
def test_text_list(value, expected):
    assert text_list(value) == expected


# --------------------------------------------------------------------------------------------
# WER


def test_wer_hand_computed():
    scores, corpus = run(load_metric("wer"), ["the cat sit on mat", "hello big world"],
                         ["The cat sat on the mat.", "Hello world!"])
    # s0: sat->sit (1 sub), "the" dropped (1 del): 2 edits / 6 words = 33.33
    assert scores[0].stats == {"edits": 2, "ref_words": 6, "sub": 1, "del": 1, "ins": 0}
    assert scores[0].value == pytest.approx(100 * 2 / 6)
    # s1: "big" inserted: 1 edit / 2 words = 50
    assert scores[1].stats == {"edits": 1, "ref_words": 2, "sub": 0, "del": 0, "ins": 1}
    assert scores[1].value == 50.0
    # corpus: (2 + 1) / (6 + 2) = 37.5, not the mean of 33.3 and 50 (41.7)
    assert corpus == 37.5
    assert scores[0].normalized_reference == "the cat sat on the mat"


def test_wer_matches_jiwer_on_a_corpus():
    refs = ["The quick brown fox jumps over the lazy dog.", "I have twenty-five apples!",
            "Mr. Brown's colour TV", "It's a beautiful day in the neighbourhood", "ok"]
    hyps = ["the quick brown box jumped over lazy dog", "I have 25 apples", "mister browns color tv set",
            "its a beautiful day in the neighborhood", ""]
    _, corpus = run(load_metric("wer"), hyps, refs)
    expected = 100 * jiwer.wer([english(r) for r in refs], [english(h) for h in hyps])
    assert corpus == expected
    assert 0 < corpus < 100


def test_wer_empty_hypothesis_deletes_every_word():
    scores, corpus = run(load_metric("wer"), [""], ["three little words"])
    assert scores[0].stats["del"] == 3 and corpus == 100.0


def test_wer_reference_empty_after_normalisation_fails_the_sample():
    """As the reference's compute_wer divides by zero there: a failed sample with its cause, not a 0/0 score."""
    metric = load_metric("wer")
    scores, corpus = run(metric, ["something", "the cat"], ["(laughs)", "the cat sat"])
    assert scores[0].value is None and scores[0].stats == {}
    assert scores[0].error == "wer: reference '(laughs)' is empty after normalisation: no words to count errors against"
    assert corpus == pytest.approx(100 / 3)   # only s1: 1 deletion / 3 words
    assert metric.score(items(["x"], [" "]))[0].error == "wer: empty reference ' ': no transcript to count errors against"
    # Scores without ref_words > 0 never enter the aggregate, whatever else their stats say.
    zero = SampleScore("z", "wer", None, {"edits": 5, "ref_words": 0, "sub": 0, "del": 0, "ins": 5})
    assert metric.aggregate(scores + [zero]) == corpus


def test_wer_normalizer_param():
    # english: "one two three" and "123" both normalise to "123" -> 0.
    assert run(load_metric("wer"), ["123"], ["one two three"])[1] == 0.0
    # basic: 1 sub + 2 del over 3 reference words -> 100.
    assert run(load_metric("wer", normalizer="basic"), ["123"], ["one two three"])[1] == 100.0
    with pytest.raises(ValueError, match="unknown normalizer"):
        load_metric("wer", normalizer="klingon")


def test_wer_rejects_several_references():
    with pytest.raises(TypeError, match="several references"):
        load_metric("wer").score(items(["a"], [["a", "b"]]))


# --------------------------------------------------------------------------------------------
# CER


def test_cer_hand_computed():
    scores, corpus = run(load_metric("cer"), ["今天天汽好"], ["今天天气很好"])
    # 气->汽 (1 sub), 很 dropped (1 del): 2 / 6 characters
    assert scores[0].stats == {"edits": 2, "ref_chars": 6, "sub": 1, "del": 1, "ins": 0}
    assert corpus == pytest.approx(100 * 2 / 6)


def test_cer_divides_by_the_reference_not_the_hypothesis():
    # 3 inserted characters over a 2-character reference = 150; swapped arguments would give 3/5 = 60.
    scores, corpus = run(load_metric("cer"), ["你好吗朋友"], ["你好"])
    assert scores[0].stats["ins"] == 3 and corpus == 150.0


@pytest.mark.parametrize("normalizer, hyp, ref", [
    ("mandarin", "今天天气很好", "今天天氣很好"),        # traditional reference
    ("mandarin", "abc123", "ＡＢＣ１２３"),              # full-width reference
    ("mandarin", "你 好 世 界", "你好，世界！"),           # spaces and punctuation
    ("reference", "你 好 世 界", "你好，世界！"),
    ("reference", "二零一九年我们去了北京", "2019年我们去了北京"),   # numbers read out, as the reference does
])
def test_cer_normalises_both_sides(normalizer, hyp, ref):
    assert run(load_metric("cer", normalizer=normalizer), [hyp], [ref])[1] == 0.0
    assert run(load_metric("cer", normalizer=normalizer), [ref], [hyp])[1] == 0.0


def test_reference_cer_keeps_traditional_characters_and_latin_words():
    # The seed protocol converts neither script nor width, and a Latin word is one token.
    scores, corpus = run(load_metric("cer"), ["今天天气很好 hello"], ["今天天氣很好 hello"])
    assert scores[0].normalized_reference == "今 天 天 氣 很 好 hello"
    assert scores[0].stats["edits"] == 1 and scores[0].stats["ref_chars"] == 7


def test_cer_matches_jiwer_on_a_corpus():
    refs = ["今天天氣很好，我們去公園吧。", "我想喝一杯咖啡", "北京是中國的首都", "ＧＰＴ模型"]
    hyps = ["今天天气很好我们去公园", "我想喝一杯茶和咖啡", "北京是中国首都啊", "gpt模形"]
    _, corpus = run(load_metric("cer", normalizer="mandarin"), hyps, refs)
    norm_refs, norm_hyps = [mandarin(r) for r in refs], [mandarin(h) for h in hyps]
    assert corpus == 100 * jiwer.cer(norm_refs, norm_hyps)
    # Characters as space-joined words give the same alignment.
    spaced = 100 * jiwer.wer([" ".join(r) for r in norm_refs], [" ".join(h) for h in norm_hyps])
    assert corpus == pytest.approx(spaced, rel=1e-12)
    assert 0 < corpus < 100


# --------------------------------------------------------------------------------------------
# BLEU

EN_HYPS = ["The cat sat on the mat.", "A dog barks loudly at night", "hello there general kenobi",
           "It is raining today, isn't it?", "We will meet at 5 p.m. tomorrow.", "nothing matches here", "Thank you"]
EN_REFS = ["The cat sat on a mat.", "The dog barks loudly at night.", "hello there",
           "It's raining today, isn't it?", "We'll meet tomorrow at 5 p.m.", "completely different words", "Thank you very much."]
ZH_HYPS = ["今天天气很好，我们去公园吧。", "我想喝一杯咖啡", "北京是中国的首都", "这是一个测试句子"]
ZH_REFS = ["今天天气不错，我们去公园吧。", "我想要一杯咖啡。", "北京是中国首都", "这是测试用的句子"]


def test_bleu_hand_computed():
    scores, corpus = run(load_metric("bleu"), ["a b c d"], ["a b c e"])
    # matches: 1-grams 3/4, 2-grams 2/3, 3-grams 1/2, 4-grams 0/1; lengths 4 and 4 (no brevity penalty)
    assert scores[0].stats == {"hyp_len": 4, "ref_len": 4, "correct_1": 3, "correct_2": 2, "correct_3": 1,
                               "correct_4": 0, "total_1": 4, "total_2": 3, "total_3": 2, "total_4": 1}
    # exp smoothing turns 0/1 into 1/(2*1) = 50%: (75 * 66.67 * 50 * 50) ** (1/4) = 12.5e6 ** 0.25 = 59.46
    assert corpus == pytest.approx(59.4603557501)


@pytest.mark.parametrize("tokenize, hyps, refs", [("13a", EN_HYPS, EN_REFS), ("zh", ZH_HYPS, ZH_REFS)])
def test_bleu_equals_sacrebleu_corpus_and_sentence_scores(tokenize, hyps, refs):
    scores, corpus = run(load_metric("bleu", tokenize=tokenize), hyps, refs)
    assert corpus == sacrebleu.corpus_bleu(hyps, [refs], tokenize=tokenize).score
    assert 0 < corpus < 100
    # Per-sample values are sentence BLEU (effective order: a 2-word "Thank you" still scores).
    assert [s.value for s in scores] == [sacrebleu.sentence_bleu(h, [r], tokenize=tokenize).score
                                         for h, r in zip(hyps, refs)]
    # Any subset (a bootstrap resample) aggregates to that subset's corpus BLEU.
    subset = [0, 2, 3]
    assert load_metric("bleu").aggregate([scores[i] for i in subset]) == sacrebleu.corpus_bleu(
        [hyps[i] for i in subset], [[refs[i] for i in subset]], tokenize=tokenize).score


@pytest.mark.parametrize("tokenize, hyps, refs", [("13a", EN_HYPS, EN_REFS), ("zh", ZH_HYPS, ZH_REFS)])
def test_bleu_equals_the_sacrebleu_cli(tmp_path, tokenize, hyps, refs):
    (tmp_path / "hyp.txt").write_text("\n".join(hyps) + "\n", encoding="utf-8")
    (tmp_path / "ref.txt").write_text("\n".join(refs) + "\n", encoding="utf-8")
    cli = subprocess.run([sys.executable, "-m", "sacrebleu", str(tmp_path / "ref.txt"), "-i", str(tmp_path / "hyp.txt"),
                          "-m", "bleu", "-tok", tokenize, "-b", "-w", "10"],
                         capture_output=True, text=True, check=True)
    _, corpus = run(load_metric("bleu", tokenize=tokenize), hyps, refs)
    assert cli.stdout.strip() == f"{corpus:.10f}"


def test_bleu_multiple_references():
    second = ["A cat was sitting on the mat.", "A dog barks loudly at night", "hello there general",
              "It is raining today, right?", "We will meet at 5 p.m. tomorrow.", "nothing matches", "Thanks a lot"]
    _, corpus = run(load_metric("bleu"), EN_HYPS, [[a, b] for a, b in zip(EN_REFS, second)])
    assert corpus == sacrebleu.corpus_bleu(EN_HYPS, [EN_REFS, second]).score
    assert corpus > sacrebleu.corpus_bleu(EN_HYPS, [EN_REFS]).score
    # A variable number of references per sample: sacrebleu pads the shorter with None.
    ragged = [[EN_REFS[0], second[0]], EN_REFS[1], [EN_REFS[2]]]
    _, ragged_corpus = run(load_metric("bleu"), EN_HYPS[:3], ragged)
    assert ragged_corpus == sacrebleu.corpus_bleu(EN_HYPS[:3], [EN_REFS[:3], [second[0], None, None]]).score


def test_bleu_auto_tokenizer_follows_the_target_language():
    # 13a keeps each sentence as one token (no match); zh splits characters (4 of 6 match).
    hyp, ref = "今天天气很好", "今天天气不错"
    zh = sacrebleu.corpus_bleu([hyp], [[ref]], tokenize="zh").score
    assert zh > 0 and sacrebleu.corpus_bleu([hyp], [[ref]], tokenize="13a").score == 0
    auto = load_metric("bleu", tokenize="auto")

    def auto_bleu(lang, **fields):
        return auto.aggregate(auto.score([ScoreItem("x", hyp, ref, lang, fields)]))

    assert auto_bleu("zh") == zh
    assert auto_bleu("en", target_lang="zh-CN") == zh
    assert auto_bleu("zh", target_lang="en") == 0.0     # target_lang wins over the speech language
    assert auto_bleu(None) == 0.0


def test_bleu_without_reference_or_with_a_non_text_reply_fails_the_sample():
    """The reference's BLEU raises on a missing or empty reference and on a reply that is not text;
    a blank reference is scored (0)."""
    metric = load_metric("bleu")
    scores = metric.score(items(["hello", "the cat sat on the mat", "x", "hi"], [None, "the cat sat on the mat", "", " "])
                          + [ScoreItem("list", "['a']", "a", reply_type="list")])
    assert [s.error for s in scores] == ["bleu: no reference translation (None)", None,
                                         "bleu: no reference translation ('')", None,
                                         "bleu: the reply's content is a list, not text"]
    assert scores[3].value == 0.0 and scores[3].stats["ref_len"] == 0
    assert metric.aggregate(scores[1:2]) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="unknown tokenize"):
        load_metric("bleu", tokenize="moses")


# --------------------------------------------------------------------------------------------
# Speech QA: has answer


@pytest.mark.parametrize("reply, answers, correct", [
    ("It was Paris, France.", ["paris"], True),                   # punctuation and case ignored
    ("beatles were a band", "The Beatles", False),                # articles are kept (DPR rule)
    ("It was The Beatles.", "The Beatles", True),
    ("Parisian food is great", ["Paris"], False),                 # whole tokens only
    ("York New", ["New York"], False),                            # contiguous and in order
    ("a New York-based firm", ["New York"], True),                # hyphen splits tokens
    ("Obama was president", ["Barack Obama", "Obama"], True),     # a list of answers
    ("Obama was president", '["Barack Obama", "Obama"]', False),  # a string that looks like one is one answer
    ("I think Obama", ["Barack Obama"], False),
    ("Cafe\u0301 de Flore", ["café"], True),                      # NFD: composed == decomposed
    ("", ["anything"], False),
])
def test_has_answer(reply, answers, correct):
    score = load_metric("acc").score(items([reply], [answers]))[0]
    assert score.value == (100.0 if correct else 0.0)
    assert score.stats == {"correct": int(correct)}


def test_has_answer_empty_answer_is_found_no_answers_is_wrong_and_none_fails():
    """As the reference's has_answer: "" has no tokens, so every reply holds it; [] holds no answer to
    find; None cannot be read (the reference raises TypeError)."""
    metric = load_metric("acc")
    scores, corpus = run(metric, ["paris", "london", "anything", "x", "y"], ["Paris", "Paris", "", [], None])
    assert [s.value for s in scores] == [100.0, 0.0, 100.0, 0.0, None]
    assert "lists no answers" in scores[3].explanation
    assert scores[4].error == "acc: no reference answer to look for (None)"
    assert corpus == pytest.approx(100 * 2 / 4)


def test_has_answer_tries_the_answers_in_order_and_fails_on_a_non_text_one_it_reaches():
    """As the reference's has_answer, which normalises each answer in turn: an answer found first
    decides; an entry that is not text, reached before, raises there (a failed sample here)."""
    scores = load_metric("acc").score(items(["Paris", "Paris", "Paris"], [["Paris", None], [None, "Paris"], ["x", 5]]))
    assert [s.value for s in scores] == [100.0, None, None]
    assert [s.error for s in scores[1:]] == ["acc: answer None of the reference is not text",
                                             "acc: answer 5 of the reference is not text"]


# --------------------------------------------------------------------------------------------
# Multiple choice

OPTIONS = ["Paris", "London", "Berlin", "Rome"]


@pytest.mark.parametrize("reply, letter", [
    ("B", "B"), ("(B)", "B"), ("B.", "B"), ("b", "B"), ("**B**", "B"), ("Ｂ", "B"),
    ("Answer: B", "B"),
    ("the answer is B) foo", "B"),
    ("The correct answer is (C).", "C"),
    ("I choose D", "D"),
    ("选B", "B"), ("答案是C", "C"), ("答案：（C）", "C"), ("我选择D", "D"),
    ("B. London, because the speaker says so", "B"),
    ("B\nBecause the speaker says so", "B"),
    ("I think it's London.", "B"),                 # exactly one option's text
    ("rome!", "D"),
    ("The answer is B. A) is wrong because...", "B"),   # an answer marker beats option labels
])
def test_choice_extraction(reply, letter):
    assert extract_choice(reply, options(OPTIONS))[0] == letter


@pytest.mark.parametrize("reply, why", [
    ("", "no option"),
    ("I don't know", "no option"),
    ("A dog barks", "no option"),                  # the article "A" is not a choice
    ("The answer is E", "no option"),              # E is not an option
    ("London or Paris", "ambiguous"),
    ("A) Paris B) London", "ambiguous"),
    ("答案是A或B", "ambiguous"),
    ("The answer is B or C", "ambiguous"),
])
def test_choice_unparseable_is_never_a_default_letter(reply, why):
    letter, explanation = extract_choice(reply, options(OPTIONS))
    assert letter is None and why in explanation
    # Even when the correct answer is A, an unparseable reply is wrong.
    score = load_metric("choice").score(items([reply], ["A"], choices=OPTIONS))[0]
    assert (score.value, score.parsed, score.stats) == (0.0, False, {"correct": 0, "parsed": 0})
    assert score.normalized_hypothesis is None


def test_choice_longer_option_wins_over_the_option_inside_it():
    opts = options(["red", "red apple", "green"])
    assert extract_choice("a red apple", opts)[0] == "B"
    assert extract_choice("red", opts)[0] == "A"
    assert extract_choice("red and green", opts)[0] is None


def test_choice_scores_and_aggregate():
    metric = load_metric("choice")
    scores, corpus = run(metric, ["B", "the answer is C", "London", "no idea"],
                         ["B", "B", "london", "B"], choices=OPTIONS)
    # correct, wrong, correct (reference given as option text), unparsed -> 2 / 4
    assert [s.value for s in scores] == [100.0, 0.0, 100.0, 0.0]
    assert [s.parsed for s in scores] == [True, True, True, False]
    assert scores[2].normalized_reference == "B"
    assert corpus == 50.0


def test_choice_unscorable_samples():
    metric = load_metric("choice")
    no_choices = metric.score(items(["B"], ["Madrid"]))[0]
    bad_reference = metric.score(items(["B"], ["Madrid"], choices=OPTIONS))[0]
    for score in (no_choices, bad_reference):
        assert score.value is None and score.stats == {}


def test_choice_without_option_texts_scores_letters():
    """Datasets that ship only the answer letter (speech-HSK): letters A-D, no option texts."""
    metric = load_metric("choice")
    right, wrong, unparsed, high = metric.score(items(["答案是B", "(C)", "maybe", "E"], ["B", "D", "A", "E"]))
    assert (right.value, wrong.value, unparsed.value, high.value) == (100.0, 0.0, 0.0, 100.0)
    assert not unparsed.parsed and right.parsed
    # Missing trailing options are not letters: D does not exist with three options.
    assert options(["x", "y", "z", None]) == {"A": "x", "B": "y", "C": "z"}


# --------------------------------------------------------------------------------------------
# MMAU

MMAU_CHOICES = ["Dog barking", "Cat meowing", "Car horn", "Dog growling"]


@pytest.mark.parametrize("reply, correct", [
    ("Dog barking", True),
    ("The sound is a dog barking.", True),         # extra tokens are fine
    ("(A) Dog barking", True),                     # "a" is in no wrong choice
    ("dog", False),                                # "barking" missing
    ("Dog barking, not cat meowing", False),       # "cat", "meowing" belong only to wrong choices
    ("A dog is barking and growling", False),      # "growling" is unique to a wrong choice
    ("barking DOG", True),                         # token sets: order and case do not matter
])
def test_mmau_string_match(reply, correct):
    score = load_metric("mmau").score(items([reply], ["Dog barking"], choices=MMAU_CHOICES))[0]
    assert score.value == (100.0 if correct else 0.0) and score.parsed


def test_mmau_shared_tokens_do_not_count_against_the_answer():
    # "dog" is in the wrong choice "Dog growling" but also in the answer, so it is allowed;
    # a wrong choice identical (as tokens) to the answer adds nothing.
    score = load_metric("mmau").score(items(["dog barking"], ["Dog barking"], choices=["dog barking!", "Dog growling"]))[0]
    assert score.value == 100.0


def test_mmau_empty_prediction_and_aggregate():
    metric = load_metric("mmau")
    scores, corpus = run(metric, ["", "Car horn", "cat meowing"], ["Car horn"] * 3, choices=MMAU_CHOICES)
    assert scores[0].value == 0.0 and not scores[0].parsed
    assert [s.value for s in scores[1:]] == [100.0, 0.0]
    assert corpus == pytest.approx(100 / 3)


# --------------------------------------------------------------------------------------------
# Bootstrap


def _wer_scores(n: int, seed: int = 1) -> list[SampleScore]:
    rng = np.random.default_rng(seed)
    refs = rng.integers(1, 30, size=n)
    edits = rng.binomial(refs, 0.2)
    return [SampleScore(f"s{i}", "wer", 100 * e / r, {"edits": int(e), "ref_words": int(r), "sub": 0, "del": 0, "ins": 0})
            for i, (e, r) in enumerate(zip(edits, refs))]


class _ListOnly(Metric):
    """A metric with only ``aggregate``: forces the bootstrap's generic path."""

    name, higher_is_better, normalization, description = "list-only", False, "", ""

    def __init__(self, inner: Metric):
        self.inner = inner

    def score(self, items):
        return self.inner.score(items)

    def aggregate(self, scores):
        return self.inner.aggregate(scores)


def test_bootstrap_is_deterministic_and_contains_the_estimate():
    metric, scores = load_metric("wer"), _wer_scores(500)
    ci = bootstrap_ci(metric, scores, seed=3)
    assert ci == bootstrap_ci(metric, scores, seed=3)
    assert ci != bootstrap_ci(metric, scores, seed=4)
    low, high = ci
    assert low < metric.aggregate(scores) < high
    narrow_low, narrow_high = bootstrap_ci(metric, scores, seed=3, confidence=0.5)
    assert low < narrow_low < narrow_high < high


def test_bootstrap_fast_path_equals_resampling_score_lists():
    metric, scores = load_metric("wer"), _wer_scores(200)
    assert bootstrap_ci(metric, scores, n_resamples=200) == bootstrap_ci(_ListOnly(metric), scores, n_resamples=200)


def test_bootstrap_skips_unscorable_samples_and_handles_empty_input():
    metric = load_metric("acc")
    scores = metric.score(items(["paris", "london", "x"], ["Paris", "Paris", "the"]))
    low, high = bootstrap_ci(metric, scores)
    assert 0.0 <= low <= high <= 100.0 and (low, high) != (0.0, 0.0)
    assert all(np.isnan(bootstrap_ci(metric, [])))


def test_bootstrap_is_fast_for_10k_samples():
    metric, scores = load_metric("wer"), _wer_scores(10_000)
    start = time.perf_counter()
    low, high = bootstrap_ci(metric, scores, n_resamples=1000)
    assert time.perf_counter() - start < 10.0
    assert low < metric.aggregate(scores) < high
