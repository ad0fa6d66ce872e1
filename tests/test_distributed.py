"""A real distributed run: ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1, one
worker SIGKILLed in the middle of a shard; every shard still completes once, no row lost or doubled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from audio_evals import storage
from tests.conftest import calls_made, scripted_run_command, slow_scripted
from tests.processes import REPO, free_port, prefect_api_env, start_process, stop_process, wait_for

SHARD_SIZE = 4  # scripted_run_command's --shard-size
LIMIT = 24  # English clips evaluated: 6 whole shards
DELAY_S = 0.4  # per sample: a shard generates for 1.6 s, long enough to be killed in the middle of one


@dataclass
class DaskCluster:
    """A scheduler and its workers, each a process group of its own; ``client`` watches the scheduler."""

    address: str
    client: Any  # distributed.Client
    workers: dict[str, subprocess.Popen]  # worker address -> its process
    logs: list[Path] = field(default_factory=list)


def _log_tails(logs: list[Path], chars: int = 3000) -> str:
    """The end of each process's log, for failure messages."""
    return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}" for log in logs if log.exists())


@pytest.fixture
def dask_cluster(prefect_api, tmp_path) -> Iterator[DaskCluster]:
    """``dask scheduler`` plus two single-threaded ``dask worker`` processes, loopback only.

    Workers import the project from this checkout (``PYTHONPATH``) and get the test harness's
    Prefect API in their environment (the flow's settings also travel with each task).
    """
    from distributed import Client

    address = f"tcp://127.0.0.1:{free_port()}"
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = prefect_api_env(PYTHONPATH=pythonpath)
    processes: list[subprocess.Popen] = []
    logs = [tmp_path / "scheduler.log", tmp_path / "worker-0.log", tmp_path / "worker-1.log"]
    client = None
    try:
        processes.append(start_process([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                        "--port", address.rsplit(":", 1)[1], "--no-dashboard"], env, logs[0]))
        for i in (0, 1):
            # No nanny: the worker is the process, so a SIGKILL loses it for good (nothing restarts it).
            # --death-timeout: a worker whose scheduler is gone exits by itself.
            processes.append(start_process([sys.executable, "-m", "distributed.cli.dask_worker", address,
                                            "--host", "127.0.0.1", "--nthreads", "1", "--nworkers", "1",
                                            "--no-nanny", "--no-dashboard", "--name", f"worker-{i}",
                                            "--death-timeout", "30"], env, logs[1 + i]))
        try:
            client = Client(address, timeout=60)
            client.wait_for_workers(2, timeout=60)
        except (OSError, TimeoutError) as e:
            raise AssertionError(f"the Dask cluster did not come up: {e}\n{_log_tails(logs)}") from e
        client.get_task_stream()  # installs the scheduler's task-stream plugin: who ran what, from now on
        by_name = {info["name"]: addr for addr, info in client.scheduler_info()["workers"].items()}
        yield DaskCluster(address, client, {by_name[f"worker-{i}"]: processes[1 + i] for i in (0, 1)}, logs)
    finally:
        if client is not None:
            client.close(timeout=10)
        for process in reversed(processes):
            stop_process(process, grace_s=5)


def _finished_by_worker(cluster: DaskCluster) -> Counter[str]:
    """Tasks that finished, per worker address (the scheduler's task stream)."""
    return Counter(record["worker"] for record in cluster.client.get_task_stream())


def _victim_mid_shard(cluster: DaskCluster, calls_file: Path) -> tuple[str, list[str]] | None:
    """A worker that has finished a shard and is generating the next one: (address, its keys in flight).

    Every shard the scheduler has in flight has started generating once the scripted model's calls
    cover the finished shards plus the shards in flight (the model logs a shard's ids as it starts).
    """
    processing = {worker: keys for worker, keys in cluster.client.processing().items() if keys}
    finished = _finished_by_worker(cluster)
    generating = len(calls_made(calls_file)) // SHARD_SIZE - sum(finished.values())
    if generating < sum(len(keys) for keys in processing.values()):
        return None
    for worker, keys in processing.items():
        if finished[worker] >= 1:
            return worker, list(keys)
    return None


def _rows(results: Path) -> list[dict[str, Any]]:
    (summary,) = results.rglob("summary.json")
    return list(storage.read_jsonl(str(summary.parent / "samples.jsonl")))


def _summary(results: Path) -> dict[str, Any]:
    (summary,) = results.rglob("summary.json")
    return json.loads(summary.read_text(encoding="utf-8"))


def _infer_task_runs(output: Path, shards: int, timeout_s: float = 30) -> list[Any]:
    """The Prefect API's infer task runs of the evaluate flow run that wrote into ``output``.

    Task runs reach the API as events, recorded asynchronously: polls until there are ``shards``
    of them, all in a final state, or ``timeout_s`` passed; returns the last list read either way.
    """
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        (flow_run,) = [r for r in client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["evaluate"])))
                       if r.parameters["spec"]["output"] == str(output)]
        while True:
            task_runs = [t for t in client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
                         if t.name.startswith("infer-shard-")]
            settled = len(task_runs) >= shards and all(t.state is not None and t.state.is_final() for t in task_runs)
            if settled or time.monotonic() > deadline:
                return task_runs
            time.sleep(0.5)


