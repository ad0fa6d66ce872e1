"""The base of the transformers backends (ASR and chat): device, dtype, generation keywords, batches.

Kept out of the backends so device/dtype choice, generation-parameter mapping and the batching
loop are written once. Nothing here imports torch at module import: a backend must be
constructible (and fingerprintable) without its extra.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from audio_evals import hf_hub
from audio_evals.models.base import (
    Backend,
    BackendUnavailable,
    ModelOutput,
    ModelRequest,
    Requirements,
    by_duration,
    is_cuda_oom,
)
from audio_evals.models.weights import HubWeights, version

TRANSFORMERS_EXTRA = "install the extra: pip install 'audio-evals[transformers]'"

#: Registry-style names of generation parameters mapped to ``model.generate`` keywords.
_ALIASES = {"max_tokens": "max_new_tokens", "beam_size": "num_beams"}
_GENERATE_KEYS = {
    "max_new_tokens", "num_beams", "do_sample", "temperature", "top_p", "top_k",
    "repetition_penalty", "length_penalty", "no_repeat_ngram_size",
}


def import_torch_transformers() -> tuple[Any, Any]:
    """``(torch, transformers)``, or BackendUnavailable naming the extra to install."""
    try:
        import torch
        import transformers
    except ImportError as e:
        raise BackendUnavailable(f"{e.name or e} is not installed; {TRANSFORMERS_EXTRA}") from None
    return torch, transformers


def resolve_device(torch: Any, device: str) -> str:
    """``auto`` → all visible GPUs (accelerate's device map) if any, else CPU; ``cuda`` needs one."""
    if device == "auto":
        return "auto" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendUnavailable(f"needs a GPU: device {device!r} was requested but CUDA is not available here")
    if device != "cpu" and not device.startswith("cuda"):
        raise BackendUnavailable(f"unknown device {device!r} (use auto, cpu, cuda or cuda:N)")
    return device


def resolve_dtype(torch: Any, dtype: str, device: str) -> Any:
    """``auto`` → bfloat16 (or float16) on GPU, float32 on CPU, where half precision is slow."""
    if dtype == "auto":
        if device == "cpu":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype not in {"float32", "float16", "bfloat16"}:
        raise BackendUnavailable(f"unknown dtype {dtype!r} (use auto, float32, float16 or bfloat16)")
    return getattr(torch, dtype)


def generate_kwargs(generation: dict[str, Any], extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """``model.generate`` keywords from registry generation parameters.

    ``temperature: 0`` (or none) means greedy decoding; a positive one turns sampling on. Keys
    ``generate`` does not take (``seed``, backend-specific ones) are left out; they stay in the
    fingerprint all the same.
    """
    kwargs = {}
    for key, value in generation.items():
        key = _ALIASES.get(key, key)
        if key in _GENERATE_KEYS or key in extra:
            kwargs[key] = value
    temperature = kwargs.pop("temperature", None)
    if temperature:
        kwargs.setdefault("do_sample", True)
        kwargs["temperature"] = temperature
    else:
        kwargs.setdefault("do_sample", False)
    return kwargs


@dataclass(kw_only=True)
class HFBackend(HubWeights, Backend):
    """A transformers model run in batches of similar-length clips.

    Subclasses load (processor, model) and turn one batch of prepared inputs into texts; this
    class owns device/dtype, restoring request order and per-sample errors (``Backend`` owns
    loading, duration-sorted batches and out-of-memory errors).
    """

    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 8
    sample_rate: int = 16000
    trust_remote_code: bool = False

    #: The backend's module name, for fingerprints and messages.
    backend_name: ClassVar[str] = ""
    #: ``model.generate`` keywords this backend takes beyond the common ones (Whisper's ``language``).
    extra_generate_keys: ClassVar[tuple[str, ...]] = ()
    GENERATION_KEYS: ClassVar[frozenset[str]] = frozenset(_GENERATE_KEYS | set(_ALIASES) | {"seed"})

    def generation_keys(self) -> frozenset[str]:
        return self.GENERATION_KEYS | set(self.extra_generate_keys)

    def generate_options(self) -> dict[str, Any]:
        """The ``model.generate`` keywords of every batch."""
        return generate_kwargs(self.generation, self.extra_generate_keys)

    def sent_parameters(self) -> dict[str, Any]:
        seed = {"seed": self.generation["seed"]} if "seed" in self.generation else {}
        return {**self.generate_options(), **seed}

    @property
    def requirements(self) -> Requirements:
        return Requirements(sample_rate=self.sample_rate)

    def fingerprint(self) -> dict[str, Any]:
        return {
            "backend": self.backend_name,
            "weights": self.weights(),
            "dtype": self.dtype,
            "generation": self.generation,
            "transformers": version("transformers"),
            "torch": version("torch"),
        }

    def load_kwargs(self) -> dict[str, Any]:
        """Arguments common to every ``from_pretrained`` call (pinned revision, offline, remote code)."""
        return {"revision": self.load_revision(), "local_files_only": hf_hub.offline(),
                "trust_remote_code": self.trust_remote_code}

    def check(self) -> None:
        torch, _ = import_torch_transformers()
        resolve_device(torch, self.device)
        resolve_dtype(torch, self.dtype, "cpu")

    def _load(self) -> tuple[Any, Any]:
        torch, transformers = import_torch_transformers()
        device = resolve_device(torch, self.device)  # before any download: fail fast
        dtype_key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
        model_kwargs = {**self.load_kwargs(), dtype_key: resolve_dtype(torch, self.dtype, device)}
        if device == "auto":
            model_kwargs["device_map"] = "auto"
        try:
            processor, model = self.load(transformers, model_kwargs)
        except (OSError, ValueError) as e:
            offline = " (HF_HUB_OFFLINE is set: only the local cache is used)" if hf_hub.offline() else ""
            raise BackendUnavailable(
                f"{self.backend_name}: cannot load weights at {self.model!r}"
                f" (revision {self.load_revision() or 'default'}){offline}: {e}"
            ) from None
        rate = getattr(getattr(processor, "feature_extractor", processor), "sampling_rate", self.sample_rate)
        if rate != self.sample_rate:
            raise BackendUnavailable(
                f"{self.backend_name}: the processor expects {rate} Hz audio; set sample_rate: {rate}"
            )
        if device != "auto":
            model = model.to(device)
        return processor, model.eval()

    @abc.abstractmethod
    def load(self, transformers: Any, model_kwargs: dict[str, Any]) -> tuple[Any, Any]:
        """``(processor, model)`` from ``self.source``; OSError/ValueError mean missing weights.

        ``model_kwargs`` (revision, offline, dtype, device map) go to the model's ``from_pretrained``;
        ``load_kwargs()`` to the processor's and config's.
        """

    @abc.abstractmethod
    def prepare(self, processor: Any, request: ModelRequest) -> Any:
        """One request's model input (audio and prompt); raise ValueError/OSError for a bad sample."""

    @abc.abstractmethod
    def run_batch(self, processor: Any, model: Any, inputs: list[Any]) -> list[str]:
        """Decoded texts for the prepared inputs of one batch, in order."""

    def output(self, sample_id: str, text: str, latency_s: float) -> ModelOutput:
        """One sample's output from its decoded text (chat models split off reasoning here)."""
        return ModelOutput(sample_id, text=text.strip(), latency_s=latency_s)

    @staticmethod
    def duration(prepared: Any) -> int:
        """Length used to group similar clips; subclasses with several arrays per input override."""
        return len(prepared)

    def _generate(self, loaded: tuple[Any, Any], requests: list[ModelRequest]) -> list[ModelOutput]:
        processor, model = loaded
        import torch

        if "seed" in self.generation:
            torch.manual_seed(int(self.generation["seed"]))
        outputs: list[ModelOutput | None] = [None] * len(requests)
        prepared: dict[int, Any] = {}
        for i, request in enumerate(requests):
            try:
                prepared[i] = self.prepare(processor, request)
            except (OSError, ValueError, RuntimeError) as e:
                outputs[i] = ModelOutput(request.sample_id, error=f"{self.backend_name}: bad input: {e}")
        for batch in by_duration(prepared, self.duration, self.batch_size):
            began = time.perf_counter()
            try:
                with torch.inference_mode():
                    texts = self.run_batch(processor, model, [prepared[i] for i in batch])
            except (RuntimeError, ValueError) as e:
                if is_cuda_oom(e):
                    raise
                for i in batch:
                    outputs[i] = ModelOutput(requests[i].sample_id, error=f"{self.backend_name} failed: {e}")
                continue
            # Samples of a batch finish together: each is charged an equal share of its time.
            latency = (time.perf_counter() - began) / len(batch)
            for i, text in zip(batch, texts, strict=True):
                outputs[i] = self.output(requests[i].sample_id, text, latency)
        return outputs  # type: ignore[return-value]
