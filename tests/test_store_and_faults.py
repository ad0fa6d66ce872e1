"""Object-store runs (moto S3 server on loopback) and a kill -9 in the middle of inference."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import s3fs

from audio_evals import storage
from tests.conftest import calls_made, scripted_run_command, slow_scripted
from tests.processes import prefect_api_env

ROOT = Path(__file__).resolve().parents[1]


def test_s3_store_second_run_from_fresh_local_state_hits_the_bucket_cache(
        prefect_api, tmp_path, monkeypatch, scripted_registry, s3_bucket):
    from audio_evals import evaluate

    store = f"s3://{s3_bucket}/audio-evals"
    params = dict(dataset="speech-sample-en", model="scripted", registry_paths=[scripted_registry["path"]],
                  cache_dir=f"{store}/cache", output=f"{store}/results", shard_size=8)
    monkeypatch.setenv("AUDIO_EVALS_LOCAL_CACHE", str(tmp_path / "machine-a"))
    first = evaluate(**params)
    calls_first = len(calls_made(scripted_registry["calls"]))
    monkeypatch.setenv("AUDIO_EVALS_LOCAL_CACHE", str(tmp_path / "machine-b"))  # a machine with nothing local
    second = evaluate(**params)

    assert calls_first == 26 and len(calls_made(scripted_registry["calls"])) == 26  # zero calls the second time
    assert second.shards.cached == 4 and second.shards.computed == 0
    assert [m.value for m in second.metrics] == [m.value for m in first.metrics]
    fs = s3fs.S3FileSystem()
    summary_path = second.paths["summary"]
    assert summary_path.startswith("s3://") and fs.exists(summary_path)
    assert json.loads(fs.cat_file(summary_path))["counts"]["samples"] == 26
    entries = fs.find(f"{s3_bucket}/audio-evals/cache/entries/infer")  # shard results: JSON in the bucket
    assert len(entries) == 4 and all(json.loads(fs.cat_file(e))["payload"]["outputs"] for e in entries)
    assert "testing" not in fs.cat_file(summary_path).decode()  # credentials never reach results


def test_kill_9_mid_inference_then_rerun_recomputes_only_unfinished_shards(
        prefect_api, tmp_path, scripted_registry, sample_manifest):
    from prefect.settings import PREFECT_API_URL

    # Answers with a few mistakes, so the metric is not trivially zero; 0.25 s per sample.
    answers = {r["id"]: r["text"] for r in sample_manifest}
    for sample_id in list(answers)[1:6]:
        answers[sample_id] = answers[sample_id].rsplit(" ", 1)[0]
    scripted_registry["responses"].write_text(json.dumps(answers), encoding="utf-8")
    models = Path(scripted_registry["path"]) / "models.yaml"
    models.write_text(models.read_text().replace("calls_file:", "delay_s: 0.25, calls_file:"), encoding="utf-8")
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    command = scripted_run_command(scripted_registry["path"], tmp_path, "a")

    process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(calls_made(scripted_registry["calls"])) < 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    sent_before_kill = calls_made(scripted_registry["calls"])
    assert 10 <= len(sent_before_kill) < 26

    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    resent = calls_made(scripted_registry["calls"])[len(sent_before_kill):]
    assert set(sent_before_kill) | set(resent) == set(answers) - {r["id"] for r in sample_manifest if r["lang"] != "en"}
    assert len(resent) < 26  # finished shards came from the cache

    baseline = subprocess.run(scripted_run_command(scripted_registry["path"], tmp_path, "b"),
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert baseline.returncode == 0, baseline.stderr
    (resumed,) = (tmp_path / "results-a").rglob("summary.json")
    (uninterrupted,) = (tmp_path / "results-b").rglob("summary.json")
    rows = list(storage.read_jsonl(str(resumed.parent / "samples.jsonl")))
    assert sorted(r["id"] for r in rows) == sorted(set(r["id"] for r in rows)) and len(rows) == 26
    metrics = [json.loads(p.read_text())["metrics"] for p in (resumed, uninterrupted)]
    assert metrics[0][0]["value"] == metrics[1][0]["value"] > 0


def test_dask_task_runner_spreads_shards_over_workers_that_load_the_model_once(
        prefect_api, tmp_path, scripted_registry):
    loads = tmp_path / "loads.txt"
    slow_scripted(scripted_registry, 0.05, loads_file=str(loads))
    command = scripted_run_command(scripted_registry["path"], tmp_path, "dask") + ["--task-runner", "dask", "--workers", "2"]
    process = subprocess.Popen(command, cwd=ROOT, env=prefect_api_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    output, _ = process.communicate(timeout=400)
    assert process.returncode == 0, output
    (summary,) = (tmp_path / "results-dask").rglob("summary.json")
    assert json.loads(summary.read_text())["shards"]["computed"] == 7
    assert sorted(calls_made(scripted_registry["calls"])) == sorted(set(calls_made(scripted_registry["calls"])))
    pids = loads.read_text().split()
    assert len(pids) == len(set(pids)) and 1 <= len(pids) <= 2  # one load per worker process
    assert str(process.pid) not in pids  # the flow process hands inference to the workers


def test_s3_outage_mid_run_then_the_same_command_completes(prefect_api, tmp_path, scripted_registry,
                                                           moto_server, s3_bucket):
    import boto3

    slow_scripted(scripted_registry, 0.2)
    store = f"s3://{s3_bucket}/store"
    command = scripted_run_command(scripted_registry["path"], tmp_path, "s3")[:-4] + ["--store", store]
    env = prefect_api_env()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while len(calls_made(scripted_registry["calls"])) < 8 and time.monotonic() < deadline:
        time.sleep(0.1)
    moto_server.stop()  # the object store goes away mid-inference ...
    time.sleep(3)
    moto_server.start()  # ... and comes back empty (moto keeps state in memory)
    boto3.client("s3", endpoint_url=moto_server.endpoint_url).create_bucket(Bucket=s3_bucket)
    first_output, _ = process.communicate(timeout=400)
    if process.returncode != 0:  # failed cleanly: a message naming the cause, not a hang
        assert "error: file not found" in first_output or "error:" in first_output.splitlines()[-1], first_output

    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    summaries = fs.glob(f"{s3_bucket}/store/results/scripted/speech-sample-en/*/summary.json")
    last = json.loads(fs.cat_file(sorted(summaries)[-1]))
    assert last["counts"]["samples"] == 26 and last["failed_shards"] == []
    rows = [json.loads(line) for line in fs.cat_file(sorted(summaries)[-1].replace("summary.json", "samples.jsonl")).splitlines()]
    assert len(rows) == len({r["id"] for r in rows}) == 26


def test_a_store_whose_bucket_does_not_exist_is_one_error_line_saying_to_create_it(
        prefect_api, tmp_path, scripted_registry, s3_bucket):
    """A wrong bucket is not a lost file: one ``error:`` line names the bucket and says to create it, exit 2."""
    missing = f"{s3_bucket}-absent"
    command = scripted_run_command(scripted_registry["path"], tmp_path, "nobucket")[:-4] + ["--store", f"s3://{missing}/store"]
    done = subprocess.run(command, cwd=ROOT, env=prefect_api_env(), capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and missing in errors[0] and "create the bucket first" in errors[0], output
    assert "Traceback" not in output and "recomputes it" not in output, output


def test_s3_credentials_from_a_prefect_secret_block_never_reach_the_results(prefect_api, tmp_path, scripted_registry,
                                                                           s3_bucket):
    from prefect.blocks.system import Secret

    planted = "block-SECRET-value-42"
    Secret(value={"aws_access_key_id": "block-key-id", "aws_secret_access_key": planted}).save(
        "audio-evals-test-s3", overwrite=True)
    env = {k: v for k, v in prefect_api_env().items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    env["AWS_EC2_METADATA_DISABLED"] = "true"  # no instance-metadata lookups on a machine without credentials
    command = scripted_run_command(scripted_registry["path"], tmp_path, "block")[:-4] + ["--store", f"s3://{s3_bucket}/store"]

    without = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert without.returncode != 0 and "credentials" in (without.stdout + without.stderr).lower()

    env["AUDIO_EVALS_AWS_SECRET_BLOCK"] = "audio-evals-test-s3"
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    objects = fs.find(f"{s3_bucket}/store")
    assert any(o.endswith("summary.json") for o in objects)
    assert not [o for o in objects if planted.encode() in fs.cat_file(o)] and planted not in done.stdout + done.stderr
