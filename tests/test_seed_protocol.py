"""Each seed command runs as the reference tool runs it: prompt, generation, post-processing, transcriber.

For every ``eval_cli`` command of the seed reports (tests/seeds) the plan is resolved from the
command line, as ``audio-evals`` does, and compared with what UltraEval-Audio does for the same
command, written out below from its registry (dataset → default task → prompt and post-processing;
prompt texts; model sampling parameters) and its model code:

* the prompt rendered for a fixture row shaped like the dataset's rows is byte for byte the
  reference's rendering;
* the generation parameters that actually reach the model equal the reference's: Kimi-Audio through
  a stand-in ``kimia_infer`` that records its ``generate`` call, Step-Audio-R1.1 through the local
  OpenAI-compatible server that records the request body;
* the reply's post-processing and the transcriber of spoken answers are the reference's chain;
* ``--dry-run`` prints the transcriber and the post-processing.
"""

from __future__ import annotations

import base64
import io
import json
import shlex
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from audio_evals.models import get_backend
from audio_evals.models.base import ModelRequest
from audio_evals.prompts import render
from audio_evals.records import PreparedSample, Sample
from audio_evals.registry import load_registry
from audio_evals.run.plan import EvalPlan, resolve
from cli.main import app
from tests import kimia_stand_in
from tests.conftest import SAMPLE_DIR
from tests.openai_server import API_KEY
from tests.test_cli import seed_commands

EN_CLIP = str(SAMPLE_DIR / "audio" / "spk1_snt1.wav")
ZH_CLIP = str(SAMPLE_DIR / "audio" / "BAC009S0764W0121.wav")
KEY_ENV = "AUDIO_EVALS_TEST_STEP_KEY"

# -- the reference tool, as its registry and code have it -------------------------------------------

#: registry/dataset/*.yaml: each seed dataset's default task (speech-hsk is its hsk1 ... hsk6).
REFERENCE_TASK_OF = {
    **dict.fromkeys(["librispeech-test-clean", "librispeech-dev-clean", "librispeech-test-other",
                     "librispeech-dev-other", "tedlium-release1", "cv-15-en", "fleurs-en_us"], "asr"),
    **dict.fromkeys(["aishell-1", "cv-15-zh", "fleurs-zh", "WenetSpeech-test-net"], "asr-zh"),
    "covost2-zh-en": "sst2en", "covost2-en-zh": "sst2zh",
    "speech-web-questions": "s2s-aqa", "speech-triviaqa": "s2s-aqa",
    "speech-cmmlu": "speech-choice-aqa-zh", "speech-hsk": "speech-choice-aqa-zh",
    "speech-alpacaeval": "glm-alpaca-eval", "mmau-test-mini": "mmau",
}
#: registry/eval_task/*.yaml: a task's prompt and post-processing (``--prompt`` replaces the prompt only).
REFERENCE_TASKS = {
    "asr": ("asr", ["json_content"]),
    "asr-zh": ("asr", ["json_content"]),
    "sst2en": ("sst2en", ["json_content"]),
    "sst2zh": ("sst2zh", ["json_content"]),
    "s2s-aqa": ("direct-aqa", ["extract_audio", "speech2text"]),
    "speech-choice-aqa-zh": ("direct-aqa", ["extract_audio", "speech2text-zh", "first_option_with_default_a"]),
    "glm-alpaca-eval": ("direct-aqa", ["extract_audio", "speech2text"]),
    "mmau": ("single_choice_with_answer", []),
}
AUDIO = ("audio", None)
#: registry/prompt/*.yaml, rendered for the fixture rows below (None: the row's audio).
REFERENCE_PROMPTS = {
    "asr": [AUDIO, ("text", 'listen the audio, output the audio content with format {"content": ""}')],
    "sst2en": [AUDIO, ("text", 'translate this audio to english, output the content with format {"content": ""}')],
    "sst2zh": [AUDIO, ("text", 'translate this audio to chinese, output the content with format {"content": ""}')],
    "direct-aqa": [AUDIO],
    "kimi-audio-asr-en": [("text", "Please transcribe the spoken content into written text."), AUDIO],
    "kimi-audio-asr-zh": [("text", "请把这段语音转录成文本。"), AUDIO],
    "step_audio_r1_mmau": [("text", "Which sound can be heard?\nPlease choose the answer from the following options,"
                                    " do not provide any additional explanations or content: \nA. Dog barking\n"
                                    "B. Car horn\nC. Rain\nD. Speech\n"), AUDIO],
}
#: registry/process: the reference's steps on the reply, as they are done here. Extracting the
#: audio and transcribing it is the model's transcriber; the first-option step is the choice metric's.
AS_DONE_HERE = {
    "json_content": ("post_process", "json_content"),
    "extract_audio": None,
    "speech2text": ("transcriber", "whisper-large-v3"),  # whisper: openai/whisper-large-v3
    "speech2text-zh": ("transcriber", "seaco-paraformer-zh"),  # iic/speech_seaco_paraformer_large_asr_nat-zh-cn-16k-...
    "first_option_with_default_a": None,
}
#: lib/Kimi-Audio/main.py: KimiAudio.generate's sampling keywords, for text and speech output alike.
KIMI_SAMPLING = {"audio_temperature": 0.8, "audio_top_k": 10, "text_temperature": 0.0, "text_top_k": 5,
                 "audio_repetition_penalty": 1.0, "audio_repetition_window_size": 64,
                 "text_repetition_penalty": 1.1, "text_repetition_window_size": 16, "max_new_tokens": -1}
