"""Any OpenAI-compatible endpoint: chat completions with audio parts, or audio transcriptions.

``mode: chat`` sends the rendered prompt, audio as ``input_audio`` parts (base64 WAV);
``mode: transcriptions`` uploads the prepared WAV to /audio/transcriptions and ignores the text.
``generation`` is sent as-is: request fields of the OpenAI API or the extra sampling fields
vLLM's server accepts (``CHAT_KEYS``, ``TRANSCRIPTION_KEYS``); any other key is refused up front.

Two chat options reproduce how a model's own client calls it: ``assistant_prefill`` opens the
reply (Step-Audio-R1's ``<think>\n``; sent as a final assistant message that vLLM continues), and
``audio_chunk_s`` sends clips longer than that as several consecutive audio parts.

The key is read from the environment variable named by ``api_key_env`` on first use, so a fully
cached run needs no key, or given as the generation parameter ``api_key`` (``--param api_key=...``);
either way it goes in the Authorization header, never in a request body, the fingerprint, a repr
or an error message.
"""

from __future__ import annotations

import base64
import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Literal

import soundfile as sf

from audio_evals.data.audio import encode_wav
from audio_evals.models.base import Backend, Message, ModelOutput, ModelRequest, RequestsFailed
from audio_evals.models.http_client import (
    ApiError,
    OpenAIClient,
    RequestFailed,
    RequestTimedOut,
    Secret,
    resolve_base_url,
)
from audio_evals.models.reasoning import DEFAULT_TAGS, split_reasoning
from audio_evals.records import TIME_LIMIT_ERROR
from audio_evals.redaction import redact_text

#: The generation parameter that carries an API key (sent as the Authorization header).
API_KEY_PARAM = "api_key"


#: Sampling fields of chat requests: the OpenAI API's, then the extras vLLM's server takes.
CHAT_KEYS = frozenset({
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "stop", "n", "presence_penalty",
    "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "response_format", "modalities", "audio",
    "reasoning_effort",
    "top_k", "min_p", "repetition_penalty", "length_penalty", "stop_token_ids", "skip_special_tokens",
    "include_stop_str_in_output", "ignore_eos", "min_tokens", "spaces_between_special_tokens",
})
#: Fields of transcription requests: the OpenAI API's, then vLLM's sampling extras.
TRANSCRIPTION_KEYS = frozenset({
    "language", "prompt", "temperature",
    "top_p", "top_k", "min_p", "seed", "repetition_penalty", "frequency_penalty", "presence_penalty",
})


def _wav_part(data: bytes) -> dict[str, Any]:
    return {"type": "input_audio", "input_audio": {"data": base64.b64encode(data).decode("ascii"), "format": "wav"}}


