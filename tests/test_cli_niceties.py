"""The small things a user expects, each checked as issue 20 found it missing on main."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from audio_evals.run.rerun import RunChanged, check_unchanged
from audio_evals.run.spec import ParentRun
from cli.main import app
from tests.test_pipeline import _evaluate

runner = CliRunner()


def test_version_and_short_help() -> None:
    """Before: ``--version`` and ``-h`` were unknown options."""
    from audio_evals import __version__

    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.output.strip() == f"audio-evals {__version__}"
    short = runner.invoke(app, ["run", "-h"])
    assert short.exit_code == 0 and "--dataset" in short.output


def test_server_start_with_one_running_and_stop_with_none_exit_0(tmp_path: Path, monkeypatch) -> None:
    """Before: both exited 1; the state asked for already holds, so both say so and succeed."""
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    stopped = runner.invoke(app, ["server", "stop"])
    assert stopped.exit_code == 0 and "nothing to stop" in stopped.output
    stand_in = subprocess.Popen(["sleep", "60"])  # a live process recorded as the server
    try:
        (tmp_path / "audio-evals-server.json").write_text(json.dumps(
            {"pid": stand_in.pid, "port": 4599, "api_url": "http://127.0.0.1:4599/api", "log": str(tmp_path / "log"),
             "created": psutil.Process(stand_in.pid).create_time()}), encoding="utf-8")
        started = runner.invoke(app, ["server", "start", "--port", "4599"])
        assert started.exit_code == 0 and "already running" in started.output and "nothing to start" in started.output
        assert stand_in.poll() is None  # left running, nothing else started
    finally:
        stand_in.kill()
        stand_in.wait()


def test_a_refused_retry_says_what_each_changed_hash_means() -> None:
    """Before: the refusal named only hashes (``dataset.fingerprint sha256:0f… → sha256:1a…``)."""
    parent = ParentRun(run_id="r1", identity={"dataset": {"fingerprint": "sha256:0f0f"}, "model": {"fingerprint": "a"}})
    with pytest.raises(RunChanged) as refused:
        check_unchanged(parent, {"dataset": {"fingerprint": "sha256:1a1a"}, "model": {"fingerprint": "b"}})
    assert "dataset.fingerprint (the dataset's files changed)" in str(refused.value)
    assert "model.fingerprint (the model's weights or settings changed)" in str(refused.value)


def test_retry_of_a_run_with_nothing_failed_makes_no_new_run(prefect_api, tmp_path, scripted_registry) -> None:
    """Before: it made a new run (a copy) of a run that had nothing to retry."""
    summary = _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en", shard_size=32)
    folder = Path(summary.paths["summary"]).parent
    result = runner.invoke(app, ["retry", str(folder)])
    assert result.exit_code == 0 and f"nothing to retry: run {summary.run_id} has no failed shard" in result.output
    assert list(folder.parent.iterdir()) == [folder]


def test_evaluate_with_an_unknown_name_raises_before_any_flow_run(prefect_api) -> None:
    """Before: ``evaluate(dataset="nope")`` made a FAILED flow run, then raised."""
    import asyncio

    from prefect.client.orchestration import get_client

    import audio_evals
    from audio_evals.plugins import UnknownName

    async def count() -> int:
        async with get_client() as client:
            return len(await client.read_flow_runs(limit=200))

    before = asyncio.run(count())
    with pytest.raises(UnknownName, match="nope"):
        audio_evals.evaluate(dataset="nope")
    assert asyncio.run(count()) == before


def test_the_readme_python_example_runs_as_written(prefect_api, tmp_path, monkeypatch) -> None:
    """Before: ``summary["metrics"][0]["value"]`` raised TypeError ('RunSummary' object is not subscriptable)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## From Python (a notebook)", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUDIO_EVALS_CACHE", str(tmp_path / "cache"))
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 -- the README's own example, as a reader pastes it
    summary = scope["summary"]
    assert summary.metrics[0].value is not None and Path(scope["run"].folder).is_dir()
    assert scope["board"].records() and scope["run"].summary.run_id == summary.run_id


