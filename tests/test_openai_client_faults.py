"""The OpenAI client against a real misbehaving HTTP server on loopback (stdlib, one thread per request).

The server answers chat completions by the request's text: ``trickle`` sends a 200 whose JSON body
arrives one byte every 0.5 s, ``html`` an HTML page with status 200, ``cut`` JSON cut short,
``cut-once`` cut JSON the first time and a good answer after; any other text a good answer.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from audio_evals.models import openai_api
from audio_evals.models.base import Content, Message, ModelRequest, RequestsFailed
from tests.conftest import SAMPLE_DIR

CLIP = str(SAMPLE_DIR / "audio" / "spk1_snt1.wav")
GOOD = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "fine"}}]}


class Misbehaving(BaseHTTPRequestHandler):
    seen: ClassVar[Counter] = Counter()
    lock = threading.Lock()

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, body: bytes, content_type: str = "application/json", length: int | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = body["messages"][0]["content"][-1]["text"]
        with self.lock:
            self.seen[text] += 1
            count = self.seen[text]
        good = json.dumps(GOOD).encode()
        if text == "trickle":
            self._send(b"", length=len(good))
            for byte in good[:60]:
                time.sleep(0.5)
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
        elif text == "html":
            self._send(b"<html><body>502 Bad Gateway</body></html>", "text/html")
        elif text == "cut" or (text == "cut-once" and count == 1):
            self._send(good[: len(good) // 2])
        else:
            self._send(good)


@pytest.fixture
def server() -> Iterator[str]:
    Misbehaving.seen = Counter()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Misbehaving)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def ask(text: str) -> ModelRequest:
    return ModelRequest(text, CLIP, 16000, (Message("user", (Content("audio", CLIP), Content("text", text))),))


def test_a_trickling_response_is_cut_at_the_total_deadline_and_fails_only_its_sample(server):
    """A 200 body arriving one byte every 0.5 s (30 s in all) against ``timeout_s: 2``, no retries:
    the request ends within a few seconds as a failed request, the other sample's answer is kept."""
    backend = openai_api.BACKEND(base_url=server, model="m", timeout_s=2.0, max_retries=0)
    began = time.monotonic()
    with pytest.raises(RequestsFailed, match=r"1 of 2 requests failed.*no complete response within 2 s") as e:
        backend.generate([ask("trickle"), ask("ok")])
    elapsed = time.monotonic() - began
    backend.close()
    assert elapsed < 5.0, f"held {elapsed:.1f} s against a 2 s deadline"
    assert [(o.sample_id, o.text) for o in e.value.answered] == [("ok", "fine")]


def test_unreadable_200_responses_fail_their_own_samples_after_retries_and_keep_the_rest(server):
    """HTML and cut JSON with status 200 are retried by the client's policy (2 retries: 3 attempts),
    then fail only their own requests; a cut that heals on retry and a good answer are kept."""
    backend = openai_api.BACKEND(base_url=server, model="m", timeout_s=10.0, max_retries=2)
    with pytest.raises(RequestsFailed, match=r"2 of 4 requests failed.*unreadable response") as e:
        backend.generate([ask("html"), ask("cut"), ask("cut-once"), ask("ok")])
    backend.close()
    assert [(o.sample_id, o.text) for o in e.value.answered] == [("cut-once", "fine"), ("ok", "fine")]
    assert Misbehaving.seen == Counter({"html": 3, "cut": 3, "cut-once": 2, "ok": 1})
