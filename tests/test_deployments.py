"""Deployments end to end, the model watcher, the regression rule and the service CLI.

The end-to-end tests run what an operator runs: ``prefect server start`` and
``python -m deployments.serve`` as subprocesses, ``audio-evals publish`` to announce a revision,
and the triggered flow run writing results with the scripted model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from audio_evals import storage, watch
from audio_evals.run.regression import Check, check, compare, mark_report, previous_run
from audio_evals.run.summary import Regression, RunSummary
from tests.conftest import SAMPLE_DIR
from tests.processes import REPO, free_port, start_process, stop_process, wait_for

CHROMIUM = "/usr/bin/chromium"


# --- helpers -------------------------------------------------------------------------------------

def _api(method: str, url: str, **kwargs: Any) -> Any:
    """One Prefect API call, retried as Prefect's own client does (429, 5xx, dropped connections).

    A server on SQLite under load answers 503 now and then; the JSON body is returned on 2xx.
    """
    for attempt in range(6):
        try:
            response = httpx.request(method, url, timeout=10, **kwargs)
        except httpx.TransportError:
            if attempt == 5:
                raise
        else:
            if response.status_code != 429 and response.status_code < 500:
                break
        time.sleep(0.5 * 2 ** attempt)
    assert response.is_success, f"{method} {url}: HTTP {response.status_code}: {response.text}"
    return response.json()


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return {**env, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **extra}


def _scripted_registry(folder: Path) -> str:
    """A registry with the ``scripted`` model answering every sample with its reference.

    ``faults.json`` next to it switches shard faults on; ``calls.txt`` lists the samples sent.
    """
    rows = [json.loads(line) for line in (SAMPLE_DIR / "manifest.jsonl").read_text(encoding="utf-8").splitlines() if line]
    responses = folder / "responses.json"
    responses.write_text(json.dumps({r["id"]: r["text"] for r in rows}), encoding="utf-8")
    registry = folder / "registry"
    registry.mkdir()
    (registry / "models.yaml").write_text(
        f"models:\n  scripted:\n    backend: scripted\n    args: {{responses_file: {json.dumps(str(responses))}, "
        f"faults_file: {json.dumps(str(folder / 'faults.json'))}, calls_file: {json.dumps(str(folder / 'calls.txt'))}}}\n",
        encoding="utf-8")
    return str(registry)


def _suite_file(folder: Path, *models: str) -> str:
    path = folder / "suite.yaml"
    rows = "".join(f"      - {{dataset: speech-sample-en, model: {m}, measure: wer}}\n" for m in models)
    path.write_text(f'title: "E2E"\nsections:\n  - family: "ASR (English)"\n    task: "asr(en)"\n    rows:\n{rows}',
                    encoding="utf-8")
    return str(path)


# --- (a) a real server, served deployments, an event-triggered run --------------------------------

@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[dict[str, Any]]:
    """``prefect server start`` on a free port and ``python -m deployments.serve`` against it."""
    tmp = tmp_path_factory.mktemp("served")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    server = start_process([sys.executable, "-m", "prefect", "server", "start"], _clean_env(
        PREFECT_HOME=str(tmp / "server-home"),
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{tmp / 'prefect.db'}",
        PREFECT_SERVER_API_HOST="127.0.0.1", PREFECT_SERVER_API_PORT=str(port),  # the UI calls this address too
    ), tmp / "server.log")
    processes = [server]
    started = time.monotonic()
    try:
        def healthy() -> bool:
            assert server.poll() is None, (tmp / "server.log").read_text()
            try:
                return httpx.get(f"{api}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for("the Prefect server", healthy, 120)
        server_s = time.monotonic() - started
        (tmp / "watch.yaml").write_text("sources: []\n", encoding="utf-8")
        output = tmp / "results"
        serve = start_process([sys.executable, "-m", "deployments.serve", "--suite", _suite_file(tmp, "scripted"),
                        "--output", str(output), "--cache-dir", str(tmp / "cache"),
                        "--registry-path", _scripted_registry(tmp), "--limit", "4",
                        "--watch-config", str(tmp / "watch.yaml")],
                       _clean_env(PREFECT_API_URL=api, PREFECT_HOME=str(tmp / "client-home"),
                                  PREFECT_RUNNER_POLL_FREQUENCY="1",
                                  AUDIO_EVALS_LOCAL_CACHE=str(tmp / "local-cache")), tmp / "serve.log")
        processes.append(serve)

        def deployment(name: str) -> dict[str, Any] | None:
            assert serve.poll() is None, (tmp / "serve.log").read_text()
            response = httpx.get(f"{api}/deployments/name/{name}", timeout=5)
            return response.json() if response.status_code == 200 else None

        wait_for("the deployments", lambda: deployment("watch-models/watch-models"), 90)
        yield {"api": api, "output": output, "tmp": tmp, "deployment": deployment,
               "timings": {"server_s": server_s, "served_s": time.monotonic() - started}}
    finally:
        for process in reversed(processes):
            stop_process(process)


@pytest.fixture(scope="module")
def published_run(served) -> dict[str, Any]:
    """``audio-evals publish scripted --revision rev-2`` and the on-model-published run it causes."""
    api = served["api"]
    deployment = served["deployment"]("model-published/on-model-published")
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "cli", "publish", "scripted", "--revision", "rev-2", "--source", "test"],
                   cwd=REPO, env=_clean_env(PREFECT_API_URL=api, PREFECT_HOME=str(served["tmp"] / "client-home")),
                   check=True, capture_output=True, timeout=60)

    def runs() -> list[dict[str, Any]]:
        body = {"deployments": {"id": {"any_": [deployment["id"]]}}}
        return _api("POST", f"{api}/flow_runs/filter", json=body)

    created = wait_for("a flow run of on-model-published", runs, 60)
    run = wait_for("the flow run to finish",
                lambda: next((r for r in runs() if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")), None),
                90, every_s=1)
    print(f"served {served['timings']}; published → finished in {time.monotonic() - started:.1f} s")
    return {"created": created, "run": run}


def test_published_model_runs_the_suite_with_the_event_parameters(served, published_run):
    (created,) = published_run["created"]
    assert created["parameters"]["model"] == "scripted" and created["parameters"]["model_revision"] == "rev-2"
    run = published_run["run"]
    assert run["state_type"] == "COMPLETED", run["state"]
    (summary_path,) = (served["output"] / "scripted" / "speech-sample-en").glob("*/summary.json")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    assert summary["model"]["args"]["revision"] == "rev-2" and summary["counts"]["samples"] == 4
    (report,) = (served["output"] / "suites" / "suite").glob("*/report.html")
    assert "speech-sample-en" in report.read_text(encoding="utf-8")


def test_the_triggered_run_carries_the_headline_table_and_report_links(served, published_run):
    """Before: the results were subflows down (``model-published → suite → ...``), keyed without revision
    or limit."""
    run = published_run["run"]
    body = {"artifacts": {"flow_run_id": {"any_": [run["id"]]}}}
    artifacts = {a["key"].split("-suite-scripted-revision-rev-2-limit-4-")[0]: a  # the suite file is suite.yaml
                 for a in _api("POST", f"{served['api']}/artifacts/filter", json=body)}
    assert set(artifacts) >= {"leaderboard", "suite", "suite-html"}, artifacts
    (row,) = json.loads(artifacts["leaderboard"]["data"])
    assert row["model"] == "scripted" and 0.0 in row.values(), row
    (view,) = (served["output"] / "scripted" / "speech-sample-en").glob("*/view.html")
    assert f"[samples]({view.resolve().as_uri()})" in artifacts["suite"]["data"]
    (html,) = (served["output"] / "suites" / "suite").glob("*/report.html")
    assert html.resolve().as_uri() in artifacts["suite-html"]["data"]
    children = _api("POST", f"{served['api']}/flow_runs/filter",
                    json={"flow_runs": {"parent_flow_run_id": {"any_": [run["id"]]}}})
    assert [c["name"] for c in children] == ["scripted · speech-sample-en · revision rev-2 · limit 4"]


def test_ui_retry_of_a_failed_run_recomputes_only_its_failed_shard(served):
    """The UI's Retry button puts a failed flow run back to Scheduled; the served runner runs it again."""
    api, tmp = served["api"], served["tmp"]
    english = [json.loads(line)["id"] for line in (SAMPLE_DIR / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
               if line and json.loads(line)["lang"] == "en"]
    (tmp / "faults.json").write_text(json.dumps({"fail_shard_ids": [english[2]]}), encoding="utf-8")  # shard 1
    calls = tmp / "calls.txt"
    calls.write_text("", encoding="utf-8")
    deployment = served["deployment"]("evaluate-and-check/evaluate")
    parameters = {"spec": {**deployment["parameters"]["spec"], "dataset": "speech-sample-en", "model": "scripted",
                           "limit": 6, "shard_size": 2, "strict": True, "shard_retries": 0, "retry_delay_s": 0.0}}
    run = _api("POST", f"{api}/deployments/{deployment['id']}/create_flow_run", json={"parameters": parameters})

    def state() -> str | None:
        body = _api("GET", f"{api}/flow_runs/{run['id']}")
        return body["state_type"] if body["state_type"] in ("COMPLETED", "FAILED", "CRASHED") else None

    assert wait_for("the strict run to fail", state, 120, every_s=1) == "FAILED"
    assert sorted(calls.read_text().split()) == sorted(english[:2] + english[4:6])  # shard 1 never answered

    (tmp / "faults.json").write_text("{}", encoding="utf-8")
    calls.write_text("", encoding="utf-8")
    retry = {"type": "SCHEDULED", "name": "AwaitingRetry", "message": "Retry from the UI"}
    _api("POST", f"{api}/flow_runs/{run['id']}/set_state", json={"state": retry, "force": True})
    wait_for("the retried run to start", lambda: _api("GET", f"{api}/flow_runs/{run['id']}")["run_count"] > 1,
          120, every_s=1)
    assert wait_for("the retried run to finish", state, 120, every_s=1) == "COMPLETED"
    assert sorted(calls.read_text().split()) == sorted(english[2:4])  # only the failed shard ran again


def test_nightly_suite_is_scheduled(served):
    deployment = served["deployment"]("suite/nightly-suite")
    (schedule,) = [s["schedule"] for s in deployment["schedules"]]
    assert schedule["cron"] == "0 2 * * *" and schedule["timezone"] == "UTC"
    assert deployment["parameters"]["suite_file"].endswith("suite.yaml")


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} not installed (apt-get install chromium)")
def test_flow_run_page_renders_in_the_ui(served, published_run, tmp_path):
    """The triggered run's page, its own headline table, the artifacts page and the evaluate run form."""
    run_id, form = published_run["run"]["id"], served["deployment"]("evaluate-and-check/evaluate")["id"]
    body = {"artifacts": {"flow_run_id": {"any_": [run_id]}, "type": {"any_": ["table"]}}}
    (table,) = _api("POST", f"{served['api']}/artifacts/filter", json=body)
    pngs = {name: tmp_path / f"{name}.png" for name in ("run", "artifacts", "headline", "form")}
    env = _clean_env(PREFECT_API_URL=served["api"])
    subprocess.run([sys.executable, "-m", "deployments.browser_check", run_id, "--out", str(pngs["run"]),
                    "--artifacts", str(pngs["artifacts"]),
                    "--page", f"artifacts/artifact/{table['id']}", str(pngs["headline"]),
                    "--page", f"deployments/deployment/{form}/run", str(pngs["form"])],
                   env=env, cwd=REPO, check=True, timeout=400)
    for png in pngs.values():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


