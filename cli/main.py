"""audio-evals: run evaluations, list the registry, run suites, serve the deployments."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from audio_evals.registry import load_registry
from cli import reference, service
from cli import server as local_server
from cli.console import console
from cli.errors import USER_ERRORS, fail
from cli.options import registry_paths
from cli.run import retry, run

# Plain help (no rich boxes): no option name or word cut at 80 columns, flags shown without a type.
app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]})


def _version(value: bool) -> None:
    if value:
        from audio_evals import __version__

        console.print(f"audio-evals {__version__}", markup=False)
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """audio-evals: run evaluations, list the registry, run suites, serve the deployments."""
app.command()(run)
app.command()(retry)
service.register(app)


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
        registry = load_registry(registry_paths(registry_path))
        entries = registry.section(kind)
    except USER_ERRORS as e:
        fail(str(e), 2)
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
    from audio_evals.report.compare import compare_runs, console_lines
    from audio_evals.report.samples import read_run
    from audio_evals.report.view import write_compared, write_view

    try:
        if run_b is None:
            console.print(write_view(run, out), soft_wrap=True, markup=False)
            return
        comparison = compare_runs(read_run(run), read_run(run_b))
        page = write_compared(comparison, out)
    except (FileNotFoundError, ValueError) as e:
        fail(str(e), 2)
    for line in console_lines(comparison):
        console.print(line, soft_wrap=True, markup=False)
    console.print(page, soft_wrap=True, markup=False)


def main(argv: list[str] | None = None) -> None:
    """Console entry point; a first argument that is an option means ``run`` (reference form)."""
    args = list(sys.argv[1:] if argv is None else argv)
    local_server.use_running()  # before Prefect loads: a running `audio-evals server` unless PREFECT_API_URL is set
    if args and args[0].startswith("-") and args[0] not in ("--help", "-h", "--version"):
        args.insert(0, "run")
    if args[:1] == ["run"]:
        args = ["run", *reference.normalise_argv(args[1:])]
    sys.exit(_invoke(args))


def _invoke(args: list[str]) -> int:
    """The app's exit code; click's own errors (a misspelt option, a missing argument) read as ours do:
    one ``error:`` line saying what to do, exit 2, instead of a usage block over ``Error:``."""
    try:
        code = app(args=args, prog_name="audio-evals", standalone_mode=False)
    except typer.Abort:  # Ctrl-C while click itself was prompting or parsing
        return 130
    except typer.TyperException as e:  # typer's click: UsageError, BadParameter, NoSuchOption, ...
        if type(e).__name__ == "NoArgsIsHelpError":  # a bare command group: its help is the answer
            console.print(e.format_message(), markup=False, soft_wrap=True)
            return 0
        ctx = getattr(e, "ctx", None)
        command = ctx.command_path if ctx is not None else "audio-evals"
        message = " ".join(e.format_message().split()) if hasattr(e, "format_message") else str(e)
        console.print(f"error: {message} (see: {command} --help)", markup=False, soft_wrap=True)
        return getattr(e, "exit_code", 2)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    main()
