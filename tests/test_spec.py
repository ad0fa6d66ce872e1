"""``RunSpec``: one list of run parameters, the same rules at every entry point, a form a person can fill in."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from audio_evals.spec import RunOptions, RunSpec
from cli.main import app

INTERNAL = {"run_id", "shard_retries", "retry_delay_s", "parent", "max_fail_rate"}


@pytest.mark.parametrize("field, value, said", [
    ("limit", 0, "must be at least 1, not 0"),
    ("workers", -2, "must be at least 1, not -2"),
    ("max_duration_s", float("nan"), "must be a positive number of seconds, not nan"),
    ("max_fail_rate", 1.5, "must be a share between 0 and 1, not 1.5"),
    ("shard_retries", -1, "must be 0 or more, not -1"),
    ("run_id", "../x", "run id '../x' is not allowed"),
])
def test_an_absurd_value_is_refused_by_the_spec_itself(field, value, said):
    with pytest.raises(ValidationError, match=said):
        RunSpec(**{field: value})


def test_an_unknown_field_is_refused():
    with pytest.raises(ValidationError, match="limt"):
        RunSpec.model_validate({"limt": 3})


def test_a_run_is_named_after_what_it_evaluates():
    assert RunSpec(model="whisper-tiny.en", dataset="speech-sample-en", limit=26).title == \
        "whisper-tiny.en · speech-sample-en · limit 26"
    assert RunSpec(model="m", dataset="data/my-set.jsonl", prompt="asr", model_revision="v2").title == \
        "m · my-set · prompt asr · revision v2"


def test_a_suite_row_is_its_options_with_the_row_names():
    options = RunOptions(limit=4, output="/r")
    row = options.spec("speech-sample-en", "whisper-tiny.en", "asr")
    assert (row.dataset, row.model, row.prompt, row.limit, row.output) == ("speech-sample-en", "whisper-tiny.en",
                                                                          "asr", 4, "/r")
    assert options.replace(model_revision="v2").model_revision == "v2" and options.model_revision is None


def test_the_deployment_form_shows_what_a_person_sets_with_descriptions_and_registry_names():
    from prefect.utilities.callables import parameter_schema

    from flows.regressions import evaluate_and_check

    schema = parameter_schema(evaluate_and_check.fn).model_dump()
    assert list(schema["properties"]) == ["spec"]
    form = schema["definitions"]["RunSpec"]
    fields = list(form["properties"])
    assert fields[:4] == ["dataset", "model", "prompt", "task"] and not INTERNAL & set(fields)
    assert all(form["properties"][f].get("description") for f in fields)
    assert "speech-sample-en" in form["properties"]["dataset"]["examples"]
    assert "whisper-tiny.en" in form["properties"]["model"]["examples"]
    assert set(RunSpec.model_fields) - set(fields) == INTERNAL


def test_the_cli_refuses_with_the_spec_rule_naming_its_option(tmp_path):
    result = CliRunner().invoke(app, ["run", "--max-fail-rate", "2", "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 2 and result.output.strip() == "error: --max-fail-rate must be a share between 0 and 1, not 2"


def test_each_evaluation_is_one_flow_run_with_a_readable_name(prefect_api, tmp_path, scripted_registry):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    from flows.regressions import evaluate_and_check

    spec = RunSpec(dataset="speech-sample-en", model="scripted", limit=3, registry_paths=[scripted_registry["path"]],
                   cache_dir=str(tmp_path / "cache"), output=str(tmp_path / "results"), prompt="asr")
    evaluate_and_check(spec)
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[spec.title])))
    assert spec.title == "scripted · speech-sample-en · prompt asr · limit 3"
    assert len(runs) == 1 and runs[0].parameters["spec"]["limit"] == 3


def test_the_python_api_runs_the_flow_and_returns_the_summary(prefect_api, tmp_path, scripted_registry):
    import audio_evals
    from audio_evals.summary import RunSummary

    summary = audio_evals.evaluate(dataset="speech-sample-en", model="scripted", limit=2,
                                   registry_paths=[scripted_registry["path"]], cache_dir=str(tmp_path / "cache"),
                                   output=str(tmp_path / "results"))
    assert isinstance(summary, RunSummary)
    assert summary.counts.samples == 2 and summary.options["limit"] == 2
    with pytest.raises(ValidationError, match="must be at least 1"):
        audio_evals.evaluate(dataset="speech-sample-en", limit=0)


def test_importing_the_library_does_not_import_prefect():
    import subprocess
    import sys

    code = "import sys, audio_evals, audio_evals.spec; assert 'prefect' not in sys.modules, 'prefect imported'"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_name_names_a_manifest_dataset(prefect_api, tmp_path, scripted_registry, sample_manifest):
    """Before: every ``manifest.jsonl`` was the dataset ``manifest``."""
    import json
    from pathlib import Path

    from tests.conftest import SAMPLE_DIR

    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({**r, "audio": str(SAMPLE_DIR / r["audio"])}) + "\n"
                                for r in sample_manifest[:3]), encoding="utf-8")
    result = CliRunner().invoke(app, ["run", "--dataset", str(manifest), "--name", "my-set", "--model", "scripted",
                                      "--registry-path", scripted_registry["path"], "--cache-dir", str(tmp_path / "c"),
                                      "--output", str(tmp_path / "results")])
    assert result.exit_code == 0, result.output
    (summary,) = (tmp_path / "results" / "scripted" / "my-set").glob("*/summary.json")
    assert json.loads(Path(summary).read_text(encoding="utf-8"))["dataset"]["name"] == "my-set"
    assert RunSpec(dataset=str(manifest)).dataset_name == "manifest"

    refused = CliRunner().invoke(app, ["run", "--dataset", "speech-sample", "--name", "x"])
    assert refused.exit_code == 2
    assert refused.output.strip() == ("error: --name names a dataset given as a manifest path; "
                                      "'speech-sample' is a registry dataset")
