"""``audio-evals run`` and ``audio-evals retry``: one evaluation, with a progress bar and its result table."""

from __future__ import annotations

import os
import shlex
import sys
from typing import Annotated, Any, Optional

import typer

from audio_evals.pipeline.download import check_source
from audio_evals.pipeline.preflight import preflight
from audio_evals.redaction import MARK, redact, redact_text
from audio_evals.run.command import eval_cli
from audio_evals.run.plan import EvalPlan, plan_of
from audio_evals.run.spec import RunSpec
from audio_evals.run.summary import RunSummary
from audio_evals.storage import StoreFull
from cli import ephemeral, reference
from cli.console import ShardProgress, console, hide_prefect_failures, print_summary
from cli.errors import USER_ERRORS, fail, verbose_logs
from cli.interrupt import run_interruptible
from cli.options import folder_problem, spec_options
from flows.credentials import apply_store_credentials


@spec_options
def run(
    spec: RunSpec,
    device: Annotated[Optional[str], typer.Option("--device", help="Backend device (cpu, cuda, cuda:N, auto): --model-args device=...")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Backend batch size: --model-args batch_size=N.")] = None,
    store: Annotated[Optional[str], typer.Option("--store", envvar="AUDIO_EVALS_STORE", help="One place (path or s3://bucket/prefix) for cache, task results and run results.")] = None,
    task_runner: Annotated[str, typer.Option("--task-runner", help="thread (this process) or dask.")] = "thread",
    dask_address: Annotated[Optional[str], typer.Option("--dask-address", help="Dask scheduler (default: a LocalCluster of --workers processes).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Resolve everything, print the plan, stop before download.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect logs.")] = False,
    save: Annotated[Optional[str], typer.Option("--save", help="Also write the per-sample rows to this .jsonl file and the summary to <file>-overall.json; a bare NAME is <output>/<model>/<dataset>/NAME.jsonl.")] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", "-r", help="Reference option: resuming is the cache here, always on.")] = None,
    use_model_pool: Annotated[Optional[str], typer.Option("--use_model_pool", help="Reference option (auto|on|off): see --workers and --task-runner dask.")] = None,
    two_phase: Annotated[bool, typer.Option("--two_phase", help="Reference option: scoring always follows inference here.")] = False,
    debug_mode: Annotated[int, typer.Option("--debug_mode", help="Reference option: 1 shows the logs, as --verbose.")] = 0,
    agg: Annotated[Optional[str], typer.Option("--agg", help="Reference option, refused: the metric aggregates itself.")] = None,
    dataset_ref_col: Annotated[Optional[str], typer.Option("--dataset_ref_col", help="Reference option, refused: set reference_column in a registry entry.")] = None,
) -> None:
    """Evaluate a model on a dataset (download → preprocess → infer → score → report).

    The reference tool's options are accepted with the same meaning (see cli/reference.py).
    """
    if batch_size is not None and batch_size < 1:
        fail(f"--batch-size must be at least 1, not {batch_size}", 2)
    shortcuts = {k: v for k, v in (("device", device), ("batch_size", batch_size)) if v is not None}
    if shortcuts:  # spellings of two model_args entries
        spec = spec.replace(model_args={**spec.model_args, **shortcuts})
    try:
        plan = plan_of(spec)
        accepted = reference.notes(resume, use_model_pool, two_phase, agg, dataset_ref_col)
        check_source(plan.dataset)
    except USER_ERRORS as e:
        fail(str(e), 2)
    if dry_run:
        console.print_json(data={**plan_record(plan, spec), **_runs_here(plan, spec)})
        return
    for note in accepted:
        console.print(f"note: {note}", markup=False)
    try:
        preflight(plan, model=not spec.inf_file)  # before Prefect starts: a plain message; replies read from a file need no model
    except USER_ERRORS as e:
        fail(str(e), 2)
    if verbose or debug_mode:
        verbose_logs()
    spec = spec.replace(command=shlex.join(["audio-evals", *sys.argv[1:]]))
    if store:
        from audio_evals import storage

        if spec.cache_dir and spec.cache_dir == os.environ.get("AUDIO_EVALS_CACHE") and not _given("--cache-dir"):
            console.print(f"note: --store keeps the cache in {storage.join(store, 'cache')}; AUDIO_EVALS_CACHE "
                          "is not used (pass --cache-dir to keep it elsewhere)", markup=False, soft_wrap=True)
            spec = spec.replace(cache_dir=None)
        spec = spec.replace(cache_dir=spec.cache_dir or storage.join(store, "cache"),
                            output=storage.join(store, "results") if spec.output == "results" else spec.output)
    for option, folder in (("--output", spec.output), ("--cache-dir", spec.cache_dir)):
        problem = folder and folder_problem(option, folder)
        if problem:
            fail(problem, 2)
    api = _start_api()  # before Prefect is imported (the task runner's import is the first)
    summary = _run_flow(f"{spec.model} on {plan.dataset.name}", spec, verbose=bool(verbose or debug_mode),
                        runner=_task_runner(task_runner, spec.workers, dask_address), api=api)
    if save:
        summary.paths.update(reference.write_save(save, summary))
    print_summary(summary)
    _check_fail_rate(summary, spec.max_fail_rate)


def _given(option: str) -> bool:
    """Whether ``option`` is on the command line itself (not filled in from the environment)."""
    return any(arg == option or arg.startswith(f"{option}=") for arg in sys.argv[1:])


def plan_record(plan: EvalPlan, spec: RunSpec) -> dict[str, Any]:
    """The resolved plan of ``spec`` as ``--dry-run`` prints it, with the command that reproduces it, secrets masked."""
    return redact({
        "dataset": plan.dataset.model_dump(mode="json"), "task": plan.task.model_dump(mode="json"),
        "model": plan.model.model_dump(mode="json"), "prompt": plan.prompt.name,
        "prompt_messages": plan.prompt.model_dump(mode="json")["messages"],
        "generation": plan.generation, "sent": plan.sent_parameters(),
        "post_process": list(plan.post_process),
        "transcribe_with": {lang: m.name for lang, m in plan.transcribers.items()} or None,
        "eval_cli": eval_cli(spec.model_dump(mode="json")),
    })


def _runs_here(plan: EvalPlan, spec: RunSpec) -> dict[str, Any]:
    """Whether this machine can run the plan (the check a real run makes before Prefect starts), and why not."""
    from audio_evals.pipeline.preflight import check_backends

    try:
        if not spec.inf_file:
            check_backends(plan)
    except USER_ERRORS as e:
        return {"runs_here": False, "cannot_run_here": redact_text(str(e))}
    return {"runs_here": True}


def _check_fail_rate(summary: RunSummary, max_fail_rate: float) -> None:
    """A run whose samples mostly failed is not a result: exit 1, after the summary is printed."""
    rate = summary.counts.fail_rate
    if rate > max_fail_rate:
        fail(f"{100 * rate:.1f}% of samples failed (more than --max-fail-rate {max_fail_rate:g}); "
             f"causes per sample: {summary.paths['samples']}", 1)


def _task_runner(kind: str, workers: int, address: str | None) -> Any:
    """Threads in this process (default), or Dask: a LocalCluster here, a scheduler address in
    production. Each Dask worker process loads the model once and keeps it across shards."""
    if kind == "thread":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=max(1, workers))
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        if address:
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": max(1, workers), "threads_per_worker": 1, "processes": True})
    raise typer.BadParameter(f"--task-runner must be thread or dask, not {kind!r}")


