"""The CLI's ephemeral Prefect API: started before Prefect is imported, on a socket the CLI bound.

Prefect's own start of it imports ``prefect.server`` (FastAPI, SQLAlchemy) into the CLI process
only to start a subprocess; here the process talks to the server without that import, and the
server ends with the process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

from tests.conftest import ROOT

USES_IT = """
import sys
from cli import ephemeral
api = ephemeral.start()
api.ready()
from prefect.client.orchestration import get_client
with get_client(sync_client=True) as client:
    assert client.api_healthcheck() is None  # None: healthy
print(api.process.pid, api.api_url)
print(sorted(m for m in ("prefect.server.api.server", "fastapi", "sqlalchemy") if m in sys.modules))
"""


def test_the_cli_process_uses_its_ephemeral_api_without_importing_prefect_server_and_the_server_ends_with_it(
        tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "home"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    done = subprocess.run([sys.executable, "-c", USES_IT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    first, second = done.stdout.strip().splitlines()[-2:]
    pid, api_url = first.split()
    assert api_url.startswith("http://127.0.0.1:") and second == "[]", done.stdout
    deadline = time.monotonic() + 10
    while _alive(int(pid)):
        assert time.monotonic() < deadline, "the ephemeral API server outlived the process that started it"
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_prefect_imported_before_the_start_still_uses_the_started_server(tmp_path):
    """A plan that reads a Prefect block imports Prefect first: its settings are refreshed to the new URL."""
    script = ("import prefect.context\nfrom cli import ephemeral\napi = ephemeral.start()\napi.ready()\n"
              "from prefect.settings import get_current_settings\nprint(get_current_settings().api.url == api.api_url)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "home"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0 and done.stdout.strip().splitlines()[-1] == "True", done.stdout + done.stderr


def test_a_server_named_by_the_prefect_profile_is_used_and_no_ephemeral_one_is_left(tmp_path):
    """Without ``PREFECT_API_URL`` in the environment, Prefect's active profile may still name a server."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "profiles.toml").write_text('active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://127.0.0.1:9/api"\n',
                                        encoding="utf-8")
    script = ("import os, psutil\nfrom cli import ephemeral\napi = ephemeral.start()\n"
              "print(api is None, os.environ.get('PREFECT_API_URL'),"
              " [p.pid for p in psutil.Process().children() if p.status() != psutil.STATUS_ZOMBIE])")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == "True None []", done.stdout
