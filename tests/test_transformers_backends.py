"""The transformers, vLLM and Kimi-Audio backends on their real code paths, without the hub.

The transformers tests build TINY models with RANDOM WEIGHTS from configs (a byte-level or
character tokenizer made here, the real feature extractors), save them to a temporary folder and
load them through the backends, on real clips of the embedded speech sample. Their transcripts
are noise: the tests check the plumbing (one output per request, in order, batching that does not
change results, fingerprints), not accuracy. Kimi-Audio needs a GPU and a package absent here,
so its tests check the messages that say so; vLLM runs for real in tests/test_vllm_*.py.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audio_evals.models.base import BackendOutOfMemory, BackendUnavailable, Content, Message, ModelRequest
from tests import kimia_stand_in
from tests.conftest import SAMPLE_DIR

CLIPS = ["spk1_snt1", "spk2_snt2", "spk1_snt2"]  # 2.9 s, 1.8 s, 3.2 s: not in duration order


def request(sample_id: str, path: str, prompt: str = "Transcribe the audio.") -> ModelRequest:
    return ModelRequest(sample_id, path, 16000, (Message("user", (Content("audio", path), Content("text", prompt))),))


@pytest.fixture(scope="module")
def requests_() -> list[ModelRequest]:
    return [request(c, str(SAMPLE_DIR / "audio" / f"{c}.wav")) for c in CLIPS]


@pytest.fixture(scope="module")
def hf():
    """torch and transformers, or skip (they come with the ``transformers`` extra)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    return torch, transformers


def byte_vocab() -> dict[str, int]:
    """A byte-level BPE vocabulary with no merges: every byte is a token, so any text encodes."""
    from tokenizers import pre_tokenizers

    return {c: i for i, c in enumerate(pre_tokenizers.ByteLevel.alphabet())}


@pytest.fixture(scope="module")
def tiny_ctc(hf, tmp_path_factory) -> str:
    """A random wav2vec2 CTC model (16-wide, 1 layer) with a 32-symbol character vocabulary."""
    torch, t = hf
    folder = tmp_path_factory.mktemp("tiny-ctc")
    symbols = ["<pad>", "<s>", "</s>", "<unk>", "|", *"abcdefghijklmnopqrstuvwxyz'"]
    (folder / "vocab.json").write_text(json.dumps({s: i for i, s in enumerate(symbols)}))
    extractor = t.Wav2Vec2FeatureExtractor(sampling_rate=16000, return_attention_mask=True)
    tokenizer = t.Wav2Vec2CTCTokenizer(str(folder / "vocab.json"))
    t.Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    config = t.Wav2Vec2Config(
        vocab_size=len(symbols), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        conv_dim=(8,) * 7, feat_extract_norm="layer", do_stable_layer_norm=True, num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, pad_token_id=0, initializer_range=0.5,
    )
    torch.manual_seed(0)
    t.Wav2Vec2ForCTC(config).save_pretrained(folder)
    return str(folder)


