"""Ctrl-C in a pseudo-terminal stops a run within seconds, keeps finished shards, says how to resume, exits 130.

The CLI runs as a terminal's foreground job would: session leader of a pty, with Prefect's
ephemeral API server (no PREFECT_API_URL) as its child in the same process group, so the Ctrl-C
typed into the terminal reaches both, as it does for a person at a shell.
"""

from __future__ import annotations

import json
import os
import pty
import select
import sys
import time
from pathlib import Path

import pytest

from audio_evals import storage
from tests.conftest import calls_made

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
CTRL_C = b"\x03"


def _run_in_pty(argv: list[str], env: dict[str, str], interrupt_when=None, timeout_s: float = 300) -> dict:
    """Run ``argv`` on a new pty; type Ctrl-C once ``interrupt_when()`` holds. Exit code, output, seconds."""
    pid, terminal = pty.fork()
    if pid == 0:  # the child: session leader with the pty as its controlling terminal
        os.chdir(ROOT)
        os.execve(argv[0], argv, env)
    output, start, interrupted_at, status = b"", time.monotonic(), None, None
    while status is None:
        if select.select([terminal], [], [], 0.1)[0]:
            try:
                output += os.read(terminal, 1 << 16)
            except OSError:  # the child closed the terminal
                pass
        if interrupted_at is None and interrupt_when is not None and interrupt_when():
            os.write(terminal, CTRL_C)  # the line discipline signals the foreground process group
            interrupted_at = time.monotonic()
        done, wait_status = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(wait_status)
        elif time.monotonic() - start > timeout_s:
            os.kill(pid, 9)
    while select.select([terminal], [], [], 0.2)[0]:
        try:
            chunk = os.read(terminal, 1 << 16)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.close(terminal)
    text = output.decode(errors="replace").replace("\r", "")
    return {"code": status, "output": text, "lines": [line for line in text.splitlines() if line.strip()],
            "seconds_after_ctrl_c": None if interrupted_at is None else time.monotonic() - interrupted_at}


def _processes_with(env_entry: str) -> list[int]:
    """Processes whose environment holds ``env_entry`` (the run's own PREFECT_HOME): none may outlive it."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if env_entry.encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                found.append(int(pid))
        except OSError:
            continue
    return found


def test_ctrl_c_stops_within_seconds_keeps_finished_shards_and_exits_130(tmp_path, scripted_registry):
    models = Path(scripted_registry["path"]) / "models.yaml"
    slow = models.read_text().replace("calls_file:", "delay_s: 1.5, calls_file:")  # a 6 s shard, longer than the grace
    models.write_text(slow, encoding="utf-8")
    argv = [sys.executable, "-m", "cli", "run", "--dataset", "speech-sample-en", "--model", "scripted",
            "--registry-path", scripted_registry["path"], "--shard-size", "4", "--cache-dir", str(tmp_path / "cache"),
            "--output", str(tmp_path / "results")]
    home = f"PREFECT_HOME={tmp_path / 'prefect-home'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}  # the ephemeral API server
    env.update(dict([home.split("=", 1)]), PREFECT_SERVER_ANALYTICS_ENABLED="false", TERM="dumb")

    # Ctrl-C as the second shard starts: one shard is finished, one has seconds of model calls to go.
    first = _run_in_pty(argv, env, interrupt_when=lambda: len(calls_made(scripted_registry["calls"])) > 4)
    assert first["code"] == 130, first["output"]
    assert first["seconds_after_ctrl_c"] < 10, first["seconds_after_ctrl_c"]
    assert "Traceback" not in first["output"]
    (hint,) = [line.removeprefix("^C") for line in first["lines"] if "interrupted" in line]  # the terminal echoes ^C
    assert hint.startswith("interrupted: 1 of 7 shards finished and kept in the cache") and first["lines"][-1].endswith(hint)
    assert hint.endswith("to resume, run the same command again: audio-evals run --dataset speech-sample-en "
                         f"--model scripted --registry-path {scripted_registry['path']} --shard-size 4 "
                         f"--cache-dir {tmp_path / 'cache'} --output {tmp_path / 'results'}")
    assert not _processes_with(home)  # the API server went with it
    sent = calls_made(scripted_registry["calls"])

    models.write_text(slow.replace("delay_s: 1.5", "delay_s: 0"), encoding="utf-8")  # same model, faster clock
    again = _run_in_pty(argv, env)
    assert again["code"] == 0, again["output"]
    (summary_file,) = (tmp_path / "results").rglob("summary.json")
    summary = json.loads(summary_file.read_text())
    assert summary["shards"]["cached"] >= 1 and summary["shards"]["computed"] == 7 - summary["shards"]["cached"]
    resent = calls_made(scripted_registry["calls"])[len(sent):]
    assert len(resent) == 26 - 4 * summary["shards"]["cached"]  # finished shards were not sent again
    rows = list(storage.read_jsonl(str(summary_file.parent / "samples.jsonl")))
    assert len(rows) == len({r["id"] for r in rows}) == 26 and summary["counts"]["failed"] == 0
