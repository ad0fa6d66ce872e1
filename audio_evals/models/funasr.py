"""FunASR models (Paraformer, SeACo-Paraformer, SenseVoice, ...) through ``funasr.AutoModel``.

The reference tool reads Mandarin spoken answers with SeACo-Paraformer this way: the clip as 16 kHz
mono audio, ``generate(input=..., batch_size_s=300)``, one clip at a time, the text through
funasr's ``rich_transcription_postprocess``. ``model`` is a ModelScope id (``iic/...``, which
funasr downloads on first use), a hub id with ``hub: hf``, or a local folder. The extra:
``pip install 'audio-evals[funasr]'``.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from audio_evals.models.base import Backend, BackendUnavailable, ModelOutput, ModelRequest, Requirements, is_cuda_oom
from audio_evals.models.weights import HubWeights, version

FUNASR_EXTRA = "pip install 'audio-evals[funasr]'"


@dataclass(kw_only=True)
class FunASRBackend(HubWeights, Backend):
    #: Where funasr fetches ``model``: ModelScope (``ms``, its default) or the Hugging Face hub.
    hub: Literal["ms", "hf"] = "ms"
    #: ``cuda``, ``cuda:N`` or ``cpu``; None lets funasr choose (a GPU when there is one), as the
    #: reference tool does.
    device: str | None = None

    #: Keywords of ``AutoModel.generate``.
    GENERATION_KEYS: ClassVar[frozenset[str]] = frozenset({"batch_size_s", "hotword"})

    @property
    def requirements(self) -> Requirements:
        return Requirements(sample_rate=16000)

    def fingerprint(self) -> dict[str, Any]:
        return {"backend": "funasr", "weights": self.weights(), "hub": self.hub,
                "generation": self.generation, "funasr": version("funasr")}

    def check(self) -> None:
        missing = [p for p in ("funasr", "torch") if importlib.util.find_spec(p) is None]
        if missing:
            raise BackendUnavailable(f"the funasr backend needs {' and '.join(missing)}: {FUNASR_EXTRA}")

    def commit(self) -> str | None:
        """Hugging Face commits only: a ModelScope id is loaded at ``revision`` as given."""
        return super().commit() if self.hub == "hf" else None

    def _load(self) -> Any:
        self.check()
        from funasr import AutoModel

        options = {"hub": self.hub, "disable_update": True}
        if self.device:
            options["device"] = self.device
        if self.load_revision():
            options["model_revision"] = self.load_revision()
        try:
            return AutoModel(model=self.source, **options)
        except (OSError, ValueError, KeyError, AssertionError) as e:
            raise BackendUnavailable(f"funasr: cannot load {self.model!r} (hub {self.hub}): {e}") from None

    def _generate(self, model: Any, requests: list[ModelRequest]) -> list[ModelOutput]:
        from funasr.utils.postprocess_utils import rich_transcription_postprocess

        outputs = []
        for request in requests:
            began = time.perf_counter()
            try:
                result = model.generate(input=request.load_audio(), **self.generation)
                text = rich_transcription_postprocess(result[0]["text"]) if result else ""
            except (RuntimeError, ValueError, OSError, KeyError) as e:
                if is_cuda_oom(e):
                    raise
                outputs.append(ModelOutput(request.sample_id, error=f"funasr failed: {e}"))
                continue
            outputs.append(ModelOutput(request.sample_id, text=text.strip(), latency_s=time.perf_counter() - began))
        return outputs


BACKEND = FunASRBackend
