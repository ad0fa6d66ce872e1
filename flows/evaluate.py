"""The ``evaluate`` flow: download → preprocess → infer (per shard) → score → report."""

from __future__ import annotations

import shlex
import time
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from audio_evals import storage
from audio_evals.data.audio import DEFAULT_MAX_DURATION_S
from audio_evals.memory import peak_rss_mb
from audio_evals.models import generation_params, get_backend
from audio_evals.models.base import Backend, BackendUnavailable
from audio_evals.paths import audio_cache_dir, default_cache_dir
from audio_evals.pipeline import predictions
from audio_evals.pipeline.preflight import preflight
from audio_evals.pipeline.preprocess import will_decode
from audio_evals.pipeline.subset import draw_subset
from audio_evals.records import ModelOutput, PreparedRef, ShardResult
from audio_evals.redaction import install_log_redaction, redact, remember_secret_params
from audio_evals.run.command import eval_cli
from audio_evals.run.folder import build_summary, new_run_id, report_debris, reserved_run_dir, run_dir, run_identity
from audio_evals.run.plan import EvalPlan, plan_of
from audio_evals.run.rerun import check_unchanged
from audio_evals.run.spec import RunSpec
from audio_evals.run.summary import FailedShard, RunSummary, ShardStats
from flows import progress
from flows.credentials import apply_store_credentials
from flows.heartbeat import heartbeating
from flows.redacted import redacting_flow
from tasks.download import download
from tasks.gpu import needs_gpu
from tasks.infer import infer
from tasks.preprocess import preprocess
from tasks.report import report, run_key
from tasks.score import score

install_log_redaction()  # Prefect's log records (console and API) of this process are masked


class StrictModeFailure(RuntimeError):
    """Raised after the report is written when ``strict`` and anything failed."""


def _release_remote_result(future: PrefectFuture) -> None:
    """Let go of a collected shard's result where the task runner keeps it remotely (Dask).

    Dask keeps a future's result on the worker that computed it until this process releases the
    future, and recomputes a kept result whose worker is lost: without this, a killed worker's
    finished shards ran again (as cache hits; for real where the cache is refreshed, ``--fresh``).
    Other task runners' futures have nothing to release.
    """
    release = getattr(getattr(future, "wrapped_future", None), "release", None)
    if callable(release):
        release()


def _loads_here(backend: Backend, plan: EvalPlan) -> bool:
    """Whether this process may start the model's own process before any shard runs: the shards run
    in this process (threads, not Dask workers), and the model is not a GPU one, which loads only
    once it holds a slot of the ``gpu`` limit."""
    context = FlowRunContext.get()
    return (backend.own_process and not needs_gpu(plan.model) and context is not None
            and isinstance(context.task_runner, ThreadPoolTaskRunner))


def _run_shards(plan: EvalPlan, prepared: PreparedRef, fingerprint: dict, transcriber_fingerprints: dict,
                audio_dir: str, workers: int, fresh: bool, retries: int, retry_delay_s: float, cache_dir: str,
                progress_id: Any) -> tuple[dict[int, list[ModelOutput]], list[FailedShard], ShardStats, float]:
    """Submit shards with at most ``workers`` in flight; collect outputs, failed shards, shard stats
    and the longest model load of one shard (loads of shards running at once overlap).

    ``retries`` re-run a shard whose whole backend failed for a while (``infer``'s retry condition);
    per-request failures are retried by the model's client alone.
    """
    runner = infer.with_options(
        retries=retries,
        retry_delay_seconds=[retry_delay_s * 4**i for i in range(retries)] if retries else 0,
    )
    queue = list(prepared.shards)
    pending: dict[PrefectFuture, Any] = {}
    outputs: dict[int, list[ModelOutput]] = {}
    failed: list[FailedShard] = []
    total = len(queue)
    stats = ShardStats(total=total)
    longest_load_s = 0.0

    def submit() -> None:
        if queue:
            shard = queue.pop(0)
            pending[runner.submit(shard, plan.model, plan.generation, plan.prompt, fingerprint, audio_dir,
                                  cache_dir, fresh, plan.transcribers, transcriber_fingerprints)] = shard

    for _ in range(max(1, workers)):
        submit()
    while pending:
        future = next(as_completed(list(pending)))
        shard = pending.pop(future)
        future.wait()
        state = future.state
        if state.is_completed():
            result: ShardResult = future.result()
            outputs[shard.index] = result.outputs
            if state.name == "Cached":
                stats.cached += 1
            else:
                stats.computed += 1
                stats.inference_s += result.inference_s
                stats.audio_seconds += result.audio_seconds
                stats.model_load_s += result.model_load_s
                longest_load_s = max(longest_load_s, result.model_load_s)
                if result.engine_peak_rss_mb is not None:
                    stats.engine_peak_rss_mb = max(stats.engine_peak_rss_mb or 0.0, result.engine_peak_rss_mb)
        else:
            error = future.result(raise_on_failure=False)
            if isinstance(error, BackendUnavailable):
                # The model cannot run here at all (no GPU, weights, extra): stop, don't try every shard.
                raise error
            failed.append(FailedShard(index=shard.index, error=f"{type(error).__name__}: {error}"))
            stats.failed += 1
        _release_remote_result(future)
        done = len(outputs) + len(failed)
        update_progress_artifact(progress_id, progress=100.0 * done / total)
        progress.publish("shard", {"index": shard.index, "ok": shard.index in outputs, "n": shard.n,
                                   "done": done, "total": total})
        submit()
    return outputs, sorted(failed, key=lambda f: f.index), stats, longest_load_s


