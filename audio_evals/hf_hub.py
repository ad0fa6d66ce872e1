"""The one door to the Hugging Face hub: offline detection and the commit of a dataset or model repo.

Every result names the commit it was computed from, so a repo updated on the hub is a new
identity. A commit is asked of the hub with a short timeout; a server error (5xx) is retried a
few times with backoff (tenacity: the hub client has no retry for these metadata calls), while a
timeout or an unreachable host is an answer: the hub cannot be asked. Offline, a model's commit
comes from the local Hugging Face cache, which records the commit each downloaded branch was at
(``models--owner--name/refs/<branch>``).
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any, Literal

import tenacity

log = logging.getLogger(__name__)

#: Seconds the hub gets to answer; past it the repo counts as unreachable.
HUB_TIMEOUT_S = 10.0
_COMMIT = re.compile(r"[0-9a-f]{40}")
_TRUE = {"1", "ON", "YES", "TRUE"}


def offline() -> bool:
    """Whether hub access is switched off (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``), read at
    call time so a test or a user can flip it."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return env.strip().upper() in _TRUE or constants.HF_HUB_OFFLINE


def _server_error(error: BaseException) -> bool:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", 0) >= 500


@tenacity.retry(retry=tenacity.retry_if_exception(_server_error), stop=tenacity.stop_after_attempt(3),
                wait=tenacity.wait_exponential(multiplier=0.5, max=4), reraise=True)
def repo_commit(kind: Literal["dataset", "model"], repo: str, revision: str | None) -> str:
    """The commit the hub serves for ``revision`` (default branch when None); raises the hub
    client's errors (not found, gated, unreachable) for the caller to word."""
    from huggingface_hub import HfApi

    info: Any = getattr(HfApi(), f"{kind}_info")(repo, revision=revision, timeout=HUB_TIMEOUT_S)
    return info.sha


def cached_model_commit(repo: str, revision: str | None) -> str | None:
    """The commit the local Hugging Face cache recorded for ``revision`` of ``repo``; None if absent."""
    from huggingface_hub import constants

    ref = os.path.join(constants.HF_HUB_CACHE, "models--" + repo.replace("/", "--"), "refs", revision or "main")
    try:
        with open(ref, encoding="utf-8") as f:
            commit = f.read().strip()
    except OSError:
        return None
    return commit if _COMMIT.fullmatch(commit) else None


def model_commit(repo: str, revision: str | None) -> str | None:
    """The commit to load ``repo`` at: ``revision`` itself when it is one, else the hub's answer,
    else (offline or unreachable) the local cache's; None when nobody can say."""
    if revision and _COMMIT.fullmatch(revision):
        return revision
    if not offline():
        try:
            return repo_commit("model", repo, revision)
        except Exception as e:  # noqa: BLE001 (not found, gated, unreachable: the local cache may know)
            log.info("hub: no commit for model %s@%s from the hub (%s); trying the local cache",
                     repo, revision or "main", type(e).__name__)
    return cached_model_commit(repo, revision)
