"""Links that open: from an http page (the Prefect UI) a browser refuses file:// links, so results are
served over HTTP on 127.0.0.1 (``audio-evals serve-results``) and linked there; s3:// results presigned.

Before: every view.html / report link in the UI's artifacts was a file:// URL that did nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from audio_evals.report import links

ROOT = Path(__file__).resolve().parents[1]


def _ctrl_c_as_in_a_terminal() -> None:
    """SIGINT as a terminal gives it, even where the test run was started with SIGINT ignored (a
    background job of a shell without job control), which every child would otherwise inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def served(tmp_path, monkeypatch):
    """``audio-evals serve-results`` over a results folder holding one page, in its own process."""
    home = tmp_path / "prefect-home"
    monkeypatch.setenv("PREFECT_HOME", str(home))
    results = tmp_path / "results" / "m" / "d" / "run 1"
    results.mkdir(parents=True)
    (results / "view.html").write_text("<p>the samples</p>", encoding="utf-8")
    process = subprocess.Popen([sys.executable, "-m", "cli", "serve-results", str(tmp_path / "results"),
                                "--port", "0"], cwd=ROOT, env={**os.environ, "PREFECT_HOME": str(home)},
                               stdout=subprocess.PIPE, text=True, preexec_fn=_ctrl_c_as_in_a_terminal)
    deadline = time.monotonic() + 30
    while links.running() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        yield results / "view.html", process
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)


def test_a_local_result_is_linked_over_http_while_the_results_server_runs(served) -> None:
    page, process = served
    url = links.link(str(page))
    assert url.startswith("http://127.0.0.1:") and url.endswith("/m/d/run%201/view.html")
    with urllib.request.urlopen(url, timeout=10) as response:  # what a click on the artifact's link fetches
        assert response.status == 200 and b"the samples" in response.read()
    process.send_signal(signal.SIGINT)
    process.wait(timeout=10)
    assert links.running() is None and links.link(str(page)) == page.resolve().as_uri()  # stopped: file:// again


def test_an_object_store_result_gets_a_presigned_https_link(monkeypatch) -> None:
    """A presigned URL needs no credentials in the browser (signing is local: no request is made)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    url = links.link("s3://bucket/results/m/d/run/view.html")
    # https on AWS; the endpoint's own scheme where AWS_ENDPOINT_URL names one (a moto server in other tests)
    assert url.startswith(("https://", "http://")) and "/results/m/d/run/view.html?" in url and "bucket" in url
    assert "Signature" in url and "test-secret" not in url and "testing" not in url.split("Signature")[1]
