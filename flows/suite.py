"""``suite``: every evaluation of a suite file, then its report; ``model-published``: a suite for one new revision.

Both run the same body (``run_suite``) in their own flow run, so the run a schedule, an event or
a person started carries the leaderboard, the report and its links as its own artifacts. Each
distinct (dataset, model, prompt) of the suite runs once as an ``evaluate-and-check`` subflow, at
most ``max_parallel`` at a time. An unchanged model/dataset pair costs nothing on a re-run: every
shard comes from evaluate's cache. A row whose evaluation cannot run (unknown model, a
backend that cannot load here) is reported as "not run: <why>" and the others go on.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from audio_evals import storage
from audio_evals.report import markup, render_html, render_suite_chart, render_suite_report, suite_leaderboard
from audio_evals.report.links import link
from audio_evals.run.plan import plan_of
from audio_evals.run.regression import render_section
from audio_evals.run.spec import Choices, RunOptions, registry_choices
from audio_evals.run.suites import Suite, SuiteRow, bundled_suites, find_suite, load_suite
from audio_evals.run.summary import RunSummary
from audio_evals.storage import stable_hash
from flows.credentials import apply_store_credentials
from flows.regressions import evaluate_and_check
from tasks.report import artifact_key

DEFAULT_SUITE = "sample"  # bundled with the package (audio_evals.run.suites.find_suite)
Evaluation = tuple[str, str, str | None, float | None]  # dataset, model, prompt, the row's --drop-above-wer


def select_models(suite: Suite, models: list[str] | None) -> Suite:
    """The suite for ``models``: a model the suite names keeps its own rows; any other model
    (a new fine-tune, say) takes every row of the suite. No ``models``: the suite unchanged."""
    if not models:
        return suite
    named = {row.model for _, row in suite.rows()}
    sections = []
    for section in suite.sections:
        rows: dict[tuple[str, str], SuiteRow] = {}
        for model in models:
            for row in section.rows:
                if model in named and row.model != model:
                    continue
                moved = row.model_copy(update={"model": model})
                rows.setdefault((suite.eval_cli(moved), moved.measure), moved)
        if rows:
            sections.append(section.model_copy(update={"rows": list(rows.values())}))
    return suite.model_copy(update={"sections": sections})


def suite_key(kind: str, name: str, models: list[str] | None, options: RunOptions) -> str:
    """``suite-sample-whisper-tiny-en-revision-rev-2-<hash>``: another model set, revision, limit or
    parameter never replaces the artifacts of a suite's full run."""
    variant = stable_hash([options.variant, models or []])[:8]
    return artifact_key(kind, name, *(models or []), *options.title_parts(), variant=variant)


def runs_section(summaries: list[RunSummary]) -> str:
    """Every evaluation's sample viewer and report, linked by full address (the UI shows the artifact elsewhere)."""
    lines = ["## Runs", ""]
    for s in summaries:
        name = f"{markup.text(s.model.name)} on {markup.text(s.dataset.name)}"
        if s.paths.get("view"):
            lines.append(f"- {name}: [samples]({link(s.paths['view'])}) · [report]({link(s.paths['report'])})")
        else:
            lines.append(f"- {name}: not run ({markup.text(s.error)})")
    return "\n".join(lines) + "\n"


