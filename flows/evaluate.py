"""The ``evaluate`` flow: download → preprocess → infer (per shard) → score → report."""

from __future__ import annotations

import os
import resource
import shlex
import time
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.filesystems import RemoteFileSystem
from prefect.futures import PrefectFuture, as_completed

from audio_evals import storage
from audio_evals.data import PreparedRef, check_source
from audio_evals.data.audio import DEFAULT_MAX_DURATION_S
from audio_evals.models import generation_params, get_backend
from audio_evals.models.base import BackendUnavailable
from audio_evals.paths import audio_cache_dir, default_cache_dir
from audio_evals.plan import EvalPlan, resolve
from audio_evals.redaction import install_log_redaction, redact, redact_strings, remember_secret_params
from audio_evals.registry import load_registry
from audio_evals.results import build_summary, new_run_id, run_dir
from flows import progress
from flows.credentials import apply_store_credentials
from flows.redacted import redacting_flow
from tasks.download import download
from tasks.infer import infer
from tasks.preprocess import preprocess
from tasks.report import artifact_key, report
from tasks.score import score


install_log_redaction()  # Prefect's log records (console and API) of this process are masked


class StrictModeFailure(RuntimeError):
    """Raised after the report is written when ``strict`` and anything failed."""


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports kilobytes)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def result_storage(cache_dir: str) -> Path | RemoteFileSystem:
    """Prefect task results (the shard cache) live beside the dataset cache, local or S3.

    Prefect needs a remote block saved server-side; it holds only the location, never
    credentials (s3fs reads those from the standard AWS environment).
    """
    location = storage.join(cache_dir, "prefect-results")
    if not storage.is_remote(location):
        return Path(location)
    block = RemoteFileSystem(basepath=location)
    block.save(f"audio-evals-results-{storage.stable_hash(location)[:12]}", overwrite=True)
    return block


def _run_shards(plan: EvalPlan, prepared: PreparedRef, fingerprint: dict, asr_fingerprint: dict | None,
                audio_dir: str, workers: int, fresh: bool, retries: int, retry_delay_s: float, store: Any,
                progress_id: Any) -> tuple[dict, dict, dict]:
    """Submit shards with at most ``workers`` in flight; collect outputs and failures."""
    runner = infer.with_options(
        result_storage=store, refresh_cache=fresh, retries=retries,
        retry_delay_seconds=[retry_delay_s * 4**i for i in range(retries)] if retries else 0,
    )
    queue = list(prepared.shards)
    pending: dict[PrefectFuture, Any] = {}
    outputs: dict[int, list[dict]] = {}
    errors: dict[int, str] = {}
    stats = {"computed": 0, "cached": 0, "failed": 0, "inference_s": 0.0, "audio_seconds": 0.0}
    total = len(queue)

    def submit() -> None:
        if queue:
            shard = queue.pop(0)
            pending[runner.submit(shard, plan.model, plan.generation, plan.prompt, fingerprint, audio_dir,
                                  plan.asr, asr_fingerprint)] = shard

    for _ in range(max(1, workers)):
        submit()
    while pending:
        future = next(as_completed(list(pending)))
        shard = pending.pop(future)
        future.wait()
        state = future.state
        if state.is_completed():
            result = future.result()
            outputs[shard.index] = result["outputs"]
            cached = state.name == "Cached"
            stats["cached" if cached else "computed"] += 1
            if not cached:
                stats["inference_s"] += result["inference_s"]
                stats["audio_seconds"] += result["audio_seconds"]
        else:
            error = future.result(raise_on_failure=False)
            if isinstance(error, BackendUnavailable):
                # The model cannot run here at all (no GPU, weights, extra): stop, don't try every shard.
                raise error
            errors[shard.index] = f"{type(error).__name__}: {error}"
            stats["failed"] += 1
        done = len(outputs) + len(errors)
        update_progress_artifact(progress_id, progress=100.0 * done / total)
        progress.publish("shard", {"index": shard.index, "ok": shard.index in outputs, "n": shard.n,
                                   "done": done, "total": total})
        submit()
    return outputs, errors, stats


