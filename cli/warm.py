"""The warm runner beside ``audio-evals server start``: a run without its start-up cost.

Why: before its flow starts, a CLI call spends about 1.9 s of CPU importing Prefect, the CLI and
the flows. A fully cached re-run does little else. The runner imports all of that once, when the
server starts. For each ``audio-evals run``, it forks a copy of itself that runs the call as the
CLI would have: same arguments, working folder, environment, terminal (stdin, stdout and stderr are
handed over the socket), and exit code. So the run is the same Prefect flow run through the same
server, and only the start-up is gone.

The CLI (``main``, the console script) hands a call over only when nothing could tell the two
apart. The call must be ``run`` on the thread task runner, without ``--verbose`` (Prefect's logging
is configured at import). The runner must have been started from the same Python and the same
code, and with the same ``PREFECT_*``, ``AUDIO_EVALS_*`` and ``PYTHONPATH`` settings (what is read
at import). Every source file it imported must be unchanged:
the runner checks them for each call, and after an edit it refuses the call and starts afresh.
Otherwise, and whenever no runner answers, the CLI runs the call itself, as before.

The CLI forwards Ctrl-C and SIGTERM to the forked run, which handles them as a CLI call does. If
the CLI dies (``kill -9``), the run sees its socket close and stops as on SIGTERM. The runner
reports each forked run's exit status, so a run ended by a signal exits as it would have. The
socket is the owner's alone (mode 0600 in the Prefect home). The runner runs in a session of its own,
recorded with the server: ``audio-evals server stop`` ends it (and any run it forked), and it ends
itself when the server is gone.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import selectors
import signal
import socket
import struct
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cli
import flows  # noqa: F401  (its defaults of Prefect settings, as the runner has them: part of ``identity``)
from audio_evals.paths import prefect_home

SOCKET_FILE = "audio-evals-runner.sock"
#: Options that make a call run differently from a forked copy of the runner (Dask's worker
#: processes; Prefect's logging, configured at import); such calls run in the CLI process itself.
_NOT_HANDED_OVER = ("--task-runner", "--dask-address", "-v", "--verbose", "--debug_mode", "-h", "--help")
_HEADER = struct.Struct("!I")
#: In a forked run: the exit code of the call, once it is known.
_forked_exit: list[int] = []


def socket_path() -> Path:
    return prefect_home() / SOCKET_FILE


def identity(environ: Mapping[str, str]) -> dict[str, Any]:
    """What a call and the runner must share: the Python, the code's folder, and the settings read at
    import (Prefect's, this project's, the module path)."""
    return {
        "python": os.path.realpath(sys.executable),
        "code": os.path.realpath(os.path.dirname(os.path.dirname(cli.__file__))),
        "settings": {k: v for k, v in environ.items() if k.startswith(("PREFECT_", "AUDIO_EVALS_")) or k == "PYTHONPATH"},
    }


def handed_over(argv: list[str]) -> bool:
    """Whether ``argv`` is a call the runner may run (``run``, or the reference form, plainly)."""
    if not argv or not (argv[0] == "run" or argv[0].startswith("-")):
        return False
    return not any(arg.split("=", 1)[0] in _NOT_HANDED_OVER for arg in argv)


# ---- the CLI's side --------------------------------------------------------------------------------

def _lines(conn: socket.socket) -> Any:
    buffer = b""
    while True:
        chunk = conn.recv(4096)
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield json.loads(line)


def hand_over(argv: list[str], environ: dict[str, str]) -> int | None:
    """Run the call in the warm runner and return its exit code; None when no runner takes it."""
    if not handed_over(argv):
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(socket_path()))
    except OSError:
        conn.close()
        return None
    request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": environ, "identity": identity(environ)}).encode()
    with conn:
        try:
            socket.send_fds(conn, [_HEADER.pack(len(request))], [0, 1, 2])
            conn.sendall(request)
        except OSError:  # a closed stdin, a runner that went away: this process runs the call
            return None
        replies = _lines(conn)
        first = next(replies, None)
        if first is None or "refused" in first:
            return None
        pid = first["pid"]

        def forward(sig: int, _frame: Any) -> None:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, forward)
        last = next(replies, None)
    return 1 if last is None else last["exit"]


def main() -> None:
    """The ``audio-evals`` console script: the warm runner runs the call when it can, else this process."""
    code = hand_over(sys.argv[1:], dict(os.environ))
    if code is not None:
        sys.exit(code)
    from cli.main import main as run_here

    run_here()


# ---- the runner's side -----------------------------------------------------------------------------

def _sources() -> dict[str, tuple[int, int]]:
    """Every imported module's file with its modification time and size."""
    found = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path:
            try:
                stat = os.stat(path)
            except OSError:
                continue
            found[path] = (stat.st_mtime_ns, stat.st_size)
    return found