@task(name="suite-report", cache_policy=NO_CACHE)
def suite_report(suite: Suite, name: str, summaries: list[RunSummary], models: list[str] | None,
                 options: RunOptions) -> dict[str, Any]:
    """Write report.md, chart.png and report.html under ``<output>/suites/<name>/<time>/``; publish the
    report (with every run's links), the leaderboard and a link to report.html as artifacts of the
    flow run a person triggered."""
    folder = storage.join(options.output, "suites", name, dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ"))
    regressions = [r for s in summaries for r in s.regressions]
    markdown = render_suite_report(summaries, suite)
    if regressions:
        markdown = markdown.rstrip("\n") + "\n\n" + render_section(regressions)
    paths = {"report": storage.join(folder, "report.md"), "chart": storage.join(folder, "chart.png"),
             "html": storage.join(folder, "report.html")}
    with tempfile.TemporaryDirectory() as tmp:
        chart = render_suite_chart([s for s in summaries if s.ran], os.path.join(tmp, "chart.png"))
        storage.write_bytes(paths["chart"], Path(chart).read_bytes())
        storage.write_text(paths["html"], render_html(markdown, chart, suite.title))
    storage.write_text(paths["report"], markdown)
    table = suite_leaderboard(suite, summaries).records()
    create_table_artifact(key=suite_key("leaderboard", name, models, options), table=table,
                          description=f"{suite.title} leaderboard")
    create_markdown_artifact(key=suite_key("suite", name, models, options),
                             markdown=markdown.rstrip("\n") + "\n\n" + runs_section(summaries),
                             description=f"{suite.title}: {folder}")
    create_link_artifact(key=suite_key("suite-html", name, models, options), link=link(paths["html"]),
                         link_text="report.html", description=f"{suite.title}: the report with its chart")
    return {"folder": folder, "paths": paths, "leaderboard": table,
            "regressions": [r.model_dump() for r in regressions]}


SuiteFile = Annotated[str, Choices(bundled_suites)]
ModelName = Annotated[str, registry_choices("models")]


def run_suite(suite_file: str, models: list[str] | None, max_parallel: int, options: RunOptions) -> dict[str, Any]:
    """The body of ``suite`` and ``model-published``: every evaluation as a subflow of the calling
    flow run, then the report, whose artifacts that run (the one a person triggered) carries."""
    logger = get_run_logger()
    apply_store_credentials()
    path = find_suite(suite_file)
    spec = select_models(load_suite(path), models)
    name = path.stem
    evaluations: dict[Evaluation, SuiteRow] = {}
    for _, suite_row in spec.rows():
        evaluations.setdefault((suite_row.dataset, suite_row.model, suite_row.prompt, suite_row.drop_above_wer), suite_row)

    def run(evaluation: Evaluation) -> RunSummary:
        dataset, model, prompt, _ = evaluation
        try:
            row = evaluations[evaluation].spec(options)
            plan_of(row)  # a misspelt name is "not run" without a failed subflow
            return evaluate_and_check(row).mark_unrunnable()
        except Exception as e:  # noqa: BLE001 (one evaluation that cannot run must not stop the suite)
            logger.warning("%s on %s not run: %s: %s", model, dataset, type(e).__name__, e)
            return RunSummary.not_run(dataset, model, prompt, e)

    # Each thread gets its own copy of this flow's context, so the evaluations are its subflows.
    with ThreadPoolExecutor(max_workers=max(1, max_parallel)) as pool:
        futures = [pool.submit(contextvars.copy_context().run, run, e) for e in evaluations]
        summaries = [f.result() for f in futures]
    report = suite_report(spec, name, summaries, models, options)
    runs = [{"dataset": d, "model": m, "prompt": p, "run_id": s.run_id, "error": s.error, "summary": s.paths.get("summary")}
            for (d, m, p, _), s in zip(evaluations, summaries)]
    logger.info("suite %s: %d evaluations (%d not run); report %s", name, len(runs),
                sum(bool(r["error"]) for r in runs), report["paths"]["report"])
    return {"suite": spec.title, "name": name, "runs": runs, **report}


def suite_run_name() -> str:
    """``suite sample``: a suite's flow run is named by the suite, never by a file's absolute path."""
    from prefect.runtime import flow_run

    return f"suite {Path(str(flow_run.parameters.get('suite_file', DEFAULT_SUITE))).name.removesuffix('.yaml')}"


@flow(name="suite", flow_run_name=suite_run_name, validate_parameters=True)
def suite(
    suite_file: SuiteFile = DEFAULT_SUITE,
    models: list[ModelName] | None = None,
    max_parallel: Annotated[int, Field(ge=1)] = 1,
    options: RunOptions = RunOptions(),
) -> dict[str, Any]:
    """Run every evaluation of a suite file, then write and publish its report.

    Args:
        suite_file: A bundled suite (sample, kimi-audio, step-audio-r1.1) or a suite file's path.
        models: Registry names (audio-evals list models); a model the suite names keeps its own rows,
            any other takes every row (default: the suite's own models).
        max_parallel: Evaluations at once.
        options: Run options every evaluation shares; a model revision here applies to every model run.
    """
    return run_suite(suite_file, models, max_parallel, options)


@flow(name="model-published", flow_run_name="{model} {model_revision}", validate_parameters=True)
def model_published(
    model: ModelName,
    model_revision: str | None = None,
    suite_file: SuiteFile = DEFAULT_SUITE,
    max_parallel: Annotated[int, Field(ge=1)] = 1,
    options: RunOptions = RunOptions(),
) -> dict[str, Any]:
    """Run the suite for a newly published model revision (the ``audio_evals.model.published`` trigger
    gives ``model`` and ``model_revision``), in this one flow run, which carries the report.

    Args:
        model: The published model's registry name (audio-evals list models).
        model_revision: The revision to load and record.
        suite_file: A bundled suite (sample, kimi-audio, step-audio-r1.1) or a suite file's path.
        max_parallel: Evaluations at once.
        options: Run options every evaluation shares.
    """
    return run_suite(suite_file, [model], max_parallel, options.replace(model_revision=model_revision))
