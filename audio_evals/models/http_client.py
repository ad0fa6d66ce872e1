"""Access to OpenAI-compatible endpoints (chat completions, audio transcriptions) through the
``openai`` SDK, shared by the API backend, served-vLLM backends and the LLM-judge metric.

The SDK owns what every request needs: retries of 408/409/429/5xx, timeouts and dropped
connections with exponential backoff honouring ``Retry-After``, and typed errors. This module
only maps those errors onto what the runner understands and keeps secrets out of messages:

* a request that still fails after the SDK's retries raises ``RequestFailed`` (the backend then
  fails the shard, keeping the answers it got; nothing retries it again);
* other 4xx are the request's own fault: ``ApiError`` (the caller records it for that sample),
  except 401/403, which no retry or other sample can fix: ``BackendUnavailable``;
* every attempt of a request has a total deadline of ``timeout_s`` (the SDK's timeout bounds each
  read, so a server trickling bytes would otherwise hold a request without end);
* a 200 whose body is not a readable answer (an HTML page, cut JSON) is retried like a 5xx, then
  fails that request only;
* one client holds one thread pool of ``max_concurrency`` workers, so that bound holds for
  in-flight requests even when several threads call;
* the API key is a ``Secret``: it is sent in the Authorization header and scrubbed from every
  message this module produces, and never appears in a repr;
* credentials inside the base URL (``https://user:pass@host/v1``) are taken out of it: they are
  sent as HTTP basic auth when there is no API key, and no message or repr shows them.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any, TypeVar

import httpx2
import openai

from audio_evals.models.base import BackendUnavailable
from audio_evals.redaction import redact_text, remember

T = TypeVar("T")
R = TypeVar("R")

#: How much of a server's error body goes into a message.
_MAX_MESSAGE = 500
#: Statuses the SDK retries; one still answered after its retries is a failed request, not a bad one.
_TRANSIENT_STATUSES = {408, 409, 429}


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


def split_credentials(url: str) -> tuple[str, httpx2.BasicAuth | None]:
    """``url`` without the ``user:pass@`` part, and that part as basic auth (None if it had none)."""
    parsed = httpx2.URL(url)
    if not parsed.userinfo:
        return url, None
    remember(parsed.password)
    return str(parsed.copy_with(userinfo=b"")), httpx2.BasicAuth(parsed.username, parsed.password)


class _DeadlineStream(httpx2.SyncByteStream):
    """A response body that raises ``ReadTimeout`` once its request's deadline has passed."""

    def __init__(self, inner: httpx2.SyncByteStream, deadline: float, total_s: float, request: httpx2.Request):
        self._inner, self._deadline, self._total_s, self._request = inner, deadline, total_s, request

    def __iter__(self) -> Generator[bytes, None, None]:
        for chunk in self._inner:
            if time.monotonic() > self._deadline:
                raise httpx2.ReadTimeout(f"no complete response within {self._total_s:g} s", request=self._request)
            yield chunk

    def close(self) -> None:
        self._inner.close()


class DeadlineTransport(httpx2.BaseTransport):
    """HTTP with a total deadline per request, body included: httpx's timeouts bound each read only.
    A body still arriving after ``total_s`` is cut (at most one read timeout late)."""

    def __init__(self, inner: httpx2.BaseTransport, total_s: float):
        self._inner, self._total_s = inner, total_s

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        deadline = time.monotonic() + self._total_s
        response = self._inner.handle_request(request)
        response.stream = _DeadlineStream(response.stream, deadline, self._total_s, request)  # type: ignore[arg-type]
        return response

    def close(self) -> None:
        self._inner.close()


class _NoAuthorization(httpx2.Auth):
    """Sends no Authorization header: the SDK insists on a key, a keyless endpoint needs none."""

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        request.headers.pop("Authorization", None)
        yield request


class ApiError(Exception):
    """The server refused this request (a 4xx other than 401/403): a per-sample error."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class RequestFailed(Exception):
    """The request still failed after the client's retries (rate limit, 5xx, timeout, connection)."""


class RequestTimedOut(RequestFailed):
    """No answer within ``timeout_s``, on every attempt."""


class _Unreadable(Exception):
    """A 2xx whose body is no answer (not JSON, cut short, another shape): retried like a 5xx."""