def build_tiny_whisper(hf, folder: Path, timestamps: bool = False) -> str:
    """A random Whisper (d_model 16, 1+1 layers) with a byte-level tokenizer and Whisper's specials;
    with ``timestamps`` also its 1501 timestamp tokens and the generation config long-form needs."""
    torch, t = hf
    tokenizer = t.WhisperTokenizer(vocab=byte_vocab(), merges=[])
    specials = ["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|translate|>", "<|notimestamps|>"]
    if timestamps:
        specials += [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    extractor = t.WhisperFeatureExtractor(feature_size=80)
    t.WhisperProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = t.WhisperConfig(
        vocab_size=len(tokenizer), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80, max_target_positions=64,
        init_std=1.0, pad_token_id=eot, bos_token_id=eot, eos_token_id=eot,
        decoder_start_token_id=tokenizer.convert_tokens_to_ids("<|startoftranscript|>"),
    )
    torch.manual_seed(0)
    model = t.WhisperForConditionalGeneration(config)
    if timestamps:
        generation = model.generation_config
        generation.no_timestamps_token_id = tokenizer.convert_tokens_to_ids("<|notimestamps|>")
        generation.is_multilingual, generation.max_initial_timestamp_index = False, 50
        generation._from_model_config = False  # else rebuilt from the model config on load, without these
    model.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def tiny_whisper(hf, tmp_path_factory) -> str:
    return build_tiny_whisper(hf, tmp_path_factory.mktemp("tiny-whisper"))


@pytest.fixture(scope="module")
def tiny_qwen2_audio(hf, tmp_path_factory) -> str:
    """A random Qwen2-Audio (audio encoder and Qwen2 LM 16 wide, 1 layer each) with its real chat template."""
    torch, t = hf
    if not hasattr(t, "Qwen2AudioForConditionalGeneration"):
        pytest.skip(f"transformers {t.__version__} has no Qwen2-Audio")
    folder = tmp_path_factory.mktemp("tiny-qwen2-audio")
    tokenizer = t.Qwen2Tokenizer(vocab=byte_vocab(), merges=[])
    specials = ["<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    extractor = t.WhisperFeatureExtractor(feature_size=128)  # Qwen2-Audio's 128 mel bins
    t.Qwen2AudioProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = t.Qwen2AudioConfig(
        audio_config={"d_model": 16, "encoder_layers": 1, "encoder_attention_heads": 2, "encoder_ffn_dim": 32,
                          "initializer_range": 0.5},
        text_config={"model_type": "qwen2", "vocab_size": len(tokenizer), "hidden_size": 16, "intermediate_size": 32,
                         "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "initializer_range": 0.5,
                         "eos_token_id": im_end, "pad_token_id": tokenizer.pad_token_id},
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
    )
    torch.manual_seed(0)
    model = t.Qwen2AudioForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    return str(folder)


def run(backend_module, requests: list[ModelRequest], **args) -> list:
    backend = backend_module.BACKEND(**args)
    try:
        return backend.generate(requests)
    finally:
        backend.close()


def check_outputs(outputs, requests) -> None:
    assert [o.sample_id for o in outputs] == [r.sample_id for r in requests]
    assert all(o.error is None and isinstance(o.text, str) and o.latency_s > 0 for o in outputs), outputs


# -- transformers ASR ------------------------------------------------------------------------------

def test_ctc_random_weights_end_to_end_batching_keeps_order_and_results(tiny_ctc, requests_):
    from audio_evals.models import transformers_asr

    batched = run(transformers_asr, requests_, generation={}, model=tiny_ctc, device="cpu", batch_size=2)
    check_outputs(batched, requests_)
    assert all(o.text for o in batched)  # random weights still emit characters
    single = run(transformers_asr, requests_, generation={}, model=tiny_ctc, device="cpu", batch_size=1)
    assert [o.text for o in single] == [o.text for o in batched]


def test_whisper_random_weights_end_to_end_batching_keeps_order_and_results(tiny_whisper, requests_):
    from audio_evals.models import transformers_asr

    gen = {"max_tokens": 6, "temperature": 0.0}
    batched = run(transformers_asr, requests_, generation=gen, model=tiny_whisper, device="cpu", batch_size=3)
    check_outputs(batched, requests_)
    single = run(transformers_asr, requests_, generation=gen, model=tiny_whisper, device="cpu", batch_size=1)
    assert [o.text for o in single] == [o.text for o in batched]


def test_whisper_random_weights_refuses_clip_longer_than_its_window(tiny_whisper, requests_, tmp_path):
    from audio_evals.models import transformers_asr

    audio, rate = sf.read(requests_[0].audio_path, dtype="float32")
    long_clip = tmp_path / "long.wav"
    sf.write(long_clip, np.tile(audio, 12), rate)  # ~35 s
    outputs = run(transformers_asr, [request("long", str(long_clip)), requests_[1]],
                  generation={"max_tokens": 4}, model=tiny_whisper, device="cpu")
    assert "longer than the model's 30 s window" in outputs[0].error
    assert outputs[1].error is None and isinstance(outputs[1].text, str)


def test_whisper_long_form_decodes_clips_past_its_window_alone_or_batched(hf, requests_, tmp_path):
    """The reference transcribes long spoken answers as transformers' pipeline does (return_timestamps)."""
    from audio_evals.models import transformers_asr

    model = build_tiny_whisper(hf, tmp_path / "tiny-whisper-timestamps", timestamps=True)
    audio, rate = sf.read(requests_[0].audio_path, dtype="float32")
    long_clip = tmp_path / "long.wav"
    sf.write(long_clip, np.tile(audio, 12), rate)  # ~35 s
    clips = [request("long", str(long_clip)), requests_[1]]
    gen = {"return_timestamps": True, "max_tokens": 4}
    for batch_size in (1, 2):
        outputs = run(transformers_asr, clips, generation=gen, model=model, device="cpu", long_form=True,
                      batch_size=batch_size)
        check_outputs(outputs, clips)


def test_fingerprint_changes_with_generation_dtype_and_weights_without_loading(tiny_ctc, tmp_path):
    from audio_evals.models import transformers_asr, transformers_chat

    def fp(**args):
        return transformers_asr.BACKEND(**{"model": tiny_ctc, **args}).fingerprint()

    base = fp(generation={"num_beams": 1})
    assert base == fp(generation={"num_beams": 1}) and base["weights"]["files_sha256"]
    assert base != fp(generation={"num_beams": 2})
    assert base != fp(generation={"num_beams": 1}, dtype="float16")
    copy = tmp_path / "copy"
    shutil.copytree(tiny_ctc, copy)
    text = (copy / "config.json").read_text()
    (copy / "config.json").write_text(text.replace('"initializer_range": 0.5', '"initializer_range": 0.7'))
    assert (copy / "config.json").read_text() != text  # same size, other content
    assert base["weights"] != fp(model=str(copy), generation={"num_beams": 1})["weights"]
    hub = transformers_chat.BACKEND(model="org/model", revision="abc123").fingerprint()
    assert hub["weights"] == {"hub_id": "org/model", "revision": "abc123", "commit": None}  # nobody knows it
    assert hub != transformers_chat.BACKEND(model="org/model", revision="def456").fingerprint()


def _hf_cache_with(root: Path, repo: str, weights: str, commit: str) -> None:
    """A local Hugging Face cache holding ``weights`` (a folder) as ``repo`` at ``commit`` on main."""
    folder = root / f"models--{repo.replace('/', '--')}"
    shutil.copytree(weights, folder / "snapshots" / commit, dirs_exist_ok=True)
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(commit)


def test_hub_weights_are_pinned_to_the_commit_of_the_local_cache_offline(tiny_ctc, requests_, monkeypatch, tmp_path):
    """Offline, the commit comes from the cache's refs/main; it is in the fingerprint and weights load
    at it, so the same id updated to a new commit is a new identity."""
    import huggingface_hub.constants

    from audio_evals.models import transformers_asr

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    first, second = "a" * 40, "b" * 40
    _hf_cache_with(tmp_path / "hub", "org/tiny-ctc", tiny_ctc, first)
    backend = transformers_asr.BACKEND(model="org/tiny-ctc", device="cpu")
    assert backend.fingerprint()["weights"] == {"hub_id": "org/tiny-ctc", "revision": None, "commit": first}
    assert backend.load_kwargs()["revision"] == first
    check_outputs(backend.generate(requests_[:2]), requests_[:2])  # loaded from snapshots/<first>/
    backend.close()
    _hf_cache_with(tmp_path / "hub", "org/tiny-ctc", tiny_ctc, second)
    assert transformers_asr.BACKEND(model="org/tiny-ctc").fingerprint()["weights"]["commit"] == second


def test_hub_weights_commit_comes_from_the_hub_when_online(monkeypatch):
    from huggingface_hub import HfApi

    from audio_evals.models import transformers_chat

    asked = []
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(HfApi, "model_info", lambda self, repo, revision=None, timeout=None:
                        asked.append((repo, revision)) or types.SimpleNamespace(sha="c" * 40))
    backend = transformers_chat.BACKEND(model="org/model", revision="v1")
    assert backend.fingerprint()["weights"]["commit"] == "c" * 40 and backend.load_kwargs()["revision"] == "c" * 40
    assert backend.fingerprint() and asked == [("org/model", "v1")]  # resolved once per backend
    pinned = transformers_chat.BACKEND(model="org/model", revision="d" * 40)
    assert pinned.fingerprint()["weights"]["commit"] == "d" * 40 and len(asked) == 1  # a commit needs no asking


def test_missing_weights_offline_raise_backend_unavailable(hf, requests_, monkeypatch, tmp_path):
    from audio_evals.models import transformers_asr

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for model in (str(tmp_path / "no-such-folder"), "no-such-org/no-such-model"):
        with pytest.raises(BackendUnavailable, match="cannot load weights at .*HF_HUB_OFFLINE"):
            run(transformers_asr, requests_[:1], model=model, device="cpu")


def test_missing_extra_raises_backend_unavailable_naming_it(requests_, monkeypatch, tiny_ctc):
    from audio_evals.models import transformers_asr, transformers_chat

    monkeypatch.setitem(sys.modules, "transformers", None)  # import fails as if not installed
    for module in (transformers_asr, transformers_chat):
        with pytest.raises(BackendUnavailable, match=r"pip install 'audio-evals\[transformers\]'"):
            run(module, requests_[:1], model=tiny_ctc)


def test_cuda_requested_without_gpu_raises_backend_unavailable(hf, tiny_ctc, requests_):
    from audio_evals.models import transformers_asr

    if hf[0].cuda.is_available():
        pytest.skip("a GPU is present: the no-GPU message cannot be seen here")
    with pytest.raises(BackendUnavailable, match="needs a GPU"):
        run(transformers_asr, requests_[:1], model=tiny_ctc, device="cuda")


def test_cuda_oom_is_a_clear_error_not_a_retry(tiny_ctc, requests_, monkeypatch):
    from audio_evals.models import transformers_asr

    backend = transformers_asr.BACKEND(model=tiny_ctc, device="cpu")

    def oom(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(backend, "run_batch", oom)
    with pytest.raises(BackendOutOfMemory, match="out of GPU memory on a shard of .*lower batch_size"):
        backend.generate(requests_)
    backend.close()


@pytest.mark.gpu
def test_ctc_random_weights_on_gpu_matches_cpu(hf, tiny_ctc, requests_):
    if not hf[0].cuda.is_available():
        pytest.skip("no CUDA device (torch.cuda.is_available() is False)")
    from audio_evals.models import transformers_asr

    gpu = run(transformers_asr, requests_, model=tiny_ctc, device="cuda", dtype="float32")
    check_outputs(gpu, requests_)
    cpu = run(transformers_asr, requests_, model=tiny_ctc, device="cpu")
    assert [o.text for o in gpu] == [o.text for o in cpu]


# -- transformers chat -----------------------------------------------------------------------------

def test_qwen2_audio_chat_random_weights_end_to_end_batching_keeps_order_and_results(tiny_qwen2_audio, requests_):
    from audio_evals.models import transformers_chat

    # Different prompt lengths as well as durations, so left padding is exercised.
    reqs = [request(r.sample_id, r.audio_path, "Transcribe" + "!" * i) for i, r in enumerate(requests_)]
    gen = {"max_tokens": 5, "seed": 0}
    batched = run(transformers_chat, reqs, generation=gen, model=tiny_qwen2_audio, device="cpu", batch_size=2)
    check_outputs(batched, reqs)
    single = run(transformers_chat, reqs, generation=gen, model=tiny_qwen2_audio, device="cpu", batch_size=1)
    assert [o.text for o in single] == [o.text for o in batched]


def test_chat_unreadable_audio_is_a_per_sample_error(tiny_qwen2_audio, requests_, tmp_path):
    from audio_evals.models import transformers_chat

    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    outputs = run(transformers_chat, [request("bad", str(bad)), requests_[1]],
                  generation={"max_tokens": 2}, model=tiny_qwen2_audio, device="cpu")
    assert outputs[0].sample_id == "bad" and "bad input" in outputs[0].error
    assert outputs[1].error is None


# -- vLLM offline without vLLM, and Kimi-Audio: unavailable here with a precise reason ------------

def test_vllm_offline_without_vllm_names_the_extra(requests_, monkeypatch):
    from audio_evals.models import vllm_offline

    monkeypatch.setitem(sys.modules, "vllm", None)
    backend = vllm_offline.BACKEND(model="moonshotai/Kimi-Audio-7B-Instruct", max_model_len=8192)
    assert backend.fingerprint()["weights"]["hub_id"] == "moonshotai/Kimi-Audio-7B-Instruct"
    with pytest.raises(BackendUnavailable, match=r"vLLM is not importable here.*scripts/install-vllm"):
        backend.generate(requests_)


def test_kimi_audio_speech_without_its_package_or_gpu_says_what_is_missing(hf, requests_, monkeypatch):
    from audio_evals.models import kimi_audio_speech

    monkeypatch.setitem(sys.modules, "kimia_infer", None)
    with pytest.raises(BackendUnavailable, match=r"kimia_infer.*pip install git\+https://github.com/MoonshotAI/Kimi-Audio"):
        kimi_audio_speech.BACKEND().generate(requests_)
    if hf[0].cuda.is_available():
        return
    fake = {name: types.ModuleType(name) for name in ("kimia_infer", "kimia_infer.api", "kimia_infer.api.kimia")}
    fake["kimia_infer.api.kimia"].KimiAudio = object
    for name, module in fake.items():
        monkeypatch.setitem(sys.modules, name, module)
    with pytest.raises(BackendUnavailable, match="needs a GPU"):
        kimi_audio_speech.BACKEND().generate(requests_)


def test_vllm_offline_with_stand_in_engine_sends_whole_shard_and_splits_reasoning(hf, requests_, monkeypatch):
    """A stand-in ``vllm`` module (no GPU here) checks the engine arguments, prompts and parsing."""
    from audio_evals.models import vllm_offline

    seen: dict = {}

    class Tokenizer:
        def apply_chat_template(self, conversation, chat_template, add_generation_prompt, tokenize):
            return "|".join(p.get("text", "<audio>") for m in conversation for p in m["content"])

    class LLM:
        def __init__(self, **kwargs):
            seen["engine"] = kwargs

        def get_tokenizer(self):
            return Tokenizer()

        def generate(self, prompts, params, use_tqdm):
            seen["calls"], seen["params"] = seen.get("calls", 0) + 1, params
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(
                text=f"<think>hmm</think>{len(p['multi_modal_data']['audio'])} clip: {p['prompt']}")]) for p in prompts]

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=lambda **kw: kw))
    backend = vllm_offline.BACKEND(generation={"max_new_tokens": 7, "temperature": 0.0, "seed": 1}, model="m",
                                   tensor_parallel_size=2, max_model_len=4096)
    outputs = backend.generate(requests_)
    assert [o.sample_id for o in outputs] == [r.sample_id for r in requests_]
    assert all(o.text == "1 clip: <audio>|Transcribe the audio." and o.reasoning == "hmm" for o in outputs)
    assert seen["calls"] == 1 and seen["params"] == {"max_tokens": 7, "temperature": 0.0, "seed": 1}
    assert seen["engine"]["limit_mm_per_prompt"] == {"audio": 1} and seen["engine"]["tensor_parallel_size"] == 2
    backend.close()


