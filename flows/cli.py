"""audio-evals: run evaluations, list the registry, run suites.

'audio-evals run --dataset D --model M' and the reference tool's form
'python audio_evals/main.py --dataset D --model M [--prompt P]' are the same command.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from typing import Annotated, Any, Optional

# Before Prefect is imported: readable console output unless --verbose, no analytics.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_TASK_RUNS_LEVEL", "WARNING")

import typer

from audio_evals import local_server
from audio_evals.data import check_source
from audio_evals.data.hub import DatasetUnavailable
from audio_evals.models.base import BackendUnavailable
from audio_evals.overrides import parse_assignments, with_overrides
from audio_evals.plan import preflight, resolve
from audio_evals.plugins import UnknownName
from audio_evals.redaction import MARK, redact, redact_text, remember_secret_params
from audio_evals.registry import RegistryError, load_registry
from audio_evals.results import check_run_id
from audio_evals.summary import RunSummary
from flows import reference_cli
from flows.console import ShardProgress, console, hide_prefect_failures, print_summary
from flows.credentials import apply_store_credentials
from flows.interrupt import run_interruptible, start_ephemeral_api
from flows.options import folder_problem, run_option_problem

# Plain help (no rich boxes): no option name or word cut at 80 columns, flags shown without a type.
app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, rich_markup_mode=None)

USER_ERRORS = (UnknownName, RegistryError, BackendUnavailable, DatasetUnavailable, FileNotFoundError, ValueError)


def _registry_paths(values: list[str]) -> list[str]:
    """The reference tool takes ``--registry_path "DIR1 DIR2"``; accept both forms."""
    return [p for v in values for p in v.split()]


def _params(values: list[str], option: str = "--param") -> dict[str, Any]:
    try:
        params = parse_assignments(values, option)
    except ValueError as e:
        _fail(str(e), 2)
    remember_secret_params(params)  # masked wherever the run writes or logs
    return params


def _verbose_logs() -> None:
    for handler in ("", "_FLOW_RUNS", "_TASK_RUNS"):
        os.environ[f"PREFECT_LOGGING_HANDLERS_CONSOLE{handler}_LEVEL"] = "INFO"


def _fail(message: str, code: int) -> None:
    from rich.markup import escape

    console.print(f"[bold red]error:[/bold red] {escape(redact_text(message))}", soft_wrap=True)  # one line, never folded
    raise typer.Exit(code)


@app.command()
def run(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Registry name, or a JSONL manifest path/URL.")] = "speech-sample",
    model: Annotated[str, typer.Option("--model", "-m", help="Registry model name.")] = "whisper-tiny.en",
    prompt: Annotated[Optional[str], typer.Option("--prompt", "-p", help="Registry prompt (default: the task's).")] = None,
    task: Annotated[Optional[str], typer.Option("--task", help="Override the dataset's task.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Evaluate the first N samples (0: all, as in the reference).")] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="Results root folder or s3:// URL.")] = "results",
    workers: Annotated[int, typer.Option("--workers", help="Shards in flight at once.")] = 1,
    shard_size: Annotated[int, typer.Option("--shard-size", help="Samples per shard (the unit of caching and retry).")] = 32,
    registry_path: Annotated[list[str], typer.Option("--registry-path", "--registry_path", help="Extra registry folder(s).")] = [],
    param: Annotated[list[str], typer.Option("--param", "-P", metavar="KEY=VALUE", help="Generation parameter override key=value.")] = [],
    model_arg: Annotated[list[str], typer.Option("--model-args", "-A", metavar="KEY=VALUE", help="Backend argument key=value (recorded; refused, naming the accepted ones, if the backend does not take it).")] = [],
    device: Annotated[Optional[str], typer.Option("--device", help="Backend device (cpu, cuda, cuda:N, auto): --model-args device=...")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Backend batch size: --model-args batch_size=N.")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Ignore caches and recompute everything.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Score failed samples as errors; exit non-zero on failures.")] = False,
    max_duration: Annotated[Optional[float], typer.Option("--max-duration", help="Reject clips longer than this (s); default: the model's limit, else 1800.")] = None,
    cache_dir: Annotated[Optional[str], typer.Option("--cache-dir", envvar="AUDIO_EVALS_CACHE", help="Dataset/decoded-audio/shard cache.")] = None,
    run_id: Annotated[Optional[str], typer.Option("--run-id", help="Id of this run (default: new); names one run only.")] = None,
    store: Annotated[Optional[str], typer.Option("--store", envvar="AUDIO_EVALS_STORE", help="One place (path or s3://bucket/prefix) for cache, task results and run results.")] = None,
    task_runner: Annotated[str, typer.Option("--task-runner", help="thread (this process) or dask.")] = "thread",
    dask_address: Annotated[Optional[str], typer.Option("--dask-address", help="Dask scheduler (default: a LocalCluster of --workers processes).")] = None,
    model_revision: Annotated[Optional[str], typer.Option("--model-revision", help="Published model revision to load and record.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Resolve everything, print the plan, stop before download.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect logs.")] = False,
    save: Annotated[Optional[str], typer.Option("--save", help="Also write the per-sample rows to this .jsonl file and the summary to <file>-overall.json; a bare NAME is <output>/<model>/<dataset>/NAME.jsonl.")] = None,
    inf_file: Annotated[Optional[str], typer.Option("--inf_file", "--inf-file", help="Score the replies in this file (a samples.jsonl of an earlier run, or the reference tool's record jsonl) without running the model.")] = None,
    rand: Annotated[Optional[int], typer.Option("--rand", help="Score a random subset of N samples (after --limit), drawn with --seed.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the --rand draw (recorded in the summary).")] = 0,
    post_process: Annotated[list[str], typer.Option("--post_process", "--post-process", help="Post-processing step(s) replacing the prompt's and task's (e.g. json_content).")] = [],
    evaluator: Annotated[Optional[str], typer.Option("--evaluator", help="Metric replacing the task's headline metric (wer, cer, bleu, acc, choice, mmau, g_eval).")] = None,
    max_fail_rate: Annotated[float, typer.Option("--max-fail-rate", help="Exit 1 when more than this share of samples failed (0-1).")] = 0.5,
    drop_above_wer: Annotated[Optional[float], typer.Option("--drop-above-wer", help="Leave out samples whose per-sample WER/CER (percent) exceeds this, e.g. 1000; counted as dropped.")] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", "-r", help="Reference option: resuming is the cache here, always on.")] = None,
    use_model_pool: Annotated[Optional[str], typer.Option("--use_model_pool", help="Reference option (auto|on|off): see --workers and --task-runner dask.")] = None,
    two_phase: Annotated[bool, typer.Option("--two_phase", help="Reference option: scoring always follows inference here.")] = False,
    debug_mode: Annotated[int, typer.Option("--debug_mode", help="Reference option: 1 shows the logs, as --verbose.")] = 0,
    agg: Annotated[Optional[str], typer.Option("--agg", help="Reference option, refused: the metric aggregates itself.")] = None,
    dataset_ref_col: Annotated[Optional[str], typer.Option("--dataset_ref_col", help="Reference option, refused: set reference_column in a registry entry.")] = None,
) -> None:
    """Evaluate a model on a dataset (download → preprocess → infer → score → report).

    The reference tool's options are accepted with the same meaning (see flows/reference_cli.py).
    """
    problem = run_option_problem(limit, workers, shard_size, max_duration, batch_size)
    if problem:
        _fail(problem, 2)
    paths = _registry_paths(registry_path)
    generation = _params(param)
    model_args = _params(model_arg, "--model-args") | {k: v for k, v in (("device", device), ("batch_size", batch_size)) if v is not None}
    try:
        plan = resolve(load_registry(paths), dataset, model, prompt, generation, task, model_args=model_args)
        plan = with_overrides(plan, post_process or None, evaluator)
        accepted = reference_cli.notes(resume, use_model_pool, two_phase, agg, dataset_ref_col)
        if run_id is not None:
            check_run_id(run_id)
        check_source(plan.dataset)
    except USER_ERRORS as e:
        _fail(str(e), 2)
    if dry_run:
        console.print_json(data=redact({
            "dataset": plan.dataset.model_dump(mode="json"), "task": plan.task.model_dump(mode="json"),
            "model": plan.model.model_dump(mode="json"), "prompt": plan.prompt.name,
            "generation": plan.generation, "sent": plan.sent_parameters(),
            "post_process": list(plan.post_process),
            "transcribe_with": {lang: m.name for lang, m in plan.transcribers.items()} or None,
            "eval_cli": plan.eval_cli(),
        }))
        return
    for note in accepted:
        console.print(f"note: {note}", markup=False)
    try:
        preflight(plan, model=not inf_file)  # before Prefect starts: a plain message; replies read from a file need no model
    except USER_ERRORS as e:
        _fail(str(e), 2)
    if verbose or debug_mode:
        _verbose_logs()
    os.environ["AUDIO_EVALS_COMMAND"] = shlex.join(["audio-evals", *sys.argv[1:]])
    if store:
        from audio_evals import storage

        cache_dir = cache_dir or storage.join(store, "cache")
        output = storage.join(store, "results") if output == "results" else output
    for option, folder in (("--output", output), ("--cache-dir", cache_dir)):
        problem = folder and folder_problem(option, folder)
        if problem:
            _fail(problem, 2)
    summary = _run_flow(
        f"{model} on {plan.dataset.name}", verbose=bool(verbose or debug_mode),
        runner=_task_runner(task_runner, workers, dask_address), model_revision=model_revision, model_args=model_args or None,
        dataset=dataset, model=model, prompt=prompt, task=task, limit=limit or None, shard_size=shard_size,
        workers=workers, output=output, registry_paths=paths, generation=generation, fresh=fresh,
        strict=strict, max_duration_s=max_duration, cache_dir=cache_dir, run_id=run_id, inf_file=inf_file,
        rand=rand, seed=seed, post_process=post_process or None, evaluator=evaluator, drop_above_wer=drop_above_wer,
    )
    if save:
        summary.paths.update(reference_cli.write_save(save, summary))
    print_summary(summary)
    _check_fail_rate(summary, max_fail_rate)


def _check_fail_rate(summary: RunSummary, max_fail_rate: float) -> None:
    """A run whose samples mostly failed is not a result: exit 1, after the summary is printed."""
    rate = summary.counts.fail_rate
    if rate > max_fail_rate:
        _fail(f"{100 * rate:.1f}% of samples failed (more than --max-fail-rate {max_fail_rate:g}); "
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


def _run_flow(label: str, verbose: bool, runner: Any = None, **params: Any) -> RunSummary:
    """Run the evaluate flow with a progress bar; user errors exit with a message, not a trace."""
    from flows.evaluate import StrictModeFailure, evaluate

    if not verbose:
        hide_prefect_failures()
    flow = evaluate.with_options(task_runner=runner) if runner is not None else evaluate

    bar = ShardProgress(label)

    def evaluate_with_progress() -> RunSummary:
        start_ephemeral_api()
        with bar:
            return flow(**params)

    def resume_hint() -> str:
        done = "no shard" if bar.total is None else f"{bar.done} of {bar.total} shards"
        command = redact_text(shlex.join(["audio-evals", *sys.argv[1:]]))
        return f"interrupted: {done} finished and kept in the cache; to resume, run the same command again: {command}"

    try:
        apply_store_credentials()  # before Dask workers start, so they inherit them
        return run_interruptible(evaluate_with_progress, resume_hint)
    except StrictModeFailure as e:
        _fail(str(e), 1)
    except FileNotFoundError as e:
        _fail(f"file not found: {e.filename or e} (if a cache or store lost it, the same command recomputes it)", 2)
    except USER_ERRORS as e:
        _fail(str(e), 2)
    raise AssertionError("unreachable")


@app.command()
def retry(
    run: Annotated[str, typer.Argument(help="Run folder (or its summary.json) of an earlier run.")],
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Re-run the failed shards of an earlier run as a new run beside it (recording its parent).

    Completed shards come from the cache. The earlier run's folder is never changed; the retry
    is refused when the dataset or options changed since that run.
    """
    from audio_evals import retry as retries

    try:
        earlier = retries.load(run)
    except retries.RunRecordError as e:
        _fail(str(e), 2)
    if MARK in json.dumps(earlier.params):
        _fail(f"run {earlier.run_id} was given secrets, which are never recorded: run its command again "
              "with them instead of retrying it", 2)
    if verbose:
        _verbose_logs()
    summary = _run_flow(f"retry {earlier.run_id}", verbose, **earlier.params)
    console.print(f"retried {earlier.failed_shards} failed shard(s) of run {earlier.run_id} as run "
                  f"{summary.run_id}; now {len(summary.failed_shards)} failed")
    print_summary(summary)