class OpenAIClient:
    """Bounded access to one OpenAI-compatible endpoint; ``base_url`` includes the API prefix
    (``https://api.openai.com/v1``). Every method may be called from any thread."""

    def __init__(self, base_url: str, api_key: Secret | None = None, *, timeout_s: float = 120.0,
                 max_retries: int = 4, max_concurrency: int = 8):
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.base_url, url_auth = split_credentials(base_url.rstrip("/"))
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.max_concurrency = max_concurrency
        limits = httpx2.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency)
        auth = None if api_key else url_auth or _NoAuthorization()
        transport = DeadlineTransport(httpx2.HTTPTransport(limits=limits), timeout_s)
        self._sdk = openai.OpenAI(base_url=self.base_url, api_key=api_key.reveal() if api_key else "none",
                                  timeout=timeout_s, max_retries=max_retries,
                                  http_client=httpx2.Client(auth=auth, timeout=timeout_s, transport=transport))
        self._pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="openai-client")
        self._closed = threading.Event()

    def __repr__(self) -> str:
        return (f"OpenAIClient(base_url={self.base_url!r}, api_key={self.api_key!r}, "
                f"max_concurrency={self.max_concurrency}, timeout_s={self.timeout_s}, max_retries={self.max_retries})")

    def __enter__(self) -> OpenAIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers and close connections. Safe to call twice."""
        if not self._closed.is_set():
            self._closed.set()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._sdk.close()

    def _excerpt(self, value: object) -> str:
        """The start of a text for a message, key and URL credentials scrubbed (servers echo bad keys)."""
        text = redact_text(str(value))
        return (self.api_key.redact(text) if self.api_key else text)[:_MAX_MESSAGE]

    def _call(self, path: str, request: Callable[[], T]) -> T:
        """``request()`` (one SDK call, retried inside the SDK) with its errors mapped."""
        where = f"{self.base_url}{path}"
        try:
            return request()
        except openai.APIStatusError as e:
            body = e.body if isinstance(e.body, dict) else {}
            message = self._excerpt(body.get("message") or body.get("detail") or e.response.text or e.message)
            if e.status_code in (401, 403):
                raise BackendUnavailable(f"{where}: HTTP {e.status_code}: {message}") from None
            if e.status_code in _TRANSIENT_STATUSES or e.status_code >= 500:
                raise RequestFailed(f"{where}: HTTP {e.status_code}: {message} "
                                    f"(gave up after {self.max_retries + 1} attempts)") from None
            raise ApiError(e.status_code, message) from None
        except openai.APIConnectionError as e:  # timeouts, refused or dropped connections
            cause = e.__cause__ or e
            timed_out = isinstance(e, openai.APITimeoutError) or isinstance(cause, httpx2.TimeoutException)
            raise (RequestTimedOut if timed_out else RequestFailed)(f"{where}: {type(cause).__name__}: {self._excerpt(cause)} "
                                f"(gave up after {self.max_retries + 1} attempts)") from None
        except (openai.APIError, ValueError) as e:  # a 2xx the SDK cannot read; JSON cut short
            raise _Unreadable(self._excerpt(e)) from None

    def _answer(self, path: str, request: Callable[[], Any], extract: Callable[[Any], str]) -> str:
        """``extract`` of the reply to ``request()``; an unreadable reply is asked again with the
        client's retry count and backoff, then raises ``RequestFailed`` (this request only)."""
        problem = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(min(8.0, 0.5 * 2 ** (attempt - 1)))
            try:
                reply = self._call(path, request)
                try:
                    return extract(reply)
                except (AttributeError, IndexError, KeyError, TypeError):
                    raise _Unreadable(f"no answer in the response: {self._excerpt(reply)}") from None
            except _Unreadable as e:
                problem = str(e)
        raise RequestFailed(f"{self.base_url}{path}: unreadable response ({problem}) "
                            f"(gave up after {self.max_retries + 1} attempts)")

    def chat(self, messages: list[dict[str, Any]], model: str, **gen: Any) -> str:
        """The assistant's reply text from /chat/completions; ``gen`` goes in the body as given."""
        return self._answer("/chat/completions", lambda: self._sdk.chat.completions.create(
            model=model, messages=messages, extra_body=gen), lambda reply: reply.choices[0].message.content or "")

    def transcribe(self, wav_bytes: bytes, model: str, **gen: Any) -> str:
        """The transcript from /audio/transcriptions (multipart upload of a WAV file)."""
        fields = {k: v for k, v in gen.items() if v is not None}

        def text(reply: Any) -> str:
            if not isinstance(reply.text, str):
                raise TypeError("text is not a string")
            return reply.text

        return self._answer("/audio/transcriptions", lambda: self._sdk.audio.transcriptions.create(
            file=("audio.wav", wav_bytes, "audio/wav"), model=model, response_format="json", extra_body=fields), text)

    def map(self, call: Callable[[R], T], items: Sequence[R]) -> list[T]:
        """``call`` on every item, at most ``max_concurrency`` at once across all callers; results
        in order. The first exception cancels the calls not yet started and is raised: callers turn
        per-sample failures into values inside ``call``."""
        futures = [self._pool.submit(call, item) for item in items]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        failed = next((f for f in futures if f in done and f.exception() is not None), None)
        if failed is not None:
            raise failed.exception()  # type: ignore[misc]
        return [f.result() for f in futures]
