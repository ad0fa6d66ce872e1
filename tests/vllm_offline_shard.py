"""Run by tests/test_vllm_offline.py in the vLLM environment's Python: the offline backend on the
tiny Qwen2-Audio generates one shard, then each request alone; prints what it saw as one
line ``RESULT {json}`` (vLLM logs to stdout too).

    python tests/vllm_offline_shard.py MODEL_DIR CLIP...
"""

from __future__ import annotations

import json
import sys

from audio_evals.models.base import Content, Message, ModelRequest
from audio_evals.models.vllm_offline import BACKEND


def main(model: str, clips: list[str]) -> None:
    backend = BACKEND(model=model, generation={"temperature": 0.0, "max_tokens": 8}, dtype="float32",
                      max_model_len=4096, gpu_memory_utilization=0.1, engine_args={"enforce_eager": True})
    llm = backend.loaded()
    calls: list[int] = []
    generate = llm.generate

    def counted(prompts, *args, **kwargs):  # the real generate, its calls and batch sizes recorded
        calls.append(len(prompts))
        return generate(prompts, *args, **kwargs)

    llm.generate = counted
    requests = [ModelRequest(f"r{i}", clip, 16000, (Message("user", (Content("audio", clip), Content("text", "Transcribe."))),))
                for i, clip in enumerate(clips)]
    shard = backend.generate(requests)
    shard_calls = list(calls)
    alone = [backend.generate([r])[0] for r in requests]
    backend.close()
    print("RESULT " + json.dumps({"shard_calls": shard_calls, "ids": [o.sample_id for o in shard],
                      "errors": [o.error for o in shard], "texts": [o.text for o in shard],
                      "alone": [o.text for o in alone]}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