def run_name(parameters: dict[str, Any]) -> str:
    """The flow-run name of an evaluation: ``whisper-tiny.en · speech-sample-en · limit 26``."""
    return RunSpec.model_validate(parameters.get("spec", {})).title


@redacting_flow(name="evaluate", flow_run_name=run_name, validate_parameters=True)
def evaluate(spec: RunSpec = RunSpec()) -> RunSummary:
    """Evaluate ``spec.model`` on ``spec.dataset`` and write ``results/<model>/<dataset>/<run-id>/``.

    Ends Completed with failed shards listed in the summary; with ``strict`` it ends Failed
    (after writing the summary) when any sample or shard failed.
    """
    with heartbeating():
        return run_evaluation(spec)


def run_evaluation(spec: RunSpec) -> RunSummary:
    """The stages of one evaluation, as stage tasks of the calling flow (``evaluate``, or
    ``evaluate-and-check``, which adds the regression check without a second flow run).

    The reference tool's options: ``inf_file`` scores the replies of a predictions file instead
    of calling the model; ``rand`` scores a random subset drawn with ``seed``; ``post_process``
    and ``evaluator`` replace the reply's post-processing and the headline metric;
    ``drop_above_wer`` leaves out samples whose per-sample WER/CER (percent) exceeds it.
    ``parent`` (a run being retried) stops the run before inference if it would not evaluate
    what the parent did. ``model_args`` (device, batch size, ...) replace the registry entry's
    backend arguments.
    """
    logger = get_run_logger()
    remember_secret_params(spec.generation)
    apply_store_credentials()
    started = time.perf_counter()
    timings: dict[str, float] = {}
    peak_rss: dict[str, float] = {}
    plan = plan_of(spec)
    # A model (or transcriber) this machine cannot run, or a dataset it cannot reach, stops the run
    # before any download; replies read from a file need no model.
    preflight(plan, model=not spec.inf_file)
    cache_dir = storage.absolute(spec.cache_dir or default_cache_dir())
    backend = get_backend(plan.model, plan.generation)
    fingerprint = predictions.fingerprint(spec.inf_file) if spec.inf_file else backend.fingerprint()
    run_id = spec.run_id or new_run_id()
    command_line = eval_cli(spec.model_dump(mode="json"))  # as given, before the defaults below fill it in
    folder = run_dir(spec.output, plan, run_id)  # checked now: a bad or used run id stops before any work
    report_debris(folder)
    with reserved_run_dir(folder):  # a second run with this id is refused now, before any work
        t = time.perf_counter()
        dataset_ref = download(plan.dataset, cache_dir, spec.limit, spec.fresh)
        chosen = draw_subset(dataset_ref, spec.rand, spec.seed, cache_dir) if spec.rand else dataset_ref  # the rows this run evaluates
        timings["download"] = time.perf_counter() - t
        peak_rss["download"] = peak_rss_mb()

        # Artifact keys name the run as it was asked for, before the defaults below fill it in.
        keys = {kind: run_key(kind, spec) for kind in ("progress", "eval", "eval-report")}
        t = time.perf_counter()
        requirements = backend.requirements
        # The cap in force is recorded with the options, and so are the absolute folders.
        spec = spec.replace(max_duration_s=spec.max_duration_s or requirements.max_duration_s or DEFAULT_MAX_DURATION_S,
                            cache_dir=cache_dir, registry_paths=[storage.absolute(p) for p in spec.registry_paths])
        # New audio (``will_decode``) means shards that call the model: its own process loads the
        # weights while this one decodes. Otherwise the first shard that misses the cache loads it.
        if not spec.inf_file and _loads_here(backend, plan) and will_decode(
                chosen, cache_dir, requirements.sample_rate, spec.shard_size, spec.max_duration_s, plan.skip_key(),
                spec.fresh):
            backend.start_loading()
        prepared = preprocess(
            chosen, plan, cache_dir, requirements.sample_rate, spec.shard_size, spec.max_duration_s, spec.fresh,
        )
        timings["preprocess"] = time.perf_counter() - t
        peak_rss["preprocess"] = peak_rss_mb()
        logger.info("%s: %d samples in %d shards (%d failed, %d skipped)", plan.dataset.name,
                    prepared.n_prepared, len(prepared.shards), prepared.n_failed, prepared.n_skipped)
        # What a retry compares: recorded without secrets, so both sides compare alike.
        identity = run_identity(plan.redacted(), chosen, prepared, redact(fingerprint), **spec.shaping(),
                                post_process=list(plan.post_process))
        if spec.parent:
            check_unchanged(spec.parent, identity)

        t = time.perf_counter()
        if spec.inf_file:
            outputs = predictions.shard_outputs(predictions.read_predictions(spec.inf_file, dataset_ref.samples_path),
                                                prepared.shards, spec.inf_file)
            failed_shards: list[FailedShard] = []
            load_s = 0.0
            shard_stats = ShardStats(total=len(prepared.shards), from_inf_file=len(outputs))
        else:
            progress_id = create_progress_artifact(progress=0.0, key=keys["progress"],
                                                   description=f"Shards of {run_id}")
            progress.publish("start", {"total": len(prepared.shards), "samples": prepared.n_prepared})
            effective_workers = spec.workers if backend.thread_safe else 1
            transcriber_fingerprints = {lang: get_backend(m, generation_params(m)).fingerprint()
                                        for lang, m in plan.transcribers.items()}
            outputs, failed_shards, shard_stats, load_s = _run_shards(plan, prepared, fingerprint, transcriber_fingerprints,
                                                               audio_cache_dir(cache_dir), effective_workers, spec.fresh,
                                                               spec.shard_retries, spec.retry_delay_s, cache_dir,
                                                               progress_id)
        timings["infer"] = time.perf_counter() - t

        t = time.perf_counter()
        scored = score(plan.task, prepared, outputs, {f.index: f.error for f in failed_shards}, folder, spec.strict,
                       plan.post_process,
                       plan.dataset.macro_over, spec.drop_above_wer)
        timings["score"] = time.perf_counter() - t

        # Everything ``audio-evals retry`` needs to re-run this exact evaluation (a retry is a new run of its own).
        options = spec.model_dump(mode="json", exclude={"run_id", "parent", "command"})
        timings["total"] = time.perf_counter() - started
        peak_rss["total"] = peak_rss_mb()
        summary = build_summary(
            run_id=run_id, parent_run_id=spec.parent and spec.parent.run_id, identity=identity, plan=plan.redacted(),
            dataset=chosen, prepared=prepared, model_fingerprint=redact(fingerprint), scored=scored,
            failed_shards=failed_shards, shard_stats=shard_stats,
            timings={k: round(v, 3) for k, v in timings.items()}, peak_rss_mb=peak_rss, options=redact(options),
            command=spec.command or shlex.join(["audio-evals", "run", "--dataset", spec.dataset, "--model", spec.model]),
            eval_cli=command_line, model_load_s=round(load_s, 3),
        ).redacted()  # secret parameters, URL credentials and known keys masked
        paths = report(folder, summary, keys["eval"], keys["eval-report"])
        progress.publish("end", {"folder": folder})
        summary = summary.model_copy(update={"paths": paths})
        if spec.strict and (failed_shards or scored.counts.failed):
            raise StrictModeFailure(
                f"{scored.counts.failed} samples and {len(failed_shards)} shards failed (strict); summary: {paths['summary']}"
            )
        return summary
