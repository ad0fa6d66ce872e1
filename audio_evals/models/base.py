"""The one interface every model backend implements.

A backend takes a whole batch (a shard) of rendered prompts and returns one output per request,
in the same order. Backends *classify* errors; the runner (the infer stage) owns retries:

* a per-sample problem is returned as ``ModelOutput.error`` and the shard goes on;
* ``TransientBackendError`` (rate limit, 5xx, timeout, OOM) fails the shard so it is retried;
* ``BackendUnavailable`` (no GPU, missing weights, missing extra) stops the run before any work.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np


class BackendUnavailable(RuntimeError):
    """The backend cannot run here: says what is missing (GPU, weights at ..., extra ...)."""


class TransientBackendError(RuntimeError):
    """A failure worth retrying (rate limit, server error, timeout).

    ``retry_after`` carries a server's Retry-After hint in seconds when it gave one.
    """

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Content:
    """One part of a chat message: text, or audio given by the path of a prepared WAV."""

    type: Literal["text", "audio"]
    value: str


@dataclass(frozen=True)
class Message:
    role: str
    contents: tuple[Content, ...]


@dataclass(frozen=True)
class ModelRequest:
    """A rendered prompt for one sample.

    ``audio_path`` is the sample's prepared audio (mono WAV at ``Requirements.sample_rate``);
    ``messages`` is the chat structure the prompt template produced (audio parts point at the
    same file). ASR-only backends read the audio and may ignore the text.
    """

    sample_id: str
    audio_path: str
    sample_rate: int
    messages: tuple[Message, ...] = ()

    def load_audio(self) -> np.ndarray:
        """The prepared audio as float32 mono samples at ``sample_rate``."""
        import soundfile as sf

        data, _ = sf.read(self.audio_path, dtype="float32", always_2d=False)
        return data

    def text(self) -> str:
        """All text parts of the prompt joined, for backends that take one instruction string."""
        return "\n".join(
            c.value for m in self.messages for c in m.contents if c.type == "text" and c.value
        )


@dataclass
class ModelOutput:
    """One sample's result: text (and generated audio for speech-out models) or an error.

    ``reasoning`` keeps text a reasoning model produced inside think tags; it is stripped from
    ``text`` before scoring but stays in the results. Speech-out models set ``audio_path``.
    """

    sample_id: str
    text: str | None = None
    audio_path: str | None = None
    reasoning: str | None = None
    error: str | None = None
    latency_s: float | None = None
    #: For speech-out models: the ASR transcript of ``audio_path``, which is what gets scored.
    transcript: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "ModelOutput":
        return cls(**row)


@dataclass(frozen=True)
class Requirements:
    """What a backend needs from preprocessing."""

    sample_rate: int = 16000
    mono: bool = True
    max_duration_s: float | None = None


@dataclass(kw_only=True)
class Backend(abc.ABC):
    """Base class: subclasses are built from a registry entry's ``args`` plus generation params.

    Construction must be cheap (no weights loaded): load lazily on the first ``generate`` so a
    fully cached run never loads the model, and ``fingerprint`` works without loading.

    ``generation`` holds decoding parameters (temperature, max_tokens, beam_size, seed, ...)
    after command-line overrides; it is part of the fingerprint and recorded in results.
    """

    generation: dict[str, Any] = field(default_factory=dict)
    #: A published model revision (hub commit, release tag); hub-loading backends load it,
    #: every backend records it.
    revision: str | None = None

    #: Whether ``generate`` may be called from several threads at once.
    thread_safe: bool = False

    #: Generation parameters this backend hands to the model. Any other key is refused before any
    #: work (it would be recorded and change the cache key while never reaching the model);
    #: None passes every key on as given (the scripted test backend).
    GENERATION_KEYS: ClassVar[frozenset[str] | None] = frozenset()

    def generation_keys(self) -> frozenset[str] | None:
        """The generation parameters this instance uses (some depend on its arguments, e.g. ``mode``)."""
        return self.GENERATION_KEYS

    def sent_parameters(self) -> dict[str, Any]:
        """What every model call carries besides its input, after the backend's own defaults and
        name mappings: the summary records it, so a result says exactly how the model was called."""
        return dict(self.generation)

    @property
    def requirements(self) -> Requirements:
        return Requirements()

    @abc.abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """JSON-able identity of weights and settings; any change must change the cache key."""

    def check(self) -> None:
        """Raise ``BackendUnavailable`` when this machine cannot run the backend (a missing package,
        GPU or weights folder). Cheap, never loads weights: the flow calls it before downloading
        data, so a run that could never finish stops at once."""

    @abc.abstractmethod
    def generate(self, requests: list[ModelRequest]) -> list[ModelOutput]:
        """One output per request, same order; per-sample errors go in ``ModelOutput.error``."""

    def close(self) -> None:
        """Release weights, GPU memory, subprocesses. Safe to call twice."""
