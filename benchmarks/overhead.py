"""The fixed cost of a run, measured in one run against the bare loop on the same manifest.

The sample's English clips replicated to N utterances, Whisper tiny.en (beam 5, int8 CPU):

(b) the bare loop of ``bare_loop.py`` (faster-whisper → the reference normaliser → WER);
(s) ``audio-evals run`` with fresh caches through a running ``audio-evals server start``, which hands
    the call to its warm runner (``cli/warm.py``): CPU adds the runner's share (the forked run), and the
    largest process is the largest of the CLI's, the forked run's and the model's own (the summary's);
(i) the same in the CLI process itself (``--task-runner thread``, a call the runner does not take);
(e) the same with Prefect's ephemeral API (no server; its own Prefect home, whose database is made
    before the rounds, as a user's first run makes it: the time that takes is printed beside);
(c) the identical command of (s) again, fully cached, through the server (median of ``--repeat``);
    (ci) the same in the CLI process itself.

Wall and CPU seconds (user + system of each command's process tree; the server's CPU during (s)
is shown beside, since it works for the run) and the peak RSS of the largest process. ``--pairs``
repeats (b), (s), (e) interleaved and reports medians, so a loaded machine slows both sides alike,
and the (s)/(b) ratios within each round with their median (the walls of each round are printed too).
The numbers must not change: (s), (e) and (c) must give the same summary metrics and per-sample
rows (latency aside), and so must ``--baseline RUN_FOLDER`` (a run of the same manifest by older
code) when given.

    python -m benchmarks.overhead --n 104

Goals (issue 21): CPU (s)/(b) <= 1.05, wall (s)/(b) <= 1.02, cached (c) <= 1.5 s wall,
peak RSS (s)/(b) <= 1.2.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from benchmarks._common import Measured, free_port, measured, replicated_manifest, timed


def _numbers(run_folder: Path) -> tuple[list[Any], list[dict[str, Any]]]:
    """What must not change between runs: the summary's metrics and every sample row but its latency."""
    metrics = json.loads((run_folder / "summary.json").read_text())["metrics"]
    rows = [json.loads(line) for line in (run_folder / "samples.jsonl").read_text().splitlines() if line]
    for row in rows:
        row.pop("latency_s", None)
    return metrics, sorted(rows, key=lambda r: r["id"])


def _memory(run_folder: Path) -> tuple[float, float | None]:
    """The run's peak memory as its summary records it: the flow's process, and the model's own process."""
    summary = json.loads((run_folder / "summary.json").read_text())
    return summary["peak_rss_mb"]["total"], summary["shards"].get("engine_peak_rss_mb")


def _run_folders(results: Path) -> list[Path]:
    return sorted(p.parent for p in results.rglob("summary.json"))


def _cpu(home: Path, who: str) -> float:
    """CPU seconds so far of the server (``who`` = "pid") or its warm runner ("runner_pid") recorded under
    Prefect home ``home``, with their children's that have ended (the runner's forked runs)."""
    state = json.loads((home / "audio-evals-server.json").read_text())
    times = psutil.Process(state[who]).cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def _through_runner(run: Callable[[], Measured], home: Path, results: Path | None) -> Measured:
    """A call measured with what the warm runner did for it: the forked run's CPU, and the largest of its
    processes (the forked run and the model's own process, as the run's summary records them)."""
    before = _cpu(home, "runner_pid")
    m = run()
    peaks = [m.max_rss_mb, *(_memory(_run_folders(results)[-1]) if results else ())]
    return Measured(m.wall_s, m.cpu_s + _cpu(home, "runner_pid") - before, max(p or 0.0 for p in peaks), m.out)


def _median(runs: list[Measured], field: str) -> float:
    return statistics.median(getattr(m, field) for m in runs)


def _line(label: str, runs: list[Measured], extra: str = "") -> str:
    return (f"{label:34s} wall {_median(runs, 'wall_s'):7.2f} s  CPU {_median(runs, 'cpu_s'):7.2f} s  "
            f"peak RSS {_median(runs, 'max_rss_mb'):6.1f} MB{extra}\n{'':34s} walls by round "
            f"{[round(m.wall_s, 2) for m in runs]}")


def _by_round(name: str, runs: list[Measured], bare: list[Measured], field: str) -> str:
    """The ratio within each round, whose two commands ran one after the other: the machine's speed
    drifts between rounds (the bare loop alone took 38-50 s in one session), less within one."""
    ratios = [getattr(a, field) / getattr(b, field) for a, b in zip(runs, bare)]
    return f"{name:34s} by round {[round(r, 3) for r in ratios]}, median {statistics.median(ratios):.3f}"


