"""Every seed task family end to end: hub-style fixture data → the real flow → metrics.

Each test builds the seed dataset's hub repo (same repo id, split and reference column as the
registry entry, audio from the embedded sample clips) as a local mirror, runs the ``evaluate``
flow under the session's Prefect API with a scripted model giving chosen answers, and checks
the metric against its reference implementation (sacrebleu) or a hand count.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sacrebleu

from audio_evals import storage
from audio_evals.data.hf_mirror import MIRROR_ENV
from audio_evals.run.summary import RunSummary
from tests.hub_fixture import SAMPLE_DIR, build_hub_repo, manifest_rows
from tests.openai_server import API_KEY

pytestmark = pytest.mark.slow
EN = [r for r in manifest_rows() if r["lang"] == "en"]
ZH = [r for r in manifest_rows() if r["lang"] == "zh"]


@pytest.fixture
def family(prefect_api, tmp_path, monkeypatch):
    """Build a hub repo, script the model's answers, run the flow; returns (summary, rows)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "hub"))

    def run(dataset: str, repo: str, splits: dict[str, list[dict[str, Any]]], answers: dict[str, str],
            reference_column: str, model_extra: str = "", audio_answers: dict[str, str] | None = None,
            **evaluate_args: Any) -> tuple[dict, list[dict]]:
        for split, rows in splits.items():
            build_hub_repo(tmp_path / "hub", repo, None, split, rows, reference_column=reference_column)
        (tmp_path / "answers.json").write_text(json.dumps(answers), encoding="utf-8")
        (tmp_path / "audio.json").write_text(json.dumps(audio_answers or {}), encoding="utf-8")
        registry = tmp_path / "registry"
        registry.mkdir(exist_ok=True)
        (registry / "models.yaml").write_text(
            "models:\n  scripted:\n    backend: scripted\n"
            f"    args: {{responses_file: {json.dumps(str(tmp_path / 'answers.json'))},"
            f" audio_responses_file: {json.dumps(str(tmp_path / 'audio.json'))}}}\n{model_extra}",
            encoding="utf-8")
        from audio_evals import evaluate

        summary = evaluate(dataset=dataset, model="scripted", registry_paths=[str(registry)],
                           cache_dir=str(tmp_path / "cache"), output=str(tmp_path / "results"), **evaluate_args)
        return summary, list(storage.read_jsonl(summary.paths["samples"]))

    return run


def _metric(summary: RunSummary, name: str) -> dict:
    """The metric as summary.json records it."""
    return next(m for m in summary.metrics if m.name == name).model_dump(mode="json")


def test_speech_translation_bleu_equals_sacrebleu(family):
    references = ["Even trading almost came to a standstill.", "The weather is nice today and we go out."]
    answers = {"zh0": "Trading nearly came to a standstill.", "zh1": "Today the weather is nice, we go out."}
    rows = [{"id": f"zh{i}", "audio": r["audio"], "text": references[i]} for i, r in enumerate(ZH)]
    summary, _ = family("covost2-zh-en", "TwinkStart/covost2", {"zh_en": rows}, answers, "text")
    bleu = _metric(summary, "bleu")
    expected = sacrebleu.corpus_bleu([answers["zh0"], answers["zh1"]], [references], tokenize="13a").score
    assert bleu["value"] == pytest.approx(expected, abs=1e-9) and bleu["n"] == 2
    assert summary.dataset.revision.startswith("mirror:")


def test_speech_qa_accuracy_counts_has_answer_matches(family):
    rows = [{"id": f"q{i}", "audio": r["audio"], "text": [f"answer {i}", f"alias {i}"]} for i, r in enumerate(EN[:4])]
    answers = {"q0": "I think it is Answer 0.", "q1": "ALIAS 1", "q2": "no idea", "q3": "answer 33"}
    summary, out = family("speech-web-questions", "TwinkStart/speech-web-questions", {"test": rows}, answers, "answers")
    acc = _metric(summary, "acc")
    assert acc["n"] == 4 and acc["value"] == pytest.approx(50.0)  # q0, q1 right; q3's "answer 33" is not "answer 3"
    assert {r["id"]: r["status"] for r in out} == dict.fromkeys(["q0", "q1", "q2", "q3"], "ok")


