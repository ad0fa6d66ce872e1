"""Any OpenAI-compatible endpoint: chat completions with audio parts, or audio transcriptions.

``mode: chat`` sends the rendered prompt, audio as ``input_audio`` parts (base64 WAV);
``mode: transcriptions`` uploads the prepared WAV to /audio/transcriptions and ignores the text.
``generation`` is sent as-is (temperature, max_tokens, seed for chat; language, prompt,
temperature for transcriptions), so it must hold only what the endpoint accepts.

The key is read from the environment variable named by ``api_key_env`` on first use, so a fully
cached run needs no key, or given as the generation parameter ``api_key`` (``--param api_key=...``);
either way it goes in the Authorization header, never in a request body, the fingerprint, a repr
or an error message.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from audio_evals.models.base import Backend, Message, ModelOutput, ModelRequest
from audio_evals.models.http_client import ApiError, OpenAIClient, Secret, resolve_base_url
from audio_evals.models.reasoning import DEFAULT_TAGS, split_reasoning
from audio_evals.redaction import redact_text

#: The generation parameter that carries an API key (sent as the Authorization header).
API_KEY_PARAM = "api_key"


def _audio_part(path: str) -> dict[str, Any]:
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    return {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}


def chat_messages(messages: tuple[Message, ...], audio_path: str) -> list[dict[str, Any]]:
    """OpenAI chat messages: text-only messages as plain strings (what every server accepts),
    others as content parts; a request without messages sends its audio alone."""
    if not messages:
        return [{"role": "user", "content": [_audio_part(audio_path)]}]
    out = []
    for message in messages:
        if all(c.type == "text" for c in message.contents):
            out.append({"role": message.role, "content": "\n".join(c.value for c in message.contents)})
        else:
            parts = [{"type": "text", "text": c.value} if c.type == "text" else _audio_part(c.value)
                     for c in message.contents]
            out.append({"role": message.role, "content": parts})
    return out


@dataclass(kw_only=True)
class OpenAIBackend(Backend):
    model: str
    base_url: str | None = None
    base_url_env: str | None = None
    api_key_env: str | None = None
    mode: Literal["chat", "transcriptions"] = "chat"
    max_concurrency: int = 8
    timeout_s: float = 120.0
    max_retries: int = 4
    #: Opening and closing tags of a reasoning model's thinking, stripped from the answer.
    think_tags: tuple[str, str] = DEFAULT_TAGS
    thread_safe: bool = True
    _client: OpenAIClient | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in ("chat", "transcriptions"):
            raise ValueError(f"openai_api: mode must be 'chat' or 'transcriptions', not {self.mode!r}")
        if not (self.base_url or self.base_url_env):
            raise ValueError("openai_api: give base_url or base_url_env")
        self.think_tags = tuple(self.think_tags)
        if len(self.think_tags) != 2:
            raise ValueError("openai_api: think_tags must be [opening, closing]")

    @property
    def endpoint(self) -> str:
        return resolve_base_url(self.base_url, self.base_url_env, f"openai_api model {self.model!r}")

    @property
    def request_params(self) -> dict[str, Any]:
        """The generation parameters sent with each request: all but the key."""
        return {k: v for k, v in self.generation.items() if k != API_KEY_PARAM}

    def fingerprint(self) -> dict[str, Any]:
        return {"backend": "openai_api", "base_url": redact_text(self.endpoint), "model": self.model,
                "mode": self.mode, "think_tags": list(self.think_tags), "generation": self.request_params}

    def _api_key(self) -> Secret | None:
        given = self.generation.get(API_KEY_PARAM)
        return Secret(str(given)) if given else Secret.from_env(self.api_key_env)

    def _connect(self) -> OpenAIClient:
        """One client per backend, so ``max_concurrency`` holds across the runner's threads."""
        with self._lock:
            if self._client is None:
                self._client = OpenAIClient(self.endpoint, self._api_key(), timeout_s=self.timeout_s,
                                            max_retries=self.max_retries, max_concurrency=self.max_concurrency)
            return self._client

    async def _one(self, client: OpenAIClient, request: ModelRequest) -> ModelOutput:
        """One sample; refused requests and unreadable audio are that sample's error.

        ``latency_s`` is the sample's wall time, waiting for a concurrency slot and retries included.
        """
        start = time.perf_counter()
        try:
            if self.mode == "transcriptions":
                with open(request.audio_path, "rb") as f:
                    text = await client.atranscribe(f.read(), self.model, **self.request_params)
            else:
                messages = chat_messages(request.messages, request.audio_path)
                text = await client.achat(messages, self.model, **self.request_params)
        except (ApiError, OSError) as e:
            return ModelOutput(request.sample_id, error=f"openai_api: {e}")
        answer, reasoning = split_reasoning(text, self.think_tags)
        return ModelOutput(request.sample_id, text=answer, reasoning=reasoning, latency_s=time.perf_counter() - start)

    def generate(self, requests: list[ModelRequest]) -> list[ModelOutput]:
        client = self._connect()
        return client.batch([lambda r=r: self._one(client, r) for r in requests])

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


BACKEND = OpenAIBackend
