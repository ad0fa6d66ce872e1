"""Size and generation time of the sample viewer at 10k LibriSpeech-like samples.

    python -m benchmarks.view_10k [--n 10000]

Writes two synthetic run folders (tests/synthetic_runs.py: the rows a real whisper run writes),
then times ``write_view`` on one and ``write_comparison`` (paired bootstrap, 1000 resamples) on both.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from audio_evals.report.view import write_comparison, write_view
from tests.synthetic_runs import asr_rows, write_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="view-bench-") as tmp:
        a = write_run(Path(tmp) / "a", asr_rows(args.n, seed=1), "run-a")
        b = write_run(Path(tmp) / "b", asr_rows(args.n, seed=2, error_rate=0.05), "run-b")
        samples_mb = os.path.getsize(a / "samples.jsonl") / 1e6
        start = time.perf_counter()
        view = write_view(str(a))
        view_s = time.perf_counter() - start
        start = time.perf_counter()
        comparison = write_comparison(str(a), str(b), tmp)
        comparison_s = time.perf_counter() - start
        print(f"{args.n} samples, samples.jsonl {samples_mb:.1f} MB")
        print(f"view.html     {os.path.getsize(view) / 1e6:.2f} MB in {view_s:.2f} s")
        print(f"compare page  {os.path.getsize(comparison) / 1e6:.2f} MB in {comparison_s:.2f} s")


if __name__ == "__main__":
    main()
