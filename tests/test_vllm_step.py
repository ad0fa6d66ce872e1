"""Step-Audio-R1.1's registry entry against the real vLLM server: the prompt vLLM renders equals the
reference template's output for every row of data/reference-scoring/step-chat-template.jsonl.

The real Step-Audio-R1.1 architecture is not in vLLM's CPU build (the reference uses StepFun's vLLM
fork), so the server serves the tiny Qwen2-Audio that carries Step's special tokens
(tests/tiny_vllm_models.py), started with the entry's own flags and chat template (tensor parallel
1 and a shorter context here). vLLM returns the rendered prompt with ``return_prompt_text``.
"""

from __future__ import annotations

import base64
import io
import json

import httpx
import numpy as np
import pytest
import soundfile as sf

from audio_evals.models import get_backend
from audio_evals.models.base import Content, Message
from audio_evals.models.openai_api import chat_messages
from audio_evals.registry import load_registry
from tests import tiny_vllm_models
from tests.conftest import SAMPLE_DIR
from tests.vllm_env import ROOT, group_gone, vllm_python

pytestmark = pytest.mark.timeout(900)
ROWS = [json.loads(line) for line in
        (ROOT.parent / "shared/data/reference-scoring/step-chat-template.jsonl").read_text().splitlines()] \
    if (ROOT.parent / "shared/data/reference-scoring/step-chat-template.jsonl").exists() else []
CLIP = SAMPLE_DIR / "audio" / "spk1_snt1.wav"


def step_entry():
    return load_registry().models["step-audio-r1.1"]


def with_audio(messages: list[dict]) -> list[dict]:
    """The fixture's messages with each bare ``{"type": "audio"}`` part carrying a real clip."""
    data = base64.b64encode(CLIP.read_bytes()).decode()
    audio = {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}
    return [{**m, "content": [audio if p.get("type") == "audio" else p for p in m["content"]]}
            if isinstance(m["content"], list) else m for m in messages]


def test_clips_are_cut_by_the_reference_rule_and_exactly_50_s_gets_a_third_empty_part(tmp_path):
    audio, rate = sf.read(CLIP, dtype="float32")
    for seconds, expected in ((25.0, [25.0]), (50.0, [25.0, 25.0, 0.0]), (55.0, [25.0, 25.0, 5.0])):
        clip = tmp_path / f"{seconds}.wav"
        sf.write(clip, np.resize(audio, int(seconds * rate)), rate)
        parts = chat_messages((Message("user", (Content("audio", str(clip)),)),), str(clip), 25.0)[0]["content"]
        lengths = [sf.info(io.BytesIO(base64.b64decode(p["input_audio"]["data"]))).frames / rate
                   for p in parts]
        assert [round(x, 2) for x in lengths] == expected


def test_step_entry_server_renders_the_reference_template_for_every_fixture_row(tmp_path):
    python = vllm_python()
    if not ROWS:
        pytest.skip("the shared reference-scoring fixtures are not here")
    entry = step_entry()
    serve = {**entry.args["serve"], "model": tiny_vllm_models.tiny_qwen2_audio(), "python": python,
             "tensor_parallel_size": 1, "max_model_len": 4096}
    backend = get_backend(entry.model_copy(update={"args": {**entry.args, "serve": serve, "log_dir": str(tmp_path),
                                                            "startup_timeout_s": 600}}), entry.generation)
    server, _ = backend.loaded()
    try:
        def rendered(messages: list[dict], fields: dict) -> str:
            body = {"model": backend.served_model, "messages": messages, **fields, "max_tokens": 1,
                    "return_prompt_text": True}
            reply = httpx.post(f"{server.root}/v1/chat/completions", json=body, timeout=120, trust_env=False)
            assert reply.status_code == 200, reply.text
            return reply.json()["prompt_text"]

        for row in ROWS:
            fields = {"add_generation_prompt": row["add_generation_prompt"],
                      "continue_final_message": row["continue_final_message"]}
            assert rendered(with_audio(row["messages"]), fields) == row["rendered"]
        # The product's own request for the first row's prompt: role, parts, prefill and flags.
        first = ROWS[0]["messages"][0]["content"][1]["text"]
        ours = chat_messages((Message("user", (Content("audio", str(CLIP)), Content("text", first))),), str(CLIP),
                             backend.audio_chunk_s, backend.user_role)
        ours.append({"role": "assistant", "content": backend.assistant_prefill})
        assert ours[0]["role"] == "human"
        assert rendered(ours, backend.sent_parameters()) == ROWS[0]["rendered"]
    finally:
        group = server.process.pid
        backend.close()
    assert group_gone(group)