def test_kimi_audio_speech_with_stand_in_package_writes_wav_per_sample(hf, requests_, monkeypatch, tmp_path):
    """A stand-in ``kimia_infer`` (the real one needs a GPU and 7B weights) checks the calls and files."""
    from audio_evals.models import kimi_audio_speech

    calls = kimia_stand_in.install(monkeypatch, hf[0])
    backend = kimi_audio_speech.BACKEND(generation={"text_temperature": 0.0, "audio_top_k": 10}, output_dir=str(tmp_path),
                                        revision="e" * 40)
    outputs = backend.generate(requests_[:2])
    assert [o.sample_id for o in outputs] == [r.sample_id for r in requests_[:2]]
    assert all(o.text == "an answer" and sf.info(o.audio_path).samplerate == 24000 for o in outputs)
    assert len({o.audio_path for o in outputs}) == 2 and all(o.audio_path.startswith(str(tmp_path)) for o in outputs)
    built, first = calls[:2]
    assert built["load_detokenizer"] and first["output_type"] == "both"
    assert built["model_path"] == f"/snapshots/moonshotai/Kimi-Audio-7B-Instruct@{'e' * 40}"  # weights pinned
    assert first["params"] == {"audio_top_k": 10, "text_temperature": 0.0}
    assert first["chats"] == [{"role": "user", "message_type": "audio", "content": requests_[0].audio_path},
                              {"role": "user", "message_type": "text", "content": "Transcribe the audio."}]


