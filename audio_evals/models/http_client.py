"""A small client for OpenAI-compatible endpoints (chat completions, audio transcriptions).

Shared by the API backend, served-vLLM backends and the LLM-judge metric so that retries,
rate limits and secrets are handled once:

* transient failures (429, 408, 5xx, timeouts, connection errors) are retried with exponential
  backoff and full jitter, honouring ``Retry-After``; when retries run out the call raises
  ``TransientBackendError`` so the runner retries the whole shard later;
* other 4xx are the request's own fault: ``ApiError`` (the caller records it for that sample),
  except 401/403, which no retry or other sample can fix: ``BackendUnavailable``;
* all calls of one client share one event loop (a daemon thread), one connection pool and one
  semaphore, so ``max_concurrency`` bounds in-flight requests even when several threads call;
* the API key is a ``Secret``: it is sent in the Authorization header and scrubbed from every
  message this module produces, and never appears in a repr;
* credentials inside the base URL (``https://user:pass@host/v1``) are taken out of it: they are
  sent as HTTP basic auth when there is no API key, and no message or repr shows them.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

import httpx

from audio_evals.models.base import BackendUnavailable, TransientBackendError
from audio_evals.redaction import remember

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Statuses worth retrying besides 5xx: request timeout, rate limit.
_RETRY_STATUSES = {408, 429}
#: How much of a server's error body goes into a message.
_MAX_MESSAGE = 500


class Secret:
    """A credential that does not leak: its repr and str are redacted; ``reveal`` is explicit."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    @classmethod
    def from_env(cls, name: str | None) -> Secret | None:
        """The key in environment variable ``name``; None when no variable is named."""
        if not name:
            return None
        value = os.environ.get(name)
        if not value:
            raise BackendUnavailable(f"the API key variable {name} is not set")
        remember(value)  # masked in every text this process writes or logs
        return cls(value)

    def reveal(self) -> str:
        return self._value

    def redact(self, text: str) -> str:
        """``text`` with every occurrence of the secret replaced (servers echo bad keys back)."""
        return text.replace(self._value, "***") if self._value else text

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def resolve_base_url(base_url: str | None, base_url_env: str | None, what: str) -> str:
    """The endpoint given directly or through an environment variable, without a trailing slash."""
    url = base_url or (os.environ.get(base_url_env) if base_url_env else None)
    if not url:
        source = f"the {base_url_env} environment variable" if base_url_env else "base_url"
        raise BackendUnavailable(f"{what}: no endpoint configured (set {source})")
    return url.rstrip("/")


