"""faster-whisper (CTranslate2) ASR: the embedded default, runs on CPU.

Sequential decoding is the default: on this 2-core CPU ``BatchedInferencePipeline`` was measured
slower for short clips (see benchmarks/batched_whisper.py); ``batched: true`` turns it on for
long-form audio or GPUs, where it pays off.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

from audio_evals.models.base import Backend, BackendUnavailable, ModelOutput, ModelRequest
from audio_evals.paths import resolve_resource

#: Generation keys passed to ``WhisperModel.transcribe``.
_TRANSCRIBE_KEYS = frozenset({
    "beam_size", "language", "temperature", "best_of", "patience", "length_penalty",
    "condition_on_previous_text", "initial_prompt", "without_timestamps", "vad_filter",
    "no_speech_threshold", "compression_ratio_threshold", "log_prob_threshold",
})


def model_files(folder: str) -> list[str]:
    """The files CTranslate2 loads: regular files at the top of the folder, hidden ones left out.

    Sub-folders and dot-files (``.cache/`` and ``.gitattributes`` from ``hf download --local-dir``)
    are download bookkeeping, not weights: they neither break nor change the fingerprint.
    """
    return sorted(n for n in os.listdir(folder) if not n.startswith(".") and os.path.isfile(os.path.join(folder, n)))


@lru_cache(maxsize=8)
def _files_digest(folder: str, stamp: tuple) -> str:
    """SHA-256 over the model folder's files; ``stamp`` (names, sizes, mtimes) keys the memo."""
    digest = hashlib.sha256()
    for name, _, _ in stamp:
        digest.update(name.encode())
        with open(os.path.join(folder, name), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass(kw_only=True)
class FasterWhisperBackend(Backend):
    model_path: str
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 0
    batched: bool = False
    batch_size: int = 8
    thread_safe: bool = True
    _model: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    GENERATION_KEYS: ClassVar[frozenset[str]] = _TRANSCRIBE_KEYS

    @property
    def folder(self) -> str:
        return resolve_resource(self.model_path)

    def fingerprint(self) -> dict[str, Any]:
        folder = self.folder
        if not os.path.isdir(folder):
            raise BackendUnavailable(f"faster-whisper: no model folder at {folder}")
        stats = {n: os.stat(os.path.join(folder, n)) for n in model_files(folder)}
        stamp = tuple((n, st.st_size, st.st_mtime_ns) for n, st in stats.items())
        return {
            "backend": "faster_whisper",
            "revision": self.revision,
            "weights_sha256": _files_digest(folder, stamp),
            "compute_type": self.compute_type,
            "batched": self.batched,
            "batch_size": self.batch_size if self.batched else None,
            "generation": self.generation,
            "faster_whisper": _version("faster-whisper"),
            "ctranslate2": _version("ctranslate2"),
        }

    def check(self) -> None:
        """A GPU asked for (``device: cuda``) must be there: CTranslate2 would fail only at load."""
        if not self.device.startswith("cuda"):
            return
        try:
            import ctranslate2
        except ImportError as e:
            raise BackendUnavailable(f"faster-whisper is not installed: {e}") from None
        if ctranslate2.get_cuda_device_count() == 0:
            raise BackendUnavailable(f"device {self.device!r} was requested but CTranslate2 sees no CUDA device "
                                     "here (use --device cpu, or run on a machine with a GPU)")

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                try:
                    from faster_whisper import BatchedInferencePipeline, WhisperModel
                except ImportError as e:
                    raise BackendUnavailable(f"faster-whisper is not installed: {e}") from None
                if not os.path.isdir(self.folder):
                    raise BackendUnavailable(f"faster-whisper: no model folder at {self.folder}")
                model = WhisperModel(self.folder, device=self.device, compute_type=self.compute_type,
                                     cpu_threads=self.cpu_threads)
                self._model = BatchedInferencePipeline(model) if self.batched else model
            return self._model

    def sent_parameters(self) -> dict[str, Any]:
        """The keywords of every ``transcribe`` call."""
        options = {k: v for k, v in self.generation.items() if k in _TRANSCRIBE_KEYS}
        if self.batched:
            options["batch_size"] = self.batch_size
        return options

    def generate(self, requests: list[ModelRequest]) -> list[ModelOutput]:
        model = self._load()
        options = self.sent_parameters()
        outputs = []
        for request in requests:
            start = time.perf_counter()
            try:
                segments, _ = model.transcribe(request.load_audio(), **options)
                text = "".join(segment.text for segment in segments).strip()
                outputs.append(ModelOutput(request.sample_id, text=text, latency_s=time.perf_counter() - start))
            except (RuntimeError, ValueError, OSError) as e:
                outputs.append(ModelOutput(request.sample_id, error=f"faster-whisper failed: {e}"))
        return outputs

    def close(self) -> None:
        self._model = None


BACKEND = FasterWhisperBackend
