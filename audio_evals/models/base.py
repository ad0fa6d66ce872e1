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
import dataclasses
import gc
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NoReturn

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


#: Exceptions that keep their kind across the process boundary; any other becomes a RuntimeError.
_KINDS: dict[str, type[Exception]] = {
    kind.__name__: kind for kind in (BackendUnavailable, BackendOutOfMemory, ShardIncomplete, TransientBackendError,
                                     RequestsFailed)
}


def engine_request(row: dict[str, Any]) -> ModelRequest:
    """A request sent to an engine process, as its child reads it back (``dataclasses.asdict`` form)."""
    messages = tuple(Message(m["role"], tuple(Content(**c) for c in m["contents"])) for m in row["messages"])
    return ModelRequest(row["sample_id"], row["audio_path"], row["sample_rate"], messages)


def engine_error(error: BaseException) -> dict[str, Any]:
    """An engine process's exception as it is sent to the parent: its kind, message and the answers it carries."""
    answered = [o.to_dict() for o in getattr(error, "answered", [])]
    return {"kind": type(error).__name__, "message": str(error), "answered": answered}


def _raise(error: dict[str, Any], name: str) -> NoReturn:
    kind = _KINDS.get(error["kind"])
    if kind is None:
        raise RuntimeError(f"{name} (own process): {error['kind']}: {error['message']}")
    if issubclass(kind, ShardIncomplete):
        raise kind(error["message"], [ModelOutput.from_dict(o) for o in error["answered"]])
    raise kind(error["message"])


def init_arguments(backend: Backend) -> dict[str, Any]:
    """What the backend was built with (its ``init`` fields), to build the same one in the child."""
    return {f.name: getattr(backend, f.name) for f in dataclasses.fields(backend) if f.init}


class EngineProcess:
    """The parent's handle on the child process of an ``own_process`` backend (``audio_evals.models.engine_process``
    is the child and says why): ``generate`` one batch at a time.

    Starting it returns at once, while the child loads the weights: ``wait_ready`` (and the first
    ``generate``) wait for its reply, so a run can load the model while it still prepares its data.
    """

    def __init__(self, backend: Backend):
        self.name = type(backend).__name__
        plugin = type(backend).__module__.rsplit(".", 1)[-1]
        self._lock = threading.Lock()
        self._process = subprocess.Popen([sys.executable, "-m", "audio_evals.models.engine_process"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        #: The child's peak resident memory (MB) as of its last reply.
        self.peak_rss_mb = 0.0
        #: Whether the child said its weights are loaded.
        self.ready = False
        try:
            self._send({"plugin": plugin, "arguments": {**init_arguments(backend), "own_process": False}})
        except BaseException:
            self.stop()
            raise

    def wait_ready(self) -> None:
        """Wait until the weights are loaded; why they could not be is raised here (the child is then stopped)."""
        with self._lock:
            self._wait_ready()

    def _wait_ready(self) -> None:
        if self.ready:
            return
        try:
            self._reply()
        except BaseException:
            self.stop()
            raise
        self.ready = True

    @property
    def pid(self) -> int:
        return self._process.pid

    def _send(self, message: dict[str, Any]) -> None:
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps(message) + "\n")
            self._process.stdin.flush()
        except (BrokenPipeError, OSError):
            self._ended()

    def _reply(self) -> Any:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._ended()
        reply = json.loads(line)
        self.peak_rss_mb = reply["peak_rss_mb"]
        if "error" in reply:
            _raise(reply["error"], self.name)
        return reply["result"]

    def _ended(self) -> NoReturn:
        code = self._process.wait()
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        raise RuntimeError(f"{self.name}: its engine process (pid {self._process.pid}) {how} "
                           "(its output above says why; the next shard starts a new one)")

    def generate(self, requests: list[ModelRequest]) -> list[ModelOutput]:
        with self._lock:
            self._wait_ready()
            self._send({"generate": [dataclasses.asdict(r) for r in requests]})
            return [ModelOutput.from_dict(o) for o in self._reply()]

    def alive(self) -> bool:
        return self._process.poll() is None

    def stop(self) -> None:
        """End the child (closing its stdin ends it) and reap it."""
        if self._process.stdin is not None:
            try:
                self._process.stdin.close()
            except OSError:
                pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


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
    #: Load and run the model in a child process of its own (``audio_evals.models.engine_process``):
    #: the orchestrating process never holds the weights. Results are the same either way.
    own_process: bool = False
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

    def start_loading(self) -> None:
        """With ``own_process``, start the child that loads the weights and return at once (``loaded``
        then waits for it), so a run overlaps the load with work of its own. In-process backends
        load on first use."""
        if self.own_process:
            with self._lock:
                self._engine()

    def _engine(self) -> EngineProcess:
        """The child process, started anew when there is none or the last one died after it was ready
        (one that died while loading is kept, so that ``wait_ready`` raises why)."""
        if self._loaded is None or (self._loaded.ready and not self._loaded.alive()):
            self._loaded = EngineProcess(self)
        return self._loaded

    def loaded(self) -> Any:
        """What ``_load`` made, loading it on first use; with ``own_process``, the child process that
        holds it (started again when the last one died)."""
        with self._lock:
            if not self.own_process:
                if self._loaded is None:
                    self._loaded = self._load()
                return self._loaded
            engine = self._engine()
            try:
                engine.wait_ready()
            except BaseException:
                self._loaded = None
                raise
            return engine

    def engine_peak_rss_mb(self) -> float | None:
        """With ``own_process``, the peak memory of the child holding the model (MB); None in-process,
        where the caller's own peak covers the model."""
        loaded = self._loaded
        return loaded.peak_rss_mb if self.own_process and loaded is not None else None

    def generate(self, requests: list[ModelRequest]) -> list[ModelOutput]:
        """One output per request, same order; an out-of-memory error becomes ``BackendOutOfMemory``."""
        if self.own_process:
            return self.loaded().generate(requests)  # the child classifies its errors, by this same code
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
        if loaded is not None and self.own_process:
            loaded.stop()
        elif loaded is not None:
            self._release(loaded)
            release_cuda_memory()
