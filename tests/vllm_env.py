"""Finding the vLLM that real-engine tests use, and watching the processes it starts.

The vLLM environment is the Python named by ``AUDIO_EVALS_VLLM_PYTHON``, else the repository's
``.venv-vllm`` (``scripts/install-vllm`` makes it; ``.ci/run`` runs that). Without either the
tests skip, saying so.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def vllm_python() -> str:
    """The vLLM Python, or skip naming how to get one."""
    python = os.environ.get("AUDIO_EVALS_VLLM_PYTHON") or str(ROOT / ".venv-vllm" / "bin" / "python")
    if not Path(python).exists():
        pytest.skip(f"no vLLM environment ({python} is absent): run scripts/install-vllm "
                    "or set AUDIO_EVALS_VLLM_PYTHON")
    return python


def group_members(pgid: int) -> list[int]:
    """Live processes (zombies excluded) of process group ``pgid``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


def group_gone(pgid: int, within_s: float = 60.0) -> bool:
    """Whether every process of group ``pgid`` has exited within ``within_s``."""
    deadline = time.monotonic() + within_s
    while group_members(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)
    return True


def server_groups(marker: str) -> list[int]:
    """Process groups of vLLM API servers whose command line contains ``marker``."""
    groups = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
            stat = (cmdline.parent / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if b"vllm.entrypoints.openai.api_server" in argv and marker.encode() in b" ".join(argv):
            groups.add(int(stat[2]))
    return sorted(groups)
