"""A printed command reproduces its number: run with a spread of options, then run the ``eval_cli`` the
summary and report print, and get the same figures.

Before: after ``run -P beam_size=1`` the printed command left out ``-P beam_size=1`` (running it gave
the beam-5 figure), ``--limit`` was dropped, and a manifest's command said ``--dataset my-data``,
which fails with "unknown dataset".
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import reference
from tests.conftest import SAMPLE_DIR

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], where: Path) -> dict:
    """``audio-evals run ARGS`` (results and cache in ``where``, which change no number); its summary.json."""
    from cli.main import app

    output = where / "results"
    before = set(output.rglob("summary.json")) if output.exists() else set()
    result = CliRunner().invoke(app, ["run", *reference.normalise_argv(args), "--output", str(output),
                                      "--cache-dir", str(where / "cache")])
    assert result.exit_code == 0, result.output
    (new,) = set(output.rglob("summary.json")) - before
    return json.loads(new.read_text(encoding="utf-8"))


def _figures(summary: dict) -> list[tuple[str, float, int]]:
    return [(m["name"], m["value"], m["n"]) for m in summary["metrics"]]


def _printed(summary: dict) -> list[str]:
    """The summary's eval_cli, checked to be the one the report prints, as arguments after the script."""
    report = (Path(summary["_folder"]) / "report.md").read_text(encoding="utf-8")
    assert f"[1] `{summary['eval_cli']}`" in report
    parts = shlex.split(summary["eval_cli"])
    assert parts[:2] == ["python", "audio_evals/main.py"]
    return parts[2:]


def _manifest(folder: Path, n: int) -> Path:
    """The first ``n`` English rows of the bundled sample as a manifest of one's own, audio paths absolute."""
    folder.mkdir()
    rows = [json.loads(line) for line in (SAMPLE_DIR / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    english = [{**r, "audio": str(SAMPLE_DIR / r["audio"])} for r in rows if r.get("lang") == "en"][:n]
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in english), encoding="utf-8")
    return path


@pytest.mark.parametrize("options", [
    ["-P", "beam_size=1", "--limit", "8"],
    ["--rand", "5", "--seed", "3", "-A", "compute_type=float32"],
    ["--limit", "6", "--evaluator", "cer"],
], ids=["beam-limit", "rand-model-args", "evaluator"])
def test_the_printed_command_gives_the_same_number(prefect_api, tmp_path: Path, options: list[str]) -> None:
    first = _run(["--dataset", "speech-sample-en", "--model", "whisper-tiny.en", *options], tmp_path)
    first["_folder"] = str(next((tmp_path / "results").rglob(f"{first['run_id']}")))
    again = _run(_printed(first), tmp_path)
    assert _figures(again) == _figures(first)
    assert again["options"]["generation"] == first["options"]["generation"]


def test_a_manifests_printed_command_runs_from_anywhere_in_a_fresh_process(prefect_api, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifest is named relative to the working folder; the printed command (absolute path,
    ``--name``) runs as typed from the project root in a new process and gives the same figures."""
    from prefect.settings import PREFECT_API_URL

    _manifest(tmp_path / "mine", 4)
    monkeypatch.chdir(tmp_path)
    first = _run(["--dataset", "mine/manifest.jsonl", "--name", "my-data", "--model", "whisper-tiny.en",
                  "-P", "beam_size=2"], tmp_path)
    first["_folder"] = str(next((tmp_path / "results").rglob(f"{first['run_id']}")))
    args = _printed(first)
    assert args[args.index("--dataset") + 1] == str(tmp_path / "mine" / "manifest.jsonl")
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    out = subprocess.run([sys.executable, "audio_evals/main.py", *args, "--output", str(tmp_path / "again"),
                          "--cache-dir", str(tmp_path / "cache")], capture_output=True, text=True, timeout=300,
                         cwd=ROOT, env=env, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    (summary,) = (tmp_path / "again" / "whisper-tiny.en" / "my-data").glob("*/summary.json")
    assert _figures(json.loads(summary.read_text(encoding="utf-8"))) == _figures(first)
