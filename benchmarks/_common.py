"""Shared helpers for the benchmarks: a replicated manifest and timed subprocesses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "audio_evals" / "assets" / "speech-sample"


def replicated_manifest(folder: Path, n: int, lang: str = "en") -> Path:
    """A manifest of ``n`` rows cycling over the sample's clips of ``lang`` (unique ids)."""
    rows = [json.loads(line) for line in (SAMPLE / "manifest.jsonl").read_text(encoding="utf-8").splitlines() if line]
    rows = [r for r in rows if r["lang"] == lang]
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"replicated-{n}.jsonl"
    with out.open("w", encoding="utf-8") as f:
        for i in range(n):
            r = rows[i % len(rows)]
            f.write(json.dumps({**r, "id": f"{r['id']}#{i}", "audio": str(SAMPLE / r["audio"])}) + "\n")
    return out


def timed(cmd: list[str], env: dict[str, str] | None = None, stderr_too: bool = False) -> tuple[float, str]:
    """Wall seconds of a command (a fresh process, imports and start-up included) and its output."""
    start = time.perf_counter()
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **(env or {})})
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"{cmd} failed:\n{out.stdout}\n{out.stderr}")
    return elapsed, out.stdout + (out.stderr if stderr_too else "")


@dataclass(frozen=True)
class Measured:
    """One command's cost: wall seconds, CPU seconds (user + system) of its whole process tree
    (every descendant it waited for, e.g. Prefect's ephemeral API server), the peak resident
    memory of its largest process, and its output."""

    wall_s: float
    cpu_s: float
    max_rss_mb: float
    out: str


def measured(cmd: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run ``cmd`` as a fresh process and measure it (``os.wait4`` reports the tree's usage)."""
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                                   env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if process.returncode != 0:
        sys.exit(f"{cmd} failed ({process.returncode}):\n{text}")
    return Measured(elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text)


def free_port() -> int:
    """A loopback port nothing listens on now (for a server this benchmark starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
