"""Addresses of result files that a browser opens from an http page (the Prefect UI's artifacts).

A browser refuses ``file://`` links from an http page, so a local result is linked through the
results server (``audio-evals serve-results DIR``: ``http://127.0.0.1:PORT/...``) while one runs
over a folder holding it, and an ``s3://`` result by a presigned https URL. Otherwise a local path
stays a ``file://`` URL (what opens from a page on disk). The running server records its folder,
address and pid in ``$PREFECT_HOME/audio-evals-results-server.json``.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from audio_evals import storage
from audio_evals.paths import prefect_home

STATE_FILE = "audio-evals-results-server.json"
#: How long a presigned link to an object-store result stays valid (7 days, S3's maximum).
PRESIGN_S = 7 * 24 * 3600


@dataclass(frozen=True)
class ResultsServer:
    """A running results server: the folder it serves, its address, its process."""

    root: str
    url: str
    pid: int


def state_path() -> Path:
    return prefect_home() / STATE_FILE


def record(server: ResultsServer) -> None:
    """Record the running server (atomically) so links made in any process on this machine use it."""
    storage.write_json(str(state_path()), asdict(server))


def running() -> ResultsServer | None:
    """The recorded results server while its process lives; None otherwise."""
    try:
        server = ResultsServer(**json.loads(state_path().read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    return server if psutil.pid_exists(server.pid) else None


def link(path: str) -> str:
    """An address of ``path`` a browser opens from an http page, where there is one (see the module)."""
    if storage.is_remote(path):
        try:
            fs, key = storage.filesystem(path)
            return fs.sign(key, expiration=PRESIGN_S)
        except (NotImplementedError, OSError, ValueError):
            return path
    absolute = Path(path).resolve()
    server = running()
    if server is not None and absolute.is_relative_to(server.root):
        return server.url.rstrip("/") + "/" + urllib.parse.quote(absolute.relative_to(server.root).as_posix())
    return absolute.as_uri()
