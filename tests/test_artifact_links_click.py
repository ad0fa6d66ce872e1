"""The click: in the Prefect UI's page of a run's report artifact, headless Chromium clicks the link to
the sample viewer and the viewer opens (served by ``audio-evals serve-results`` on 127.0.0.1).

Before: the link was a ``file://`` URL, which a browser does not open from an http page.
Real parts only: ``prefect server start``, a run in its own process, the results server, Chromium
driven over the DevTools protocol.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.processes import free_port, start_process, stop_process, wait_for
from tests.test_deployments import CHROMIUM, _clean_env, _scripted_registry

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} not installed")]
ROOT = Path(__file__).resolve().parents[1]


class Page:
    """One Chromium tab, driven over its DevTools websocket."""

    def __init__(self, ws_url: str):
        self.ws = connect(ws_url, max_size=None, open_timeout=10)
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == self.next_id:
                return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")


def _targets(port: int) -> list[dict[str, Any]]:
    return httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()


def test_the_view_link_of_a_report_artifact_opens_when_clicked(tmp_path: Path) -> None:
    home, results = tmp_path / "home", tmp_path / "results"
    results.mkdir()
    port = free_port()
    api, ui = f"http://127.0.0.1:{port}/api", f"http://127.0.0.1:{port}"
    processes = [start_process([sys.executable, "-m", "prefect", "server", "start"], _clean_env(
        PREFECT_HOME=str(tmp_path / "server-home"), PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_SERVER_API_PORT=str(port),
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}"), tmp_path / "server.log")]
    try:
        client_env = _clean_env(PREFECT_API_URL=api, PREFECT_HOME=str(home))
        processes.append(start_process([sys.executable, "-m", "cli", "serve-results", str(results), "--port", "0"],
                                       client_env, tmp_path / "results-server.log"))
        wait_for("the results server", lambda: (home / "audio-evals-results-server.json").exists(), 30)
        wait_for("the Prefect server", lambda: _healthy(api), 120)
        subprocess.run([sys.executable, "-m", "cli", "run", "--dataset", "speech-sample-en", "--model", "scripted",
                        "--registry-path", _scripted_registry(tmp_path), "--limit", "4", "--output", str(results),
                        "--cache-dir", str(tmp_path / "cache")], env=client_env, cwd=ROOT, check=True, timeout=300,
                       capture_output=True)
        body = {"artifacts": {"type": {"any_": ["markdown"]}}}
        (artifact,) = [a for a in httpx.post(f"{api}/artifacts/filter", json=body, timeout=10).json()
                       if a["key"].startswith("eval-report-")]
        assert "](http://127.0.0.1:" in artifact["data"] and "file://" not in artifact["data"]
        title = _click_view_link(f"{ui}/artifacts/artifact/{artifact['id']}")
        assert title == "Samples of scripted on speech-sample-en"
    finally:
        for process in reversed(processes):
            stop_process(process)


def _healthy(api: str) -> bool:
    try:
        return httpx.get(f"{api}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _click_view_link(artifact_page: str) -> str:
    """Open the artifact's page in headless Chromium, click its ``view.html`` link, and return the title
    of the page that opened (in the same tab or a new one)."""
    # Chromium's helper processes may still write to the profile as it is removed: its leftovers are not the test's.
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as profile:
        browser = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                    "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            active = Path(profile) / "DevToolsActivePort"
            wait_for("chromium's DevTools port", active.exists, 30)
            port = int(active.read_text().split()[0])
            (tab,) = [t for t in _targets(port) if t["type"] == "page"]
            page = Page(tab["webSocketDebuggerUrl"])
            page.call("Page.navigate", url=artifact_page)
            find = "[...document.querySelectorAll('a')].filter(a => a.href.endsWith('/view.html')).length"
            wait_for("the artifact's rendered link", lambda: page.evaluate(find), 90, every_s=1)
            x, y = page.evaluate("(() => { const a = [...document.querySelectorAll('a')].find("
                                 "a => a.href.endsWith('/view.html')); a.scrollIntoView({block: 'center'}); "
                                 "const r = a.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
            for kind in ("mousePressed", "mouseReleased"):  # a real click: a user gesture may open a new tab
                page.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

            def opened() -> str | None:
                for target in _targets(port):
                    if target["type"] == "page" and target["url"].endswith("/view.html"):
                        return Page(target["webSocketDebuggerUrl"]).evaluate(
                            "document.readyState === 'complete' ? document.title : ''") or None
                return None

            return wait_for("the viewer to open", opened, 60, every_s=1)
        finally:
            os.killpg(browser.pid, signal.SIGKILL)  # the browser and its helper processes
            browser.wait()
