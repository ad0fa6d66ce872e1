"""CLI commands for suites and the service side: ``suite``, ``leaderboard``, ``publish``, ``serve``, ``watch``, ``server``.

Heavy modules are imported inside the commands so ``audio-evals list`` stays fast.
"""

from __future__ import annotations

import asyncio
import os
from typing import Annotated, Any

import typer

from audio_evals.run.spec import RunOptions
from audio_evals.run.suites import Suite, load_suite
from audio_evals.watch import DEFAULT_CONFIG, MODEL_PUBLISHED, load_config, model_resource, poll, state_path
from cli import server as local_server
from cli.console import console, err_console, hide_prefect_failures
from cli.errors import USER_ERRORS, fail, verbose_logs
from cli.options import spec_options


def _require_api() -> None:
    """Events only reach automations through a server; without one they would vanish silently."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        fail("no Prefect server: start one on this machine with `audio-evals server start`, or set "
             "PREFECT_API_URL (your server's http://host:port/api, or your Prefect Cloud workspace URL "
             "with PREFECT_API_KEY)", 2)


def _emit(event: str, *, resource: dict[str, str], payload: dict[str, Any]) -> None:
    """Send one event and wait until it is sent, so a failure is an error here, not a log line."""
    from prefect.events import Event
    from prefect.events.clients import get_events_client
    from prefect.settings import PREFECT_API_URL
    from websockets.exceptions import WebSocketException

    async def send() -> None:
        async with get_events_client() as client:
            await client.emit(Event(event=event, resource=resource, payload=payload))

    try:
        asyncio.run(send())
    except (OSError, WebSocketException) as e:
        fail(f"cannot send {event} to the Prefect server at {PREFECT_API_URL.value()}: {type(e).__name__}: {e}", 1)


def _print_table(title: str, records: list[dict[str, Any]]) -> None:
    """A models × datasets table (``Leaderboard.records``) on the console."""
    from rich.markup import escape
    from rich.table import Table

    from audio_evals.run.summary import format_value

    table = Table(title=escape(title))
    columns = list(dict.fromkeys(k for row in records for k in row))
    for column in columns:
        table.add_column(escape(column), style="bold" if column == "model" else None)
    for row in records:
        table.add_row(*(format_value(v) if isinstance(v := row.get(c), float) or v is None else escape(str(v))
                        for c in columns))
    console.print(table)


def _print_suite(result: dict[str, Any]) -> None:
    from rich.markup import escape

    _print_table(result["suite"], result["leaderboard"])
    for run in result["runs"]:
        if run["error"]:
            console.print(f"[red]{escape(run['model'])} on {escape(run['dataset'])}: {escape(run['error'])}[/red]")
    for r in result["regressions"]:
        console.print(f"[yellow]regression: {escape(r['model'])} {escape(r['metric'])} on {escape(r['dataset'])} "
                      f"{r['old']:.2f} → {r['new']:.2f}[/yellow]")
    console.print(f"report: {result['paths']['report']}\nhtml:   {result['paths']['html']}", markup=False)


@spec_options
def suite(
    options: RunOptions,
    suite_file: Annotated[str, typer.Argument(help="Suite YAML file, or a bundled suite's name (sample, kimi-audio, step-audio-r1.1).")],
    model: Annotated[list[str], typer.Option("--model", "-m", help="Run for these models only (or instead of the suite's).")] = [],
    max_parallel: Annotated[int, typer.Option("--max-parallel", help="Evaluations at once.")] = 1,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print each row's resolved plan (and its filter and note), run nothing.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect logs.")] = False,
) -> None:
    """Run every evaluation of a suite, then write its report (markdown, chart, HTML). Exit 1 if any did not run."""
    if verbose:
        verbose_logs()
    try:
        loaded = load_suite(suite_file)  # a missing or invalid suite file is one line, before Prefect starts
    except USER_ERRORS as e:
        fail(str(e), 2)
    from flows.suite import select_models
    from flows.suite import suite as suite_flow

    if dry_run:
        console.print_json(data=_suite_plans(select_models(loaded, model or None), options))
        return

    if not verbose:
        hide_prefect_failures()  # each run's error is in the table below
    try:
        result = suite_flow(suite_file=suite_file, models=model or None, max_parallel=max_parallel, options=options)
    except USER_ERRORS as e:
        fail(str(e), 2)
    _print_suite(result)
    if any(run["error"] for run in result["runs"]):
        raise typer.Exit(1)


def _suite_plans(suite: Suite, options: RunOptions) -> list[dict[str, Any]]:
    """Each row's resolved plan, the ``--drop-above-wer`` filter it runs with and the note its report
    row carries; a row that cannot run says why."""
    from audio_evals.report.markdown import filter_note
    from audio_evals.run.plan import plan_of
    from cli.run import plan_record

    plans = []
    for number, (section, row) in enumerate(suite.rows(), 1):
        spec = row.spec(options)
        note = [row.note] if row.note else []
        if spec.drop_above_wer is not None:
            note.append(filter_note(spec.drop_above_wer))
        head = {"row": number, "section": section.family, "measure": row.measure,
                "drop_above_wer": spec.drop_above_wer, "note": "; ".join(note)}
        try:
            plans.append({**head, **plan_record(plan_of(spec), spec)})
        except USER_ERRORS as e:
            plans.append({**head, "dataset": row.dataset, "model": row.model, "not_runnable": str(e)})
    return plans


def leaderboard(
    results_dir: Annotated[str, typer.Argument(help="Results root of earlier runs (<model>/<dataset>/<run>).")] = "results",
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the table as markdown.")] = False,
) -> None:
    """Models × datasets of the latest usable runs under RESULTS_DIR, with averages and RTFx; no suite file.

    A run over its fail-rate limit is not used (the one before it is); runs with options that change
    the numbers (--limit, -P, -A, ...) get a row of their own; unreadable summaries are named and skipped.
    """
    from audio_evals.report import leaderboard_of_results

    try:
        board = leaderboard_of_results(results_dir)
    except (FileNotFoundError, ValueError) as e:
        fail(str(e), 2)
    for line in board.skipped + board.excluded:
        err_console.print(f"warning: {line}", markup=False, soft_wrap=True)
    if markdown:
        console.print(board.markdown(), markup=False, soft_wrap=True)
    else:
        _print_table(board.title, board.records())


def publish(
    model: Annotated[str, typer.Argument(help="Registry model name.")],
    revision: Annotated[str, typer.Option("--revision", help="The new revision (hub commit, folder name, tag).")],
    source: Annotated[str, typer.Option("--source", help="Where the revision comes from (recorded in the event).")] = "cli",
) -> None:
    """Announce a new model revision: emits audio_evals.model.published (on-model-published runs the suite)."""
    _require_api()
    _emit(MODEL_PUBLISHED, resource=model_resource(model),
          payload={"model": model, "revision": revision, "source": source})
    console.print(f"published {model} revision {revision} ({MODEL_PUBLISHED})")


def watch(
    config: Annotated[str, typer.Option("--config", help="Watch config (model sources).")] = DEFAULT_CONFIG,
    output: Annotated[str, typer.Option("--output", "-o", help="Results store holding watch-state.json.")] = "results",
) -> None:
    """Poll the model sources once; announce each new revision (needs PREFECT_API_URL)."""
    _require_api()
    announced = poll(load_config(config), state_path(output), _emit)
    console.print(f"{len(announced)} new revision(s)" + "".join(f"\n  {a['model']} {a['revision']}" for a in announced))


def serve(ctx: typer.Context) -> None:
    """Serve the deployments (evaluate, nightly-suite, on-model-published, watch-models); see --help."""
    from deployments.serve import cli

    cli(args=ctx.args, prog_name="audio-evals serve")


server = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                     help="A long-lived local Prefect server that every CLI call on this machine then uses.")


@server.command("start")
def server_start(
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 for the API and the UI.")] = local_server.DEFAULT_PORT,
) -> None:
    """Start 'prefect server start' in the background; CLI calls use it (unless PREFECT_API_URL is set).

    With one running already, says where it is and exits 0: the wanted state holds."""
    if (already := local_server.running()) is not None:
        console.print(f"a server is already running (pid {already.pid}) at {already.ui_url}; nothing to start",
                      markup=False, soft_wrap=True)
        return
    try:
        running = local_server.start(port)
    except local_server.ServerError as e:
        fail(str(e), 1)
    console.print(f"Prefect server running (pid {running.pid}); every run shows in the UI at {running.ui_url}\n"
                  f"log: {running.log}\nstop it with: audio-evals server stop", markup=False, soft_wrap=True)
    if os.environ.get("PREFECT_API_URL"):
        console.print(f"note: PREFECT_API_URL is set ({os.environ['PREFECT_API_URL']}): calls where it is set use "
                      "that, not this server", markup=False, soft_wrap=True)


@server.command("status")
def server_status() -> None:
    """Say whether a server is running and where; exit 1 when none is."""
    running = local_server.running()
    if running is None:
        console.print("no audio-evals server is running (start one with: audio-evals server start)", markup=False)
        raise typer.Exit(1)
    health = "healthy" if local_server.healthy(running.api_url) else "not answering"
    runner = local_server.runner(running)
    console.print(f"running (pid {running.pid}, {health}): UI {running.ui_url}, API {running.api_url}, "
                  f"log {running.log}; warm runner {f'pid {runner.pid}' if runner else 'not running'}",
                  markup=False, soft_wrap=True)


@server.command("stop")
def server_stop() -> None:
    """Stop the server and remove its state file; with none running, says so and exits 0."""
    if local_server.running() is None:
        console.print("no audio-evals server is running; nothing to stop", markup=False)
        return
    try:
        stopped = local_server.stop()
    except local_server.ServerError as e:
        fail(str(e), 1)
    console.print(f"stopped the server at {stopped.ui_url} (pid {stopped.pid})", markup=False)


def serve_results(
    results_dir: Annotated[str, typer.Argument(help="The results folder to serve (its index.html lists every run).")] = "results",
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (0: any free one).")] = 8765,
) -> None:
    """Serve a results folder over HTTP on 127.0.0.1 until Ctrl-C, so the links in the Prefect UI's
    artifacts and in suite reports (made http://127.0.0.1:PORT/... while it runs) open in a browser."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
    from pathlib import Path

    from audio_evals.report import links

    root = Path(results_dir).resolve()
    if not root.is_dir():
        fail(f"no results folder at {results_dir}", 2)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
            pass  # one line per request would drown the address printed below

    try:
        httpd = ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Quiet, directory=str(root)))
    except OSError as e:
        fail(f"cannot listen on 127.0.0.1:{port}: {e.strerror or e}; choose another with --port", 2)
    url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    links.record(links.ResultsServer(root=str(root), url=url, pid=os.getpid()))
    console.print(f"serving {root} at {url} (runs: {url}index.html); links made now open there; Ctrl-C stops",
                  markup=False, soft_wrap=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
        if (current := links.running()) is not None and current.pid == os.getpid():
            links.state_path().unlink(missing_ok=True)


def register(app: typer.Typer) -> None:
    app.add_typer(server, name="server")
    app.command()(suite)
    app.command()(leaderboard)
    app.command()(publish)
    app.command()(watch)
    app.command("serve-results")(serve_results)
    app.command(add_help_option=False,
                context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(serve)
