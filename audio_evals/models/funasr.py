"""FunASR models (Paraformer, SeACo-Paraformer, SenseVoice, ...) through ``funasr.AutoModel``.

The reference tool reads Mandarin spoken answers with SeACo-Paraformer this way: the clip as 16 kHz
mono audio, ``generate(input=..., batch_size_s=300)``, one clip at a time, the text through
funasr's ``rich_transcription_postprocess``. ``model`` is a ModelScope id (``iic/...``, which
funasr downloads on first use), a hub id with ``hub: hf``, or a local folder. The extra:
``pip install 'audio-evals[funasr]'``.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from audio_evals.models._hf_common import release_cuda_memory, version, weights_identity
from audio_evals.models.base import Backend, BackendUnavailable, ModelOutput, ModelRequest, Requirements
from audio_evals.paths import resolve_resource

FUNASR_EXTRA = "pip install 'audio-evals[funasr]'"


@dataclass(kw_only=True)
class FunASRBackend(Backend):
    model: str
    #: Where funasr fetches ``model``: ModelScope (``ms``, its default) or the Hugging Face hub.
    hub: Literal["ms", "hf"] = "ms"
    #: ``cuda``, ``cuda:N`` or ``cpu``; None lets funasr choose (a GPU when there is one), as the
    #: reference tool does.
    device: str | None = None
    _model: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    #: Keywords of ``AutoModel.generate``.
    GENERATION_KEYS: ClassVar[frozenset[str]] = frozenset({"batch_size_s", "hotword"})

    @property
    def requirements(self) -> Requirements:
        return Requirements(sample_rate=16000)

    def fingerprint(self) -> dict[str, Any]:
        return {"backend": "funasr", "weights": weights_identity(self.model, self.revision), "hub": self.hub,
                "generation": self.generation, "funasr": version("funasr")}

    def check(self) -> None:
        missing = [p for p in ("funasr", "torch") if importlib.util.find_spec(p) is None]
        if missing:
            raise BackendUnavailable(f"the funasr backend needs {' and '.join(missing)}: {FUNASR_EXTRA}")

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                self.check()
                from funasr import AutoModel

                options = {"hub": self.hub, "disable_update": True}
                if self.device:
                    options["device"] = self.device
                if self.revision:
                    options["model_revision"] = self.revision
                try:
                    self._model = AutoModel(model=resolve_resource(self.model), **options)
                except (OSError, ValueError, KeyError, AssertionError) as e:
                    raise BackendUnavailable(f"funasr: cannot load {self.model!r} (hub {self.hub}): {e}") from None
            return self._model

    def generate(self, requests: list[ModelRequest]) -> list[ModelOutput]:
        model = self._load()
        from funasr.utils.postprocess_utils import rich_transcription_postprocess

        outputs = []
        for request in requests:
            began = time.perf_counter()
            try:
                result = model.generate(input=request.load_audio(), **self.generation)
                text = rich_transcription_postprocess(result[0]["text"]) if result else ""
            except (RuntimeError, ValueError, OSError, KeyError) as e:
                outputs.append(ModelOutput(request.sample_id, error=f"funasr failed: {e}"))
                continue
            outputs.append(ModelOutput(request.sample_id, text=text.strip(), latency_s=time.perf_counter() - began))
        return outputs

    def close(self) -> None:
        with self._lock:
            self._model = None
        release_cuda_memory()


BACKEND = FunASRBackend