#: registry/model/step.yaml sample_params, models/step_audio_r1.py and lib/StepAudio/stepaudior1vllm.py:
#: the request fields besides model, messages and stream; the reply is opened with "<think>\n".
STEP_REQUEST = {"temperature": 0.7, "repetition_penalty": 1.0, "stop_token_ids": [151665],
                "skip_special_tokens": False, "continue_final_message": True, "add_generation_prompt": False}
STEP_PREFILL = {"role": "assistant", "content": "<think>\n"}
#: Our one addition to both: a fixed seed, so that sampled tokens repeat from run to run.
OURS = {"seed": 0}

# -- fixture rows: what the hub loader makes of one row of each dataset ------------------------------

#: dataset → (language, reference, other columns). The loader keeps every column but the audio and
#: the reference as a field, plus the split.
ROWS: dict[str, tuple[str, Any, dict[str, Any]]] = {
    **dict.fromkeys(["librispeech-test-clean", "librispeech-dev-clean", "librispeech-test-other",
                     "librispeech-dev-other"], ("en", "THE CHILD ALMOST HURT THE SMALL DOG", {"id": "1089-134686-0000"})),
    "tedlium-release1": ("en", "the child almost hurt the small dog", {"speaker_id": "AlGore_2009", "id": "t0"}),
    "cv-15-en": ("en", "The child almost hurt the small dog.", {"path": "common_voice_en_1.mp3", "age": "", "gender": ""}),
    "fleurs-en_us": ("en", "The child almost hurt the small dog.",
                     {"id": 1906, "num_samples": 46400, "transcription": "the child almost hurt the small dog",
                      "gender": 1, "lang_id": 19, "language": "English", "lang_group_id": 0}),
    **dict.fromkeys(["aishell-1", "WenetSpeech-test-net"], ("zh", "甚至出现交易几乎停滞的情况", {"id": "BAC009S0764W0121"})),
    "cv-15-zh": ("zh", "甚至出现交易几乎停滞的情况。", {"path": "common_voice_zh-CN_1.mp3", "age": "", "gender": ""}),
    "fleurs-zh": ("zh", "甚至出现交易几乎停滞的情况。",
                  {"id": 1590, "num_samples": 67200, "transcription": "甚至 出现 交易 几乎 停滞 的 情况",
                   "gender": 0, "lang_id": 10, "language": "Mandarin Chinese", "lang_group_id": 7}),
    "covost2-zh-en": ("zh", "Even trading almost came to a standstill.", {"id": "zh_en_0"}),
    "covost2-en-zh": ("en", "这孩子差点伤到小狗。", {"id": "en_zh_0"}),
    "speech-web-questions": ("en", ["Dog"], {"question": "what did the child almost hurt?"}),
    "speech-triviaqa": ("en", ["the small dog", "dog"], {"question": "What did the child almost hurt?"}),
    "speech-cmmlu": ("zh", "B", {"Question": "交易出现了什么情况？", "A": "上涨", "B": "停滞", "C": "下跌", "D": "暴涨"}),
    "speech-hsk": ("zh", "B", {"question": "交易出现了什么情况？", "choices": ["上涨", "停滞", "下跌", "暴涨"]}),
    "speech-alpacaeval": ("en", "The small dog.", {"instruction": "What did the child almost hurt?", "dataset": "helpful_base"}),
    "mmau-test-mini": ("en", "Speech", {"id": "m0", "question": "Which sound can be heard?",
                                       "choices": ["Dog barking", "Car horn", "Rain", "Speech"],
                                       "task": "sound", "difficulty": "easy"}),
}


