"""Runs that meet a fault: a per-sample refusal, a full disk, a run id used twice, debris of crashed runs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from audio_evals.storage import StoreFull
from tests.conftest import ROOT, calls_made, scripted_run_command, slow_scripted

ENGLISH = 26


def _params(tmp_path: Path, registry: dict, **extra) -> dict:
    return dict(dataset="speech-sample-en", model="scripted", registry_paths=[registry["path"]],
                cache_dir=str(tmp_path / "cache"), output=str(tmp_path / "results"), shard_size=8, **extra)


@contextmanager
def warnings_of(name: str) -> Iterator[list[str]]:
    """The messages logger ``name`` logs inside the block (Prefect's logging config stops propagation)."""
    seen: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)


def test_a_per_sample_model_error_is_not_cached_so_the_next_run_sends_that_sample_again(
        prefect_api, tmp_path, scripted_registry, sample_manifest):
    from audio_evals import evaluate

    refused = next(r["id"] for r in sample_manifest if r["lang"] == "en")
    scripted_registry["faults"].write_text(json.dumps({"error_ids": [refused]}), encoding="utf-8")
    first = evaluate(**_params(tmp_path, scripted_registry))
    assert first.counts.failed == 1
    sent = len(calls_made(scripted_registry["calls"]))

    scripted_registry["faults"].write_text("{}", encoding="utf-8")  # the key is fixed, say
    second = evaluate(**_params(tmp_path, scripted_registry))
    assert calls_made(scripted_registry["calls"])[sent:] == [refused]  # only the refused sample went again
    assert second.counts.failed == 0 and second.counts.scored == ENGLISH


@pytest.fixture
def full_disk(tmp_path) -> Iterator[Path]:
    """A 64 KiB tmpfs: room for a run folder, not for its files."""
    mount = tmp_path / "full"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=False,
                      capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    (mount / "filler").write_bytes(b"\0" * (60 << 10))
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_named_with_its_path_leaves_no_empty_run_folder_and_loses_no_shard(
        prefect_api, tmp_path, scripted_registry, full_disk):
    from audio_evals import evaluate

    with pytest.raises(StoreFull, match=rf"No space left on device writing {full_disk}/scripted/"):
        evaluate(**{**_params(tmp_path, scripted_registry), "output": str(full_disk)})
    assert not list((full_disk / "scripted" / "speech-sample-en").iterdir())  # no run folder left behind
    sent = len(calls_made(scripted_registry["calls"]))
    assert sent == ENGLISH

    again = evaluate(**_params(tmp_path, scripted_registry))  # with room: every shard from the cache
    assert len(calls_made(scripted_registry["calls"])) == sent and again.shards.cached == again.shards.total


def test_a_full_disk_in_the_cli_is_one_line(prefect_api, tmp_path, scripted_registry, full_disk):
    from prefect.settings import PREFECT_API_URL

    argv = [*scripted_run_command(scripted_registry["path"], tmp_path, "cli")[:-2], "--output", str(full_disk)]
    done = subprocess.run(argv, cwd=ROOT, env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},
                          capture_output=True, text=True, timeout=300, check=False)
    errors = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("error:")]
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    (line,) = errors
    assert line.startswith(f"error: No space left on device writing {full_disk}/") and "kept in the cache" in line


def test_the_same_explicit_run_id_twice_is_refused_before_inference(prefect_api, tmp_path, scripted_registry):
    from audio_evals import evaluate

    slow_scripted(scripted_registry, 0.2)
    params = _params(tmp_path, scripted_registry, run_id="nightly-1")
    first = threading.Thread(target=evaluate, kwargs=params)
    first.start()
    deadline = time.monotonic() + 120
    while not calls_made(scripted_registry["calls"]) and time.monotonic() < deadline:
        time.sleep(0.05)  # the first run is inferring now
    sent_before = len(calls_made(scripted_registry["calls"]))
    with pytest.raises(ValueError, match="run folder .*nightly-1 already exists"):
        evaluate(**{**params, "cache_dir": str(tmp_path / "other-cache")})  # nothing of it cached
    first.join(timeout=300)
    assert len(calls_made(scripted_registry["calls"])) == ENGLISH >= sent_before  # the second sent nothing


def test_debris_of_crashed_runs_is_cleaned_or_reported_on_the_next_run(prefect_api, tmp_path, scripted_registry):
    from audio_evals import evaluate

    crashed = tmp_path / "results" / "scripted" / "speech-sample-en" / "20260101T000000.000000Z-dead"
    crashed.mkdir(parents=True)
    leftover = crashed / ".tmp-999999999-samples.jsonl"  # no such process
    leftover.write_bytes(b"{}\n" * 1000)
    with warnings_of("audio_evals.run.folder") as warned:
        evaluate(**_params(tmp_path, scripted_registry))
    assert not leftover.exists()
    assert any("removed 1 temporary file" in m for m in warned), warned
    assert any("have no summary.json" in m and crashed.name in m for m in warned), warned


def test_audio_evals_cache_in_the_environment_does_not_keep_the_cache_local_despite_store(
        prefect_api, tmp_path, scripted_registry):
    from prefect.settings import PREFECT_API_URL

    store, elsewhere = tmp_path / "store", tmp_path / "env-cache"
    argv = [*scripted_run_command(scripted_registry["path"], tmp_path, "x")[:-4], "--store", str(store)]
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "AUDIO_EVALS_CACHE": str(elsewhere)}
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert list((store / "cache" / "entries" / "infer").rglob("*.json")) and not elsewhere.exists()
    assert f"note: --store keeps the cache in {store / 'cache'}; AUDIO_EVALS_CACHE is not used" in done.stdout


def test_a_store_outage_shorter_than_the_retry_budget_costs_a_pause_not_the_write(moto_server, s3_bucket):
    import boto3

    from audio_evals import storage

    def outage() -> None:
        time.sleep(15)  # longer than the S3 client's own retries
        moto_server.start()  # moto keeps state in memory: the bucket comes back empty
        boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1").create_bucket(Bucket=s3_bucket)

    moto_server.stop()
    back = threading.Thread(target=outage)
    back.start()
    url = f"s3://{s3_bucket}/store/cache/entries/x.json"
    storage.write_bytes(url, b"finished answers")
    back.join()
    assert storage.read_bytes(url) == b"finished answers"

