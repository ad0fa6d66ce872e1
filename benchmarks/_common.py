"""Shared helpers for the benchmarks: a replicated manifest and timed subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **(env or {})})
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"{cmd} failed:\n{out.stdout}\n{out.stderr}")
    return elapsed, out.stdout + (out.stderr if stderr_too else "")
