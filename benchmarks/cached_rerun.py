"""A fully cached re-run, with Prefect's ephemeral API and through a long-lived local server.

The sample's 26 English clips replicated to N utterances (104 = 4x), Whisper tiny.en: a first
run fills the cache, then the identical command is timed as a fresh process (start-up included),
each way under its own Prefect home: (a) no server, so every call starts the ephemeral API;
(b) after ``audio-evals server start``, which every call then uses. Before the timed runs each
way's database has seen one run of the flow (the cache-filling run; one untimed run through the
new server). Prints the median of ``--repeat`` timed runs each way and their ratio.

    python -m benchmarks.cached_rerun --n 104
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import httpx

from benchmarks._common import free_port, replicated_manifest, timed


def _cached_runs(run: list[str], env: dict[str, str], repeat: int) -> list[float]:
    return [timed(run, env)[0] for _ in range(repeat)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=104)
    parser.add_argument("--repeat", type=int, default=3, help="Timed cached runs each way (the median is reported).")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="audio-evals-cached-"))
    manifest = replicated_manifest(tmp, args.n)
    run = [sys.executable, "-m", "cli", "run", "--dataset", str(manifest), "--model", "whisper-tiny.en",
           "--cache-dir", str(tmp / "cache"), "--output", str(tmp / "results")]
    os.environ.pop("PREFECT_API_URL", None)  # each way chooses its API: none (ephemeral), or the server

    ephemeral = {"PREFECT_HOME": str(tmp / "home-ephemeral")}
    first_s, _ = timed(run, ephemeral)
    ephemeral_s = _cached_runs(run, ephemeral, args.repeat)

    served = {"PREFECT_HOME": str(tmp / "home-server")}
    port = free_port()
    start_s, _ = timed([sys.executable, "-m", "cli", "server", "start", "--port", str(port)], served)
    try:
        timed(run, served)
        server_s = _cached_runs(run, served, args.repeat)
        flow_runs = httpx.post(f"http://127.0.0.1:{port}/api/flow_runs/filter", json={}, timeout=30).json()
    finally:
        timed([sys.executable, "-m", "cli", "server", "stop"], served)

    summaries = [json.loads(p.read_text()) for p in sorted((tmp / "results").rglob("summary.json"))]
    computed = sum(s["shards"]["computed"] for s in summaries[1:])
    median_e, median_s = statistics.median(ephemeral_s), statistics.median(server_s)
    print(f"utterances: {args.n} (whisper-tiny.en); first run {first_s:.1f} s filled the cache; "
          f"shards computed by the re-runs: {computed}")
    print(f"cached re-run, ephemeral API:     {median_e:5.1f} s  (median of {[round(s, 1) for s in ephemeral_s]})")
    print(f"cached re-run, long-lived server: {median_s:5.1f} s  (median of {[round(s, 1) for s in server_s]}; "
          f"`server start` {start_s:.1f} s once; {len(flow_runs)} flow runs in its UI)")
    print(f"ratio server / ephemeral: {median_s / median_e:.3f}  ({median_e / median_s:.1f}x faster)")
    if computed or len(flow_runs) != 1 + args.repeat:
        print("WARNING: a re-run computed shards, or a run did not go through the server")


if __name__ == "__main__":
    main()
