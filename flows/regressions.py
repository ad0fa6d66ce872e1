"""``evaluate-and-check``: the ``evaluate`` flow, then a regression check against the previous model revision.

Deployments and suites run this flow, so every scheduled or triggered evaluation is checked;
``audio-evals run`` keeps calling ``evaluate``. Both run the same stages (``run_evaluation``) as
their own stage tasks, so each evaluation is one flow run in the UI.
"""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from audio_evals.run.regression import REGRESSION_DETECTED, check, mark_report, render_section
from audio_evals.run.spec import RunSpec
from audio_evals.run.summary import Regression, RunSummary
from audio_evals.watch import model_resource
from flows.evaluate import run_evaluation, run_name
from flows.heartbeat import heartbeating
from flows.redacted import redacting_flow
from tasks.report import run_key


@task(name="check-regressions", cache_policy=NO_CACHE)
def check_regressions(summary: RunSummary, output: str, key: str) -> list[Regression]:
    """Compare with the previous revision's run; mark the report, publish and announce what got worse."""
    logger = get_run_logger()
    model, dataset = summary.model.name, summary.dataset.name
    result = check(output, summary)
    if result.previous is None:
        logger.info("no earlier run of another revision of %s on %s: nothing to compare", model, dataset)
        return []
    mark_report(summary.paths["report"], result.regressions)
    if result.regressions:
        create_markdown_artifact(key=key, markdown=render_section(result.regressions),
                                 description=f"Regressions of run {summary.run_id}")
    for regression in result.regressions:
        logger.warning("regression: %s %s on %s %.2f -> %.2f (noise %.2f)%s", model, regression.metric, dataset,
                       regression.old, regression.new, regression.threshold, "" if result.announce else " (announced before)")
        if result.announce:
            emit_event(REGRESSION_DETECTED, resource=model_resource(model), payload=regression.model_dump())
    return result.regressions


@redacting_flow(name="evaluate-and-check", flow_run_name=run_name, validate_parameters=True)
def evaluate_and_check(spec: RunSpec = RunSpec()) -> RunSummary:
    """Evaluate (as ``evaluate``, in this one flow run), then flag regressions; the summary gains ``regressions``."""
    with heartbeating():
        summary = run_evaluation(spec)
        regressions = check_regressions(summary, spec.output, run_key("regressions", spec))
    return summary.model_copy(update={"regressions": regressions})
