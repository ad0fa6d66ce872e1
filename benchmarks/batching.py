"""Batching, measured: the same 64 sample requests, the product's default batching against one
request at a time (the reference tool's path), ratio in one run, outputs compared at temperature 0.

``--backend vllm_served`` (default): through the served backend to the same real vLLM server.

The backend starts the server (the tiny random Qwen2-Audio of tests/tiny_vllm_models.py, or
``--model DIR``) with the Python in ``AUDIO_EVALS_VLLM_PYTHON`` (default ``.venv-vllm``); both
passes go through ``VLLMServedBackend.generate`` (WAV parts, base64, the OpenAI client), at
temperature 0 with ``--tokens`` forced tokens per reply, after a warm-up. Prints both wall times,
the ratio and whether the outputs are identical.

``--backend run``: end to end, ``audio-evals run --dataset speech-sample-en --model qwen2-audio-vllm``
(26 clips, one shard, ``--tokens`` forced tokens per reply) with ``--model-args max_concurrency=1``
against the default, each starting its own server: the ratio of the two runs' inference seconds
(``summary.json`` ``shards.inference_s``, the server's start excluded) and whether the replies match.

``--backend transformers_chat``: the same requests through the transformers chat backend on the
same tiny model in this process, its default ``batch_size`` against ``batch_size`` 1, up to
``--tokens`` new tokens per reply (greedy; the random model may stop earlier at its end token).

    python -m benchmarks.batching
    python -m benchmarks.batching --backend run
    python -m benchmarks.batching --backend transformers_chat
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from audio_evals.models import vllm_served
from audio_evals.models.base import Backend, Content, Message, ModelRequest
from benchmarks._common import ROOT, SAMPLE


def requests(n: int) -> list[ModelRequest]:
    clips = sorted((SAMPLE / "audio").glob("spk*.wav"))  # the 16 kHz clips (the run prepares the others)
    return [ModelRequest(f"{clips[i % len(clips)].stem}#{i}", str(clips[i % len(clips)]), 16000,
                         (Message("user", (Content("audio", str(clips[i % len(clips)])),
                                           Content("text", "Transcribe the audio."))),))
            for i in range(n)]


def timed(backend: Backend, batch: list[ModelRequest]) -> tuple[float, list[str | None]]:
    start = time.perf_counter()
    outputs = backend.generate(batch)
    elapsed = time.perf_counter() - start
    assert all(o.error is None for o in outputs), [o.error for o in outputs if o.error]
    return elapsed, [o.text for o in outputs]


def report(title: str, n: int, tokens: int, one_s: float, many_s: float, batched: str, same: bool) -> None:
    print(f"requests: {n}, {tokens} tokens each, {title}")
    print(f"one at a time:                  {one_s:6.2f} s")
    print(f"{batched + ':':32s}{many_s:6.2f} s")
    print(f"ratio one-at-a-time / batched:  {one_s / many_s:.2f}")
    print(f"outputs identical: {same}")


def transformers_chat(args: argparse.Namespace) -> None:
    """Batch 1 against the backend's default batch size, in one process on one model."""
    import transformers

    from audio_evals.models import transformers_chat as chat

    generation = {"max_new_tokens": args.tokens, "do_sample": False}
    batched = chat.BACKEND(model=args.model, device="cpu", dtype="float32", generation=generation)
    single = chat.BACKEND(model=args.model, device="cpu", dtype="float32", generation=generation, batch_size=1)
    batch = requests(args.n)
    try:
        timed(batched, batch[:8])  # warm-up (and loading), then the same for batch 1
        timed(single, batch[:1])
        one_s, one_texts = timed(single, batch)
        many_s, many_texts = timed(batched, batch)
    finally:
        single.close()
        batched.close()
    report(f"transformers {transformers.__version__} on CPU", args.n, args.tokens, one_s, many_s,
           f"default batch_size ({batched.batch_size})", one_texts == many_texts)


def vllm_served_pass(args: argparse.Namespace) -> None:
    """One at a time against the default concurrency, to one server the backend starts."""
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
    report(f"vLLM {batched.install().dist} {batched.install().version}", args.n, args.tokens, one_s, many_s,
           f"default concurrency ({batched.max_concurrency})", one_texts == many_texts)


def through_run(args: argparse.Namespace) -> None:
    """The CLI twice on the same clips, one request at a time and at the default concurrency."""
    python = os.environ.get(vllm_served.PYTHON_ENV) or str(ROOT / ".venv-vllm" / "bin" / "python")
    env = {**os.environ, vllm_served.PYTHON_ENV: python, "AUDIO_EVALS_VLLM_MODEL": args.model}
    tmp = Path(tempfile.mkdtemp(prefix="bench-batching-run-"))
    seconds, replies = {}, {}
    for way, extra in (("one at a time", ["--model-args", "max_concurrency=1"]), ("default", [])):
        out = tmp / way.replace(" ", "-")
        subprocess.run([sys.executable, "-m", "cli", "run", "--dataset", "speech-sample-en", "--model",
                        "qwen2-audio-vllm", "-P", f"max_tokens={args.tokens}", "-P", "ignore_eos=true",
                        "--cache-dir", str(out / "cache"), "--output", str(out / "results"), *extra],
                       cwd=ROOT, env=env, check=True, capture_output=True)
        (summary,) = (out / "results").rglob("summary.json")
        seconds[way] = json.loads(summary.read_text())["shards"]["inference_s"]
        rows = [json.loads(line) for line in (summary.parent / "samples.jsonl").read_text().splitlines() if line]
        replies[way] = sorted((r["id"], r.get("hypothesis")) for r in rows)
    report("audio-evals run, inference seconds of the run (server start excluded)", len(replies["default"]),
           args.tokens, seconds["one at a time"], seconds["default"], "default concurrency",
           replies["one at a time"] == replies["default"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=("vllm_served", "run", "transformers_chat"), default="vllm_served")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--model", help="weights folder (default: the tests' tiny Qwen2-Audio)")
    args = parser.parse_args()
    if not args.model:
        from tests.tiny_vllm_models import tiny_qwen2_audio

        args.model = tiny_qwen2_audio()
    {"vllm_served": vllm_served_pass, "run": through_run, "transformers_chat": transformers_chat}[args.backend](args)


if __name__ == "__main__":
    main()