@app.command("list")
def list_entries(
    kind: Annotated[str, typer.Argument(help="datasets | models | prompts | tasks")],
    registry_path: Annotated[list[str], typer.Option("--registry-path", "--registry_path", help="Extra registry folder(s).")] = [],
    as_json: Annotated[bool, typer.Option("--json", help="Every field of every entry, as a JSON list.")] = False,
) -> None:
    """List registry entries."""
    from rich.markup import escape
    from rich.table import Table

    try:
        registry = load_registry(_registry_paths(registry_path))
        entries = registry.section(kind)
    except USER_ERRORS as e:
        _fail(str(e), 2)
    if as_json:
        console.print_json(data=registry.listing(kind))
        return
    table = Table(title=f"{kind} ({len(entries)})")
    table.add_column("name", style="bold")
    table.add_column("details")
    table.add_column("description")
    for name, entry in sorted(entries.items()):
        details = {
            "datasets": lambda e: f"task={e.task} source={e.source.type}:{getattr(e.source, 'repo', None) or e.source.path}",
            "models": lambda e: f"backend={e.backend} needs={e.needs}",
            "prompts": lambda e: " ".join(c.type for m in e.messages for c in m.contents),
            "tasks": lambda e: f"metric={e.metric} prompt={e.default_prompt}",
        }[kind](entry)
        table.add_row(escape(name), escape(details), escape(entry.description))
    console.print(table)