# --- (b) the watcher ------------------------------------------------------------------------------

class Recorder:
    """An ``emit`` that keeps what it was given."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, str], dict[str, Any]]] = []

    def __call__(self, event: str, *, resource: dict[str, str], payload: dict[str, Any]) -> None:
        self.events.append((event, resource, payload))

    def revisions(self) -> list[str]:
        return [payload["revision"] for _, _, payload in self.events]


def _poll(config: Path, state: str) -> Recorder:
    """One poll as a freshly started watcher would do it: config and state read from disk."""
    recorder = Recorder()
    watch.poll(watch.load_config(str(config)), state, recorder)
    return recorder


def test_local_folder_revision_is_announced_once(tmp_path):
    models = tmp_path / "models" / "scripted"
    (models / "rev-1").mkdir(parents=True)
    config = tmp_path / "watch.yaml"
    config.write_text("sources:\n  - {model: scripted, folder: models/scripted}\n", encoding="utf-8")
    state = str(tmp_path / "results" / "watch-state.json")
    assert _poll(config, state).events == []  # no manifest yet: still being written

    (models / "rev-1" / "manifest.json").write_text('{"step": 1}', encoding="utf-8")
    first = _poll(config, state)
    assert first.events == [("audio_evals.model.published", {"prefect.resource.id": "audio-evals.model.scripted",
                                                             "prefect.resource.name": "scripted"},
                             first.events[0][2])]
    assert first.events[0][2]["model"] == "scripted" and first.events[0][2]["revision"] == "rev-1"
    assert first.events[0][2]["source"] == str(models) and first.events[0][2]["path"] == str(models / "rev-1")
    assert _poll(config, state).events == []  # second poll, and a restart: same state file

    (models / "rev-2").mkdir()
    (models / "rev-2" / "manifest.json").write_text('{"step": 2}', encoding="utf-8")
    assert _poll(config, state).revisions() == ["rev-2"]
    (models / "rev-2" / "manifest.json").write_text('{"step": 2, "fixed": true}', encoding="utf-8")
    assert _poll(config, state).revisions() == ["rev-2"]  # re-uploaded: announced again, once
    assert _poll(config, state).events == []


def test_s3_prefix_revision_is_announced_once(tmp_path, s3_bucket):
    import s3fs

    fs = s3fs.S3FileSystem()
    prefix = f"s3://{s3_bucket}/models/scripted"
    config = tmp_path / "watch.yaml"
    config.write_text(f"sources:\n  - {{model: scripted, s3: {prefix}}}\n", encoding="utf-8")
    state = watch.state_path(f"s3://{s3_bucket}/results")
    fs.pipe_file(f"{prefix}/rev-1/manifest.json", b'{"step": 1}')
    fs.pipe_file(f"{prefix}/rev-2/weights.bin", b"not finished")
    assert _poll(config, state).revisions() == ["rev-1"]
    assert _poll(config, state).events == []
    assert json.loads(fs.cat_file(state))  # the state lives in the store

    fs.pipe_file(f"{prefix}/rev-2/manifest.json", b'{"step": 2}')
    announced = _poll(config, state)
    assert announced.revisions() == ["rev-2"] and announced.events[0][2]["path"] == f"{prefix}/rev-2"
    fs.pipe_file(f"{prefix}/rev-1/manifest.json", b'{"step": 1, "fixed": true}')  # new ETag
    assert _poll(config, state).revisions() == ["rev-1"]
    assert _poll(config, state).events == []


def test_hub_revision_is_announced_once_and_unreachable_hub_is_a_warning(tmp_path, monkeypatch, caplog):
    import huggingface_hub
    from huggingface_hub import HfApi

    config = tmp_path / "watch.yaml"
    config.write_text("sources:\n  - {model: kimiaudio, hf: moonshotai/Kimi-Audio-7B-Instruct}\n", encoding="utf-8")
    state = str(tmp_path / "watch-state.json")
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{free_port()}")
    with caplog.at_level("WARNING", logger="audio_evals.watch"):
        assert _poll(config, state).events == []
    assert "cannot poll hf://moonshotai/Kimi-Audio-7B-Instruct" in caplog.text
    assert not os.path.exists(state)

    monkeypatch.setattr(HfApi, "model_info", lambda self, repo, **kwargs: type("Info", (), {"sha": "abc123"})())
    announced = _poll(config, state)
    assert announced.revisions() == ["abc123"] and announced.events[0][2]["source"] == "hf://moonshotai/Kimi-Audio-7B-Instruct"
    assert _poll(config, state).events == []


def _read_events(name: str, resource_id: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    with get_client(sync_client=True) as client:
        page = client.read_events(EventFilter(event=EventNameFilter(name=[name]),
                                              resource=EventResourceFilter(id=[resource_id])), limit=50)
    return page.events


def test_watch_flow_emits_to_the_prefect_api(prefect_api, tmp_path):
    from flows.watch import watch_models

    model = f"watched-{uuid.uuid4().hex[:8]}"
    (tmp_path / "models" / "r1").mkdir(parents=True)
    (tmp_path / "models" / "r1" / "manifest.json").write_text("{}", encoding="utf-8")
    config = tmp_path / "watch.yaml"
    config.write_text(f"sources:\n  - {{model: {model}, folder: models}}\n", encoding="utf-8")
    output = str(tmp_path / "results")
    assert [a["revision"] for a in watch_models(str(config), output)] == ["r1"]
    assert watch_models(str(config), output) == []
    events = wait_for("the event in the API", lambda: _read_events(watch.MODEL_PUBLISHED, f"audio-evals.model.{model}"), 30)
    assert len(events) == 1 and events[0].payload["revision"] == "r1" and events[0].payload["model"] == model


# --- (c) the regression rule ----------------------------------------------------------------------

def _summary(run_id: str, revision: str | None, value: float, ci: list[float] | None, *, higher: bool = False,
             created: str = "2026-01-01T00:00:00+00:00", prompt: str = "asr", fingerprint: str = "data-1",
             group: str | None = None) -> RunSummary:
    return RunSummary.model_validate({"run_id": run_id, "created_at": created, "model": {"name": "m", "revision": revision},
            "dataset": {"name": "d", "fingerprint": fingerprint}, "prompt": {"name": prompt},
            "metrics": [{"name": "acc" if higher else "wer", "group": group, "value": value, "ci95": ci,
                         "higher_is_better": higher}]})


@pytest.mark.parametrize(("old", "new", "regressed"), [
    ((10.0, [9.0, 11.0]), (12.0, [11.0, 13.0]), True),   # +2.0 > both half-widths (1.0, 1.0)
    ((10.0, [9.0, 11.0]), (12.0, [9.0, 15.0]), False),   # +2.0 < the new run's half-width 3.0
    ((10.0, [7.0, 13.0]), (12.0, [11.0, 13.0]), False),  # +2.0 < the old run's half-width 3.0
    ((10.0, [9.0, 11.0]), (11.0, [10.0, 12.0]), False),  # exactly the half-width: not more than it
    ((10.0, [9.0, 11.0]), (6.0, [5.0, 7.0]), False),     # WER went down: better
    ((10.0, None), (10.5, None), True),                  # no CI: any move in the bad direction
])
def test_regression_rule_lower_is_better(old, new, regressed):
    found = compare(_summary("new", "r2", *new), _summary("old", "r1", *old))
    assert bool(found) is regressed
    if found:
        (r,) = found
        assert (r.metric, r.old, r.new, r.delta, r.old_run_id, r.new_run_id) == ("wer", old[0], new[0], new[0] - old[0], "old", "new")


def test_regression_rule_higher_is_better_and_groups():
    worse = compare(_summary("new", "r2", 70.0, [68.0, 72.0], higher=True), _summary("old", "r1", 80.0, [78.0, 82.0], higher=True))
    assert [(r.metric, r.delta) for r in worse] == [("acc", -10.0)]
    assert compare(_summary("new", "r2", 90.0, [88.0, 92.0], higher=True), _summary("old", "r1", 80.0, [78.0, 82.0], higher=True)) == []
    other_language = compare(_summary("new", "r2", 50.0, None, group="zh"), _summary("old", "r1", 10.0, None, group="en"))
    assert other_language == []


def test_previous_run_is_the_latest_of_another_revision_on_the_same_data(tmp_path):
    def write(summary: RunSummary) -> None:
        storage.write_json(str(tmp_path / "m" / "d" / summary.run_id / "summary.json"), summary.model_dump(mode="json"))

    write(_summary("a", "r1", 10.0, None, created="2026-01-01T00:00:00+00:00"))
    write(_summary("b", "r1", 11.0, None, created="2026-01-02T00:00:00+00:00"))
    write(_summary("c", "r1", 12.0, None, created="2026-01-03T00:00:00+00:00", prompt="other"))
    write(_summary("d", "r1", 13.0, None, created="2026-01-04T00:00:00+00:00", fingerprint="data-2"))
    write(_summary("e", "r2", 14.0, None, created="2026-01-05T00:00:00+00:00"))
    write(_summary("now", "r3", 15.0, None, created="2026-01-06T00:00:00+00:00"))
    found = previous_run(str(tmp_path), "m", "d", "asr", "now", "r3", dataset_fingerprint="data-1")
    assert found.run_id == "e"
    assert previous_run(str(tmp_path), "m", "d", "asr", "now", "r2", dataset_fingerprint="data-1").run_id == "b"
    assert previous_run(str(tmp_path), "m", "d", "asr", "now", "r1", dataset_fingerprint="data-1").run_id == "e"
    assert previous_run(str(tmp_path), "m", "d", "asr", "e", "r2").run_id == "now"
    assert previous_run(str(tmp_path), "m", "other-dataset", "asr", "now", "r3") is None


def test_check_announces_a_regression_once_per_revision(tmp_path):
    def write(summary: RunSummary) -> RunSummary:
        storage.write_json(str(tmp_path / "m" / "d" / summary.run_id / "summary.json"), summary.model_dump(mode="json"))
        return summary

    assert check(str(tmp_path), write(_summary("a", "r1", 10.0, [9.0, 11.0], created="2026-01-01T00:00:00+00:00"))) \
        == Check(None, [], False)
    first = check(str(tmp_path), write(_summary("b", "r2", 20.0, [19.0, 21.0], created="2026-01-02T00:00:00+00:00")))
    assert first.previous.run_id == "a" and [r.new_run_id for r in first.regressions] == ["b"] and first.announce
    again = check(str(tmp_path), write(_summary("c", "r2", 20.0, [19.0, 21.0], created="2026-01-03T00:00:00+00:00")))
    assert again.previous.run_id == "a" and len(again.regressions) == 1 and not again.announce


def test_mark_report_appends_one_regressions_section(tmp_path):
    report = tmp_path / "report.md"
    report.write_text("# m on d\n\nbody\n", encoding="utf-8")
    regression = Regression(model="m", dataset="d", metric="wer", old=10.0, new=12.0, delta=2.0, threshold=1.0,
                            old_run_id="a", new_run_id="b", old_revision="r1", new_revision="r2")
    mark_report(str(report), [regression])
    mark_report(str(report), [regression])
    text = report.read_text(encoding="utf-8")
    assert text.startswith("# m on d\n\nbody\n") and text.count("## Regressions") == 1
    assert "| m | d | wer | 10.00 | 12.00 | +2.00 | 1.00 |" in text


def test_new_revision_that_got_worse_is_flagged_end_to_end(prefect_api, tmp_path, scripted_registry, monkeypatch):
    from audio_evals.run.spec import RunSpec
    from flows.regressions import evaluate_and_check

    params = dict(dataset="speech-sample-en", model="scripted", limit=8, cache_dir=str(tmp_path / "cache"),
                  output=str(tmp_path / "results"), registry_paths=[scripted_registry["path"]], retry_delay_s=0.0)
    good = evaluate_and_check(RunSpec(**params, model_revision="rev-1"))
    assert good.regressions == []
    # rev-2 answers nothing: a 100% WER (different answers, so a different fingerprint and no cache hit).
    scripted_registry["responses"].write_text("{}", encoding="utf-8")
    bad = evaluate_and_check(RunSpec(**params, model_revision="rev-2"))
    # The headline and the Open ASR Leaderboard WER reported beside it both went from 0 to 100.
    assert {r.metric: (r.old, r.new) for r in bad.regressions} == {"wer": (0.0, 100.0), "wer-oasr": (0.0, 100.0)}
    assert all(r.old_run_id == good.run_id and r.new_run_id == bad.run_id for r in bad.regressions)
    report = Path(bad.paths["report"]).read_text(encoding="utf-8")
    assert "## Regressions" in report and "+100.00" in report
    events = wait_for("the regression event", lambda: _read_events("audio_evals.regression.detected", "audio-evals.model.scripted"), 30)
    assert any(e.payload["new_run_id"] == bad.run_id and e.payload["dataset"] == "speech-sample-en" for e in events)

    # The same revision again (a nightly re-run): still in its report, not announced again.
    emitted = []
    monkeypatch.setattr("flows.regressions.emit_event", lambda *args, **kwargs: emitted.append((args, kwargs)))
    again = evaluate_and_check(RunSpec(**params, model_revision="rev-2"))
    assert [r.old_run_id for r in again.regressions] == [good.run_id] * 2 and emitted == []
    assert "## Regressions" in Path(again.paths["report"]).read_text(encoding="utf-8")


def test_suite_reports_an_evaluation_that_cannot_run(prefect_api, tmp_path, scripted_registry):
    from audio_evals.run.spec import RunOptions
    from flows.suite import suite

    options = RunOptions(output=str(tmp_path / "results"), cache_dir=str(tmp_path / "cache"), limit=4,
                         registry_paths=[scripted_registry["path"]])
    result = suite(_suite_file(tmp_path, "scripted", "no-such-model"), max_parallel=2, options=options)
    errors = {run["model"]: run["error"] for run in result["runs"]}
    assert errors["scripted"] is None and errors["no-such-model"].startswith("not run: UnknownName")
    scripted, not_run = result["leaderboard"]
    assert scripted["model"] == "scripted" and scripted["speech-sample-en wer⬇️"] == 0.0 and scripted["RTFx⬆️"] > 0
    assert not_run == {"model": "no-such-model", "RTFx⬆️": None, "speech-sample-en wer⬇️": "not run"}
    report = Path(result["paths"]["report"]).read_text(encoding="utf-8")
    assert "not run: UnknownName" in report
    assert Path(result["paths"]["chart"]).read_bytes()[:4] == b"\x89PNG"


# --- (d) the service CLI --------------------------------------------------------------------------

def test_publish_without_a_server_is_a_clear_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "cli", "publish", "scripted", "--revision", "rev-2"], cwd=REPO,
                            capture_output=True, text=True, env=_clean_env(PREFECT_HOME=str(tmp_path)), timeout=60)
    assert result.returncode == 2
    assert "no Prefect server: start one on this machine with `audio-evals server start`" in " ".join(result.stdout.split())


# --- the gpu limit --------------------------------------------------------------------------------

def test_gpu_slot_is_taken_by_gpu_models_only(prefect_api):
    from prefect.client.orchestration import get_client

    from audio_evals.registry import ModelEntry
    from tasks.gpu import GPU_LIMIT, ensure_gpu_limit, gpu_slot

    gpu_model = ModelEntry(name="big", backend="scripted", needs="1 GPU (>= 24 GB)")
    with gpu_slot(gpu_model):  # no limit defined (a laptop, CI): nothing waits
        pass
    ensure_gpu_limit(1)
    try:
        with get_client(sync_client=True) as client:
            def active() -> int:
                return client.read_global_concurrency_limit_by_name(GPU_LIMIT).active_slots

            with gpu_slot(gpu_model):
                assert active() == 1
            with gpu_slot(ModelEntry(name="small", backend="scripted")):
                assert active() == 0
    finally:
        with get_client(sync_client=True) as client:
            client.delete_global_concurrency_limit_by_name(GPU_LIMIT)