@redacting_flow(name="evaluate", flow_run_name="{model} on {dataset}", validate_parameters=True)
def evaluate(
    dataset: str = "speech-sample",
    model: str = "whisper-tiny.en",
    prompt: str | None = None,
    task: str | None = None,
    limit: int | None = None,
    shard_size: int = 32,
    workers: int = 1,
    output: str = "results",
    registry_paths: list[str] | None = None,
    generation: dict[str, Any] | None = None,
    fresh: bool = False,
    strict: bool = False,
    max_duration_s: float | None = None,
    cache_dir: str | None = None,
    run_id: str | None = None,
    shard_retries: int = 2,
    retry_delay_s: float = 2.0,
    model_revision: str | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on ``dataset`` and write ``results/<model>/<dataset>/<run-id>/``.

    Ends Completed with failed shards listed in the summary; with ``strict`` it ends Failed
    (after writing the summary) when any sample or shard failed.
    """
    logger = get_run_logger()
    remember_secret_params(generation or {})
    apply_store_credentials()
    started = time.perf_counter()
    timings: dict[str, float] = {}
    peak_rss: dict[str, float] = {}
    plan = resolve(load_registry(registry_paths or []), dataset, model, prompt, generation, task, model_revision)
    check_source(plan.dataset)
    cache_dir = cache_dir or default_cache_dir()
    backend = get_backend(plan.model, plan.generation)
    backend.check()  # a model this machine cannot run stops the run before any download
    fingerprint = backend.fingerprint()
    run_id = run_id or new_run_id(storage.stable_hash([plan.dataset.name, plan.model.name, plan.prompt.name, fingerprint]))
    store = result_storage(cache_dir)

    t = time.perf_counter()
    dataset_ref = download.with_options(result_storage=store, refresh_cache=fresh)(plan.dataset, cache_dir, limit)
    timings["download"] = time.perf_counter() - t
    peak_rss["download"] = peak_rss_mb()

    t = time.perf_counter()
    requirements = backend.requirements
    if max_duration_s is None:  # the cap in force is recorded with the options
        max_duration_s = requirements.max_duration_s or DEFAULT_MAX_DURATION_S
    prepared = preprocess.with_options(result_storage=store, refresh_cache=fresh)(
        dataset_ref, plan, cache_dir, requirements.sample_rate, shard_size, max_duration_s,
    )
    timings["preprocess"] = time.perf_counter() - t
    peak_rss["preprocess"] = peak_rss_mb()
    logger.info("%s: %d samples in %d shards (%d failed, %d skipped)", plan.dataset.name,
                prepared.n_prepared, len(prepared.shards), prepared.n_failed, prepared.n_skipped)

    t = time.perf_counter()
    key = artifact_key("progress", plan.model.name, plan.dataset.name)
    progress_id = create_progress_artifact(progress=0.0, key=key, description=f"Shards of {run_id}")
    progress.publish("start", {"total": len(prepared.shards), "samples": prepared.n_prepared})
    effective_workers = workers if backend.thread_safe else 1
    asr_fingerprint = get_backend(plan.asr, generation_params(plan.asr)).fingerprint() if plan.asr else None
    outputs, errors, shard_stats = _run_shards(plan, prepared, fingerprint, asr_fingerprint, audio_cache_dir(cache_dir),
                                               effective_workers, fresh,
                                               shard_retries, retry_delay_s, store, progress_id)
    timings["infer"] = time.perf_counter() - t

    t = time.perf_counter()
    folder = run_dir(output, plan, run_id)
    scored = score(plan.task, prepared, outputs, errors, folder, strict)
    timings["score"] = time.perf_counter() - t

    failed_shards = [{"index": i, "error": e} for i, e in sorted(errors.items())]
    # Everything ``audio-evals retry`` needs to re-run this exact evaluation.
    options = {"dataset": dataset, "model": model, "prompt": prompt, "task": task, "limit": limit,
               "shard_size": shard_size, "workers": workers, "strict": strict, "fresh": fresh,
               "max_duration_s": max_duration_s, "cache_dir": cache_dir, "output": output,
               "registry_paths": registry_paths or [], "generation": generation or {},
               "model_revision": model_revision}
    timings["total"] = time.perf_counter() - started
    peak_rss["total"] = peak_rss_mb()
    summary = redact_strings(build_summary(  # secret parameters, URL credentials and known keys masked
        run_id=run_id, plan=plan.redacted(), dataset=dataset_ref, prepared=prepared,
        model_fingerprint=redact(fingerprint), scored=scored, failed_shards=failed_shards, shard_stats=shard_stats,
        timings={k: round(v, 3) for k, v in timings.items()}, peak_rss_mb=peak_rss, options=redact(options),
        command=os.environ.get("AUDIO_EVALS_COMMAND") or shlex.join(["audio-evals", "run", "--dataset", dataset, "--model", model]),
    ))
    paths = report(folder, summary)
    progress.publish("end", {"folder": folder})
    summary["paths"] = paths
    if strict and (failed_shards or scored.counts["failed"]):
        raise StrictModeFailure(
            f"{scored.counts['failed']} samples and {len(failed_shards)} shards failed (strict); summary: {paths['summary']}"
        )
    return summary
