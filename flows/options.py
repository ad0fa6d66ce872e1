"""Command-line option checks: an absurd value is refused before any work, in one line."""

from __future__ import annotations

import math
import os
import tempfile

from audio_evals import storage


def run_option_problem(limit: int | None, workers: int, shard_size: int, max_duration: float | None,
                       batch_size: int | None) -> str | None:
    """What is wrong with the numeric options of ``run``, or None."""
    for name, value in (("--limit", limit), ("--workers", workers), ("--shard-size", shard_size),
                        ("--batch-size", batch_size)):
        if value is not None and value < 1:
            return f"{name} must be at least 1, not {value}"
    if max_duration is not None and not (math.isfinite(max_duration) and max_duration > 0):
        return f"--max-duration must be a positive number of seconds, not {max_duration:g}"
    return None


def folder_problem(option: str, path: str) -> str | None:
    """Why ``path`` cannot hold what a run writes (not a folder, not writable), or None.

    Creates the folder, as the run would; object-store URLs are not checked here.
    """
    if storage.is_remote(path):
        return None
    if os.path.exists(path) and not os.path.isdir(path):
        return f"{option} {path} is not a folder"
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        return f"{option} {path} is not writable: {e.strerror or e}"
    return None
