"""What produced a result: code version, git commit, package versions, machine."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from functools import lru_cache
from typing import Any

import audio_evals

_PACKAGES = (
    "prefect", "faster-whisper", "ctranslate2", "jiwer", "sacrebleu", "whisper-normalizer",
    "soundfile", "soxr", "numpy", "datasets", "torch", "transformers", "vllm",
)


def _git(*args: str) -> str | None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(audio_evals.__file__)))
    try:
        out = subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    packages = {}
    for name in _PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "version": audio_evals.__version__,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": packages,
    }
