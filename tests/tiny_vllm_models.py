"""Tiny random-weight models that the real vLLM serves on CPU, built with transformers.

``tiny_qwen2_audio(root)``: a Qwen2-Audio (text 128 wide, head_dim 32, audio encoder 64 wide, one
layer each) whose byte-level tokenizer has Step-Audio-R1.1's vocabulary size (151936) and special
tokens at Step's ids where known (``<|EOT|>`` 151665, the stop token; ``<audio_patch>`` 151690, the
processor's audio token; ``<|BOT|>`` is put at 151664, its id in Step's tokenizer is not known here),
so the same weights serve the plain tests and the Step template check. ``tiny_qwen2(root)``: a Qwen2
causal LM with the same tokenizer and a text chat template, the judge. Both are saved in the hub
layout vLLM loads (transformers 5 nests the language model one level deeper), once per version into
``root``, atomically. Their replies are noise: tests check plumbing, not accuracy.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

#: Bump when a builder changes: a cached model of another version is not reused.
VERSION = "3"
VOCAB_SIZE = 151936
STEP_TOKENS = {"<|BOT|>": 151664, "<|EOT|>": 151665, "<audio_patch>": 151690}
#: Qwen2-Audio's processor needs these two as well; where they sit does not matter.
AUDIO_MARKERS = {"<|audio_bos|>": 151691, "<|audio_eos|>": 151692}
#: A Qwen-style template with audio placeholders (the plain tests do not depend on its wording).
CHAT_TEMPLATE = (
    "{% for m in messages %}<|BOT|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'text' %}{{ c['text'] }}{% else %}<|audio_bos|><audio_patch><|audio_eos|>{% endif %}"
    "{% endfor %}{% endif %}<|EOT|>{% endfor %}{% if add_generation_prompt %}<|BOT|>assistant\n{% endif %}"
)


def default_root() -> Path:
    """Where built models are kept between test sessions (``AUDIO_EVALS_TEST_MODELS`` or the temp dir)."""
    return Path(os.environ.get("AUDIO_EVALS_TEST_MODELS") or Path(tempfile.gettempdir()) / "audio-evals-test-models")


def _tokenizer(folder: Path):
    """A byte-level BPE tokenizer (every byte a token, no merges) padded to Step's vocabulary with
    three-byte tokens, specials at their ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(alphabet)}
    specials = {**STEP_TOKENS, **AUDIO_MARKERS}
    for i in range(len(vocab), VOCAB_SIZE):  # three-byte fillers: random replies decode to visible text
        vocab["".join(alphabet[i // 256 ** k % 256] for k in range(3))] = i
    by_id = {i: t for t, i in vocab.items()}
    for token, i in specials.items():
        del vocab[by_id[i]]
        vocab[token] = i
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|EOT|>", pad_token="<|EOT|>",
                                        additional_special_tokens=list(specials))
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _text_config(tokenizer) -> dict:
    return {"model_type": "qwen2", "vocab_size": VOCAB_SIZE, "hidden_size": 128, "intermediate_size": 256,
                "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32,
                "max_position_embeddings": 8192, "tie_word_embeddings": False, "initializer_range": 0.5,
                "eos_token_id": STEP_TOKENS["<|EOT|>"], "pad_token_id": tokenizer.pad_token_id}


def _to_hub_layout(folder: Path) -> None:
    """Rename ``language_model.model.model.*`` (transformers 5) to the hub's ``language_model.model.*``."""
    from safetensors.torch import load_file, save_file

    for path in folder.glob("*.safetensors"):
        tensors = load_file(path)
        renamed = {k.replace("language_model.model.model.", "language_model.model."): v for k, v in tensors.items()}
        if renamed.keys() != tensors.keys():
            save_file(renamed, path, metadata={"format": "pt"})


def _build_audio(folder: Path) -> None:
    import torch
    import transformers as t

    tokenizer = _tokenizer(folder)
    extractor = t.WhisperFeatureExtractor(feature_size=128)  # Qwen2-Audio's 128 mel bins
    processor = t.Qwen2AudioProcessor(feature_extractor=extractor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE,
                                      audio_token="<audio_patch>", audio_bos_token="<|audio_bos|>",
                                      audio_eos_token="<|audio_eos|>")
    processor.save_pretrained(folder)
    config = t.Qwen2AudioConfig(
        audio_config={"d_model": 64, "encoder_layers": 1, "encoder_attention_heads": 2, "encoder_ffn_dim": 128},
        text_config=_text_config(tokenizer), audio_token_index=STEP_TOKENS["<audio_patch>"],
    )
    torch.manual_seed(0)
    model = t.Qwen2AudioForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    _to_hub_layout(folder)


def _build_text(folder: Path) -> None:
    import torch
    import transformers as t

    tokenizer = _tokenizer(folder)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    t.Qwen2ForCausalLM(t.Qwen2Config(**_text_config(tokenizer))).save_pretrained(folder)


def _cached(name: str, build, root: Path | None) -> str:
    folder = (root or default_root()) / f"{name}-v{VERSION}"
    if (folder / "config.json").exists():
        return str(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
    try:
        build(work)
        (work / "built.json").write_text(json.dumps({"version": VERSION}))
        os.replace(work, folder)
    except OSError:
        if not (folder / "config.json").exists():  # not another session's finished copy
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return str(folder)


def tiny_qwen2_audio(root: Path | None = None) -> str:
    """The tiny Qwen2-Audio's folder (built on first use)."""
    return _cached("tiny-qwen2-audio", _build_audio, root)


def tiny_qwen2(root: Path | None = None) -> str:
    """The tiny Qwen2 text model's folder (built on first use)."""
    return _cached("tiny-qwen2", _build_text, root)
