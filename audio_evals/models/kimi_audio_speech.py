"""Kimi-Audio-7B-Instruct with speech output (text + a generated WAV per sample).

vLLM serves Kimi-Audio's text output only (its OpenAI transcription/chat endpoints), and no
vLLM-Omni release ships the audio detokenizer, so speech output goes through Moonshot's own
inference package ``kimia_infer`` (github.com/MoonshotAI/Kimi-Audio, not on PyPI):
``KimiAudio(...).generate(chats, output_type="both")`` returns the 24 kHz waveform and the text.
It runs one sample at a time on a CUDA GPU (the package hard-codes ``torch.cuda``).

A sample fails when the model shows no progress for ``sample_timeout_s`` (180 s), as in the
reference tool: its Kimi client raises "Read timeout after 180 seconds" when its subprocess writes
nothing for that long, and the subprocess writes a progress line at every decoding step, so a long
generation that keeps decoding is not cut off; a stalled one is. Here progress is a forward pass of
the model's language model (``KimiAudio.alm``: one per decoding step); without one to observe, the
limit covers the whole call. The next sample goes on; a generation cannot be interrupted, so it
finishes in the background and the next sample waits for it while it keeps progressing (the
reference's next request queues behind it the same way).
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from audio_evals.models.base import Backend, BackendUnavailable, ModelOutput, ModelRequest, Requirements, is_cuda_oom
from audio_evals.models.weights import HubWeights, version
from audio_evals.paths import local_cache_dir
from audio_evals.storage import stable_hash

KIMIA_INSTALL = (
    "Kimi-Audio (text or speech output) needs Moonshot's kimia_infer package (not on PyPI): "
    "pip install git+https://github.com/MoonshotAI/Kimi-Audio.git"
)
#: Sample rate of the Kimi-Audio detokenizer's waveform.
OUTPUT_RATE = 24000
#: Seconds the model may show no progress before the sample fails (the reference's Kimi client's read timeout).
SAMPLE_TIMEOUT_S = 180.0
#: Sampling keywords of ``KimiAudio.generate``, passed under their own names (one set per stream).
_KEYS = frozenset({"audio_temperature", "audio_top_k", "text_temperature", "text_top_k", "audio_repetition_penalty",
                   "audio_repetition_window_size", "text_repetition_penalty", "text_repetition_window_size",
                   "max_new_tokens"})


class SampleTimeout(Exception):
    """A sample during which the model showed no progress for the limit."""


class _Worker:
    """Runs one call at a time in a daemon thread and waits for it while it keeps progressing."""

    def __init__(self) -> None:
        self.busy: threading.Thread | None = None  # a call that stalled past its limit and is still going
        self.busy_with = ""
        self.last_progress = time.monotonic()

    def progressed(self, *_: Any) -> None:
        """Mark progress now (a forward hook: it takes and ignores the module and its tensors)."""
        self.last_progress = time.monotonic()

    def _finished(self, thread: threading.Thread, limit_s: float) -> bool:
        """Wait for ``thread`` until it ends (True) or ``limit_s`` pass without progress (False)."""
        while thread.is_alive():
            idle_left = self.last_progress + limit_s - time.monotonic()
            if idle_left <= 0:
                return False
            thread.join(idle_left)
        return True

    def call(self, fn: Callable[[], Any], limit_s: float, what: str) -> Any:
        self.progressed()
        if self.busy is not None:
            if not self._finished(self.busy, limit_s):
                raise SampleTimeout(f"no progress for {limit_s:g} s: the model is still generating {self.busy_with}")
            self.busy = None
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                result["value"] = fn()
            except BaseException as e:  # noqa: BLE001 (re-raised in the caller's thread)
                result["error"] = e

        thread = threading.Thread(target=run, name=f"kimi-audio {what}", daemon=True)
        self.progressed()
        thread.start()
        if not self._finished(thread, limit_s):
            self.busy, self.busy_with = thread, what
            raise SampleTimeout(f"no progress for {limit_s:g} s (the reference tool's limit without output)")
        if "error" in result:
            raise result["error"]
        return result["value"]


def _wav_name(sample_id: str) -> str:
    """A file name safe on any filesystem; the hash keeps ids that sanitise alike apart."""
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', sample_id)[:80]}-{stable_hash(sample_id)[:8]}.wav"


@dataclass(kw_only=True)
class KimiAudioSpeechBackend(HubWeights, Backend):
    model: str = "moonshotai/Kimi-Audio-7B-Instruct"
    #: ``text`` skips the audio detokenizer (text answers only, less GPU memory).
    output_type: Literal["both", "text"] = "both"
    #: Where generated WAVs go (a subfolder per fingerprint); default: the local cache.
    output_dir: str | None = None
    #: Seconds the model may show no progress before the sample fails (see the module docstring).
    sample_timeout_s: float = SAMPLE_TIMEOUT_S

    def __post_init__(self) -> None:
        if not self.sample_timeout_s > 0:
            raise ValueError(f"sample_timeout_s must be a positive number of seconds, not {self.sample_timeout_s}")
        self._worker = _Worker()

    #: ``seed`` seeds torch before each sample.
    GENERATION_KEYS: ClassVar[frozenset[str]] = _KEYS | {"seed"}

    @property
    def requirements(self) -> Requirements:
        return Requirements(sample_rate=16000)

    def fingerprint(self) -> dict[str, Any]:
        return {"backend": "kimi_audio_speech", "weights": self.weights(),
                "output_type": self.output_type, "generation": self.generation, "kimia_infer": version("kimia_infer"),
                "sample_timeout_s": self.sample_timeout_s}

    def check(self) -> None:
        try:
            importlib.import_module("kimia_infer")
        except ImportError as e:
            raise BackendUnavailable(f"{KIMIA_INSTALL} ({e})") from None
        try:
            import torch
        except ImportError:
            raise BackendUnavailable(f"kimi_audio_speech needs torch: {KIMIA_INSTALL}") from None
        if not torch.cuda.is_available():
            raise BackendUnavailable("kimi_audio_speech needs a GPU (CUDA, >= 24 GB): none is available here")

    def _load(self) -> Any:
        self.check()
        try:
            from kimia_infer.api.kimia import KimiAudio
        except ImportError as e:
            raise BackendUnavailable(f"{KIMIA_INSTALL} ({e})") from None
        model = KimiAudio(model_path=self._weights_folder(), load_detokenizer=self.output_type == "both")
        language_model = getattr(model, "alm", None)
        if hasattr(language_model, "register_forward_hook"):
            language_model.register_forward_hook(self._worker.progressed)  # one call per decoding step
        return model

    def _weights_folder(self) -> str:
        """A local folder as given; hub weights downloaded at the pinned commit (kimia_infer itself
        would take whatever the default branch holds)."""
        if os.path.isdir(self.source):
            return self.source
        import huggingface_hub

        return huggingface_hub.snapshot_download(self.source, revision=self.load_revision())

    def _params(self) -> dict[str, Any]:
        return {k: v for k, v in self.generation.items() if k in _KEYS}

    def _folder(self) -> str:
        base = self.output_dir or os.path.join(local_cache_dir(), "generated-audio", "kimi_audio_speech")
        folder = os.path.join(base, stable_hash(self.fingerprint())[:16])
        os.makedirs(folder, exist_ok=True)
        return folder

    def _generate(self, model: Any, requests: list[ModelRequest]) -> list[ModelOutput]:
        import soundfile as sf
        import torch

        folder, params = self._folder(), self._params()
        outputs = []
        for request in requests:
            if "seed" in self.generation:
                torch.manual_seed(int(self.generation["seed"]))
            chats = [{"role": m.role, "message_type": c.type, "content": c.value}
                     for m in request.messages for c in m.contents]
            began = time.perf_counter()
            try:
                call = functools.partial(model.generate, chats, output_type=self.output_type, **params)
                wav, text = self._worker.call(call, self.sample_timeout_s, f"sample {request.sample_id!r}")
            except SampleTimeout as e:
                outputs.append(ModelOutput(request.sample_id, error=f"kimi_audio_speech: {e}"))
                continue
            except (RuntimeError, ValueError, AssertionError, OSError) as e:
                if is_cuda_oom(e):
                    raise
                outputs.append(ModelOutput(request.sample_id, error=f"kimi_audio_speech failed: {e}"))
                continue
            audio_path = None
            if wav is not None:
                audio_path = os.path.join(folder, _wav_name(request.sample_id))
                sf.write(audio_path, wav.detach().float().cpu().view(-1).numpy(), OUTPUT_RATE)
            outputs.append(ModelOutput(request.sample_id, text=text.strip(), audio_path=audio_path,
                                       latency_s=time.perf_counter() - began))
        return outputs


BACKEND = KimiAudioSpeechBackend
