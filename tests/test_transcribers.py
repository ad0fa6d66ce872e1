"""Spoken answers are read by the transcriber for their language, as the reference tool reads them.

Through the real flow: a speech-out stand-in (the scripted backend) "speaks" each question's own
clip back; English answers go to the embedded Whisper tiny.en, Mandarin ones to a stand-in
Mandarin transcriber (scripted, Mandarin only), and a language no transcriber handles is skipped
with the reason. The FunASR backend (SeACo-Paraformer, the reference's Mandarin transcriber) runs
on a stand-in ``funasr`` package: the real one and its weights are not installed here.
"""

from __future__ import annotations

import importlib.machinery
import json
import sys
import types

import numpy as np
import pytest

from audio_evals import storage
from audio_evals.models import get_backend
from audio_evals.models.base import BackendUnavailable, ModelRequest
from audio_evals.registry import load_registry
from tests.conftest import SAMPLE_DIR, calls_made

EN = ("spk1_snt1", "spk2_snt2")
#: The Mandarin clips and what the stand-in transcriber answers for them (their references).
ZH = {"BAC009S0764W0121": "甚至出现交易几乎停滞的情况", "BAC009S0764W0122": "一二线城市虽然也处于调整中"}


@pytest.fixture
def speech_run(prefect_api, tmp_path, sample_manifest):
    """Run the flow with a speech-out stand-in transcribed as ``transcribe_with`` says; returns (summary, rows, calls)."""
    clips = {r["id"]: r for r in sample_manifest if r["id"] in {*EN, *ZH}}
    manifest = tmp_path / "questions.jsonl"
    manifest.write_text("".join(json.dumps({"id": i, "audio": str(SAMPLE_DIR / r["audio"]), "text": r["text"],
                                            "lang": r["lang"]}) + "\n" for i, r in clips.items()), encoding="utf-8")
    (tmp_path / "spoken.json").write_text(json.dumps({i: str(SAMPLE_DIR / r["audio"]) for i, r in clips.items()}))
    (tmp_path / "zh.json").write_text(json.dumps({i: f"{text}。" for i, text in ZH.items()}), encoding="utf-8")
    calls = tmp_path / "zh-calls.txt"

    def run(transcribe_with: str) -> tuple[dict, dict[str, dict], list[str]]:
        registry = tmp_path / "registry"
        registry.mkdir(exist_ok=True)
        (registry / "models.yaml").write_text(
            "models:\n"
            "  speaker:\n    backend: scripted\n"
            f"    args: {{audio_responses_file: {json.dumps(str(tmp_path / 'spoken.json'))}}}\n"
            f"    transcribe_with: {transcribe_with}\n"
            "  zh-reader:\n    backend: scripted\n    languages: [zh]\n"
            f"    args: {{responses_file: {json.dumps(str(tmp_path / 'zh.json'))}, calls_file: {json.dumps(str(calls))}}}\n",
            encoding="utf-8")
        from audio_evals import evaluate

        summary = evaluate(dataset=str(manifest), model="speaker", registry_paths=[str(registry)],
                           cache_dir=str(tmp_path / "cache"), output=str(tmp_path / "results"))
        rows = {r["id"]: r for r in storage.read_jsonl(summary.paths["samples"])}
        return summary, rows, calls_made(calls)

    return run


def test_each_language_goes_to_its_own_transcriber(speech_run):
    summary, rows, zh_calls = speech_run("{en: whisper-tiny.en, zh: zh-reader}")
    assert sorted(zh_calls) == sorted(ZH)  # the Mandarin reader saw the Mandarin answers only
    for sample_id, reference in ZH.items():
        assert rows[sample_id]["status"] == "ok" and rows[sample_id]["hypothesis"] == f"{reference}。"
    assert all(rows[i]["status"] == "ok" for i in EN) and "small dog" in rows["spk1_snt1"]["hypothesis"].lower()
    assert {m.group: m.value for m in summary.metrics}["zh"] == 0.0
    recorded = summary.model.transcribers
    assert {lang: t["name"] for lang, t in recorded.items()} == {"en": "whisper-tiny.en", "zh": "zh-reader"}
    assert recorded["en"]["sent"] == {"beam_size": 5, "language": "en"}


