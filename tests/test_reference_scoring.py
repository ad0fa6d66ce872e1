"""Seed headlines score exactly as the reference tool (UltraEval-Audio) scores them.

``../shared/data/reference-scoring/`` holds (reference, output) pairs with what the reference's
own code computed for each: tokens and edits for WER/CER (and the per-pair WER/CER % of the
edge cases), the has-answer verdict, the extracted option letter, the MMAU match, the
``{"content": ...}`` extraction and what is scored when the content is not text, and the answer
kept from a reasoning reply, plus the corpus figures. Every case must agree per sample; the
corpus figures must agree both from the metrics directly and from a real ``evaluate`` flow run on
manifests built from the cases (list answers, choices).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from audio_evals import postprocess, storage
from audio_evals.metrics import load_metric
from audio_evals.metrics.base import ScoreItem
from audio_evals.pipeline.score import output_row
from audio_evals.records import FileRecord, ModelOutput, PreparedSample, Sample, ShardRef
from audio_evals.run.summary import RunSummary
from tests.conftest import SAMPLE_DIR

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "reference-scoring"
pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"reference-scoring fixtures not found at {FIXTURES}")


def cases(name: str) -> list[dict[str, Any]]:
    with open(FIXTURES / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def corpus() -> dict[str, Any]:
    return json.loads((FIXTURES / "corpus.json").read_text(encoding="utf-8"))


def disagreements(rows: list[dict[str, Any]], check) -> list[str]:
    """Each case that disagrees, as ``index: case -> ours``; empty when all agree."""
    return [f"{i}: {row} -> {got}" for i, row in enumerate(rows) if (got := check(i, row)) is not None]


def _asr_metric(lang: str):
    return load_metric("wer" if lang == "en" else "cer")


def _asr_check(lang: str):
    """Per case: our tokens, edits and reference length, plus the per-pair % where the case has one."""
    metric = _asr_metric(lang)

    def check(i, row):
        score = metric.score([ScoreItem(str(i), row["hypothesis"], row["reference"], lang)])[0]
        got = (score.normalized_reference.split(), score.normalized_hypothesis.split(), score.stats["edits"],
               score.stats[metric.ref_key])
        expected = (row["ref_tokens"], row["hyp_tokens"], row["edits"], row["ref_len"])
        if "check" in row:
            got, expected = (*got, score.value), (*expected, pytest.approx(row["check"], abs=1e-9))
        return None if got == expected else got

    return check


@pytest.mark.parametrize("file, lang", [("asr.jsonl", "en"), ("asr.jsonl", "zh"),
                                        ("asr-edges.jsonl", "en"), ("asr-edges.jsonl", "zh")])
def test_asr_tokens_and_edits_agree_per_sample(file, lang):
    """asr-edges: colloquial words the reference keeps (kinda, dunno, cause), Latin words in
    full-width parentheses it deletes; its ``check`` is the per-pair WER/CER %."""
    rows = [r for r in cases(file) if r["lang"] == lang]
    assert rows and not disagreements(rows, _asr_check(lang))


@pytest.mark.parametrize("lang, key", [("en", "wer_en_corpus"), ("zh", "cer_zh_corpus")])
def test_asr_corpus_figure_equals_the_reference(lang, key):
    rows = [r for r in cases("asr.jsonl") if r["lang"] == lang]
    metric = _asr_metric(lang)
    scores = metric.score([ScoreItem(str(i), r["hypothesis"], r["reference"], lang) for i, r in enumerate(rows)])
    assert sum(s.stats[metric.ref_key] for s in scores) == sum(r["ref_len"] for r in rows)
    assert metric.aggregate(scores) == pytest.approx(corpus()[key], abs=1e-9)


def test_speech_qa_has_answer_agrees_per_sample():
    rows = cases("qa.jsonl")
    metric = load_metric("acc")

    def check(i, row):
        correct = bool(metric.score([ScoreItem(str(i), row["reply"], row["answers"])])[0].stats["correct"])
        return None if correct == row["match"] else correct

    assert rows and not disagreements(rows, check)


def test_mcq_first_option_agrees_per_sample():
    rows = cases("mcq.jsonl")
    metric = load_metric("first_option")

    def check(i, row):
        score = metric.score([ScoreItem(str(i), row["reply"], row["answer"])])[0]
        got = (score.normalized_hypothesis, bool(score.stats["correct"]))
        return None if got == (row["extracted"], row["correct"]) else got

    assert rows and not disagreements(rows, check)


def test_mmau_string_match_agrees_per_sample():
    rows = cases("mmau.jsonl")
    metric = load_metric("mmau")

    def check(i, row):
        item = ScoreItem(str(i), row["reply"], row["answer"], fields={"choices": row["choices"]})
        correct = bool(metric.score([item])[0].stats["correct"])
        return None if correct == row["match"] else correct

    assert rows and not disagreements(rows, check)


@pytest.mark.parametrize("file", ["json_content.jsonl", "json_content-nonstring.jsonl"])
def test_json_content_extraction_agrees_per_sample(file):
    """The content as it parsed: a string, or the object itself (None, a list, a number)."""
    rows = cases(file)

    def check(_, row):
        got = postprocess.apply(["json_content"], row["reply"])
        return None if (got, type(got)) == (row["extracted"], type(row["extracted"])) else got

    assert rows and not disagreements(rows, check)


def test_non_text_content_is_scored_as_its_str_per_sample():
    """The score stage's hypothesis for a reply whose content is not text is what the reference's
    evaluators compare (``scored_as``: Python's ``str()``); WER scores it, BLEU fails the sample."""
    rows = cases("json_content-nonstring.jsonl")
    shard = ShardRef(0, "shard.jsonl", "h", len(rows), 1.0, FileRecord(0, ""))

    def scored(i, row):
        prepared = PreparedSample(Sample(str(i), "a.wav", "a b", "en"), "a.wav", 16000, 1.0, "")
        return output_row(prepared, shard, ModelOutput(str(i), text=row["reply"]), None, ("json_content",))

    def check(i, row):
        sample_row, reply_type = scored(i, row)
        item = ScoreItem(str(i), sample_row.hypothesis, "a b", "en", reply_type=reply_type)
        wer, bleu = load_metric("wer").score([item])[0], load_metric("bleu").score([item])[0]
        ok = (sample_row.hypothesis == row["scored_as"] and wer.error is None and wer.value is not None
              and bleu.error == f"bleu: the reply's content is a {reply_type}, not text")
        return None if ok else (sample_row.hypothesis, reply_type, wer.error, bleu.error)

    assert rows and not disagreements(rows, check)


def test_step_audio_reasoning_reply_keeps_what_the_reference_scores_per_sample():
    """The bundled Step-Audio-R1.1 entry's think tags give the reference's answer (the text after the
    last ``</think>``, stripped; the whole reply without one); the rest is kept as reasoning."""
    from audio_evals.models import generation_params, get_backend
    from audio_evals.models.reasoning import split_reasoning
    from audio_evals.registry import load_registry

    step = load_registry([]).model("step-audio-r1.1")
    tags = get_backend(step, generation_params(step)).think_tags
    rows = cases("think.jsonl")

    def check(_, row):
        answer, reasoning = split_reasoning(row["reply"], tags)
        head = row["reply"].rpartition("</think>")[0].strip() if "</think>" in row["reply"] else None
        return None if (answer, reasoning) == (row["answer"], head) else (answer, reasoning)

    assert rows and not disagreements(rows, check)


# --------------------------------------------------------------------------------------------
# The same figures through the real flow: a user's manifest, a scripted model giving the outputs.

def _manifest(folder: Path, rows: list[dict[str, Any]]) -> Path:
    """A manifest over one real clip; each row's reference, language and extra fields as given."""
    (folder / "audio").mkdir(parents=True)
    shutil.copy(SAMPLE_DIR / "audio" / "spk1_snt1.wav", folder / "audio" / "clip.wav")
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps({"audio": "audio/clip.wav", **r}, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def _run(prefect_api, tmp_path: Path, task: str, rows: list[dict[str, Any]], replies: dict[str, str]) -> dict:
    manifest = _manifest(tmp_path / "data", rows)
    (tmp_path / "replies.json").write_text(json.dumps(replies, ensure_ascii=False), encoding="utf-8")
    registry = tmp_path / "registry"
    registry.mkdir()
    (registry / "models.yaml").write_text(
        "models:\n  scripted:\n    backend: scripted\n"
        f"    args: {{responses_file: {json.dumps(str(tmp_path / 'replies.json'))}}}\n", encoding="utf-8")
    from audio_evals import evaluate

    return evaluate(dataset=str(manifest), model="scripted", task=task, registry_paths=[str(registry)],
                    cache_dir=str(tmp_path / "cache"), output=str(tmp_path / "results"), shard_size=256)


def _headline(summary: RunSummary, name: str) -> dict:
    """The headline metric as summary.json records it."""
    return next(m for m in summary.metrics if m.name == name and m.role == "headline").model_dump(mode="json")


FLOW_CASES = {
    "asr-en": ("asr.jsonl", "wer", "wer_en_corpus",
               lambda r: r["lang"] == "en", lambda r: {"text": r["reference"], "lang": "en"}, "hypothesis"),
    "asr-zh": ("asr.jsonl", "cer", "cer_zh_corpus",
               lambda r: r["lang"] == "zh", lambda r: {"text": r["reference"], "lang": "zh"}, "hypothesis"),
    "speech-qa": ("qa.jsonl", "acc", "qa_acc", None, lambda r: {"text": r["answers"], "lang": "en"}, "reply"),
    "speech-mcq": ("mcq.jsonl", "acc", "mcq_acc", None,
                   lambda r: {"text": r["answer"], "lang": "zh", "choices": ["甲", "乙", "丙", "丁"]}, "reply"),
    "mmau": ("mmau.jsonl", "mmau", "mmau_acc", None,
             lambda r: {"text": r["answer"], "lang": "en", "question": "What is the sound?", "choices": r["choices"]},
             "reply"),
}


@pytest.mark.slow
@pytest.mark.parametrize("task", list(FLOW_CASES))
def test_flow_headline_equals_the_reference_protocol(prefect_api, tmp_path, task):
    file, metric, key, keep, row_of, reply_key = FLOW_CASES[task]
    picked = [r for r in cases(file) if keep is None or keep(r)]
    rows = [{"id": f"case-{i}", **row_of(r)} for i, r in enumerate(picked)]
    summary = _run(prefect_api, tmp_path, task, rows, {f"case-{i}": r[reply_key] for i, r in enumerate(picked)})
    headline = _headline(summary, metric)
    assert headline["n"] == len(picked) and headline["protocol"].startswith("reference protocol: UltraEval-Audio")
    assert headline["value"] == corpus()[key]  # to the last digit
    report = Path(summary.paths["report"]).read_text(encoding="utf-8")
    assert headline["protocol"] in report
    if task == "speech-mcq":
        # The strict measure stands beside the headline: the default "A" is not credited there.
        strict = next(m for m in summary.metrics if m.role == "secondary").model_dump(mode="json")
        # The reference's last resort takes any option letter anywhere: only replies with none default.
        unparsed = sum(not set("abcd") & set(r["reply"].lower()) for r in picked)
        assert strict["name"] == "strict-acc" and strict["value"] < headline["value"]
        assert headline["unparsed"] == unparsed > 0


#: Per family, what the reference tool does with an empty reference (its evaluators, at commit
#: 9b69da6): WER/CER (evaluator/wer.py -> lib/wer.py compute_wer) divide by zero, so the sample
#: fails, counted in fail_rate; a reference that normalises to nothing ("(laughs)") fails the same
#: way. Speech QA (evaluator/qa_exact_match.py has_answer) finds an empty answer in every reply and
#: no answer in an empty list, and raises on None. MMAU (evaluator/string_match.py) has no answer
#: tokens to miss, so a reply naming no choice is right, and raises on None.
EMPTY_CASES = {
    "asr-en": ([("ok", "the cat sat", "the cat sat"), ("blank", "  ", "anything"), ("laughs", "(laughs)", "ha ha")],
               {}, {"ok": "ok", "blank": "failed", "laughs": "failed"}, "wer", 0.0),
    "speech-qa": ([("ok", ["Paris"], "Paris"), ("empty", "", "no idea"), ("none-listed", [], "Paris"),
                   ("missing", None, "Paris")],
                  {"lang": "en"}, {"ok": "ok", "empty": "ok", "none-listed": "ok", "missing": "failed"}, "acc",
                  100 * 2 / 3),
    "mmau": ([("ok", "Dog barking", "a dog barking"), ("empty-no-choice", "", "hello"),
              ("empty-names-a-choice", "", "a cat meowing"), ("missing", None, "dog")],
             {"lang": "en", "question": "What is the sound?", "choices": ["Dog barking", "Cat meowing"]},
             {"ok": "ok", "empty-no-choice": "ok", "empty-names-a-choice": "ok", "missing": "failed"}, "mmau",
             100 * 2 / 3),
}


@pytest.mark.slow
@pytest.mark.parametrize("task", list(EMPTY_CASES))
def test_flow_empty_references_per_family(prefect_api, tmp_path, task):
    """Empty references are failed samples with a cause (counted in the fail rate) where the reference
    fails them, and scored where it scores them; nothing is skipped silently."""
    cases_, fields, statuses, metric, value = EMPTY_CASES[task]
    rows = [{"id": i, "text": ref, "lang": "en", **fields} for i, ref, _ in cases_]
    summary = _run(prefect_api, tmp_path, task, rows, {i: reply for i, _, reply in cases_})
    written = {r["id"]: r for r in storage.read_jsonl(summary.paths["samples"])}
    assert {i: r["status"] for i, r in written.items()} == statuses
    failed = [i for i, s in statuses.items() if s == "failed"]
    assert all(written[i]["error"] for i in failed)
    headline = _headline(summary, metric)
    assert headline["value"] == pytest.approx(value) and headline["failed"] == len(failed)
    assert summary.counts.failed == len(failed) and summary.counts.fail_rate == round(len(failed) / len(rows), 4)
    if task == "asr-en":
        assert "empty reference" in written["blank"]["error"] and written["blank"]["stage"] == "preprocess"
        assert written["laughs"]["stage"] == "score" and written["laughs"]["error"] == (
            "wer: reference '(laughs)' is empty after normalisation: no words to count errors against")
