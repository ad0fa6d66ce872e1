"""Batching through the served backend: the same 64 sample requests to the same real vLLM server,
the product's default concurrency against one request at a time (the reference tool's path).

The backend starts the server (the tiny random Qwen2-Audio of tests/tiny_vllm_models.py, or
``--model DIR``) with the Python in ``AUDIO_EVALS_VLLM_PYTHON`` (default ``.venv-vllm``); both
passes go through ``VLLMServedBackend.generate`` (WAV parts, base64, the OpenAI client), at
temperature 0 with ``--tokens`` forced tokens per reply, after a warm-up. Prints both wall times,
the ratio and whether the outputs are identical.

    python -m benchmarks.batching
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from audio_evals.models import vllm_served
from audio_evals.models.base import Content, Message, ModelRequest
from benchmarks._common import ROOT, SAMPLE


def requests(n: int) -> list[ModelRequest]:
    clips = sorted((SAMPLE / "audio").glob("spk*.wav"))  # the 16 kHz clips (the run prepares the others)
    return [ModelRequest(f"{clips[i % len(clips)].stem}#{i}", str(clips[i % len(clips)]), 16000,
                         (Message("user", (Content("audio", str(clips[i % len(clips)])),
                                           Content("text", "Transcribe the audio."))),))
            for i in range(n)]


def timed(backend: vllm_served.VLLMServedBackend, batch: list[ModelRequest]) -> tuple[float, list[str | None]]:
    start = time.perf_counter()
    outputs = backend.generate(batch)
    elapsed = time.perf_counter() - start
    assert all(o.error is None for o in outputs), [o.error for o in outputs if o.error]
    return elapsed, [o.text for o in outputs]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--model", help="weights folder (default: the tests' tiny Qwen2-Audio)")
    args = parser.parse_args()
    if not args.model:
        from tests.tiny_vllm_models import tiny_qwen2_audio

        args.model = tiny_qwen2_audio()
    python = os.environ.get(vllm_served.PYTHON_ENV) or str(ROOT / ".venv-vllm" / "bin" / "python")
    generation = {"temperature": 0.0, "max_tokens": args.tokens, "ignore_eos": True, "skip_special_tokens": False}
    batched = vllm_served.BACKEND(serve={"model": args.model, "python": python, "max_model_len": 4096},
                                  generation=generation, log_dir=tempfile.mkdtemp(prefix="bench-batching-"))
    batch = requests(args.n)
    try:
        server, _ = batched.loaded()
        single = vllm_served.BACKEND(base_url=f"{server.root}/v1", model=args.model, generation=generation,
                                     max_concurrency=1)
        timed(batched, batch[:8])  # warm-up
        one_s, one_texts = timed(single, batch)
        many_s, many_texts = timed(batched, batch)
        single.close()
    finally:
        batched.close()
    print(f"requests: {args.n}, {args.tokens} tokens each, vLLM {batched.install().dist} {batched.install().version}")
    print(f"one at a time:                  {one_s:6.2f} s")
    print(f"default concurrency ({batched.max_concurrency}):       {many_s:6.2f} s")
    print(f"ratio one-at-a-time / batched:  {one_s / many_s:.2f}")
    print(f"outputs identical: {one_texts == many_texts}")


if __name__ == "__main__":
    main()