def split_credentials(url: str) -> tuple[str, httpx.BasicAuth | None]:
    """``url`` without the ``user:pass@`` part, and that part as basic auth (None if it had none)."""
    parsed = httpx.URL(url)
    if not parsed.userinfo:
        return url, None
    remember(parsed.password)
    return str(parsed.copy_with(userinfo=b"")), httpx.BasicAuth(parsed.username, parsed.password)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None if absent."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class ApiError(Exception):
    """The server refused this request (a 4xx other than 401/403): a per-sample error."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class OpenAIClient:
    """Bounded, retrying access to one OpenAI-compatible endpoint.

    ``base_url`` includes the API prefix (``https://api.openai.com/v1``). Sync methods (``chat``,
    ``transcribe``, ``batch``) may be called from any thread, including one running its own event
    loop; the coroutines (``achat``, ``atranscribe``) may be awaited from any loop.
    """

    def __init__(
        self,
        base_url: str,
        api_key: Secret | None = None,
        *,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        max_concurrency: int = 8,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ):
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.base_url, self._url_auth = split_credentials(base_url.rstrip("/"))
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.max_concurrency = max_concurrency
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._http: httpx.AsyncClient | None = None
        self._slots: asyncio.Semaphore | None = None

    def __repr__(self) -> str:
        return (f"OpenAIClient(base_url={self.base_url!r}, api_key={self.api_key!r}, "
                f"max_concurrency={self.max_concurrency}, timeout_s={self.timeout_s}, max_retries={self.max_retries})")

    def __enter__(self) -> OpenAIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the event loop all requests of this client run on -------------------------------------

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=loop.run_forever, name="openai-client", daemon=True)
                self._thread.start()
                headers = {"Authorization": f"Bearer {self.api_key.reveal()}"} if self.api_key else {}
                auth = None if self.api_key else self._url_auth
                limits = httpx.Limits(max_connections=self.max_concurrency,
                                      max_keepalive_connections=self.max_concurrency)

                async def setup() -> None:
                    self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers, auth=auth, limits=limits,
                                                   timeout=httpx.Timeout(self.timeout_s))
                    self._slots = asyncio.Semaphore(self.max_concurrency)

                asyncio.run_coroutine_threadsafe(setup(), loop).result()
                self._loop = loop
            return self._loop

    def _wait(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the client's loop and block until it is done."""
        loop = self._start()
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            coro.close()
            raise RuntimeError("OpenAIClient: a blocking call on the client's own loop would deadlock; await instead")
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    async def _on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the client's loop, whichever loop the caller runs on."""
        loop = self._start()
        if asyncio.get_running_loop() is loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    def close(self) -> None:
        """Close connections and stop the loop thread. Safe to call twice."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is None:
            return
        if self._http is not None:
            asyncio.run_coroutine_threadsafe(self._http.aclose(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join()
        loop.close()

    # -- one request, with retries ---------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
        return random.uniform(0.0, min(self.max_backoff_s, self.backoff_s * 2 ** attempt))

    def _message(self, response: httpx.Response) -> str:
        try:
            body = response.json()
            error = body.get("error", body) if isinstance(body, dict) else body
            message = (error.get("message") or error.get("detail")) if isinstance(error, dict) else error
            message = message or body
        except ValueError:
            message = response.text or response.reason_phrase
        return self._excerpt(message)

    def _excerpt(self, value: object) -> str:
        """The start of a text for a message, key scrubbed first (servers echo bad keys)."""
        text = str(value)
        return (self.api_key.redact(text) if self.api_key else text)[:_MAX_MESSAGE]

    async def _post(self, path: str, **kwargs: Any) -> dict[str, Any]:
        assert self._http is not None and self._slots is not None
        failure = ""
        retry_after: float | None = None
        for attempt in range(self.max_retries + 1):
            retry_after = None
            async with self._slots:
                try:
                    response = await self._http.post(path, **kwargs)
                except httpx.TransportError as e:  # timeouts, refused or dropped connections
                    failure = self._excerpt(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
                    response = None
            if response is not None:
                status = response.status_code
                if status < 400:
                    try:
                        return response.json()
                    except ValueError:
                        raise ApiError(status, f"response is not JSON: {self._excerpt(response.text)}") from None
                if status in (401, 403):
                    raise BackendUnavailable(f"{self.base_url}{path}: HTTP {status}: {self._message(response)}")
                if status not in _RETRY_STATUSES and status < 500:
                    raise ApiError(status, self._message(response))
                failure = f"HTTP {status}: {self._message(response)}"
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if attempt == self.max_retries or (retry_after or 0.0) > self.max_backoff_s:
                break  # a long Retry-After is the runner's to wait out, not a held shard's
            delay = retry_after if retry_after is not None else self._backoff(attempt)
            log.warning("%s%s: %s; retry %d/%d in %.1f s", self.base_url, path, failure, attempt + 1,
                        self.max_retries, delay)
            await asyncio.sleep(delay)
        raise TransientBackendError(f"{self.base_url}{path}: {failure} (gave up after {attempt + 1} attempts)",
                                    retry_after=retry_after)

    # -- the endpoints -------------------------------------------------------------------------

    async def achat(self, messages: list[dict[str, Any]], model: str, **gen: Any) -> str:
        """The assistant's reply text from /chat/completions."""
        payload = {"model": model, "messages": messages, **gen}
        body = await self._on_loop(self._post("/chat/completions", json=payload))
        try:
            return body["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise ApiError(200, f"unexpected chat response: {self._excerpt(body)}") from None

    async def atranscribe(self, wav_bytes: bytes, model: str, **gen: Any) -> str:
        """The transcript from /audio/transcriptions (multipart upload of a WAV file)."""
        fields = {k: v if isinstance(v, str) else json.dumps(v) for k, v in gen.items() if v is not None}
        data = {"model": model, "response_format": "json", **fields}
        body = await self._on_loop(self._post("/audio/transcriptions", data=data,
                                              files={"file": ("audio.wav", wav_bytes, "audio/wav")}))
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            raise ApiError(200, f"unexpected transcription response: {self._excerpt(body)}")
        return body["text"]

    def chat(self, messages: list[dict[str, Any]], model: str, **gen: Any) -> str:
        return self._wait(self.achat(messages, model, **gen))

    def transcribe(self, wav_bytes: bytes, model: str, **gen: Any) -> str:
        return self._wait(self.atranscribe(wav_bytes, model, **gen))

    def batch(self, calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
        """Run ``calls`` (coroutine factories) concurrently, at most ``max_concurrency`` requests
        in flight; results in order. The first exception cancels the rest and is raised: callers
        turn per-sample failures into values inside their coroutine."""

        async def run_all() -> list[T]:
            tasks = [asyncio.ensure_future(call()) for call in calls]
            try:
                return list(await asyncio.gather(*tasks))
            finally:
                for task in tasks:
                    task.cancel()

        return self._wait(run_all())
