"""faster-whisper (CTranslate2) ASR: the embedded default, runs on CPU.

Sequential decoding is the default: on this 2-core CPU ``BatchedInferencePipeline`` was measured
slower for short clips (see benchmarks/batched_whisper.py); ``batched: true`` turns it on for
long-form audio or GPUs, where it pays off.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from audio_evals.models.base import Backend, BackendUnavailable, ModelOutput, ModelRequest
from audio_evals.models.weights import local_weights, version
from audio_evals.paths import resolve_resource

#: Generation keys passed to ``WhisperModel.transcribe``.
_TRANSCRIBE_KEYS = frozenset({
    "beam_size", "language", "temperature", "best_of", "patience", "length_penalty",
    "condition_on_previous_text", "initial_prompt", "without_timestamps", "vad_filter",
    "no_speech_threshold", "compression_ratio_threshold", "log_prob_threshold",
})

#: CTranslate2's compute types (its documented names; ``auto`` picks the fastest the device has).
COMPUTE_TYPES = ("default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16",
                 "bfloat16", "float32")


@dataclass(kw_only=True)
class FasterWhisperBackend(Backend):
    model_path: str
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 0
    batched: bool = False
    batch_size: int = 8
    thread_safe: bool = True
    own_process: bool = True

    GENERATION_KEYS: ClassVar[frozenset[str]] = _TRANSCRIBE_KEYS

    @property
    def folder(self) -> str:
        return resolve_resource(self.model_path)

    def fingerprint(self) -> dict[str, Any]:
        folder = self.folder
        if not os.path.isdir(folder):
            raise BackendUnavailable(f"faster-whisper: no model folder at {folder}")
        return {
            "backend": "faster_whisper",
            "revision": self.revision,
            "weights_sha256": local_weights(folder)["files_sha256"],
            "compute_type": self.compute_type,
            "batched": self.batched,
            "batch_size": self.batch_size if self.batched else None,
            "generation": self.generation,
            "faster_whisper": version("faster-whisper"),
            "ctranslate2": version("ctranslate2"),
        }

    def check(self) -> None:
        """A known ``compute_type``, and a GPU where one is asked for (``device: cuda``): CTranslate2 would
        fail only at load, in every shard."""
        if self.compute_type not in COMPUTE_TYPES:
            raise ValueError(f"compute_type {self.compute_type!r} is not one CTranslate2 knows: "
                             f"use one of {', '.join(COMPUTE_TYPES)}")
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
        try:
            from faster_whisper import BatchedInferencePipeline, WhisperModel
        except ImportError as e:
            raise BackendUnavailable(f"faster-whisper is not installed: {e}") from None
        if not os.path.isdir(self.folder):
            raise BackendUnavailable(f"faster-whisper: no model folder at {self.folder}")
        model = WhisperModel(self.folder, device=self.device, compute_type=self.compute_type,
                             cpu_threads=self.cpu_threads)
        return BatchedInferencePipeline(model) if self.batched else model

    def sent_parameters(self) -> dict[str, Any]:
        """The keywords of every ``transcribe`` call."""
        options = {k: v for k, v in self.generation.items() if k in _TRANSCRIBE_KEYS}
        if self.batched:
            options["batch_size"] = self.batch_size
        return options

    def _generate(self, model: Any, requests: list[ModelRequest]) -> list[ModelOutput]:
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


BACKEND = FasterWhisperBackend
