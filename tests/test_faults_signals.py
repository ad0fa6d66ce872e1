"""SIGTERM (what a scheduler, a Prefect worker or Kubernetes sends) stops a run as Ctrl-C does.

The signal goes to the CLI process alone, as ``kill PID`` sends it: the ephemeral Prefect API
server and the Dask workers it started must end with it, one line must say how to resume, and the
exit code must be 143 (128 + SIGTERM).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, calls_made, scripted_run_command, slow_scripted
from tests.test_interrupt import _processes_with

pytestmark = pytest.mark.slow


def _sigterm_mid_run(tmp_path: Path, registry: dict, *extra: str) -> tuple[subprocess.CompletedProcess, str]:
    """Start a slow scripted run, SIGTERM it once a shard is under way; its result and PREFECT_HOME entry."""
    slow_scripted(registry, 1.0)
    home = f"PREFECT_HOME={tmp_path / 'prefect-home'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}  # the ephemeral API server
    env.update(dict([home.split("=", 1)]), PREFECT_SERVER_ANALYTICS_ENABLED="false", TERM="dumb")
    argv = [*scripted_run_command(registry["path"], tmp_path, "term"), *extra]
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while not calls_made(registry["calls"]) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    output, _ = process.communicate(timeout=60)
    result = subprocess.CompletedProcess(argv, process.returncode, output)
    result.seconds = time.monotonic() - sent  # type: ignore[attr-defined]
    return result, home


@pytest.mark.parametrize("runner", [[], ["--task-runner", "dask", "--workers", "2"]], ids=["thread", "dask"])
def test_sigterm_stops_the_run_and_everything_it_started_with_one_resume_line_and_exit_143(
        tmp_path, scripted_registry, runner):
    result, home = _sigterm_mid_run(tmp_path, scripted_registry, *runner)
    assert result.returncode == 143, result.stdout
    assert result.seconds < 15, result.seconds
    assert "Traceback" not in result.stdout
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    (hint,) = [line for line in lines if line.startswith("interrupted:")]
    assert "to resume, run the same command again: audio-evals run --dataset speech-sample-en" in hint
    time.sleep(1)
    assert not _processes_with(home)  # the API server and the Dask workers went with it


WAITS_ON_A_LOCK = """
import signal, sys, threading, time
from cli.interrupt import run_interruptible
SIGNUM = getattr(signal, sys.argv[1])

def run():
    def worker():  # the kernel may hand a process-directed signal to any thread: here, this one
        time.sleep(0.5)  # the main thread is in its wait by then
        signal.pthread_kill(threading.get_ident(), SIGNUM)
    threading.Thread(target=worker).start()
    threading.Event().wait()  # a lock wait that a signal landing on another thread does not interrupt

run_interruptible(run, lambda: "interrupted: resume hint")
"""


@pytest.mark.parametrize("name, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_stop_signal_landing_on_another_thread_still_ends_a_main_thread_waiting_on_a_lock(name, code):
    """The Python handler would only run once the main thread's wait ends (never, here): the signal's
    wakeup byte starts the grace, and the process prints the hint and exits 128 + signum within it."""
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-c", WAITS_ON_A_LOCK, name], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == code, result.stdout + result.stderr
    assert result.stdout.strip() == "interrupted: resume hint", result.stdout
    assert time.monotonic() - start < 30