def _audio_parts(path: str, chunk_s: float | None) -> list[dict[str, Any]]:
    """The clip as one WAV part or, when longer than ``chunk_s``, as the Step-Audio client cuts it:
    ``int(duration // chunk_s) + 1`` parts of ``chunk_s`` (duration in whole milliseconds, as pydub
    measures it), so a clip of exactly twice ``chunk_s`` ends with an empty part."""
    if chunk_s:
        samples, rate = sf.read(path, dtype="float32", always_2d=False)
        duration_s = round(1000 * len(samples) / rate) / 1000
        if duration_s > chunk_s:
            step = int(chunk_s * rate)
            return [_wav_part(encode_wav(samples[i * step:(i + 1) * step], rate))
                    for i in range(int(duration_s // chunk_s) + 1)]
    with open(path, "rb") as f:
        return [_wav_part(f.read())]


def chat_messages(messages: tuple[Message, ...], audio_path: str, chunk_s: float | None = None,
                  user_role: str = "user") -> list[dict[str, Any]]:
    """OpenAI chat messages: text-only messages as plain strings (what every server accepts),
    others as content parts; a request without messages sends its audio alone. The user's
    messages carry ``user_role`` (Step-Audio's client sends ``human``)."""
    if not messages:
        return [{"role": user_role, "content": _audio_parts(audio_path, chunk_s)}]
    out = []
    for message in messages:
        role = user_role if message.role == "user" else message.role
        if all(c.type == "text" for c in message.contents):
            out.append({"role": role, "content": "\n".join(c.value for c in message.contents)})
        else:
            parts = []
            for c in message.contents:
                parts += [{"type": "text", "text": c.value}] if c.type == "text" else _audio_parts(c.value, chunk_s)
            out.append({"role": role, "content": parts})
    return out


@dataclass(kw_only=True)
class RequestShape:
    """How requests to an OpenAI-compatible server are shaped; the API and served-vLLM backends (both
    ``Backend``s, whose ``generation`` it reads) share it."""

    mode: Literal["chat", "transcriptions"] = "chat"
    #: Opening and closing tags of a reasoning model's thinking, stripped from the answer.
    think_tags: tuple[str, str] = DEFAULT_TAGS
    #: Chat: text the assistant's reply starts with; the server continues it (vLLM's
    #: ``continue_final_message``), so the reply holds what follows it.
    assistant_prefill: str | None = None
    #: Chat: clips longer than this many seconds go as consecutive audio parts of this length.
    audio_chunk_s: float | None = None
    #: Chat: the role the user's messages carry (Step-Audio's client sends ``human``).
    user_role: str = "user"

    def __post_init__(self) -> None:
        if self.mode not in ("chat", "transcriptions"):
            raise ValueError(f"mode must be 'chat' or 'transcriptions', not {self.mode!r}")
        self.think_tags = tuple(self.think_tags)
        if len(self.think_tags) != 2:
            raise ValueError("think_tags must be [opening, closing]")

    def shape(self) -> dict[str, Any]:
        """These settings by name, for fingerprints and for the client a served backend builds."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(RequestShape)}

    def generation_keys(self) -> frozenset[str]:
        """The request's sampling fields, and the API key (sent as the Authorization header)."""
        return (CHAT_KEYS if self.mode == "chat" else TRANSCRIPTION_KEYS) | {API_KEY_PARAM}

    @property
    def request_params(self) -> dict[str, Any]:
        """The generation parameters sent with each request: all but the key."""
        return {k: v for k, v in self.generation.items() if k != API_KEY_PARAM}

    def sent_parameters(self) -> dict[str, Any]:
        """A request's fields besides model, messages or file: the generation parameters, and with a
        prefill the flags that make vLLM continue the final assistant message instead of opening one."""
        if self.mode == "chat" and self.assistant_prefill is not None:
            return {**self.request_params, "continue_final_message": True, "add_generation_prompt": False}
        return dict(self.request_params)


@dataclass(kw_only=True)
class OpenAIBackend(RequestShape, Backend):
    model: str
    base_url: str | None = None
    base_url_env: str | None = None
    api_key_env: str | None = None
    max_concurrency: int = 8
    timeout_s: float = 120.0
    max_retries: int = 4
    #: A request with no answer within ``timeout_s`` (every attempt) fails its sample, which is left
    #: out of the figure and counted, instead of the shard (the reference gives up on the sample).
    timeout_fails_sample: bool = False
    thread_safe: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.base_url or self.base_url_env):
            raise ValueError("openai_api: give base_url or base_url_env")

    @property
    def endpoint(self) -> str:
        return resolve_base_url(self.base_url, self.base_url_env, f"openai_api model {self.model!r}")

    def check(self) -> None:
        """An endpoint that is not configured stops the run before any work (the key is read on
        first use instead: a fully cached run needs none)."""
        self.endpoint  # noqa: B018  (raises BackendUnavailable naming what to set)

    def fingerprint(self) -> dict[str, Any]:
        return {"backend": "openai_api", "base_url": redact_text(self.endpoint), "model": self.model,
                **self.shape(), "think_tags": list(self.think_tags), "generation": self.request_params,
                **({"timeout_fails_sample": True} if self.timeout_fails_sample else {})}

    def _api_key(self) -> Secret | None:
        given = self.generation.get(API_KEY_PARAM)
        return Secret(str(given)) if given else Secret.from_env(self.api_key_env)

    def _load(self) -> OpenAIClient:
        """One client per backend, so ``max_concurrency`` holds across the runner's threads."""
        return OpenAIClient(self.endpoint, self._api_key(), timeout_s=self.timeout_s, max_retries=self.max_retries,
                            max_concurrency=self.max_concurrency)

    def _release(self, client: OpenAIClient) -> None:
        client.close()

    def _one(self, client: OpenAIClient, request: ModelRequest) -> ModelOutput | RequestFailed:
        """One sample; refused requests and unreadable audio are that sample's error, a request
        the client gave up on is returned as such.

        ``latency_s`` is the sample's wall time, waiting for a concurrency slot and retries included.
        """
        start = time.perf_counter()
        try:
            if self.mode == "transcriptions":
                with open(request.audio_path, "rb") as f:
                    text = client.transcribe(f.read(), self.model, **self.request_params)
            else:
                messages = chat_messages(request.messages, request.audio_path, self.audio_chunk_s, self.user_role)
                if self.assistant_prefill is not None:
                    messages.append({"role": "assistant", "content": self.assistant_prefill})
                text = client.chat(messages, self.model, **self.sent_parameters())
        except (ApiError, OSError) as e:
            return ModelOutput(request.sample_id, error=f"openai_api: {e}")
        except RequestTimedOut as e:
            if self.timeout_fails_sample:
                return ModelOutput(request.sample_id, error=f"{TIME_LIMIT_ERROR} ({self.timeout_s:g} s): {e}")
            return e
        except RequestFailed as e:
            return e
        answer, reasoning = split_reasoning(text, self.think_tags)
        return ModelOutput(request.sample_id, text=answer, reasoning=reasoning, latency_s=time.perf_counter() - start)

    def _generate(self, client: OpenAIClient, requests: list[ModelRequest]) -> list[ModelOutput]:
        """Every request's output; when some failed after the client's retries, ``RequestsFailed``
        carrying the answers that came back."""
        results = client.map(lambda r: self._one(client, r), requests)
        failed = [r for r in results if isinstance(r, RequestFailed)]
        if failed:
            raise RequestsFailed(f"{len(failed)} of {len(requests)} requests failed after the client's retries; "
                                 f"first: {failed[0]}", answered=[r for r in results if isinstance(r, ModelOutput)])
        return results


BACKEND = OpenAIBackend
