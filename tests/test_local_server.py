"""The long-lived local server: ``audio-evals server start|status|stop`` and CLI calls that use it.

The end-to-end test starts a real ``prefect server start`` through the CLI on a free port under
a temporary Prefect home, runs an evaluation without ``PREFECT_API_URL`` and finds its flow run
in that server, then stops it. Every process it starts is ended, whatever happens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from typer.testing import CliRunner

from cli import server as local_server
from cli.main import app
from tests.conftest import scripted_run_command
from tests.processes import REPO, free_port

CLI_TIMEOUT_S = 180  # longer than local_server.START_TIMEOUT_S: the CLI gives up first, cleaning up


@pytest.fixture
def home(tmp_path, monkeypatch) -> Iterator[Path]:
    """A Prefect home of this test only; any server left running in it is ended afterwards."""
    folder = tmp_path / "prefect-home"
    monkeypatch.setenv("PREFECT_HOME", str(folder))
    yield folder
    for process in psutil.process_iter(["cwd"]):  # a server runs in its home (local_server.start)
        if process.info["cwd"] == str(folder):
            process.kill()


def _record(home: Path, pid: int | str, created: float) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / local_server.STATE_FILE
    path.write_text(json.dumps({"pid": pid, "port": 4999, "api_url": "http://127.0.0.1:4999/api",
                                "log": "server.log", "created": created}), encoding="utf-8")
    return path


def _this_process(home: Path) -> Path:
    """A state file naming a process that is running (this one)."""
    return _record(home, os.getpid(), psutil.Process().create_time())


# --- the state file ------------------------------------------------------------------------------

def test_a_recorded_running_server_is_used_when_prefect_api_url_is_not_set(home):
    _this_process(home)
    environ: dict[str, str] = {}
    assert local_server.use_running(environ).pid == os.getpid()
    assert environ == {"PREFECT_API_URL": "http://127.0.0.1:4999/api"}
    environ = {"PREFECT_API_URL": "https://prefect.example.org/api"}
    assert local_server.use_running(environ) is None
    assert environ == {"PREFECT_API_URL": "https://prefect.example.org/api"}


@pytest.mark.parametrize("state", ["dead pid", "reused pid", "not json", "old fields", "wrong types"])
def test_a_stale_state_file_is_ignored_and_removed(home, state):
    if state == "dead pid":
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        path = _record(home, gone.pid, 0.0)
    elif state == "reused pid":  # a process that started after the recorded one, with its pid
        path = _record(home, os.getpid(), psutil.Process().create_time() - 3600)
    elif state == "wrong types":
        path = _record(home, str(os.getpid()), psutil.Process().create_time())
    else:
        path = _this_process(home)
        path.write_text("{" if state == "not json" else '{"pid": 1}', encoding="utf-8")
    environ: dict[str, str] = {}
    assert local_server.use_running(environ) is None and environ == {}
    assert not path.exists()


def test_stop_and_status_without_a_server_say_so(home):
    runner = CliRunner()
    stop = runner.invoke(app, ["server", "stop"])
    assert stop.exit_code == 0  # the state asked for holds (issue 20: it exited 1)
    assert stop.output.strip() == "no audio-evals server is running; nothing to stop"
    status = runner.invoke(app, ["server", "status"])
    assert status.exit_code == 1 and "no audio-evals server is running" in status.output


def test_start_refuses_a_port_in_use(home):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["server", "start", "--port", str(port)])
    assert result.exit_code == 1
    assert f"error: port {port} on 127.0.0.1 is in use; choose another with --port" in result.output
    assert not (home / local_server.STATE_FILE).exists()


# --- end to end ----------------------------------------------------------------------------------

def _cli(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``audio-evals ARGS`` as a user runs it: no PREFECT_API_URL, this test's Prefect home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(home)
    result = subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=CLI_TIMEOUT_S)
    assert not check or result.returncode == 0, f"{args}: {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def test_cli_calls_use_the_started_server_until_it_is_stopped(home, tmp_path, scripted_registry):
    port = free_port()
    started = _cli(home, "server", "start", "--port", str(port))
    ui = f"http://127.0.0.1:{port}"
    assert f"every run shows in the UI at {ui}" in started.stdout
    state = json.loads((home / local_server.STATE_FILE).read_text(encoding="utf-8"))
    assert state["api_url"] == f"{ui}/api" and state["port"] == port
    server = psutil.Process(state["pid"])
    assert f"running (pid {state['pid']}, healthy)" in _cli(home, "server", "status").stdout
    # The UI calls the API where the server listens (not the default port).
    assert httpx.get(f"{ui}/ui-settings", timeout=10).json()["api_url"] == f"{ui}/api"

    run = _cli(home, *scripted_run_command(scripted_registry["path"], tmp_path, "served")[3:])
    (summary_path,) = (tmp_path / "results-served").rglob("summary.json")
    run_id = json.loads(summary_path.read_text(encoding="utf-8"))["run_id"]
    assert run_id in run.stdout
    flow_runs = httpx.post(f"{ui}/api/flow_runs/filter", json={}, timeout=10).json()
    assert [(r["parameters"]["spec"]["model"], r["state_type"]) for r in flow_runs] == [("scripted", "COMPLETED")]

    stopped = _cli(home, "server", "stop")
    assert f"stopped the server at {ui} (pid {state['pid']})" in stopped.stdout
    assert not server.is_running() or server.status() == psutil.STATUS_ZOMBIE  # nobody reaps it here
    assert not (home / local_server.STATE_FILE).exists()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{ui}/api/health", timeout=2)
    again = _cli(home, "server", "stop", check=False)
    assert again.returncode == 0 and "no audio-evals server is running; nothing to stop" in again.stdout
