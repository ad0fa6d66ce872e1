"""The one interface every model backend implements, and the lifecycle every backend shares.

A backend takes a whole batch (a shard) of rendered prompts and returns one output per request,
in the same order. Backends *classify* errors; each kind has one owner of its retries:

* a per-sample problem is returned as ``ModelOutput.error`` and the shard goes on;
* a request that still fails after the client's own retries (rate limit, 5xx, timeout) raises
  ``RequestsFailed``: the shard fails without a shard retry, keeping the answers it got;
* ``TransientBackendError`` (the whole backend is down for a while: a served model's server
  died) fails the shard so the runner retries it, also keeping the answers it got;
* ``BackendOutOfMemory`` fails the shard with what to change (a retry would run out again);
* ``BackendUnavailable`` (no GPU, missing weights, missing extra) stops the run before any work.

A backend returns ``ModelOutput`` records (``audio_evals.records``: they travel on to the score
stage). ``Backend`` owns loading (lazily, once, under a lock), closing, OOM classification and
duration-sorted batching; a backend implements ``_load``, ``_generate`` and, if it holds more
than memory, ``_release``.
"""

from __future__ import annotations

import abc
import gc
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from audio_evals.records import ModelOutput


class BackendUnavailable(RuntimeError):
    """The backend cannot run here: says what is missing (GPU, weights at ..., extra ...)."""


class ShardIncomplete(RuntimeError):
    """Some requests of a shard got no answer; ``answered`` holds the outputs that came back,
    kept so that the next attempt sends only the others."""

    def __init__(self, message: str, answered: Sequence["ModelOutput"] = ()):
        super().__init__(message)
        self.answered = list(answered)


class TransientBackendError(ShardIncomplete):
    """The whole backend failed for a while (a served model's server died): the shard is retried."""


class RequestsFailed(ShardIncomplete):
    """Requests that still failed after the client's own retries: not retried again as a shard."""


class BackendOutOfMemory(RuntimeError):
    """The accelerator ran out of memory: deterministic for these inputs and settings, so not retried."""


def is_cuda_oom(error: BaseException) -> bool:
    """Whether ``error`` is an accelerator out-of-memory error (torch's type, or its message)."""
    torch = sys.modules.get("torch")
    oom = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
    return (oom is not None and isinstance(error, oom)) or "out of memory" in str(error).lower()


def release_cuda_memory() -> None:
    """Collect dropped models and return cached GPU memory to the driver (torch never imported here)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def by_duration(items: dict[int, Any], length: Callable[[Any], int], size: int) -> Iterator[list[int]]:
    """Keys of ``items`` in batches of ``size`` of similar ``length`` (less padding per batch)."""
    order = sorted(items, key=lambda i: length(items[i]))
    step = max(1, size)
    for start in range(0, len(order), step):
        yield order[start:start + step]


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

    def conversation(self) -> list[dict[str, Any]]:
        """The messages in the content-parts form chat templates expect."""
        return [
            {"role": m.role, "content": [
                {"type": "audio", "audio_url": c.value} if c.type == "audio" else {"type": "text", "text": c.value}
                for c in m.contents
            ]}
            for m in self.messages
        ]

    def audio_arrays(self) -> list[np.ndarray]:
        """The audio of every audio part of the prompt, in order (float32 mono at ``sample_rate``)."""
        import soundfile as sf

        arrays = []
        for c in (c for m in self.messages for c in m.contents if c.type == "audio"):
            data, rate = sf.read(c.value, dtype="float32", always_2d=False)
            if rate != self.sample_rate:
                raise ValueError(f"{c.value}: sample rate {rate} Hz, expected {self.sample_rate} Hz")
            arrays.append(data if data.ndim == 1 else data.mean(axis=1))
        return arrays

    def sent(self) -> str:
        """The rendered prompt as a person reads it (one ``role: parts`` line per message, audio as ``<audio>``):
        kept with the reply so a sample's page shows what was asked, without this machine's clip paths."""
        return "\n".join(
            f"{m.role}: " + " ".join("<audio>" if c.type == "audio" else c.value for c in m.contents)
            for m in self.messages
        )

    def text(self) -> str:
        """All text parts of the prompt joined, for backends that take one instruction string."""
        return "\n".join(
            c.value for m in self.messages for c in m.contents if c.type == "text" and c.value
        )




@dataclass(frozen=True)
class Requirements:
    """What a backend needs from preprocessing."""

    sample_rate: int = 16000
    mono: bool = True
    max_duration_s: float | None = None


@dataclass(kw_only=True)
class Backend(abc.ABC):
    """Base class: subclasses are built from a registry entry's ``args`` plus generation params.

    Construction must be cheap (no weights loaded): ``_load`` runs on the first ``generate``, once,
    under a lock, so a fully cached run never loads the model and ``fingerprint`` works without
    loading. ``close`` drops what was loaded (``_release`` frees more than memory) and frees GPU
    memory; the next ``generate`` loads again.

    ``generation`` holds decoding parameters (temperature, max_tokens, beam_size, seed, ...)
    after command-line overrides; it is part of the fingerprint and recorded in results.
    """

    generation: dict[str, Any] = field(default_factory=dict)
    #: A published model revision (hub commit, release tag); hub-loading backends load it,
    #: every backend records it.
    revision: str | None = None

    #: Whether ``generate`` may be called from several threads at once.
    thread_safe: bool = False
    _loaded: Any = field(default=None, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

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
    def _load(self) -> Any:
        """What ``_generate`` runs on (weights, an engine, a client); not None. Runs once, locked."""

    @abc.abstractmethod
    def _generate(self, loaded: Any, requests: list[ModelRequest]) -> list[ModelOutput]:
        """One output per request, same order; per-sample errors go in ``ModelOutput.error``."""

    def _release(self, loaded: Any) -> None:
        """Free what ``_load`` made beyond memory (a client, a subprocess)."""

    def loaded(self) -> Any:
        """What ``_load`` made, loading it on first use."""
        with self._lock:
            if self._loaded is None:
                self._loaded = self._load()
            return self._loaded

    def generate(self, requests: list[ModelRequest]) -> list[ModelOutput]:
        """One output per request, same order; an out-of-memory error becomes ``BackendOutOfMemory``."""
        try:
            return self._generate(self.loaded(), requests)
        except (RuntimeError, ValueError) as e:
            if isinstance(e, (ShardIncomplete, BackendOutOfMemory)) or not is_cuda_oom(e):
                raise
            release_cuda_memory()
            raise BackendOutOfMemory(
                f"{type(self).__name__}: out of GPU memory on a shard of {len(requests)} samples ({e}); "
                "lower batch_size, --shard-size or --max-duration, or use a larger GPU") from None

    def close(self) -> None:
        """Release weights, GPU memory, subprocesses. Safe to call twice."""
        with self._lock:
            loaded, self._loaded = self._loaded, None
        if loaded is not None:
            self._release(loaded)
            release_cuda_memory()