def test_kimi_audio_speech_fails_a_sample_without_progress_for_its_limit_and_goes_on(hf, requests_, monkeypatch,
                                                                                      tmp_path):
    """As the reference's Kimi client (no output for 180 s), the limit is on time without progress,
    not on the whole sample: with a 1.2 s limit, a 2 s generation that steps every 0.5 s is answered,
    one stalled for 2 s in a single step fails with that cause, and the next sample waits for the
    stalled generation to end, then is answered."""
    from audio_evals.models import kimi_audio_speech

    assert kimi_audio_speech.BACKEND(revision="e" * 40).sample_timeout_s == 180.0
    kimia_stand_in.install(monkeypatch, hf[0], steps_s=((0.5, 0.5, 0.5, 0.5), (2.0,)))
    backend = kimi_audio_speech.BACKEND(output_dir=str(tmp_path), revision="e" * 40, sample_timeout_s=1.2)
    began = time.monotonic()
    steady, stalled, after = backend.generate(requests_[:3])
    assert (steady.error, steady.text) == (None, "an answer") and steady.latency_s > 1.2
    assert stalled.error == "kimi_audio_speech: no progress for 1.2 s (the reference tool's limit without output)"
    assert stalled.text is None and stalled.audio_path is None
    assert (after.error, after.text) == (None, "an answer") and time.monotonic() - began >= 4.0
    with pytest.raises(ValueError, match="sample_timeout_s must be a positive number"):
        kimi_audio_speech.BACKEND(revision="e" * 40, sample_timeout_s=0)
