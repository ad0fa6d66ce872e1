"""The wheel holds what an installed ``audio-evals`` needs outside the checkout: the bundled suites.

The wheel is built from a copy of the checkout (no ``build/`` left in the tree) and used from
another working directory, where ``audio-evals suite sample`` must find the bundled suite.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audio_evals.run.suites import SUITES_DIR, SuiteError, bundled_suites, find_suite
from cli.main import app
from tests.processes import REPO

BUILD_OUTPUTS = shutil.ignore_patterns(".git", ".venv", "build", "dist", "results", "*.egg-info", "__pycache__",
                                       ".pytest_cache")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(REPO, source, ignore=BUILD_OUTPUTS)
    # Without setuptools here, pip fetches the build backend from the index, as `pip install .` does.
    no_isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", *no_isolation, "-w", str(tmp / "dist"),
                    str(source)], check=True, capture_output=True, timeout=300)
    (built,) = (tmp / "dist").glob("audio_evals-*.whl")
    return built


def test_the_wheel_ships_every_suite(wheel):
    folder = "audio_evals/assets/suites/"
    shipped = sorted(n.removeprefix(folder) for n in zipfile.ZipFile(wheel).namelist() if n.startswith(folder))
    assert shipped == sorted(p.name for p in SUITES_DIR.glob("*.yaml"))
    assert {"sample", "kimi-audio", "step-audio-r1.1"} <= set(bundled_suites())


def test_a_suite_runs_by_name_from_another_directory(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PYTHONPATH=str(site), PREFECT_HOME=str(tmp_path / "prefect-home"),
               AUDIO_EVALS_LOCAL_CACHE=str(tmp_path / "local-cache"))
    code = ("import audio_evals.run.suites as s, sys; assert s.__file__.startswith(sys.argv[1]), s.__file__; "
            "print(s.find_suite('suites/sample.yaml') == s.find_suite('sample'), s.load_suite('kimi-audio').title)")
    resolved = subprocess.run([sys.executable, "-c", code, str(site)], cwd=elsewhere, env=env, capture_output=True,
                              text=True, timeout=60)
    assert resolved.returncode == 0, resolved.stderr
    assert resolved.stdout.startswith("True ")

    suite = subprocess.run([sys.executable, "-m", "cli", "suite", "sample", "--limit", "2",
                            "--output", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache")],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert suite.returncode == 0, suite.stdout + suite.stderr
    assert list((tmp_path / "results" / "suites" / "sample").glob("*/report.md"))


def test_an_unknown_suite_names_the_bundled_ones(tmp_path):
    with pytest.raises(SuiteError, match=r"no suite file 'suites/nope.yaml' .*bundled: .*sample"):
        find_suite("suites/nope.yaml")
    with pytest.raises(SuiteError):  # a missing path elsewhere is never swapped for a bundled suite
        find_suite(tmp_path / "sample.yaml")
    (tmp_path / "sample.yaml").write_text("title: mine\n", encoding="utf-8")
    assert find_suite(tmp_path / "sample.yaml") == tmp_path / "sample.yaml"  # an existing file wins
    result = CliRunner().invoke(app, ["suite", "nope"])
    assert result.exit_code == 2 and result.output.startswith("error: no suite file 'nope'")


def test_the_deployments_default_suite_is_the_bundled_one_from_any_directory(tmp_path, monkeypatch):
    from deployments.serve import build_deployments

    monkeypatch.chdir(tmp_path)
    suites = {d.name: d.parameters["suite_file"] for d in build_deployments() if "suite_file" in d.parameters}
    assert suites == dict.fromkeys(["nightly-suite", "on-model-published"], str(SUITES_DIR / "sample.yaml"))