def options(command: str) -> dict[str, str]:
    args = shlex.split(command)[2:]
    return {args[i].lstrip("-"): args[i + 1] for i in range(0, len(args), 2)}


def fixture_row(plan: EvalPlan) -> PreparedSample:
    lang, reference, columns = ROWS[plan.dataset.name]
    split = plan.dataset.source.split
    clip = ZH_CLIP if lang == "zh" else EN_CLIP
    sample = Sample(id=f"{plan.dataset.name}-0", audio=clip, reference=reference, lang=lang,
                    fields={**columns, "split": split[0] if isinstance(split, list) else split})
    return PreparedSample(sample, prepared=clip, sample_rate=16000, duration_s=sf.info(clip).duration, audio_sha256="-")


def as_done_here(chain: list[str]) -> tuple[tuple[str, ...], str | None]:
    """The reference's post-processing chain as (post-processing steps, transcriber) here."""
    steps, transcriber = [], None
    for name in chain:
        kind, value = AS_DONE_HERE[name] or (None, None)
        if kind == "post_process":
            steps.append(value)
        elif kind == "transcriber":
            transcriber = value
    return tuple(steps), transcriber


def reference_prompt(command: str) -> tuple[str, list[str]]:
    """The prompt and post-processing the reference tool uses for a seed command."""
    given = options(command)
    prompt, chain = REFERENCE_TASKS[REFERENCE_TASK_OF[given["dataset"]]]
    return given.get("prompt", prompt), chain


# -- the generation parameters that reach each model -------------------------------------------------

def kimi_call(plan: EvalPlan, request: ModelRequest, monkeypatch) -> dict[str, Any]:
    """Kimi-Audio's backend through the stand-in ``kimia_infer``; its one ``generate`` call."""
    calls = kimia_stand_in.install(monkeypatch, pytest.importorskip("torch"))
    backend = get_backend(plan.model, plan.generation)
    try:
        assert backend.generate([request])[0].error is None
    finally:
        backend.close()
    (call,) = [c for c in calls if "chats" in c]
    return call


def step_call(plan: EvalPlan, request: ModelRequest, server, monkeypatch) -> tuple[dict[str, Any], Any]:
    """Step-Audio-R1.1's backend against the local server, which records the request body."""
    monkeypatch.setenv(KEY_ENV, API_KEY)
    args = {k: v for k, v in plan.model.args.items() if k != "serve"}
    entry = plan.model.model_copy(update={"args": {**args, "base_url": server.base_url, "model": "Step-Audio-R1.1",
                                                   "api_key_env": KEY_ENV}})
    backend = get_backend(entry, plan.generation)
    try:
        (output,) = backend.generate([request])
    finally:
        backend.close()
    return server.bodies[-1], output


def audio_seconds(part: dict[str, Any]) -> float:
    return sf.info(io.BytesIO(base64.b64decode(part["input_audio"]["data"]))).duration


# -- the tests ---------------------------------------------------------------------------------------