def test_answers_no_transcriber_can_read_are_skipped_with_the_reason(speech_run):
    summary, rows, zh_calls = speech_run("whisper-tiny.en")
    assert zh_calls == [] and summary.counts.skipped == 2
    for sample_id in ZH:
        assert rows[sample_id]["status"] == "skipped"
        assert "transcribed by 'whisper-tiny.en', which supports en only; sample language is 'zh'" in rows[sample_id]["error"]
    assert all(rows[i]["status"] == "ok" for i in EN)


def test_kimi_audio_speech_reads_english_with_whisper_large_v3_and_mandarin_with_paraformer():
    registry = load_registry()
    assert registry.model("kimiaudio-speech").transcribers() == {"en": "whisper-large-v3", "zh": "seaco-paraformer-zh"}
    whisper = registry.model("whisper-large-v3")
    assert whisper.args["model"] == "openai/whisper-large-v3" and "language" not in whisper.generation
    paraformer = registry.model("seaco-paraformer-zh")
    assert paraformer.args["model"] == "iic/speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch"
    assert paraformer.languages == ["zh"]


def _stand_in_funasr(monkeypatch) -> list[dict]:
    """A ``funasr`` package whose AutoModel records how it is built and called."""
    calls: list[dict] = []

    class AutoModel:
        def __init__(self, **options):
            calls.append({"init": options})

        def generate(self, input, **options):
            calls.append({"input": input, **options})
            return [{"text": "甚 至 出 现 交 易 几 乎 停 滞 的 情 况"}]

    modules = {name: types.ModuleType(name) for name in ("funasr", "funasr.utils", "funasr.utils.postprocess_utils")}
    modules["funasr"].__spec__ = importlib.machinery.ModuleSpec("funasr", None)
    modules["funasr"].AutoModel = AutoModel
    modules["funasr.utils.postprocess_utils"].rich_transcription_postprocess = lambda text: f" {text} "
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return calls


def test_funasr_backend_calls_paraformer_as_the_reference(monkeypatch):
    pytest.importorskip("torch")
    calls = _stand_in_funasr(monkeypatch)
    entry = load_registry().model("seaco-paraformer-zh")
    backend = get_backend(entry, entry.generation)
    clip = str(SAMPLE_DIR / "audio" / "BAC009S0764W0121.wav")
    request = ModelRequest("zh0", clip, backend.requirements.sample_rate)
    try:
        (output,) = backend.generate([request])
    finally:
        backend.close()
    init, call = calls
    assert init == {"init": {"model": entry.args["model"], "hub": "ms", "disable_update": True}}
    assert np.array_equal(call.pop("input"), request.load_audio()) and call == {"batch_size_s": 300}
    assert output.text == "甚 至 出 现 交 易 几 乎 停 滞 的 情 况" and output.error is None


def test_funasr_missing_says_what_to_install_in_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "funasr", None)  # as if not installed
    entry = load_registry().model("seaco-paraformer-zh")
    with pytest.raises(BackendUnavailable, match=r"^the funasr backend needs funasr: pip install 'audio-evals\[funasr\]'$"):
        get_backend(entry, entry.generation).check()


def test_a_spoken_answer_without_usable_audio_fails_instead_of_being_scored_on_its_text(tmp_path):
    """As the reference's speech-to-text step (it asserts the file exists): no audio, a missing file
    and an empty one each fail the sample with the cause; the transcriber never sees them."""
    from audio_evals.pipeline.infer import transcribe_generated
    from audio_evals.records import ModelOutput
    from tests.backends.scripted import BACKEND as Scripted

    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    calls = tmp_path / "calls.txt"
    outputs = [ModelOutput("no-audio", text="the answer in text"),
               ModelOutput("missing", text="the answer", audio_path=str(tmp_path / "gone.wav")),
               ModelOutput("empty", text="the answer", audio_path=str(empty))]
    transcribe_generated(outputs, dict.fromkeys(("no-audio", "missing", "empty"), "en"),
                         {"*": Scripted(calls_file=str(calls))}, str(tmp_path / "decoded"))
    assert [o.transcript for o in outputs] == [None, None, None] and calls_made(calls) == []
    assert outputs[0].error == "the speech-out model generated no audio (its text reply is not scored in place of speech)"
    assert outputs[1].error.startswith("generated audio unusable: audio file not found")
    assert outputs[2].error == "generated audio unusable: empty file (0 bytes)"