def test_view_of_two_runs_prints_the_difference(prefect_api, tmp_path, scripted_registry) -> None:
    """Before: ``view A B`` printed only the page's path."""
    a = _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en", shard_size=32)
    time.sleep(0.01)
    b = _evaluate(tmp_path, scripted_registry, dataset="speech-sample-en", shard_size=32, limit=20)
    result = runner.invoke(app, ["view", str(Path(a.paths["summary"]).parent), str(Path(b.paths["summary"]).parent),
                                 "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "wer: A 0.00 → B 0.00, B − A +0.00 [+0.00, +0.00] (95% paired CI, n=20)" in result.output
    assert "note: the runs differ in options that change numbers: A default options; B --limit 20" in result.output


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_result_files_honour_the_umask(tmp_path, umask) -> None:
    """Before: every file written atomically was 0600 whatever the umask (mkstemp's mode)."""
    import os

    from audio_evals import storage

    old = os.umask(umask)
    try:
        storage.write_text(str(tmp_path / "report.md"), "x")
    finally:
        os.umask(old)
    assert (tmp_path / "report.md").stat().st_mode & 0o777 == 0o666 & ~umask


def test_model_args_take_several_in_one_and_a_bad_compute_type_is_refused_before_work(tmp_path) -> None:
    """Before: ``-A a=1,b=2`` was one value ``1,b=2``; ``-A compute_type=float99`` failed all 26 samples."""
    from cli.options import parse_assignments

    assert parse_assignments(["device=cpu,compute_type=int8", "x=[1, 2]"], "-A") == {
        "device": "cpu", "compute_type": "int8", "x": [1, 2]}
    result = runner.invoke(app, ["run", "--dataset", "speech-sample-en", "--model", "whisper-tiny.en",
                                 "-A", "compute_type=float99", "--output", str(tmp_path / "results")])
    assert result.exit_code == 2 and "compute_type 'float99' is not one CTranslate2 knows" in result.output
    assert not (tmp_path / "results" / "whisper-tiny.en").exists()


def test_clicks_own_errors_read_as_ours(capsys) -> None:
    """Before: a misspelt option printed click's usage block over ``Error:``; ours say ``error:`` in one line."""
    from cli.main import main

    with pytest.raises(SystemExit) as exited:
        main(["run", "--datset", "x"])
    out = capsys.readouterr().out
    assert exited.value.code == 2 and out.startswith("error: No such option: --datset") and "Usage:" not in out
    assert len(out.strip().splitlines()) == 1 and "--dataset" in out and "(see: audio-evals run --help)" in out


def test_dry_run_says_whether_the_backend_runs_here_and_shows_the_prompt() -> None:
    """Before: ``--dry-run`` showed the prompt by name only and not that the backend cannot run here."""
    from audio_evals.models.base import BackendUnavailable
    from audio_evals.pipeline.preflight import check_backends
    from audio_evals.run.plan import plan_of
    from audio_evals.run.spec import RunSpec

    result = runner.invoke(app, ["run", "--dataset", "speech-sample-en", "--model", "whisper-tiny.en",
                                 "--device", "cuda", "--dry-run"])
    plan = json.loads(result.output)
    assert result.exit_code == 0 and "listen the audio" in json.dumps(plan["prompt_messages"])
    try:  # what a real run would find
        check_backends(plan_of(RunSpec(dataset="speech-sample-en", model="whisper-tiny.en",
                                       model_args={"device": "cuda"})))
        expected: dict = {"runs_here": True}
    except BackendUnavailable as e:
        expected = {"runs_here": False, "cannot_run_here": str(e)}
    assert {k: plan.get(k) for k in expected} == expected
    assert plan["runs_here"] or "cannot run here" in plan["cannot_run_here"]


def test_piped_output_is_not_folded_at_80_columns() -> None:
    """Before: piped output wrapped at 80 columns mid-phrase (the protocol lines under the table)."""
    import os
    import sys

    line = "wer: reference protocol: " + "word " * 40
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    out = subprocess.run([sys.executable, "-c", f"from cli.console import console; console.print({line!r})"],
                         capture_output=True, text=True, env=env, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.splitlines() == [line]


def test_a_suites_flow_run_is_named_by_the_suite_not_its_path(prefect_api, tmp_path) -> None:
    """Before: the flow run was named ``suite /abs/path/to/my-suite.yaml``."""
    import asyncio

    from prefect.client.orchestration import get_client

    from audio_evals.run.spec import RunOptions
    from flows.suite import suite

    suite_file = tmp_path / "my-suite.yaml"
    suite_file.write_text("title: t\nsections:\n  - family: ASR\n    task: asr\n    rows:\n"
                          "      - {dataset: speech-sample-en, model: no-such-model, measure: wer}\n", encoding="utf-8")
    state = suite(suite_file=str(suite_file), options=RunOptions(output=str(tmp_path / "results")), return_state=True)

    async def name() -> str:
        async with get_client() as client:
            return (await client.read_flow_run(state.state_details.flow_run_id)).name

    assert asyncio.run(name()) == "suite my-suite"