def test_the_seeds_hold_26_commands_and_a_fixture_row_for_each_dataset():
    commands = seed_commands()
    assert len(commands) == 26
    assert {options(c)["dataset"] for c in commands} == set(ROWS) == set(REFERENCE_TASK_OF)


@pytest.mark.parametrize("command", seed_commands())
def test_seed_command_prompt_generation_and_post_processing_are_the_reference(command, openai_server, monkeypatch):
    given = options(command)
    plan = resolve(load_registry(), given["dataset"], given["model"], given.get("prompt"))
    row = fixture_row(plan)
    prompt_name, chain = reference_prompt(command)

    # The prompt, byte for byte (audio parts carry the row's audio).
    messages = render(plan.prompt, row)
    assert [m.role for m in messages] == ["user"]
    rendered = [(c.type, None if c.type == "audio" else c.value) for c in messages[0].contents]
    assert rendered == REFERENCE_PROMPTS[prompt_name]
    assert all(c.value == row.prepared for c in messages[0].contents if c.type == "audio")

    # Post-processing of the reply and the transcriber of spoken answers.
    steps, transcriber = as_done_here(chain)
    assert plan.post_process == steps
    found = plan.transcriber_for(row.sample.lang)
    assert (found.name if found else None) == transcriber
    assert plan.skip_reason(row.sample) is None

    # What reaches the model.
    request = ModelRequest(row.sample.id, row.prepared, row.sample_rate, messages)
    if plan.model.backend == "kimi_audio_speech":
        call = kimi_call(plan, request, monkeypatch)
        assert call["params"] == KIMI_SAMPLING  # the seed goes to torch.manual_seed
        assert call["output_type"] == ("both" if given["model"] == "kimiaudio-speech" else "text")
        # models/moonshot.py: one chat entry per content part.
        assert call["chats"] == [{"role": "user", "message_type": t, "content": row.prepared if v is None else v}
                                 for t, v in REFERENCE_PROMPTS[prompt_name]]
        assert get_backend(plan.model, plan.generation).sent_parameters() == {**KIMI_SAMPLING, **OURS}
    else:
        body, output = step_call(plan, request, openai_server, monkeypatch)
        assert {k: v for k, v in body.items() if k not in ("model", "messages")} == {**STEP_REQUEST, **OURS}
        user, prefill = body["messages"]
        parts = user["content"] if isinstance(user["content"], list) else [{"type": "text", "text": user["content"]}]
        assert [(p["type"], p.get("text")) for p in parts] == [
            ("input_audio" if t == "audio" else "text", v) for t, v in REFERENCE_PROMPTS[prompt_name]]
        assert prefill == STEP_PREFILL
        # The thinking is kept apart and never scored.
        assert output.reasoning and "think" not in output.text

    # --dry-run says which transcriber and post-processing the run will use.
    result = CliRunner().invoke(app, ["run", *shlex.split(command)[2:], "--dry-run"])
    assert result.exit_code == 0, result.output
    dry = json.loads(result.output)
    assert dry["post_process"] == list(steps)
    assert (dry["transcribe_with"] or {}).get(row.sample.lang) == transcriber
    assert dry["sent"] == get_backend(plan.model, plan.generation).sent_parameters()


def test_step_audio_sends_long_clips_in_25_second_parts_as_the_reference(openai_server, monkeypatch, tmp_path):
    plan = resolve(load_registry(), "librispeech-test-clean", "step-audio-r1.1")
    audio, rate = sf.read(EN_CLIP, dtype="float32")
    clip = tmp_path / "long.wav"
    sf.write(clip, np.tile(audio, 20)[: int(55 * rate)], rate)
    row = fixture_row(plan)
    row = PreparedSample(row.sample, str(clip), rate, 55.0, "-")
    body, output = step_call(plan, ModelRequest("long", str(clip), rate, render(plan.prompt, row)), openai_server,
                             monkeypatch)
    parts = body["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["input_audio"] * 3 + ["text"]
    assert [round(audio_seconds(p), 2) for p in parts[:3]] == [25.0, 25.0, 5.0]
    assert output.error is None
