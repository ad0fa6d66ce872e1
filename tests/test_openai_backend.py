"""The OpenAI-compatible backend, its HTTP client and the g-eval judge against a real local server.

The server (tests/openai_server.py) transcribes with the embedded Whisper model, so the chat and
transcription paths are checked on real speech; its fault injection drives retries, timeouts,
concurrency bounds and secret hygiene.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

import httpx
import jiwer
import pytest
from whisper_normalizer.english import EnglishTextNormalizer

from audio_evals.metrics import g_eval
from audio_evals.metrics.base import ScoreItem
from audio_evals.models import get_backend
from audio_evals.models.base import BackendUnavailable, Content, Message, ModelRequest, RequestsFailed
from audio_evals.models.http_client import OpenAIClient, Secret
from audio_evals.models.openai_api import OpenAIBackend
from audio_evals.models.reasoning import split_reasoning
from audio_evals.registry.entries import ModelEntry
from tests.conftest import SAMPLE_DIR
from tests.openai_server import API_KEY

KEY_ENV = "AUDIO_EVALS_TEST_OPENAI_KEY"
CLIPS = ["spk1_snt1", "spk2_snt2", "sense_and_sensibility_01_austen_64kb-0880", "goforward"]


@pytest.fixture
def clips(sample_manifest) -> list[dict]:
    """English 16 kHz mono WAV clips (already what preprocessing produces) with references."""
    by_id = {r["id"]: r for r in sample_manifest}
    return [{**by_id[i], "path": str(SAMPLE_DIR / by_id[i]["audio"])} for i in CLIPS]


@pytest.fixture
def make_backend(openai_server, monkeypatch):
    """Backends on the test server with the planted key in the environment; closed afterwards."""
    monkeypatch.setenv(KEY_ENV, API_KEY)
    made: list[OpenAIBackend] = []

    def make(generation: dict | None = None, **args) -> OpenAIBackend:
        args = {"base_url": openai_server.base_url, "model": "whisper-tiny.en", "api_key_env": KEY_ENV, **args}
        made.append(OpenAIBackend(generation=generation or {}, **args))
        return made[-1]

    yield make
    for backend in made:
        backend.close()


def _wer(refs: list[str], hyps: list[str]) -> float:
    norm = EnglishTextNormalizer()
    return jiwer.wer([norm(r) for r in refs], [norm(h) for h in hyps])


def _text_request(i: int, clip_path: str) -> ModelRequest:
    """A text-only chat request: the server echoes it, so no Whisper time is spent."""
    return ModelRequest(f"t{i}", clip_path, 16000, (Message("user", (Content("text", f"hello {i}"),)),))


# -- real speech ------------------------------------------------------------------------------


def test_transcriptions_mode_on_real_speech(make_backend, openai_server, clips):
    backend = make_backend(mode="transcriptions", generation={"temperature": 0.0, "language": "en"})
    requests = [ModelRequest(c["id"], c["path"], 16000) for c in clips]
    outputs = backend.generate(requests)
    assert [o.sample_id for o in outputs] == CLIPS and not any(o.error for o in outputs)
    assert _wer([c["text"] for c in clips], [o.text for o in outputs]) < 0.2
    assert all(o.reasoning is None and o.latency_s > 0 for o in outputs)
    assert openai_server.bodies[0] == {"model": "whisper-tiny.en", "response_format": "json",
                                       "temperature": "0.0", "language": "en"}


def test_chat_mode_sends_input_audio_and_strips_thinking(make_backend, openai_server, clips):
    backend = make_backend(mode="chat", generation={"temperature": 0.0, "max_tokens": 64, "seed": 0})
    requests = [ModelRequest(c["id"], c["path"], 16000, (
        Message("system", (Content("text", "You transcribe speech."),)),
        Message("user", (Content("text", "Think, then transcribe this clip."), Content("audio", c["path"]))),
    )) for c in clips[:3]]
    requests.append(ModelRequest(clips[3]["id"], clips[3]["path"], 16000))  # no prompt: audio alone
    outputs = backend.generate(requests)
    assert not any(o.error for o in outputs)
    assert _wer([c["text"] for c in clips], [o.text for o in outputs]) < 0.2
    assert all("<think>" not in o.text and "clip holds English speech" in o.reasoning for o in outputs[:3])
    assert outputs[3].reasoning is None
    body = next(b for b in openai_server.bodies if len(b["messages"]) == 2)
    assert body["temperature"] == 0.0 and body["max_tokens"] == 64 and body["seed"] == 0
    assert body["messages"][0] == {"role": "system", "content": "You transcribe speech."}
    parts = body["messages"][1]["content"]
    assert parts[0] == {"type": "text", "text": "Think, then transcribe this clip."}
    assert parts[1]["type"] == "input_audio" and parts[1]["input_audio"]["format"] == "wav"


# -- retries, timeouts, concurrency -----------------------------------------------------------


def test_rate_limit_honours_retry_after(make_backend, openai_server, clips):
    openai_server.fail_next(2, status=429, retry_after="1")
    start = time.monotonic()
    [output] = make_backend(max_retries=3).generate([_text_request(0, clips[0]["path"])])
    assert output.text == "hello 0" and openai_server.request_count == 3
    assert time.monotonic() - start >= 2.0


def test_server_errors_are_retried_then_succeed(make_backend, openai_server, clips):
    openai_server.fail_next(2, status=500)
    [output] = make_backend(max_retries=3).generate([_text_request(0, clips[0]["path"])])
    assert output.text == "hello 0" and openai_server.request_count == 3


def test_persistent_server_error_fails_the_shard(make_backend, openai_server, clips):
    openai_server.fail_next(100, status=503, retry_after="0")
    with pytest.raises(RequestsFailed, match="HTTP 503.*after 3 attempts") as caught:
        make_backend(max_retries=2).generate([_text_request(0, clips[0]["path"])])
    assert openai_server.request_count == 3 and caught.value.answered == []


def test_persistent_rate_limit_costs_max_retries_plus_one_per_request_and_keeps_answers(make_backend, openai_server,
                                                                                       clips):
    """The SDK is the one retrier: a 429 that never ends costs max_retries + 1 requests per sample; the
    samples answered before it began come back with the failure, for the next attempt to keep."""
    backend = make_backend(max_retries=2, max_concurrency=1)
    requests = [_text_request(i, clips[0]["path"]) for i in range(4)]
    [first] = backend.generate(requests[:1])
    openai_server.reset()
    openai_server.fail_next(10_000, status=429)
    with pytest.raises(RequestsFailed, match="4 of 4 requests failed.*HTTP 429") as caught:
        backend.generate(requests)
    assert openai_server.request_count == 4 * (2 + 1) and first.text == "hello 0"
    openai_server.reset()
    openai_server.fail_next(2 * 3, status=429)  # the first two samples never get through, the others do
    with pytest.raises(RequestsFailed, match="2 of 4") as caught:
        backend.generate(requests)
    assert [o.text for o in caught.value.answered] == ["hello 2", "hello 3"]


def test_bad_request_is_a_sample_error_without_retry(make_backend, openai_server, clips):
    openai_server.fail_next(1, status=400)
    backend = make_backend(max_concurrency=1)
    bad, good = backend.generate([_text_request(0, clips[0]["path"]), _text_request(1, clips[0]["path"])])
    assert bad.text is None and "HTTP 400" in bad.error and "injected HTTP 400" in bad.error
    assert good.text == "hello 1" and openai_server.request_count == 2


def test_slow_response_times_out_and_is_retried(make_backend, openai_server, clips):
    openai_server.slow_next(1, delay_s=1.5)
    [output] = make_backend(timeout_s=0.4, max_retries=2).generate([_text_request(0, clips[0]["path"])])
    assert output.text == "hello 0" and openai_server.request_count == 2


def test_concurrency_is_bounded_across_threads(make_backend, openai_server, clips):
    openai_server.slow_next(10, delay_s=0.3)
    backend = make_backend(max_concurrency=3)
    requests = [_text_request(i, clips[0]["path"]) for i in range(10)]
    with ThreadPoolExecutor(2) as pool:  # the runner may call a thread-safe backend from several threads
        halves = list(pool.map(backend.generate, [requests[:5], requests[5:]]))
    assert [o.text for half in halves for o in half] == [f"hello {i}" for i in range(10)]
    assert openai_server.request_count == 10 and openai_server.max_in_flight == 3


def test_client_works_from_a_thread_running_an_event_loop(openai_server):
    async def ask(client: OpenAIClient) -> str:
        return client.chat([{"role": "user", "content": "from a loop"}], "m")

    with OpenAIClient(openai_server.base_url, Secret(API_KEY)) as client:
        reply = asyncio.run(ask(client))
    assert reply == "from a loop"
    models = httpx.get(f"{openai_server.base_url}/models", headers={"Authorization": f"Bearer {API_KEY}"})
    assert models.json()["data"][0]["id"] == "whisper-tiny.en"


# -- secrets and configuration ----------------------------------------------------------------


def test_api_key_never_leaks(make_backend, openai_server, clips, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    backend = make_backend(max_retries=1)
    openai_server.fail_next(1, status=429, retry_after="0")
    openai_server.fail_next(1, status=400)  # the server echoes the key in its message
    seen += [json.dumps(o.to_dict()) for o in backend.generate([_text_request(0, clips[0]["path"])])]
    openai_server.fail_next(2, status=500)
    with pytest.raises(RequestsFailed) as transient:
        backend.generate([_text_request(1, clips[0]["path"])])
    wrong_key = "sk-planted-WRONG-456"
    monkeypatch.setenv(KEY_ENV, wrong_key)
    with pytest.raises(BackendUnavailable, match="HTTP 401") as refused:  # the 401 echoes the wrong key
        make_backend().generate([_text_request(2, clips[0]["path"])])
    for error in (transient.value, refused.value):
        seen += [str(error), repr(error), "".join(traceback.format_exception(error))]
    seen += [repr(backend), repr(backend.loaded()), json.dumps(backend.fingerprint()), caplog.text]
    assert "injected HTTP 400" in seen[0] and "retry 1 of 1" in caplog.text
    for text in seen:
        assert API_KEY not in text and wrong_key not in text


def test_configuration_errors_are_clear(monkeypatch, openai_server, clips):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv("AUDIO_EVALS_TEST_BASE_URL", openai_server.base_url)
    entry = ModelEntry(name="api", backend="openai_api", args={
        "base_url_env": "AUDIO_EVALS_TEST_BASE_URL", "model": "m", "api_key_env": KEY_ENV,
        "think_tags": ["<reasoning>", "</reasoning>"]})
    backend = get_backend(entry, {"temperature": 0.0})  # how the runner builds it
    # The fingerprint needs no key (a cached run never calls the endpoint) and never holds one.
    assert backend.fingerprint() == {"backend": "openai_api", "base_url": openai_server.base_url, "model": "m",
                                     "mode": "chat", "think_tags": ["<reasoning>", "</reasoning>"],
                                     "assistant_prefill": None, "audio_chunk_s": None, "user_role": "user",
                                     "generation": {"temperature": 0.0}}
    with pytest.raises(BackendUnavailable, match=f"{KEY_ENV} is not set"):
        backend.generate([_text_request(0, clips[0]["path"])])
    monkeypatch.delenv("AUDIO_EVALS_TEST_BASE_URL")
    with pytest.raises(BackendUnavailable, match="AUDIO_EVALS_TEST_BASE_URL"):
        OpenAIBackend(model="m", base_url_env="AUDIO_EVALS_TEST_BASE_URL").fingerprint()
    with pytest.raises(ValueError, match="mode"):
        OpenAIBackend(model="m", base_url="http://x/v1", mode="speech")


@pytest.mark.parametrize("text, tags, expected", [
    ("plain answer", None, ("plain answer", None)),
    ("<think>hmm, B</think>\nThe answer is B.", None, ("The answer is B.", "hmm, B")),
    ("opened in the prompt</think>B", None, ("B", "opened in the prompt")),
    ("a</think>b</think>c", None, ("c", "a\n\nb")),                   # a stray closing tag ends thinking too
    ("a</think>ans <think>x</think> tail", ("", "</think>"), ("tail", "a</think>ans <think>x")),  # prompt-opened
    ("A <think>one</think> B <think>two</think> C", None, ("A B C", "one\n\ntwo")),
    ("<think>cut off by max_tokens", None, ("", "cut off by max_tokens")),
    ("<think></think>B", None, ("B", "")),
    ("<reasoning>r</reasoning>B <think>x</think>", ("<reasoning>", "</reasoning>"), ("B <think>x</think>", "r")),
])
def test_split_reasoning(text, tags, expected):
    assert (split_reasoning(text, tags) if tags else split_reasoning(text)) == expected


# -- the g-eval judge ------------------------------------------------------------------------


def test_g_eval_judge(openai_server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, API_KEY)
    metric = g_eval.build(base_url=openai_server.base_url, model="judge", api_key_env=KEY_ENV, max_concurrency=1,
                          prompt_version="g-eval-v1")
    right = ScoreItem("a", "It is Paris, of course.", "Paris", fields={"question": "Capital of France?"})
    wrong = ScoreItem("b", "Lyon", "Paris", fields={"instruction": "Capital of France?"})
    scores = metric.score([right, wrong])
    assert [s.value for s in scores] == [100.0, 30.0]
    assert [s.stats for s in scores] == [{"score": 10.0, "asked": 1}, {"score": 3.0, "asked": 1}]
    assert metric.aggregate(scores) == 65.0
    assert metric.params()["prompt_version"] == "g-eval-v1" and metric.params()["temperature"] == 0.0
    judged = openai_server.bodies[0]
    assert judged["temperature"] == 0.0 and "[Question]\nCapital of France?" in judged["messages"][0]["content"]

    openai_server.reset()
    openai_server.garble_next(2)  # two unparseable replies, then a rating: still parsed
    [score] = metric.score([right])
    assert score.parsed and score.value == 100.0 and openai_server.request_count == 3

    openai_server.reset()
    openai_server.garble_next(3)  # never a rating: recorded unparsed with the raw reply, out of the mean
    [score] = metric.score([right])
    assert not score.parsed and score.value is None and "rather not" in score.explanation
    assert openai_server.request_count == 3 and score.stats == {"asked": 3}
    assert metric.aggregate([score, *scores]) == 65.0


def test_g_eval_default_is_the_reference_single_answer_protocol(openai_server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, API_KEY)
    metric = g_eval.build(base_url=openai_server.base_url, model="judge", api_key_env=KEY_ENV, max_concurrency=1)
    item = ScoreItem("a", "Paris {answer} is the capital", "Paris", fields={"question": "Capital of France?"})
    [score] = metric.score([item])
    prompt = openai_server.bodies[0]["messages"][0]["content"]
    # One line (the reference's YAML folds it), no reference answer, braces in the answer left alone.
    assert "\n" not in prompt and "Reference Answer" not in prompt
    assert prompt.endswith("[Question] Capital of France? [The Start of Assistant’s Answer] Paris {answer} is the "
                           "capital [The End of Assistant’s Answer]")
    assert openai_server.bodies[0]["max_tokens"] == 2048 and openai_server.bodies[0]["temperature"] == 0.0
    assert score.value == 100.0 and metric.protocol.startswith("reference protocol: UltraEval-Audio chatbot_eval")
    # The reference reads the first integer [[n]]; a decimal rating is not one.
    assert g_eval.parse_rating("[[8.5]] then [[7]]") == 7.0 and g_eval.parse_rating("[[11]]") == 11.0


#: The reference's chatbot-eval template as its YAML loads it, placeholders renamed (checked against its source).
REFERENCE_PROMPT_SHA = "e4a30d7d83b8ab8c"


def test_g_eval_request_params_cannot_change_what_the_protocol_fixes():
    with pytest.raises(ValueError, match="cannot set temperature"):
        g_eval.build(base_url="http://127.0.0.1:9/v1", api_key_env=None, request_params={"temperature": 1.0})


def test_g_eval_prompt_is_fixed():
    """Changing the judge prompt changes every score: it needs a new version, not an edit."""
    assert g_eval.PROMPTS["g-eval-v1"] is g_eval.JUDGE_PROMPT_V1
    assert hashlib.sha256(g_eval.JUDGE_PROMPT_V1.encode()).hexdigest()[:16] == "3d4ee0eea4a55be0"
    assert hashlib.sha256(g_eval.REFERENCE_CHATBOT_PROMPT.encode()).hexdigest()[:16] == REFERENCE_PROMPT_SHA
    v1 = "g-eval-v1"
    assert g_eval.parse_rating("Rating: [[7]]", v1) == 7.0 and g_eval.parse_rating("[[ 8.5 ]]", v1) == 8.5
    assert g_eval.parse_rating("Rating: [[11]]", v1) is None and g_eval.parse_rating("7/10", v1) is None