def test_multiple_choice_letters_without_option_texts_and_unparsed_answers(family):
    # speech-hsk reads six splits (hsk1 ... hsk6) as one dataset: three questions in hsk1, one in each other.
    splits = {f"hsk{i + 1}": [{"id": f"h{i}", "audio": r["audio"], "text": "ABCDAB"[i]}] for i, r in enumerate(EN[:6])}
    splits["hsk1"] += [{"id": f"h{i}", "audio": r["audio"], "text": "A"} for i, r in zip((6, 7), EN[6:8])]
    answers = {"h0": "A", "h1": "答案是B", "h2": "I am not sure", "h3": "(C)", "h4": "the answer is A", "h5": "A or B",
               "h6": "A", "h7": "选A"}
    summary, out = family("speech-hsk", "TwinkStart/speech-HSK", splits, answers, "ans_choice")
    # Headline, the reference's first-option rule: h2 "I am not sure" reads as A (the "a" of "am"),
    # h5 "A or B" as B (a letter closing the reply). The seed figure is the mean of the six levels'
    # accuracies (100, 100, 0, 0, 100, 100), not the pooled 6 of 8.
    headline = _metric(summary, "acc")
    assert headline["role"] == "headline" and headline["n"] == 8 and headline["value"] == pytest.approx(400 / 6)
    assert [(lv["level"], lv["value"], lv["n"]) for lv in headline["levels"]] == [
        ("hsk1", 100.0, 3), ("hsk2", 100.0, 1), ("hsk3", 0.0, 1), ("hsk4", 0.0, 1), ("hsk5", 100.0, 1), ("hsk6", 100.0, 1)]
    assert headline["unparsed"] == 0 and "mean over 6 levels" in headline["protocol"]
    # Beside it, strict extraction: h2 and h5 ("A or B") are unparsed and wrong.
    strict = _metric(summary, "strict-acc")
    assert strict["role"] == "secondary" and strict["value"] == pytest.approx(50.0) and strict["unparsed"] == 2
    assert {r["id"]: r["secondary"]["choice"]["parsed"] for r in out} == {
        "h0": True, "h1": True, "h2": False, "h3": True, "h4": True, "h5": False, "h6": True, "h7": True}


def test_mmau_official_rule_through_the_step_audio_prompt(family):
    choices = [["Dog barking", "Car horn", "Rain", "Speech"]] * 3
    rows = [{"id": f"m{i}", "audio": r["audio"], "text": "Speech", "question": "What is heard?", "choices": choices[i]}
            for i, r in enumerate(EN[:3])]
    answers = {"m0": "(D) Speech", "m1": "Speech, or maybe a car horn", "m2": "I hear rain"}
    summary, _ = family("mmau-test-mini", "TwinkStart/MMAU", {"v05.15.25": rows}, answers, "answer",
                        prompt="step_audio_r1_mmau")
    mmau = _metric(summary, "mmau")
    assert mmau["n"] == 3 and mmau["value"] == pytest.approx(100 / 3)
    assert summary.prompt.name == "step_audio_r1_mmau"


def test_llm_judge_scores_open_answers_through_a_local_endpoint(family, openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    rows = [{"id": f"a{i}", "audio": r["audio"], "text": f"reference {i}", "instruction": f"question {i}"}
            for i, r in enumerate(EN[:3])]
    answers = {"a0": "it is reference 0", "a1": "something else", "a2": "Reference 2 indeed"}
    openai_server.garble_next(1)  # the first judge reply has no rating: it is asked again
    summary, out = family("speech-alpacaeval", "TwinkStart/speech-chatbot-alpaca-eval", {"test": rows}, answers,
                          "output")
    judge = _metric(summary, "g-eval")
    assert judge["n"] == 3 and judge["value"] == pytest.approx(10 * (10 + 3 + 10) / 3)
    assert judge["params"]["prompt_version"] == "ultraeval-chatbot" and judge["params"]["temperature"] == 0.0
    assert judge["judge_reasked"] == 1 and judge["protocol"].startswith("reference protocol")
    # The reference's single-answer prompt: the question, the answer, and no reference answer.
    prompts = [body["messages"][0]["content"] for body in openai_server.bodies]
    assert any("[Question] question 0 [The Start of Assistant’s Answer] it is reference 0" in p for p in prompts)
    assert not any("reference 1" in p for p in prompts) and all(b["max_tokens"] == 2048 for b in openai_server.bodies)
    assert all(body["temperature"] == 0.0 for body in openai_server.bodies)
    assert API_KEY not in summary.model_dump_json() + json.dumps(out)


def test_speech_to_speech_is_scored_on_the_transcript_of_the_generated_audio(family):
    expected = {"spk1_snt1": "small dog", "sense_and_sensibility_01_austen_64kb-0880": "young man"}
    clips = [r for r in EN if r["id"] in expected]
    rows = [{"id": r["id"], "audio": r["audio"], "text": [expected[r["id"]]]} for r in clips]
    # The "model" speaks the clip itself back; Whisper's transcript must contain the answer.
    audio = {r["id"]: str(SAMPLE_DIR / r["audio"]) for r in clips}
    summary, out = family("speech-web-questions", "TwinkStart/speech-web-questions", {"test": rows}, {}, "answers",
                          model_extra="    transcribe_with: whisper-tiny.en\n", audio_answers=audio)
    acc = _metric(summary, "acc")
    assert acc["n"] == 2 and acc["value"] == pytest.approx(100.0)
    run_folder = Path(summary.paths["summary"]).parent
    for row in out:
        assert expected[row["id"]] in row["hypothesis"].lower() and row["model_text"] == ""
        assert (run_folder / row["generated_audio"]).read_bytes() == Path(audio[row["id"]]).read_bytes()
