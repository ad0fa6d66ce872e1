"""A model behind vLLM's OpenAI-compatible server: an existing one, or one this backend starts.

``base_url`` connects to a running server. ``serve: {model: ..., tensor_parallel_size: 4, ...}``
starts ``vllm serve`` on a free loopback port as a managed subprocess (own process group, log
file, health check) the first time a shard needs it, and stops it on ``close`` and at exit.
Requests go through ``OpenAIBackend`` with many in flight, so the server's continuous batching
fills the GPUs; think-tag reasoning is split off there.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import httpx

from audio_evals.models.base import (
    Backend,
    BackendUnavailable,
    ModelOutput,
    ModelRequest,
    RequestsFailed,
    Requirements,
    TransientBackendError,
)
from audio_evals.models.openai_api import OpenAIBackend, RequestShape
from audio_evals.models.vllm_offline import VLLM_EXTRA
from audio_evals.paths import local_cache_dir
from audio_evals.redaction import redact

#: How much of the server log an error message quotes.
_TAIL_CHARS = 4000


def free_port() -> int:
    """A loopback port nobody listens on now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_args(serve: dict[str, Any]) -> list[str]:
    """``serve`` entries as ``vllm serve`` flags: ``tensor_parallel_size: 4`` → ``--tensor-parallel-size 4``,
    ``true`` → a bare flag; ``extra_args`` are appended as given."""
    args = [str(serve["model"])]
    for key, value in serve.items():
        if key in ("model", "extra_args") or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    return args + [str(a) for a in serve.get("extra_args", [])]


class ManagedServer:
    """A server subprocess in its own process group, logging to a file, ready once healthy."""

    def __init__(self, argv: list[str], port: int, log_path: str):
        self.argv, self.port, self.log_path = argv, port, log_path
        self.root = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float) -> None:
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        with open(self.log_path, "wb") as log:
            try:
                self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, start_new_session=True)
            except OSError as e:
                raise BackendUnavailable(f"vllm_served: cannot start {self.argv[0]!r}: {e}") from None
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout_s
        while not self.healthy():
            if self.process.poll() is not None:
                code = self.process.returncode
                self.stop()
                raise BackendUnavailable(
                    f"vllm_served: the server exited with code {code} before it was ready"
                    f" ({' '.join(self.argv)}); log {self.log_path} ends with:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise BackendUnavailable(
                    f"vllm_served: the server was not ready after {timeout_s:g} s; log {self.log_path} ends with:\n"
                    f"{self.log_tail()}")
            time.sleep(0.25)

    def healthy(self) -> bool:
        for path in ("/health", "/v1/models"):
            try:
                if httpx.get(self.root + path, timeout=2.0, trust_env=False).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
        return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log_path) - _TAIL_CHARS))
                return f.read().decode("utf-8", errors="replace")
        except OSError as e:
            return f"(log unreadable: {e})"

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM the whole process group (vLLM forks workers), SIGKILL what is left after ``grace_s``."""
        atexit.unregister(self.stop)
        process, self.process = self.process, None
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=grace_s)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # workers that outlived their parent
        except ProcessLookupError:
            pass
        process.wait()


@dataclass(kw_only=True)
class VLLMServedBackend(RequestShape, Backend):
    #: A running server's API root (``http://host:8000/v1``); or else ``serve``.
    base_url: str | None = None
    #: ``vllm serve`` settings: ``model`` and any flags (``tensor_parallel_size``, ``extra_args``, ...).
    serve: dict[str, Any] | None = None
    #: The model name requests carry; default ``serve.served_model_name`` or ``serve.model``.
    model: str | None = None
    #: The executable (and leading arguments) run as ``<command> serve MODEL ...``.
    command: list[str] | None = None
    api_key_env: str | None = None
    max_concurrency: int = 32
    timeout_s: float = 600.0
    max_retries: int = 2
    startup_timeout_s: float = 1800.0
    sample_rate: int = 16000
    #: Where server logs go; default the local cache's ``logs`` folder.
    log_dir: str | None = None
    thread_safe: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if bool(self.base_url) == bool(self.serve):
            raise BackendUnavailable("vllm_served: give either base_url (connect) or serve (start a server)")
        if self.serve and "model" not in self.serve:
            raise BackendUnavailable("vllm_served: serve needs a model")
        if self.base_url and not self.model:
            raise BackendUnavailable("vllm_served: with base_url, give the model name the server serves")

    @property
    def served_model(self) -> str:
        return self.model or (self.serve or {}).get("served_model_name") or str((self.serve or {})["model"])

    @property
    def requirements(self) -> Requirements:
        return Requirements(sample_rate=self.sample_rate)

    def fingerprint(self) -> dict[str, Any]:
        # A started server's port changes every run, so it is not part of the identity.
        where = {"base_url": self.base_url} if self.base_url else {"serve": self.serve}
        return redact({"backend": "vllm_served", **where, "model": self.served_model, **self.shape(),
                       "think_tags": list(self.think_tags), "generation": self.generation})

    def check(self) -> None:
        if self.serve and not self.command and shutil.which("vllm") is None:
            raise BackendUnavailable(
                f"vllm is not installed here: {VLLM_EXTRA} (or give base_url of a running vLLM server)")

    def _argv(self, port: int) -> list[str]:
        self.check()
        command = self.command or ["vllm"]
        return [*command, "serve", *serve_args(self.serve or {}), "--host", "127.0.0.1", "--port", str(port)]

    def _load(self) -> tuple[ManagedServer | None, OpenAIBackend]:
        """The server (started here, unless ``base_url`` names a running one) and its client."""
        server, base_url = None, self.base_url
        if self.serve:
            port = free_port()
            name = re.sub(r"[^\w.-]", "_", str(self.serve["model"]))[-60:]
            log = os.path.join(self.log_dir or os.path.join(local_cache_dir(), "logs"), f"vllm-serve-{name}-{port}.log")
            server = ManagedServer(self._argv(port), port, log)
            server.start(self.startup_timeout_s)
            base_url = f"{server.root}/v1"
        client = OpenAIBackend(
            generation=self.generation, base_url=base_url, model=self.served_model, **self.shape(),
            api_key_env=self.api_key_env, max_concurrency=self.max_concurrency, timeout_s=self.timeout_s,
            max_retries=self.max_retries,
        )
        return server, client

    def _release(self, loaded: tuple[ManagedServer | None, OpenAIBackend]) -> None:
        server, client = loaded
        client.close()
        if server is not None:
            server.stop()

    def _died(self, server: ManagedServer, answered: list[ModelOutput]) -> TransientBackendError:
        """The server is gone: drop it (the retry starts a new one) and say why, from its log."""
        tail = server.log_tail()
        self.close()
        return TransientBackendError(
            f"vllm_served: the server died (log {server.log_path}); it restarts on retry:\n{tail}", answered)

    def _generate(self, loaded: tuple[ManagedServer | None, OpenAIBackend],
                  requests: list[ModelRequest]) -> list[ModelOutput]:
        server, client = loaded
        if server is not None and not server.alive():
            raise self._died(server, [])
        try:
            return client.generate(requests)
        except RequestsFailed as e:
            if server is not None and not server.alive():  # the requests failed because the server did
                raise self._died(server, e.answered) from None
            raise


BACKEND = VLLMServedBackend
