"""How a command ends on a user error: one ``error:`` line and an exit code, never a traceback."""

from __future__ import annotations

import os
from typing import NoReturn

import typer

from audio_evals.data.hf_mirror import DatasetUnavailable
from audio_evals.models.base import BackendUnavailable
from audio_evals.plugins import UnknownName
from audio_evals.redaction import redact_text
from audio_evals.registry import RegistryError
from cli.console import console

USER_ERRORS = (UnknownName, RegistryError, BackendUnavailable, DatasetUnavailable, FileNotFoundError, ValueError)


def fail(message: str, code: int) -> NoReturn:
    from rich.markup import escape

    console.print(f"[bold red]error:[/bold red] {escape(redact_text(message))}", soft_wrap=True)  # one line, never folded
    raise typer.Exit(code)


def verbose_logs() -> None:
    """Prefect's logs on the console (``--verbose``)."""
    for handler in ("", "_FLOW_RUNS", "_TASK_RUNS"):
        os.environ[f"PREFECT_LOGGING_HANDLERS_CONSOLE{handler}_LEVEL"] = "INFO"