def test_killed_dask_worker_mid_shard_loses_and_doubles_no_row(
        prefect_api, dask_cluster, tmp_path, scripted_registry, sample_manifest, record_property):
    """``--dask-address`` run, one worker SIGKILLed while generating its second shard; compared with
    an uninterrupted run. Prints and records (``record_property``) the figures."""
    from audio_evals import evaluate

    started = time.monotonic()
    # Answers with a few mistakes, so the metric is not trivially zero.
    answers = {r["id"]: r["text"] for r in sample_manifest}
    for sample_id in list(answers)[1:6]:
        answers[sample_id] = answers[sample_id].rsplit(" ", 1)[0]
    scripted_registry["responses"].write_text(json.dumps(answers), encoding="utf-8")

    # The uninterrupted run to compare with: same model and shards, in this process, no delay.
    uninterrupted = evaluate(dataset="speech-sample-en", model="scripted", registry_paths=[scripted_registry["path"]],
                             limit=LIMIT, shard_size=SHARD_SIZE, workers=4, cache_dir=str(tmp_path / "cache-whole"),
                             output=str(tmp_path / "results-whole"))
    scripted_registry["calls"].unlink()

    slow_scripted(scripted_registry, DELAY_S)
    # --fresh: a finished shard Dask ran again would call the model again (not be a cache hit), and show.
    command = scripted_run_command(scripted_registry["path"], tmp_path, "killed") + [
        "--limit", str(LIMIT), "--fresh", "--task-runner", "dask", "--dask-address", dask_cluster.address,
        "--workers", "2"]
    log = tmp_path / "run.log"
    run = start_process(command, prefect_api_env(), log)
    try:
        def victim() -> tuple[str, list[str]] | None:
            assert run.poll() is None, f"the run ended before a worker could be killed:\n{_log_tails([log])}"
            return _victim_mid_shard(dask_cluster, scripted_registry["calls"])

        victim_address, in_flight = wait_for("a worker in the middle of its second shard", victim, 90, every_s=0.05)
        finished_before_kill = _finished_by_worker(dask_cluster)[victim_address]
        results_held = [key for key, workers in dask_cluster.client.who_has().items() if victim_address in workers]
        os.killpg(dask_cluster.workers[victim_address].pid, signal.SIGKILL)
        dask_cluster.workers[victim_address].wait(timeout=10)
        returncode = run.wait(timeout=90)
    finally:
        stop_process(run, grace_s=5)
    assert returncode == 0, _log_tails([log, *dask_cluster.logs])

    summary = _summary(tmp_path / "results-killed")
    rows = _rows(tmp_path / "results-killed")
    ids = Counter(r["id"] for r in rows)
    expected_ids = {r["id"] for r in _rows(tmp_path / "results-whole")}
    calls = Counter(calls_made(scripted_registry["calls"]))
    sent_twice = sorted(i for i, n in calls.items() if n > 1)
    finished = _finished_by_worker(dask_cluster)
    task_runs = _infer_task_runs(tmp_path / "results-killed", summary["shards"]["total"])
    figures = {
        "rows": len(rows), "expected_rows": len(expected_ids),
        "duplicate_rows": sum(n - 1 for n in ids.values()), "lost_rows": len(expected_ids - set(ids)),
        "shards": summary["shards"]["total"], "shards_computed": summary["shards"]["computed"],
        "shards_cached": summary["shards"]["cached"], "shards_failed": summary["shards"]["failed"],
        "killed_worker_shards_finished": finished_before_kill, "killed_worker_shards_in_flight": len(in_flight),
        "killed_worker_results_held": len(results_held),
        "survivor_shards_finished": sum(n for w, n in finished.items() if w != victim_address),
        "samples_sent_twice": len(sent_twice),
        "prefect_infer_task_runs": len(task_runs),
        "prefect_infer_task_states": dict(Counter(r.state_name for r in task_runs)),
        "metrics": [m["value"] for m in summary["metrics"]],
        "metrics_uninterrupted": [m.value for m in uninterrupted.metrics],
        "test_s": round(time.monotonic() - started, 1),
    }
    print(f"killed dask worker: {json.dumps(figures)}")
    for name, value in figures.items():
        record_property(name, value)

    assert dask_cluster.workers[victim_address].returncode == -signal.SIGKILL
    assert set(ids) == expected_ids and figures["duplicate_rows"] == 0, figures
    assert summary["failed_shards"] == [] and figures["shards_failed"] == 0, figures
    assert figures["shards_computed"] + figures["shards_cached"] == figures["shards"] == uninterrupted.shards.total
    assert figures["metrics"] == figures["metrics_uninterrupted"] and figures["metrics"][0] > 0, figures
    assert summary["counts"] == uninterrupted.counts.model_dump(), (summary["counts"], uninterrupted.counts)
    # The killed worker's shard was being generated when it died, and was generated again on the survivor.
    assert len(sent_twice) == SHARD_SIZE * len(in_flight), figures
    assert finished[victim_address] == finished_before_kill  # nothing more ran on the dead worker
    # Prefect saw one task run per shard (the re-run kept its id), each Completed once.
    assert sorted(r.name for r in task_runs) == [f"infer-shard-{i}" for i in range(figures["shards"])], figures
    assert figures["prefect_infer_task_states"] == {"Completed": figures["shards"]}, figures
