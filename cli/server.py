"""A long-lived local Prefect server that every CLI call on this machine uses.

``start`` runs ``prefect server start`` in the background, in its own session and on 127.0.0.1
only, and records it (pid, port, API URL) in a state file under the Prefect home once it is
healthy. ``use_running`` points this process at that server when ``PREFECT_API_URL`` is not set,
so a CLI call skips the start of Prefect's ephemeral API and its runs show in the server's UI.
A state file whose process is gone is stale: it is removed and ignored. No Prefect imports here:
this runs before Prefect is loaded.

Prefect's own ``prefect server start --background`` / ``stop`` (3.8) is not used: it pipes the
server's output into a pipe nobody reads (a long-lived server blocks once 64 KiB of log pile up),
keeps the server in the caller's process group (a Ctrl-C in that terminal ends it), returns
before the server answers, records only a pid (no address for later calls, no check that the
pid was not reused), and ``stop`` sends one SIGTERM without waiting or escalating.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import MutableMapping
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from audio_evals import storage
from audio_evals.paths import prefect_home

HOST = "127.0.0.1"
DEFAULT_PORT = 4200
START_TIMEOUT_S = 120.0
STATE_FILE = "audio-evals-server.json"
LOG_FILE = "audio-evals-server.log"
#: Tells the warm runner (``cli.warm``) the pid of the server it serves: it ends once that process is gone.
RUNNER_SERVER_ENV = "AUDIO_EVALS_RUNNER_SERVER_PID"


class ServerError(RuntimeError):
    """A server that cannot be started or stopped; the message says what to do."""


@dataclass(frozen=True)
class LocalServer:
    """A running server as the state file records it."""

    pid: int
    port: int
    api_url: str
    log: str
    #: The process's creation time, which tells it from a later process that got the same pid.
    created: float
    #: The warm runner beside it (``cli.warm``), in a session of its own; None when it is not running.
    runner_pid: int | None = None

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")


def state_path() -> Path:
    return prefect_home() / STATE_FILE


def _process(server: LocalServer) -> psutil.Process | None:
    """The server's process while it runs (not a zombie, not a later process given its pid), else None."""
    try:
        process = psutil.Process(server.pid)
        return process if _alive(process) and abs(process.create_time() - server.created) <= 1 else None
    except (psutil.Error, TypeError, ValueError):  # gone, or a state file with values of the wrong type
        return None


def running() -> LocalServer | None:
    """The server the state file records, while its process runs; a stale state file is removed."""
    path = state_path()
    try:
        server = LocalServer(**json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        server = None  # unreadable or from another version: as stale as a dead pid
    if server is not None and _process(server) is not None:
        return server
    with contextlib.suppress(OSError):  # never an error in the CLI call that found it
        path.unlink(missing_ok=True)
    return None


def use_running(environ: MutableMapping[str, str] = os.environ) -> LocalServer | None:
    """Point Prefect at the running server (``PREFECT_API_URL``) unless the variable is set already."""
    if environ.get("PREFECT_API_URL"):
        return None
    server = running()
    if server is not None:
        environ["PREFECT_API_URL"] = server.api_url
    return server


def healthy(api_url: str) -> bool:
    """The server answers its health check (urllib: no client library to import on every CLI call)."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except (OSError, http.client.HTTPException):  # refused, timed out, an HTTP error status
        return False


def _check_port_free(port: int) -> None:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            raise ServerError(f"port {port} on {HOST} is in use; choose another with --port") from None


def start(port: int = DEFAULT_PORT, timeout_s: float = START_TIMEOUT_S) -> LocalServer:
    """Start the server, wait until it answers, then record it; on any failure nothing is left running."""
    if (server := running()) is not None:
        raise ServerError(f"a server is already running at {server.ui_url} (pid {server.pid}); "
                          "stop it first with `audio-evals server stop`")
    _check_port_free(port)
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    api_url = f"http://{HOST}:{port}/api"
    env = {**os.environ, "PREFECT_SERVER_API_HOST": HOST, "PREFECT_SERVER_API_PORT": str(port),
           "PREFECT_API_URL": api_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    log = home / LOG_FILE
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start"], env=env, cwd=home,
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = LocalServer(pid=process.pid, port=port, api_url=api_url, log=str(log),
                         created=psutil.Process(process.pid).create_time())
    try:
        wait_healthy(process, server.api_url, timeout_s, "prefect server start", f"see {server.log}")
        _write_state(server)
        server = _with_runner(server)
        _write_state(server)
    except BaseException:  # Ctrl-C included: never leave an unrecorded server behind
        _end(server, grace_s=10)
        raise
    return server


def _with_runner(server: LocalServer) -> LocalServer:
    """Start the warm runner (``cli.warm``) for ``server``, with this call's environment; it logs to the server's log."""
    with open(server.log, "ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "cli.warm"], env={**os.environ, RUNNER_SERVER_ENV: str(server.pid)},
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return LocalServer(**{**asdict(server), "runner_pid": process.pid})


def wait_healthy(process: subprocess.Popen, api_url: str, timeout_s: float, name: str, see: str) -> None:
    """Return once the server ``process`` started answers at ``api_url``; ``ServerError`` (naming it and where to
    look, ``see``) when it exits first or does not answer within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not healthy(api_url):
        if process.poll() is not None:
            raise ServerError(f"{name} exited with code {process.returncode}; {see}")
        if time.monotonic() > deadline:
            raise ServerError(f"{name} did not answer within {timeout_s:.0f} s; {see}")
        time.sleep(0.1)


def _write_state(server: LocalServer) -> None:
    """Written whole or not at all: a CLI call reading it never sees half a file."""
    storage.write_json(str(state_path()), asdict(server))


def stop(grace_s: float = 15) -> LocalServer:
    """Stop the recorded server (its whole session) and remove the state file; returns what was stopped."""
    server = running()
    if server is None:
        raise ServerError("no audio-evals server is running (start one with `audio-evals server start`)")
    _end(server, grace_s)
    state_path().unlink(missing_ok=True)
    return server


def _end(server: LocalServer, grace_s: float) -> None:
    """SIGTERM the server's and the runner's process groups, SIGKILL them after ``grace_s``; waits are bounded."""
    leader = _process(server)
    if leader is None:
        return
    runner_process = runner(server)
    groups = [server.pid, *([runner_process.pid] if runner_process else [])]
    processes = [leader, *leader.children(recursive=True), *([runner_process] if runner_process else [])]
    for sig, grace in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        for group in groups:  # each in its own session: the group is the process and its children
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, sig)
        deadline = time.monotonic() + grace
        while any(map(_alive, processes)):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        else:
            return
    raise ServerError(f"the server (pid {server.pid}) did not stop")


def runner(server: LocalServer) -> psutil.Process | None:
    """The server's warm runner while it runs (its pid not given to another process since)."""
    try:
        process = psutil.Process(server.runner_pid) if server.runner_pid else None
        return process if process is not None and _alive(process) and "cli.warm" in process.cmdline() else None
    except psutil.Error:
        return None


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
