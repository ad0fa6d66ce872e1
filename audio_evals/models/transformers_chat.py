"""Audio chat LLMs with Hugging Face transformers, in the Qwen2-Audio style.

The prompt's chat messages go through the processor's chat template (audio parts become the
model's audio placeholder), then ``processor(text=..., audio=...)`` and ``model.generate``. Only
the new tokens are decoded, and think-tag reasoning is split off before scoring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from audio_evals.models.base import ModelOutput, ModelRequest
from audio_evals.models.hf_base import HFBackend, generate_kwargs
from audio_evals.models.reasoning import DEFAULT_TAGS, split_reasoning

#: ``generate`` stops after 20 tokens by default; a chat answer needs room unless told otherwise.
_DEFAULT_MAX_NEW_TOKENS = 512


@dataclass(kw_only=True)
class TransformersChatBackend(HFBackend):
    #: A Jinja chat template for processors that ship none (base models).
    chat_template: str | None = None
    #: Opening and closing tags of the reasoning to strip from answers.
    think_tags: tuple[str, str] = DEFAULT_TAGS
    batch_size: int = 4
    backend_name: ClassVar[str] = "transformers_chat"

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "chat_template": self.chat_template, "think_tags": list(self.think_tags)}

    def load(self, transformers: Any, model_kwargs: dict[str, Any]) -> tuple[Any, Any]:
        config = transformers.AutoConfig.from_pretrained(self.source, **self.load_kwargs())
        # The config names the model class (Qwen2AudioForConditionalGeneration, ...); remote-code
        # models register theirs with the causal-LM auto class.
        arch = (config.architectures or [""])[0]
        model_class = getattr(transformers, arch, None) or transformers.AutoModelForCausalLM
        processor = transformers.AutoProcessor.from_pretrained(self.source, **self.load_kwargs())
        processor.tokenizer.padding_side = "left"  # batched generation appends after the prompt
        return processor, model_class.from_pretrained(self.source, config=config, **model_kwargs)

    def prepare(self, processor: Any, request: ModelRequest) -> tuple[str, list[np.ndarray]]:
        prompt = processor.apply_chat_template(
            request.conversation(), chat_template=self.chat_template, add_generation_prompt=True, tokenize=False
        )
        return prompt, request.audio_arrays()

    @staticmethod
    def duration(prepared: tuple[str, list[np.ndarray]]) -> int:
        return sum(len(a) for a in prepared[1])

    def run_batch(self, processor: Any, model: Any, inputs: list[tuple[str, list[np.ndarray]]]) -> list[str]:
        audio = [a for _, arrays in inputs for a in arrays]
        features = processor(
            text=[prompt for prompt, _ in inputs], audio=audio or None, sampling_rate=self.sample_rate,
            return_tensors="pt", padding=True,
        ).to(model.device, dtype=model.dtype)
        tokens = model.generate(**features, **self.generate_options())
        return processor.batch_decode(tokens[:, features["input_ids"].shape[1]:], skip_special_tokens=True)

    def generate_options(self) -> dict[str, Any]:
        return {"max_new_tokens": _DEFAULT_MAX_NEW_TOKENS, **generate_kwargs(self.generation)}

    def output(self, sample_id: str, text: str, latency_s: float) -> ModelOutput:
        answer, reasoning = split_reasoning(text, tuple(self.think_tags))
        return ModelOutput(sample_id, text=answer, reasoning=reasoning, latency_s=latency_s)


BACKEND = TransformersChatBackend