@app.command()
def view(
    run: Annotated[str, typer.Argument(help="Run folder (or its summary.json).")],
    run_b: Annotated[Optional[str], typer.Argument(help="A second run, compared with RUN sample by sample.")] = None,
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Page file or folder (default: view.html in RUN's folder; with RUN_B, compare-A-B.html here).")] = None,
) -> None:
    """Every sample of a run in one offline HTML page; with RUN_B, what got better or worse and a paired CI."""
    from audio_evals.report.view import write_comparison, write_view

    try:
        page = write_comparison(run, run_b, out) if run_b else write_view(run, out)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e), 2)
    console.print(page, soft_wrap=True, markup=False)


from flows import cli_service  # noqa: E402  (suite, publish, serve, server commands)

cli_service.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console entry point; a first argument that is an option means ``run`` (reference form)."""
    args = list(sys.argv[1:] if argv is None else argv)
    local_server.use_running()  # before Prefect loads: a running `audio-evals server` unless PREFECT_API_URL is set
    if args and args[0].startswith("-") and args[0] not in ("--help", "-h"):
        args.insert(0, "run")
    if args[:1] == ["run"]:
        args = ["run", *reference_cli.normalise_argv(args[1:])]
    app(args=args, prog_name="audio-evals")


if __name__ == "__main__":
    main()