def _buckets(spec: RunSpec) -> str:
    """The buckets a run writes to (``s3://name``), for a message about one that is missing."""
    from audio_evals import storage

    urls = (url for url in (spec.cache_dir, spec.output) if url and storage.is_remote(url))
    return ", ".join(sorted({"/".join(url.split("/")[:3]) for url in urls}))


def _start_api() -> ephemeral.EphemeralAPI | None:
    """Prefect's ephemeral API, starting in the background while the CLI goes on (none with PREFECT_API_URL)."""
    try:
        return ephemeral.start()
    except ValueError as e:
        fail(str(e), 2)


def _run_flow(label: str, spec: RunSpec, verbose: bool, runner: Any = None,
              api: ephemeral.EphemeralAPI | None = None) -> RunSummary:
    """Run the evaluate flow with a progress bar; user errors exit with a message, not a trace.

    ``api``: the ephemeral API server this call started, awaited before the flow's first API call."""
    from flows.evaluate import StrictModeFailure, evaluate

    if not verbose:
        hide_prefect_failures()
    flow = evaluate.with_options(task_runner=runner) if runner is not None else evaluate

    bar = ShardProgress(label)

    def evaluate_with_progress() -> RunSummary:
        if api is not None:
            api.ready()
        with bar:
            return flow(spec)

    def resume_hint() -> str:
        done = "no shard" if bar.total is None else f"{bar.done} of {bar.total} shards"
        command = redact_text(shlex.join(["audio-evals", *sys.argv[1:]]))
        return f"interrupted: {done} finished and kept in the cache; to resume, run the same command again: {command}"

    try:
        apply_store_credentials()  # before Dask workers start, so they inherit them
        return run_interruptible(evaluate_with_progress, resume_hint)
    except StrictModeFailure as e:
        fail(str(e), 1)
    except FileNotFoundError as e:
        if "bucket" in str(e).lower():  # not a lost file: the store itself is not there
            fail(f"{e} ({_buckets(spec)}): create the bucket first, or correct --store / --cache-dir / --output", 2)
        fail(f"file not found: {e.filename or e} (if a cache or store lost it, the same command recomputes it)", 2)
    except StoreFull as e:
        fail(f"{e.strerror}: finished shards are kept in the cache; make room (or fix the permissions) and run the same command again", 1)
    except USER_ERRORS as e:
        fail(str(e), 2)


def retry(
    run: Annotated[str, typer.Argument(help="Run folder (or its summary.json) of an earlier run.")],
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Re-run the failed shards of an earlier run as a new run beside it (recording its parent).

    Completed shards come from the cache. The earlier run's folder is never changed; the retry
    is refused when the dataset or options changed since that run.
    """
    from audio_evals.run import rerun as retries

    try:
        earlier = retries.load(run)
    except retries.RunRecordError as e:
        fail(str(e), 2)
    if MARK in earlier.spec.model_dump_json():
        fail(f"run {earlier.run_id} was given secrets, which are never recorded: run its command again "
             "with them instead of retrying it", 2)
    if earlier.nothing_to_do:
        console.print(earlier.nothing_to_do, markup=False, soft_wrap=True)
        return
    if verbose:
        verbose_logs()
    spec = earlier.spec.replace(command=shlex.join(["audio-evals", *sys.argv[1:]]))
    summary = _run_flow(f"retry {earlier.run_id}", spec, verbose, api=_start_api())
    console.print(f"retried {earlier.failed_shards} failed shard(s) of run {earlier.run_id} as run "
                  f"{summary.run_id}; now {len(summary.failed_shards)} failed")
    print_summary(summary)
