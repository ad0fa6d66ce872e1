"""``RunSpec``: one list of run parameters, the same rules at every entry point, a form a person can fill in."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from audio_evals.run.spec import RunOptions, RunSpec
from cli.main import app

INTERNAL = {"run_id", "shard_retries", "retry_delay_s", "parent", "command", "max_fail_rate"}


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
    assert "Registry names: " in form["properties"]["model"]["description"]  # the UI shows no examples
    assert set(RunSpec.model_fields) - set(fields) == INTERNAL


@pytest.mark.parametrize("flow_name, choices", [("suite", {"suite_file"}), ("model_published", {"model", "suite_file"})])
def test_the_suite_forms_describe_every_parameter_and_offer_the_names(flow_name, choices):
    from prefect.utilities.callables import parameter_schema

    import flows.suite

    properties = parameter_schema(getattr(flows.suite, flow_name).fn).model_dump()["properties"]
    assert all(p.get("description") for p in properties.values()), properties
    for name in choices:
        assert {"sample", "whisper-tiny.en"} & set(properties[name]["examples"])
    assert all(suite in properties["suite_file"]["description"] for suite in properties["suite_file"]["examples"])


def test_artifact_keys_change_with_what_changes_the_number_and_only_that():
    import re

    from tasks.report import run_key

    base = RunSpec(dataset="speech-sample-en")
    numbers = [base.replace(**change) for change in (
        {"limit": 2}, {"prompt": "asr"}, {"model_revision": "rev-2"}, {"generation": {"beam_size": 1}},
        {"model_args": {"device": "cuda"}}, {"strict": True}, {"rand": 5}, {"evaluator": "cer"}, {"task": "asr-zh"})]
    keys = [run_key("eval", s) for s in (base, *numbers)]
    assert len(set(keys)) == len(keys), keys
    assert keys[1] == f"eval-whisper-tiny-en-speech-sample-en-limit-2-{numbers[0].variant}"
    where = [base.replace(**change) for change in ({"workers": 4}, {"output": "/elsewhere"}, {"fresh": True})]
    assert {run_key("eval", s) for s in where} == {keys[0]}
    secret = [run_key("eval", base.replace(generation={"api_key": k})) for k in ("sk-first", "sk-second")]
    assert secret[0] == secret[1] and "sk" not in secret[0]
    long = [run_key("eval", base.replace(model="m" * 120 + str(i))) for i in range(2)]
    assert long[0] != long[1] and all(len(k) <= 100 and re.fullmatch(r"[a-z0-9-]+", k) for k in long)


def test_a_smoke_run_keeps_its_own_artifacts_beside_the_full_run(prefect_api, tmp_path, scripted_registry):
    """Before: ``--limit 2`` replaced the artifact of the full run (both were ``eval-<model>-<dataset>``)."""
    import json

    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    from flows.regressions import evaluate_and_check
    from tasks.report import run_key

    full, smoke = (RunSpec(dataset="speech-sample-en", model="scripted", limit=n, cache_dir=str(tmp_path / "cache"),
                           registry_paths=[scripted_registry["path"]], output=str(tmp_path / "results")) for n in (6, 2))
    flow_runs = [evaluate_and_check(spec, return_state=True).state_details.flow_run_id for spec in (full, smoke)]
    with get_client(sync_client=True) as client:
        tables = {a.key: a for a in client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[run_key("eval", full), run_key("eval", smoke)])))}
        assert {json.loads(tables[run_key("eval", s)].data)[0]["n"] for s in (full, smoke)} == {6, 2}
        mine = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=flow_runs[1:]))
        own = client.read_artifacts(artifact_filter=mine)
    assert {a.key for a in own} >= {run_key("eval", smoke), run_key("eval-report", smoke)}


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
    from audio_evals.run.summary import RunSummary

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

    code = "import sys, audio_evals, audio_evals.run.spec; assert 'prefect' not in sys.modules, 'prefect imported'"
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
