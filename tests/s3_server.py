"""A real S3 endpoint for tests: moto in server mode, in its own process, on a local port.

Running moto as a separate HTTP server (not the in-process ``mock_aws``) exercises the same
code paths as a real object store: s3fs, botocore and ``datasets`` talk HTTP to it. ``stop()``
and ``start()`` simulate an outage on the same port; moto keeps its state in memory, so a
restart comes back EMPTY (buckets and objects are gone) and a test must re-create what it needs.

tests/conftest.py registers the fixtures once for the whole session.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

#: Variables that could point the clients at real AWS or another account while tests run.
_UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class MotoServer:
    """A moto S3 server subprocess on ``host:port``; the port stays the same across restarts."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, startup_timeout_s: float = 30.0) -> None:
        self.host = host
        self.port = port or _free_port(host)
        self.startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        fd, self.log_path = tempfile.mkstemp(prefix="moto-server-", suffix=".log")
        os.close(fd)

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point boto3, s3fs and ``datasets`` at this server."""
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
        }

    def start(self) -> None:
        """Start the server (no-op when running) and wait until it answers S3 requests."""
        if self.running:
            return
        command = [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)]
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.startup_timeout_s
        while not self._healthy():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"moto server did not start on {self.endpoint_url}:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the server and wait until the port refuses connections; its state is lost."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
        deadline = time.monotonic() + 10
        while self._accepts() and time.monotonic() < deadline:
            time.sleep(0.05)

    def reset(self) -> None:
        """Drop every bucket and object without restarting (moto's reset API)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=5).close()

    def log_tail(self, chars: int = 4000) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()[-chars:]

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/data.json", timeout=1) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _accepts(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            return s.connect_ex((self.host, self.port)) == 0

    def __enter__(self) -> "MotoServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        os.unlink(self.log_path)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """One moto server for the session, with the AWS variables pointing at it while it runs."""
    server = MotoServer()
    with pytest.MonkeyPatch.context() as mp:
        for name in _UNSET:
            mp.delenv(name, raising=False)
        for name, value in server.env().items():
            mp.setenv(name, value)
        with server:
            yield server


@pytest.fixture
def s3_bucket(moto_server: MotoServer) -> Iterator[str]:
    """A fresh, empty bucket (the server is restarted first if an outage test left it down)."""
    import boto3

    moto_server.start()
    name = f"test-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    yield name
    if not moto_server.running:
        return
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=name, Key=item["Key"])
        client.delete_bucket(Bucket=name)
    except client.exceptions.NoSuchBucket:
        pass  # the server was restarted during the test: the bucket is already gone
