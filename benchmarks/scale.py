"""Memory as the dataset grows: peak RSS of ``audio-evals run`` at 1k and 10k utterances.

Uses the deterministic ``scripted`` backend (no model), so what is measured is the pipeline:
download, preprocess (every clip read, hashed, decoded once per content), 32-sample shards,
scoring with bootstrap CIs and the report. Peak RSS comes from ``/usr/bin/time -v`` of the
whole command (the Prefect ephemeral server runs in the same process tree); the flow records
its own peak after download and preprocess in ``summary.json`` (``peak_rss_mb``).

    python -m benchmarks.scale --sizes 1000 10000

Goal: RSS at 10k within 10 % of RSS at 1k.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import replicated_manifest, timed


def _registry(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "models.yaml").write_text("models:\n  scripted:\n    backend: scripted\n    args: {default_answer: hello}\n",
                                        encoding="utf-8")
    return folder


def peak_rss_mb(n: int, tmp: Path) -> tuple[float, float, dict]:
    manifest = replicated_manifest(tmp / f"data-{n}", n)
    start = time.perf_counter()
    _, out = timed(["/usr/bin/time", "-v", sys.executable, "-m", "cli", "run", "--dataset", str(manifest),
                    "--model", "scripted", "--registry-path", str(_registry(tmp / "registry")),
                    "--cache-dir", str(tmp / f"cache-{n}"), "--output", str(tmp / f"results-{n}")], stderr_too=True)
    wall = time.perf_counter() - start
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out).group(1))
    (summary_file,) = (tmp / f"results-{n}").rglob("summary.json")
    summary = json.loads(summary_file.read_text())
    return rss_kb / 1024, wall, summary["peak_rss_mb"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="audio-evals-scale-"))
    results = {n: peak_rss_mb(n, tmp) for n in args.sizes}
    for n, (rss, wall, stages) in results.items():
        print(f"{n:>6} utterances: peak RSS {rss:7.1f} MB (whole command), wall {wall:6.1f} s, "
              f"flow process peak after each stage (MB) {stages}")
    small, large = min(results), max(results)
    print(f"RSS ratio {large}/{small}, whole command: {results[large][0] / results[small][0]:.3f}   goal <= 1.10")
    for stage in ("download", "preprocess"):
        ratio = results[large][2][stage] / results[small][2][stage]
        print(f"RSS ratio {large}/{small}, up to the end of {stage}: {ratio:.3f}")


if __name__ == "__main__":
    main()