def _ratio(name: str, a: float, b: float, goal: str) -> str:
    return f"{name:34s} {a:8.2f} / {b:8.2f} = {a / b:.3f}   goal {goal}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=104)
    parser.add_argument("--pairs", type=int, default=1, help="Interleaved (bare, served, ephemeral) rounds; medians.")
    parser.add_argument("--repeat", type=int, default=3, help="Timed cached re-runs through the server (median).")
    parser.add_argument("--baseline", type=Path, help="A run folder of the same manifest by older code to compare with.")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="audio-evals-overhead-"))
    manifest = replicated_manifest(tmp, args.n)
    os.environ.pop("PREFECT_API_URL", None)  # each way chooses its API: the server, or none (ephemeral)
    served_home, ephemeral_home = tmp / "home-server", tmp / "home-ephemeral"

    def run(way: str, i: int, *extra: str) -> list[str]:
        return [sys.executable, "-m", "cli", "run", "--dataset", str(manifest), "--model", "whisper-tiny.en",
                "--cache-dir", str(tmp / f"cache-{way}-{i}"), "--output", str(tmp / f"results-{way}-{i}"), *extra]

    here = ("--task-runner", "thread")

    served_env = {"PREFECT_HOME": str(served_home)}
    new_home_s, _ = timed([sys.executable, "-c", "from cli import ephemeral; ephemeral.start().ready()"],
                          {"PREFECT_HOME": str(ephemeral_home)})
    timed([sys.executable, "-m", "cli", "server", "start", "--port", str(free_port())], served_env)
    bare, served, in_cli, ephemeral, server_cpu = [], [], [], [], []
    try:
        for i in range(args.pairs):
            bare.append(measured([sys.executable, "benchmarks/bare_loop.py", str(manifest)]))
            before = _cpu(served_home, "pid")
            served.append(_through_runner(lambda: measured(run("served", i), served_env), served_home,
                                          tmp / f"results-served-{i}"))
            server_cpu.append(_cpu(served_home, "pid") - before)
            in_cli.append(measured(run("in-cli", i, *here), served_env))
            ephemeral.append(measured(run("ephemeral", i), {"PREFECT_HOME": str(ephemeral_home)}))
        cached = [_through_runner(lambda: measured(run("served", 0), served_env), served_home, None)
                  for _ in range(args.repeat)]
        cached_in_cli = [measured(run("served", 0, *here), served_env) for _ in range(args.repeat)]
    finally:
        timed([sys.executable, "-m", "cli", "server", "stop"], served_env)

    folders = [f for way in ("served", "in-cli", "ephemeral") for i in range(args.pairs)
               for f in _run_folders(tmp / f"results-{way}-{i}")]
    computed = [json.loads((f / "summary.json").read_text())["shards"]["computed"]
                for f in _run_folders(tmp / "results-served-0")[1:]]
    reference = _numbers(folders[0])
    changed = [str(f) for f in [*folders, *([args.baseline] if args.baseline else [])] if _numbers(f) != reference]
    wer = next(m["value"] for m in reference[0] if m["name"] == "wer")
    extra_cpu = f"  (+ server {statistics.median(server_cpu):.2f} s CPU)"
    print(f"utterances: {args.n} (whisper-tiny.en); {args.pairs} interleaved round(s); WER {wer:.2f}; "
          f"bare loop: {bare[0].out.strip()}")
    print(_line("(b) bare loop", bare))
    print(_line("(s) run, running server", served, extra_cpu))
    print(_line("(i) run, server, in the CLI process", in_cli))
    print(_line("(e) run, ephemeral API", ephemeral, f"  (a new Prefect home's first start: {new_home_s:.1f} s)"))
    print(_line(f"(c) cached re-run, server (x{args.repeat})", cached,
                f"  (shards computed: {sum(computed)})"))
    print(_line("(ci) the same, in the CLI process", cached_in_cli))
    print(_ratio("CPU  (s)/(b)", _median(served, "cpu_s"), _median(bare, "cpu_s"), "<= 1.05"))
    print(_ratio("CPU  (s)+server/(b)", _median(served, "cpu_s") + statistics.median(server_cpu),
                 _median(bare, "cpu_s"), "(beside)"))
    print(_ratio("wall (s)/(b)", _median(served, "wall_s"), _median(bare, "wall_s"), "<= 1.02"))
    print(_by_round("CPU  (s)/(b)", served, bare, "cpu_s"))
    print(_by_round("wall (s)/(b)", served, bare, "wall_s"))
    print(_ratio("CPU  (i)/(b)", _median(in_cli, "cpu_s"), _median(bare, "cpu_s"), "(beside)"))
    print(_ratio("wall (i)/(b)", _median(in_cli, "wall_s"), _median(bare, "wall_s"), "(beside)"))
    print(_ratio("CPU  (e)/(b)", _median(ephemeral, "cpu_s"), _median(bare, "cpu_s"), "(beside)"))
    print(_ratio("wall (e)/(b)", _median(ephemeral, "wall_s"), _median(bare, "wall_s"), "(beside)"))
    print(_ratio("peak RSS (s)/(b)", _median(served, "max_rss_mb"), _median(bare, "max_rss_mb"), "<= 1.2"))
    flow_mb, engine_mb = _memory(_run_folders(tmp / "results-served-0")[0])
    print(f"{'  (s) by process':34s} flow {flow_mb:.1f} MB, model's own process {engine_mb} MB")
    print(f"{'cached re-run wall (c)':34s} {_median(cached, 'wall_s'):8.2f} s   goal <= 1.5 s, runs "
          f"{[round(m.wall_s, 2) for m in cached]}; in the CLI process (ci) {_median(cached_in_cli, 'wall_s'):.2f} s")
    print("numbers: " + ("identical across runs" + (" and the baseline" if args.baseline else "")
                         if not changed else f"DIFFER in {changed}"))
    if sum(computed):
        print("WARNING: a cached re-run computed shards")


if __name__ == "__main__":
    main()
