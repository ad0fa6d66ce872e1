"""Ctrl-C or SIGTERM ends a run within seconds: finished shards stay cached, one line says how to
resume, exit 130 (SIGINT) or 143 (SIGTERM, what a scheduler, a Prefect worker or Kubernetes sends).

The first Ctrl-C raises ``KeyboardInterrupt`` in the CLI once; later ones are ignored, so none is
ever needed (Prefect's ephemeral API server, a child in the terminal's process group, does not
hear it: ``cli.ephemeral``). Prefect records the run as crashed; shards still in flight are
abandoned (``os._exit``), since a model call cannot be stopped and would hold the exit for minutes.
Before leaving, every process this one started (the API server, Dask workers, a vLLM server) is
stopped: ``os._exit`` runs no clean-up, and a SIGTERM sent to this process alone reaches none of them.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

import psutil

from cli.console import console

T = TypeVar("T")
#: Seconds Prefect gets to record the interruption before the process ends regardless.
GRACE_S = 5.0
#: Seconds the processes this one started get to end on SIGTERM before they are killed.
CHILD_GRACE_S = 3.0
#: The signals that stop a run; the exit code is 128 + the signal's number, as shells expect.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_children(grace_s: float = CHILD_GRACE_S) -> None:
    """SIGTERM every process this one started (children's children too), SIGKILL what is left after ``grace_s``."""
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    for child in children:
        try:
            child.terminate()
        except psutil.Error:
            continue
    _, alive = psutil.wait_procs(children, timeout=grace_s)
    for child in alive:
        try:
            child.kill()
        except psutil.Error:
            continue


def _watch_stop_signals(first: Callable[[int], None]) -> Callable[[], None]:
    """Call ``first(signum)`` from a thread of its own as soon as a stop signal arrives; returns the undo.

    Python runs signal handlers in the main thread only, and only once it executes again: a signal the
    kernel hands to another thread (Dask's, Prefect's, a model server's) while the main thread waits on
    a lock runs nothing until that wait ends, which can be the end of the run. The C-level handler writes
    each signal's number to the wakeup socket at once, from whichever thread received it.
    """
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)

    def watch() -> None:
        while (received := reader.recv(1)) and received[0]:  # b"\0" is the undo's stop mark
            if received[0] in STOP_SIGNALS:
                first(received[0])

    watcher = threading.Thread(target=watch, name="stop-signal-watcher", daemon=True)
    watcher.start()

    def undo() -> None:
        signal.set_wakeup_fd(previous)
        writer.send(b"\0")
        watcher.join()
        reader.close()
        writer.close()

    return undo


def run_interruptible(run: Callable[[], T], resume_hint: Callable[[], str]) -> T:
    """``run()``; on the first Ctrl-C or SIGTERM, print ``resume_hint()``, stop the processes this one
    started and end the process with exit code 128 + the signal's number (130, 143).

    Signal handlers belong to the main thread: called from another one, this is plain ``run()``.
    """
    if threading.current_thread() is not threading.main_thread():
        return run()
    leaving = threading.Lock()
    stopping = threading.Lock()
    received: list[int] = []

    def leave() -> None:
        if not leaving.acquire(blocking=False):
            threading.Event().wait()  # another thread is leaving: its os._exit ends this one too
        console.print(resume_hint(), soft_wrap=True, markup=False, highlight=False)
        sys.stdout.flush()
        stop_children()
        os._exit(128 + received[0])

    def begin_stop(signum: int) -> None:
        """The first stop signal, seen by the watcher or the handler, whichever is first: GRACE_S to leave."""
        if not stopping.acquire(blocking=False):
            return
        received.append(signum)
        logging.disable(logging.ERROR)  # Prefect's crash report is recorded, not printed
        watchdog = threading.Timer(GRACE_S, leave)
        watchdog.daemon = True
        watchdog.start()

    def interrupt(signum: int, frame: object) -> None:
        for sig in STOP_SIGNALS:  # the first signal is enough; more change nothing
            signal.signal(sig, signal.SIG_IGN)
        begin_stop(signum)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in STOP_SIGNALS}
    unwatch = _watch_stop_signals(begin_stop)
    try:
        return run()
    except KeyboardInterrupt:
        begin_stop(signal.SIGINT)  # a KeyboardInterrupt no signal of ours raised
        leave()
        raise  # unreachable: leave() ends the process
    finally:
        unwatch()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
