"""Each seed command runs as the reference tool runs it: prompt, generation, post-processing, transcriber.

For every ``eval_cli`` command of the seed reports (tests/seeds) the plan is resolved from the
command line, as ``audio-evals`` does, and compared with what UltraEval-Audio's own files say for
the same command: its registry YAML (``fixtures/ultraeval/registry``: dataset -> default task ->
prompt, post-processing, evaluator and aggregator; prompt templates; model entries), its Kimi-Audio
sampling (``lib/Kimi-Audio/main.py:38-48``) and the request its Step-Audio-R1.1 client sends
(captured); see ``fixtures/ultraeval/README.md``:

* the hub repository, split(s) and reference column are the reference's dataset entry's (an entry
  without a split reads every split the repo has, per ``fixtures/hub_layouts.json``);
* the prompt is the reference's template rendered as the reference renders it, roles included;
* the headline metric (and its tokeniser or default letter) computes what the reference's
  evaluator and aggregator compute; the transcriber of spoken answers loads the weights its
  speech-to-text step loads;
* the generation parameters that actually reach the model equal the reference's: Kimi-Audio through
  a stand-in ``kimia_infer`` that records its ``generate`` call, Step-Audio-R1.1 through the local
  OpenAI-compatible server that records the request body;
* ``--dry-run`` prints the transcriber and the post-processing the run uses.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import shlex
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pytest
import soundfile as sf
import yaml
from typer.testing import CliRunner

from audio_evals.metrics import load_metric
from audio_evals.models import get_backend
from audio_evals.models.base import ModelRequest
from audio_evals.prompts import render
from audio_evals.records import PreparedSample, Sample
from audio_evals.registry import load_registry
from audio_evals.run.plan import EvalPlan, resolve
from cli.main import app
from tests import kimia_stand_in
from tests.conftest import SAMPLE_DIR
from tests.hub_fixture import seed_splits
from tests.openai_server import API_KEY
from tests.test_cli import seed_commands

EN_CLIP = str(SAMPLE_DIR / "audio" / "spk1_snt1.wav")
ZH_CLIP = str(SAMPLE_DIR / "audio" / "BAC009S0764W0121.wav")
KEY_ENV = "AUDIO_EVALS_TEST_STEP_KEY"

# -- the reference tool, as its own published files have it ----------------------------------------

#: UltraEval-Audio@9b69da645d53cbc90b30179339a1dce7f0117b42 (Apache-2.0): verbatim copies of its registry
#: YAML (datasets, tasks, prompts, processes, models, evaluators) and the facts its code hard-codes.
REFERENCE = Path(__file__).with_name("fixtures") / "ultraeval"
#: Seed dataset names the reference registers under others (registry/dataset/hsk.yaml has hsk1 ... hsk6,
#: registry/dataset/alpaca_eval.yaml speech-chatbot-alpaca-eval; its replication/kimi-audio.md uses the seed names).
REFERENCE_NAMES = {"speech-hsk": [f"hsk{level}" for level in range(1, 7)],
                   "speech-alpacaeval": ["speech-chatbot-alpaca-eval"]}
#: The request Step-Audio-R1.1's client sends, captured by running the reference's models/step_audio_r1.py
#: against a recording server (see fixtures/ultraeval/README.md).
STEP_PAYLOAD = json.loads((REFERENCE / "step_request.json").read_text(encoding="utf-8"))["payload"]
#: Our one addition to both models' sampling: a fixed seed, so that sampled tokens repeat from run to run.
OURS = {"seed": 0}


@functools.cache
def reference_registry(kind: str) -> dict[str, dict[str, Any]]:
    """Every entry of the reference's registry files of one kind (``registry/<kind>/``): name -> {class, args}."""
    entries: dict[str, dict[str, Any]] = {}
    for path in sorted((REFERENCE / "registry" / kind).rglob("*.yaml")):
        entries.update(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    return entries


def reference_args(kind: str, name: str) -> dict[str, Any]:
    return reference_registry(kind)[name]["args"]


def kimi_sampling() -> dict[str, Any]:
    """``sampling_params`` as lib/Kimi-Audio/main.py passes them to ``KimiAudio.generate``."""
    return json.loads((REFERENCE / "kimi_sampling.json").read_text(encoding="utf-8"))["sampling_params"]


def reference_metric(task: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The metric here that computes what the reference task's evaluator and aggregator compute, with
    the parameters the reference's entries give (evaluator/bleu.py: lang zh tokenises as zh, else 13a;
    process/firstoption.py: the options and default letter of the chain's first-option step)."""
    evaluator, agg = task["evaluator"], task["agg"]
    if evaluator.startswith("bleu"):
        return "bleu", {"tokenize": "zh" if reference_args("evaluator", evaluator).get("lang") == "zh" else "13a"}
    if (evaluator, agg) == ("em", "acc"):
        (choice,) = [p for p in task["post_process"] if p.startswith("first_option")]
        return "first_option", reference_args("process", choice)
    return {("wer", "wer"): "wer", ("cer", "wer-zh"): "cer", ("qa-exist-match", "acc"): "acc",
            ("choice-strings-match", "mean"): "mmau", ("chatbot_eval", "geval"): "g_eval"}[(evaluator, agg)], {}


def reference_transcriber(chain: list[str]) -> str | None:
    """The weights the chain's speech-to-text step reads spoken answers with (its model entry's path)."""
    steps = [reference_args("process", p) for p in chain if reference_registry("process")[p]["class"].endswith("Speech2text")]
    return reference_args("model", steps[0]["model_name"])["path"] if steps else None


def reference_render(prompt: str, row: PreparedSample) -> list[tuple[str, list[tuple[str, str]]]]:
    """The reference's prompt template rendered as its prompt/base.py does (Jinja, StrictUndefined),
    for the row's columns and its audio as ``WavPath``."""
    doc = {**row.sample.fields, "WavPath": row.prepared}

    def render_one(text: str) -> str:
        return jinja2.Template(text, undefined=jinja2.StrictUndefined).render(**doc)

    return [(m["role"], [(c["type"], render_one(c["value"])) for c in m["contents"]])
            for m in reference_args("prompt", prompt)["template"]]


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


def reference_task(command: str) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    """The reference's dataset entries, task and prompt for a seed command (its default task's prompt,
    unless the command gives one)."""
    given = options(command)
    datasets = [reference_args("dataset", name) for name in REFERENCE_NAMES.get(given["dataset"], [given["dataset"]])]
    (task_name,) = {d["default_task"] for d in datasets}
    task = reference_args("eval_task", task_name)
    return datasets, task, given.get("prompt", task["prompt"])


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
    assert {options(c)["dataset"] for c in commands} == set(ROWS)


@pytest.mark.parametrize("command", seed_commands())
def test_seed_command_data_prompt_metric_generation_and_transcriber_are_the_reference(command, openai_server,
                                                                                      monkeypatch):
    given = options(command)
    plan = resolve(load_registry(), given["dataset"], given["model"], given.get("prompt"))
    row = fixture_row(plan)
    datasets, task, prompt_name = reference_task(command)

    # The data: the reference's hub repository, split(s) and reference column.
    source = plan.dataset.source
    assert {d["name"] for d in datasets} == {source.repo} and source.reference_column == datasets[0]["ref_col"]
    # The reference's subset is a config here, or the folder of a README-less parquet branch (FLEURS).
    folder = source.config or source.data_dir
    assert {d.get("subset") for d in datasets} == {folder}
    ours = source.split if isinstance(source.split, list) else [source.split]
    # Without a split the reference reads every split of the repository (or of its subset).
    assert ours == ([d["split"] for d in datasets] if "split" in datasets[0] else seed_splits(source.repo, folder))

    # The prompt, byte for byte as the reference renders its own template for the row.
    messages = render(plan.prompt, row)
    ours = [(m.role, [(c.type, c.value) for c in m.contents]) for m in messages]
    assert ours == reference_render(prompt_name, row)

    # Post-processing, the headline metric and the transcriber of spoken answers.
    metric, params = reference_metric(task)
    assert plan.task.metric_for(row.sample.lang) == metric
    if params:  # the tokeniser or the default letter (a judge needs an endpoint to be built, and has none)
        built = load_metric(metric, **plan.task.metric_params).params()
        assert {k: built.get(k) for k in params} == params
    assert plan.post_process == tuple(p for p in task.get("post_process", []) if p == "json_content")
    found = plan.transcriber_for(row.sample.lang)
    assert (found.args["model"] if found else None) == reference_transcriber(task.get("post_process", []))
    assert plan.skip_reason(row.sample) is None

    # What reaches the model: the reference's sampling parameters, and our seed.
    model_args = reference_args("model", given["model"])
    request = ModelRequest(row.sample.id, row.prepared, row.sample_rate, messages)
    if plan.model.backend == "kimi_audio_speech":
        call = kimi_call(plan, request, monkeypatch)
        assert call["params"] == kimi_sampling()  # the seed goes to torch.manual_seed
        assert call["output_type"] == ("both" if model_args.get("speech") else "text")
        # models/moonshot.py: one chat entry per content part.
        assert call["chats"] == [{"role": role, "message_type": t, "content": v}
                                 for role, contents in reference_render(prompt_name, row) for t, v in contents]
        assert get_backend(plan.model, plan.generation).sent_parameters() == {**kimi_sampling(), **OURS}
    else:
        body, output = step_call(plan, request, openai_server, monkeypatch)
        # Every field but the model name, the messages and "stream" (how the reply travels, not what is generated).
        sent = {k: v for k, v in body.items() if k not in ("model", "messages")}
        assert sent == {**{k: v for k, v in STEP_PAYLOAD.items() if k not in ("model", "messages", "stream")}, **OURS}
        assert {k: STEP_PAYLOAD[k] for k in model_args["sample_params"]} == model_args["sample_params"]
        user, prefill = body["messages"]
        parts = user["content"] if isinstance(user["content"], list) else [{"type": "text", "text": user["content"]}]
        [(_, contents)] = reference_render(prompt_name, row)
        assert [(p["type"], p.get("text")) for p in parts] == [
            ("input_audio", None) if t == "audio" else ("text", v) for t, v in contents]
        assert prefill == {k: v for k, v in STEP_PAYLOAD["messages"][-1].items() if k != "eot"}  # eot: its own key
        # The thinking is kept apart and never scored.
        assert output.reasoning and "think" not in output.text

    # --dry-run says which transcriber and post-processing the run will use.
    result = CliRunner().invoke(app, ["run", *shlex.split(command)[2:], "--dry-run"])
    assert result.exit_code == 0, result.output
    dry = json.loads(result.output)
    assert dry["post_process"] == list(plan.post_process)
    assert (dry["transcribe_with"] or {}).get(row.sample.lang) == (found.name if found else None)
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
