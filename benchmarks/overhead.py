"""Pipeline overhead and cached re-run, measured as ratios in one run.

(a) ``audio-evals run`` (fresh caches: Prefect start-up, download, preprocess, sharded
inference, scoring, bootstrap CIs, report, artifacts) versus (b) the bare loop of
``bare_loop.py``, on the sample replicated to N English utterances; then (c) the identical
command again, served from the cache.

    python -m benchmarks.overhead --n 260

Goals: (a)/(b) <= 1.15; (c)/(a) < 0.10 with zero model calls.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

from benchmarks._common import replicated_manifest, timed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=260)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="audio-evals-bench-"))
    manifest = replicated_manifest(tmp, args.n)
    run = [sys.executable, "-m", "cli", "run", "--dataset", str(manifest), "--model", "whisper-tiny.en",
           "--cache-dir", str(tmp / "cache"), "--output", str(tmp / "results"), "--workers", str(args.workers)]

    bare_s, bare_out = timed([sys.executable, "benchmarks/bare_loop.py", str(manifest)])
    first_s, _ = timed(run)
    cached_s, _ = timed(run)
    summaries = sorted((tmp / "results").rglob("summary.json"))
    first, second = (json.loads(p.read_text()) for p in summaries)
    wer = next(m["value"] for m in first["metrics"] if m["name"] == "wer")
    print(f"utterances: {args.n}")
    print(f"bare loop:             {bare_s:7.1f} s   ({bare_out.strip()})")
    print(f"audio-evals run:       {first_s:7.1f} s   (WER {wer:.2f}; stages {first['timings_s']})")
    print(f"audio-evals run again: {cached_s:7.1f} s   (shards {second['shards']})")
    print(f"overhead ratio (a)/(b): {first_s / bare_s:.3f}   goal <= 1.15")
    print(f"cached ratio   (c)/(a): {cached_s / first_s:.3f}   goal < 0.10, computed shards {second['shards']['computed']}")
    if abs(float(re.search(r"WER ([\d.]+)", bare_out).group(1)) - wer) > 0.01:
        print("WARNING: WER differs between the pipeline and the bare loop")


if __name__ == "__main__":
    main()
