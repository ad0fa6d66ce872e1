"""Prefect's ephemeral API for a CLI run that has no server, started before Prefect is imported.

Without ``PREFECT_API_URL`` Prefect starts this server itself (uvicorn on its app factory,
ephemeral mode, UI off) at the run's first API call, from ``prefect.server``: that import alone
costs the CLI process 1.4 s of CPU and 70 MB (FastAPI, SQLAlchemy) just to start a subprocess,
and the server's start-up then waits for everything before it. Here the CLI binds a loopback
port, hands the listening socket to the server (no other process can take the port in between),
points ``PREFECT_API_URL`` at it and goes on with its own imports while the server starts.

A terminal's Ctrl-C signals the whole foreground process group, and the server is a child in that
group: left alone it dies first and the run then hangs reporting its state. So it is started from
a thread that blocks SIGINT (the child inherits the blocked signal across exec); the CLI stops it
(``cli.interrupt``) when the run is interrupted, and at exit otherwise. Prefect is imported only
once the server is spawned.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import MutableMapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from cli.server import HOST, ServerError, wait_healthy

#: Seconds the server gets to end on SIGTERM at exit before it is killed.
STOP_GRACE_S = 5.0


@dataclass
class EphemeralAPI:
    """The server this process started, and the URL Prefect's clients here use."""

    process: subprocess.Popen
    api_url: str

    def ready(self) -> None:
        """Return once the server answers; ``ValueError`` (one line) when its database is damaged or it
        does not come up (it is stopped then)."""
        from prefect.settings import get_current_settings

        settings = get_current_settings().server
        url = settings.database.connection_url
        try:
            problem = database_problem(url.get_secret_value() if url else None)
            if problem:
                raise ValueError(problem)
            timeout_s = max(float(settings.ephemeral.startup_timeout_seconds), 60.0)
            wait_healthy(self.process, self.api_url, timeout_s, "Prefect's ephemeral API server",
                         "its messages are above; start one with `audio-evals server start` or set PREFECT_API_URL")
        except ServerError as e:
            self.stop()
            raise ValueError(str(e)) from None
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM the server, SIGKILL it after ``STOP_GRACE_S``; a no-op once it has ended."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def database_problem(url: str | None) -> str | None:
    """Why the server cannot use the SQLite database at ``url``, as one line saying what to do; None if it can.

    A damaged database otherwise costs minutes of Prefect's retries and thousands of log lines.
    """
    path = url.split(":///", 1)[1] if url and url.startswith("sqlite") and ":///" in url else None
    if not path or not os.path.isfile(path):
        return None
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            (verdict,) = db.execute("PRAGMA quick_check").fetchone()
    except sqlite3.DatabaseError as e:
        verdict = str(e)
    if verdict == "ok":
        return None
    return (f"Prefect's database {path} is damaged ({verdict.splitlines()[0]}): move it aside or delete it and run "
            "again (a new one is made; it holds run history only, results and caches are kept), "
            "or set PREFECT_API_URL to a running Prefect server")


def _server_argv(fd: int) -> list[str]:
    """The command Prefect's own ``SubprocessASGIServer`` runs, on an inherited socket instead of a port."""
    spec = importlib.util.find_spec("prefect")
    if spec is None or spec.origin is None:
        raise ValueError("Prefect is not installed in this environment")
    app_dir = Path(spec.origin).parent.parent
    return [sys.executable, "-m", "uvicorn", "--app-dir", str(app_dir), "--factory",
            "prefect.server.api.server:create_app", "--fd", str(fd), "--log-level", "error", "--lifespan", "on"]


def _configured_api_url() -> str | None:
    """The API URL Prefect's settings name (a profile, ``prefect.toml``, ``.env``, a settings context), if any."""
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


def start(environ: MutableMapping[str, str] = os.environ) -> EphemeralAPI | None:
    """Start the server for this process unless Prefect is given one (``PREFECT_API_URL`` or its settings).

    Best called before Prefect is imported: the server is spawned first, so Prefect's import, which
    the settings check needs, is part of what the server's start-up overlaps.
    """
    if environ.get("PREFECT_API_URL") or ("prefect.context" in sys.modules and _configured_api_url()):
        return None
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, 0))
    listener.listen(128)
    api_url = f"http://{HOST}:{listener.getsockname()[1]}/api"
    env = {**environ, "PREFECT_API_URL": api_url, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
           "PREFECT__SERVER_FINAL": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    started: list[subprocess.Popen] = []

    def spawn() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # this thread only; the server inherits it
        started.append(subprocess.Popen(_server_argv(listener.fileno()), env=env, stdin=subprocess.DEVNULL,
                                        pass_fds=(listener.fileno(),)))

    spawner = threading.Thread(target=spawn, name="start-ephemeral-api", daemon=True)
    spawner.start()
    spawner.join()
    listener.close()  # the server holds its own copy
    if not started:
        raise ValueError("Prefect's ephemeral API server could not be started")
    api = EphemeralAPI(started[0], api_url)
    if _configured_api_url():  # a profile or settings file names a server: Prefect uses that one
        api.stop()
        return None
    environ["PREFECT_API_URL"] = api_url
    from prefect.context import refresh_global_settings_context

    refresh_global_settings_context()  # Prefect has read its settings by now (the check above, at the least)
    atexit.register(api.stop)  # after Prefect's own exit work, registered later, which may still call the API
    return api
