"""The warm runner beside ``audio-evals server start`` (``cli/warm.py``): a ``run`` call it takes gives
what the CLI process itself gives, and it takes only calls it runs alike.

Each test starts a real server (and so its runner) under a Prefect home of its own. Which
process ran a call is read from the scripted model's ``loads_file`` (the pid that loaded it): the
CLI's own pid when the CLI ran it, another one when the runner's fork did.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from cli import server as local_server
from cli import warm
from tests.conftest import scripted_run_command, slow_scripted
from tests.processes import REPO, free_port, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server_home(tmp_path_factory) -> Iterator[Path]:
    """A server and its runner under a Prefect home of this module; both stopped afterwards."""
    home = tmp_path_factory.mktemp("warm") / "prefect-home"
    env = {**os.environ, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    started = subprocess.run([sys.executable, "-m", "cli", "server", "start", "--port", str(free_port())],
                             env=env, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    wait_for("the runner's socket", (home / warm.SOCKET_FILE).exists, 60, 0.1)
    yield home
    subprocess.run([sys.executable, "-m", "cli", "server", "stop"], env=env, cwd=REPO, capture_output=True, timeout=60)


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PREFECT_HOME": str(home), **extra}
    env.pop("PREFECT_API_URL", None)
    return env


def _loaders(loads: Path) -> list[int]:
    return [int(line) for line in loads.read_text().split()] if loads.exists() else []


def _command(registry: dict, tmp_path: Path, tag: str, *extra: str) -> list[str]:
    return [*scripted_run_command(registry["path"], tmp_path, tag), *extra]


@pytest.fixture
def registry(scripted_registry, tmp_path) -> dict:
    """The scripted model, also writing the pid of the process that loads it to ``loads``."""
    loads = tmp_path / "loads.txt"
    slow_scripted(scripted_registry, 0, loads_file=str(loads))
    return {**scripted_registry, "loads": loads}


def _summary(results: Path) -> dict:
    (path,) = results.rglob("summary.json")
    return json.loads(path.read_text())


def _call(command: list[str], env: dict[str, str], timeout_s: float = 300) -> tuple[int, int, str]:
    """The CLI's pid, exit code and output (stdout then stderr)."""
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = process.communicate(timeout=timeout_s)
    return process.pid, process.returncode, out + err


def test_a_handed_over_call_gives_what_the_cli_process_gives(server_home, registry, tmp_path):
    """Same exit code, table and metrics; the model was loaded by another process than the CLI's, while
    the same call with ``--task-runner thread`` (not handed over) loaded it in the CLI's own."""
    warm_pid, warm_code, warm_out = _call(_command(registry, tmp_path, "warm"), _env(server_home))
    here_pid, here_code, here_out = _call(_command(registry, tmp_path, "here", "--task-runner", "thread"),
                                          _env(server_home))
    assert warm_code == here_code == 0, warm_out + here_out
    loaded_warm, loaded_here = _loaders(registry["loads"])
    assert loaded_warm != warm_pid and loaded_here == here_pid
    warm_summary, here_summary = _summary(tmp_path / "results-warm"), _summary(tmp_path / "results-here")
    assert warm_summary["metrics"] == here_summary["metrics"]
    assert warm_summary["command"].endswith(" ".join(_command(registry, tmp_path, "warm")[3:]))
    assert warm_summary["run_id"] in warm_out and "wer" in warm_out


def test_a_handed_over_call_that_fails_exits_as_the_cli_would_with_its_message(server_home, registry, tmp_path):
    pid, code, out = _call([*_command(registry, tmp_path, "bad")[:5], "no-such-dataset",
                            *_command(registry, tmp_path, "bad")[6:]], _env(server_home))
    assert code == 2 and "error:" in out and "no-such-dataset" in out


def test_other_prefect_settings_or_an_edited_source_run_the_call_in_the_cli_process(server_home, registry, tmp_path):
    """Logging set otherwise than the runner's: run here. A touched module: run here, then the runner
    starts afresh and takes the next call."""
    pid, code, out = _call(_command(registry, tmp_path, "settings"),
                           _env(server_home, PREFECT_LOGGING_LEVEL="DEBUG"))
    assert code == 0, out
    assert _loaders(registry["loads"])[-1] == pid
    module = REPO / "audio_evals" / "metrics" / "wer_oasr.py"  # imported by the runner; its text stays as it is
    os.utime(module, ns=(time.time_ns(), time.time_ns()))
    pid, code, out = _call(_command(registry, tmp_path, "edited"), _env(server_home))
    assert code == 0, out
    assert _loaders(registry["loads"])[-1] == pid
    wait_for("the runner to start afresh", (server_home / warm.SOCKET_FILE).exists, 60, 0.1)
    pid, code, out = _call(_command(registry, tmp_path, "after"), _env(server_home))
    assert code == 0, out
    assert _loaders(registry["loads"])[-1] != pid


def _forked_run(registry: dict, tmp_path: Path, home: Path, tag: str) -> tuple[subprocess.Popen, int, Path]:
    """A slow handed-over call, once its forked run has loaded the model: the CLI, the run's pid, its log."""
    models = Path(registry["path"]) / "models.yaml"
    models.write_text(models.read_text().replace("delay_s: 0,", "delay_s: 2.0,"))
    log = tmp_path / f"{tag}.log"
    with open(log, "w") as out:
        cli = subprocess.Popen(_command(registry, tmp_path, tag), env=_env(home), cwd=REPO, stdout=out,
                               stderr=subprocess.STDOUT, text=True)
    run = wait_for("the forked run to load the model", lambda: _loaders(registry["loads"]), 120, 0.1)[-1]
    assert run != cli.pid
    time.sleep(1.0)  # inside its first shard
    return cli, run, log


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_ctrl_c_of_the_cli_interrupts_its_handed_over_run_as_it_would_the_cli(server_home, registry, tmp_path):
    cli, run, log = _forked_run(registry, tmp_path, server_home, "ctrl-c")
    cli.send_signal(signal.SIGINT)
    assert cli.wait(timeout=60) == 130
    assert "interrupted:" in log.read_text() and "to resume, run the same command again" in log.read_text()
    wait_for(f"run {run} to end", lambda: _gone(run), 30, 0.1)


def test_kill_9_of_the_cli_stops_its_handed_over_run(server_home, registry, tmp_path):
    cli, run, _ = _forked_run(registry, tmp_path, server_home, "kill-9")
    cli.kill()
    cli.wait(timeout=10)
    wait_for(f"run {run} to end", lambda: _gone(run), 30, 0.1)


def test_server_stop_ends_the_runner_and_removes_its_socket(tmp_path):
    home = tmp_path / "prefect-home"
    env = _env(home)
    started = subprocess.run([sys.executable, "-m", "cli", "server", "start", "--port", str(free_port())],
                             env=env, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    runner = json.loads((home / local_server.STATE_FILE).read_text())["runner_pid"]
    wait_for("the runner's socket", (home / warm.SOCKET_FILE).exists, 60, 0.1)
    stopped = subprocess.run([sys.executable, "-m", "cli", "server", "stop"], env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    wait_for(f"runner {runner} to end", lambda: _gone(runner), 10, 0.1)
    assert not (home / warm.SOCKET_FILE).exists()
