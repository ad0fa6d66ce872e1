"""``evaluate-and-check``: the ``evaluate`` flow, then a regression check against the previous model revision.

Deployments and suites run this wrapper, so every scheduled or triggered evaluation is checked;
``audio-evals run`` keeps calling ``evaluate`` directly.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from audio_evals.regression import REGRESSION_DETECTED, compare, mark_report, previous_run, render_section
from audio_evals.watch import model_resource
from flows.evaluate import evaluate
from tasks.report import artifact_key


@task(name="check-regressions", cache_policy=NO_CACHE)
def check_regressions(summary: dict[str, Any], output: str) -> list[dict[str, Any]]:
    """Compare with the latest run of another revision; announce and report what got worse."""
    logger = get_run_logger()
    model, dataset = summary["model"], summary["dataset"]
    previous = previous_run(output, model["name"], dataset["name"], summary["prompt"]["name"], summary["run_id"],
                            model.get("revision"), dataset_fingerprint=dataset.get("fingerprint"))
    if previous is None:
        logger.info("no earlier run of another revision of %s on %s: nothing to compare", model["name"], dataset["name"])
        return []
    found = compare(summary, previous)
    for regression in found:
        emit_event(REGRESSION_DETECTED, resource=model_resource(regression.model), payload=regression.to_dict())
        logger.warning("regression: %s %s on %s %.2f -> %.2f (noise %.2f)", regression.model, regression.metric,
                       regression.dataset, regression.old, regression.new, regression.threshold)
    mark_report(summary["paths"]["report"], found)
    if found:
        create_markdown_artifact(key=artifact_key("regressions", model["name"], dataset["name"]),
                                 markdown=render_section(found), description=f"Regressions of run {summary['run_id']}")
    return [r.to_dict() for r in found]


@flow(name="evaluate-and-check", flow_run_name="{model} on {dataset}", validate_parameters=True)
def evaluate_and_check(
    dataset: str = "speech-sample",
    model: str = "whisper-tiny.en",
    prompt: str | None = None,
    task: str | None = None,
    limit: int | None = None,
    shard_size: int = 32,
    workers: int = 1,
    output: str = "results",
    registry_paths: list[str] | None = None,
    generation: dict[str, Any] | None = None,
    fresh: bool = False,
    strict: bool = False,
    max_duration_s: float | None = None,
    cache_dir: str | None = None,
    run_id: str | None = None,
    shard_retries: int = 2,
    retry_delay_s: float = 2.0,
    model_revision: str | None = None,
) -> dict[str, Any]:
    """Evaluate (same parameters as ``evaluate``), then flag regressions; the summary gains ``regressions``."""
    summary = evaluate(**locals())
    summary["regressions"] = check_regressions(summary, output)
    return summary
