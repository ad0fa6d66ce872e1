"""Ctrl-C ends a run within seconds: finished shards stay cached, one line says how to resume, exit 130.

A terminal's Ctrl-C signals the whole foreground process group, and Prefect's ephemeral API server
is a child in that group: left alone it dies first and the run then hangs reporting its state. So
the server is started here from a thread that blocks SIGINT (the child inherits the blocked signal
across exec), and the first Ctrl-C raises ``KeyboardInterrupt`` in the CLI once; later ones are
ignored, so none is ever needed. Prefect records the run as crashed; shards still in flight are
abandoned (``os._exit``), since a model call cannot be stopped and would hold the exit for minutes.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

from cli.console import console

T = TypeVar("T")
#: Seconds Prefect gets to record the interruption before the process ends regardless.
GRACE_S = 5.0
EXIT_CODE = 130  # 128 + SIGINT, what shells expect of a program stopped by Ctrl-C
_started_server: list[object] = []


def start_ephemeral_api() -> None:
    """Start Prefect's ephemeral API server now, deaf to the terminal's Ctrl-C (only without PREFECT_API_URL)."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return
    from prefect.server.api.server import SubprocessASGIServer

    def start() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # this thread only; the server inherits it
        server = SubprocessASGIServer()  # the instance Prefect's clients use
        _started_server.append(server)
        server.start()

    starter = threading.Thread(target=start, name="start-ephemeral-api", daemon=True)
    starter.start()
    starter.join()


def run_interruptible(run: Callable[[], T], resume_hint: Callable[[], str]) -> T:
    """``run()``; on the first Ctrl-C, print ``resume_hint()`` and end the process with exit code 130.

    Signal handlers belong to the main thread: called from another one, this is plain ``run()``.
    """
    if threading.current_thread() is not threading.main_thread():
        return run()
    leaving = threading.Lock()

    def leave() -> None:
        if not leaving.acquire(blocking=False):
            return
        console.print(resume_hint(), soft_wrap=True, markup=False, highlight=False)
        sys.stdout.flush()
        for server in _started_server:
            server.stop()
        os._exit(EXIT_CODE)

    def interrupt(signum: int, frame: object) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the first Ctrl-C is enough; more change nothing
        logging.disable(logging.ERROR)  # Prefect's crash report is recorded, not printed
        watchdog = threading.Timer(GRACE_S, leave)
        watchdog.daemon = True
        watchdog.start()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        return run()
    except KeyboardInterrupt:
        leave()
        raise  # unreachable: leave() ends the process
    finally:
        signal.signal(signal.SIGINT, previous)
