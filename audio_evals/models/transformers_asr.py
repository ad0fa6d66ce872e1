"""ASR with Hugging Face transformers: Whisper-style sequence-to-sequence or CTC models.

The decoding path is chosen from the model's config (an architecture ending in ``ForCTC`` means
CTC, anything else ``generate``), so one backend covers Whisper, wav2vec2, HuBERT, MMS, ... on CPU
or GPU. Clips are batched by similar duration; weights come from a hub id or a local folder.

``long_form: true`` decodes Whisper clips past its 30 s window sequentially, as transformers' ASR
pipeline does with ``return_timestamps``: the reference tool transcribes spoken answers, which
can be long, that way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from audio_evals.models.base import ModelRequest
from audio_evals.models.hf_base import HFBackend


def _window(processor: Any) -> int | None:
    """Samples a Whisper-style feature extractor takes at once (None for others)."""
    return getattr(getattr(processor, "feature_extractor", None), "n_samples", None)


@dataclass(kw_only=True)
class TransformersASRBackend(HFBackend):
    #: ``auto`` reads the config; ``ctc``/``seq2seq`` force the decoding path.
    kind: Literal["auto", "ctc", "seq2seq"] = "auto"
    #: Whisper: decode clips longer than the window in 30 s steps instead of refusing them.
    long_form: bool = False
    _ctc: bool = field(default=False, init=False, repr=False)
    backend_name: ClassVar[str] = "transformers_asr"
    extra_generate_keys: ClassVar[tuple[str, ...]] = ("language", "task", "return_timestamps")

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "kind": self.kind, "long_form": self.long_form}

    def load(self, transformers: Any, model_kwargs: dict[str, Any]) -> tuple[Any, Any]:
        config = transformers.AutoConfig.from_pretrained(self.source, **self.load_kwargs())
        kind = self.kind
        if kind == "auto":
            kind = "ctc" if any(a.endswith("ForCTC") for a in config.architectures or ()) else "seq2seq"
        auto = transformers.AutoModelForCTC if kind == "ctc" else transformers.AutoModelForSpeechSeq2Seq
        processor = transformers.AutoProcessor.from_pretrained(self.source, **self.load_kwargs())
        model = auto.from_pretrained(self.source, config=config, **model_kwargs)
        self._ctc = kind == "ctc"
        return processor, model

    def prepare(self, processor: Any, request: ModelRequest) -> np.ndarray:
        audio = request.load_audio()
        # Whisper's feature extractor silently cuts audio past its window: refuse instead.
        window = _window(processor)
        if not self._ctc and not self.long_form and window and len(audio) > window:
            raise ValueError(
                f"clip is {len(audio) / request.sample_rate:.1f} s, longer than the model's "
                f"{window / request.sample_rate:.0f} s window (set --max-duration to skip such clips)"
            )
        return audio

    def run_batch(self, processor: Any, model: Any, inputs: list[np.ndarray]) -> list[str]:
        if self._ctc:
            features = processor(audio=inputs, sampling_rate=self.sample_rate, return_tensors="pt", padding=True)
            features = features.to(model.device, dtype=model.dtype)
            ids = model(**features).logits.argmax(-1)
            mask = features.get("attention_mask")
            if mask is not None and hasattr(model, "_get_feat_extract_output_lengths"):
                # Frames past each clip's end are padding: their argmax is noise, not blanks.
                lengths = model._get_feat_extract_output_lengths(mask.sum(-1)).tolist()
                ids = [row[:n] for row, n in zip(ids, lengths, strict=True)]
            return processor.batch_decode(ids)
        window = _window(processor)
        # Past the window, Whisper's long-form generation needs the whole clip and its mask.
        long = {"truncation": False, "padding": "longest", "return_attention_mask": True} \
            if self.long_form and window and any(len(a) > window for a in inputs) else {}
        features = processor(audio=inputs, sampling_rate=self.sample_rate, return_tensors="pt", **long)
        features = features.to(model.device, dtype=model.dtype)
        tokens = model.generate(**features, **self.generate_options())
        return processor.batch_decode(tokens, skip_special_tokens=True)


BACKEND = TransformersASRBackend