def _read_request(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    header, fds, _, _ = socket.recv_fds(conn, _HEADER.size, 3)
    (size,) = _HEADER.unpack(header)
    body = b""
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ConnectionError("the CLI went away")
        body += chunk
    return json.loads(body), fds


def _run_forked(conn: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
    """In the forked copy: become the CLI call, run it, exit with its code (never returns)."""
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):  # as a CLI process starts
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    conn.settimeout(None)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=os.isatty(1))
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["audio-evals", *request["argv"]]
    from prefect.context import refresh_global_settings_context

    from cli import server
    from cli.console import attach_consoles
    from cli.main import main as run_here

    def watch_cli() -> None:  # the CLI died (kill -9): stop as on SIGTERM
        while conn.recv(4096):
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch_cli, daemon=True).start()
    attach_consoles()
    server.use_running()  # as the CLI does first, so that Prefect's settings below see the server
    refresh_global_settings_context()
    try:
        run_here(request["argv"])  # it calls sys.exit; atexit handlers run as in a CLI process
    except SystemExit as e:
        _forked_exit.append(e.code if isinstance(e.code, int) else int(e.code is not None))
        raise
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def _end_forked_run() -> None:
    """The last exit handler (registered before any other): a forked run ends here once the others
    have run, without the interpreter's teardown of every module the runner imported (0.25 s)."""
    if _forked_exit:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_forked_exit[0])


def serve() -> None:
    """The runner: import what a run needs, then fork a copy for each call the CLI hands over.

    Started by ``audio-evals server start`` with the environment of that call (what a later call
    must share, ``identity``) plus ``server.RUNNER_SERVER_ENV``, the server it serves.
    """
    atexit.register(_end_forked_run)
    from cli import server

    start_env = dict(os.environ)  # to start afresh with, after an edit of the code
    server_pid = int(os.environ.pop(server.RUNNER_SERVER_ENV))
    started = identity(os.environ)

    server.use_running()
    import prefect.task_runners  # noqa: F401
    import sacrebleu  # noqa: F401  (the embedded default's scoring: its metrics and their tokenizer)
    from prefect.client.orchestration import get_client

    import cli.main  # noqa: F401  (the CLI, flows, tasks, Prefect: the imports every call would pay)
    import flows.evaluate  # noqa: F401
    from audio_evals.metrics import wer, wer_oasr  # noqa: F401

    with get_client(sync_client=True) as client:  # Prefect checks once per process; the forks are copies
        client.raise_for_api_version_mismatch_once()
    sources = _sources()
    path = socket_path()
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old_umask)
    listener.listen(16)

    def end(*_: Any) -> None:  # ``audio-evals server stop``
        path.unlink(missing_ok=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, end)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    runs: dict[int, socket.socket] = {}
    stale = False  # a source file changed: calls are refused until the runs going on end, then it starts afresh

    def reap() -> None:
        while runs:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            conn = runs.pop(pid, None)
            if conn is not None:
                code = os.waitstatus_to_exitcode(status)
                with conn:
                    try:
                        conn.sendall(json.dumps({"exit": code if code >= 0 else 128 - code}).encode() + b"\n")
                    except OSError:
                        pass

    def refuse(conn: socket.socket, why: str) -> None:
        with conn:
            try:
                conn.sendall(json.dumps({"refused": why}).encode() + b"\n")
            except OSError:
                pass

    while True:
        for key, _ in selector.select(timeout=1.0):
            if key.fileobj is wake_r:
                os.read(wake_r, 4096)
                reap()
                continue
            conn, _ = listener.accept()
            conn.settimeout(5)  # a request arrives at once; a stuck caller never holds up the others
            try:
                request, fds = _read_request(conn)
            except (OSError, ValueError, struct.error) as e:
                refuse(conn, f"unreadable request: {e}")
                continue
            if request["identity"] != started:
                refuse(conn, f"the call's {_differences(request['identity'], started)} differ from the runner's")
                for fd in fds:
                    os.close(fd)
                continue
            stale = stale or _sources() != sources
            if stale:
                refuse(conn, "the code changed since the runner started")
                for fd in fds:
                    os.close(fd)
                continue
            pid = os.fork()
            if pid == 0:
                selector.close()
                listener.close()
                os.close(wake_r)
                os.close(wake_w)
                for other in runs.values():
                    other.close()
                _run_forked(conn, request, fds)  # exits with the call's code, through SystemExit
                sys.exit(0)
            for fd in fds:
                os.close(fd)
            runs[pid] = conn
            conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        reap()
        if not _server_alive(server_pid):
            path.unlink(missing_ok=True)
            return
        if stale and not runs:  # afresh, with the new code (fds are not inherited: the socket is made anew)
            path.unlink(missing_ok=True)
            os.execve(sys.executable, [sys.executable, "-m", "cli.warm"], start_env)


def _differences(call: dict[str, Any], runner: dict[str, Any]) -> str:
    """Which parts of two identities differ, by name (the values may hold paths or keys)."""
    names = [k for k in ("python", "code") if call.get(k) != runner.get(k)]
    settings, theirs = call.get("settings", {}), runner.get("settings", {})
    names += sorted(k for k in settings.keys() | theirs.keys() if settings.get(k) != theirs.get(k))
    return ", ".join(names) or "identity"


def _server_alive(pid: int) -> bool:
    """The server still runs (a zombie nobody has reaped yet has ended)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


if __name__ == "__main__":
    serve()
