"""``suite``: every evaluation of a suite file, then its report; ``model-published``: a suite for one new revision.

Each distinct (dataset, model, prompt) of the suite runs once as an ``evaluate-and-check`` subflow,
at most ``max_parallel`` at a time. An unchanged model/dataset pair costs nothing on a re-run:
every shard comes from evaluate's cache. A row whose evaluation cannot run (unknown model, a
backend that cannot load here) is reported as "not run: <why>" and the others go on.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from audio_evals import storage
from audio_evals.regression import render_section
from audio_evals.report import render_html, render_suite_chart, render_suite_report, suite_leaderboard
from audio_evals.spec import RunOptions
from audio_evals.suites import Suite, SuiteRow, find_suite, load_suite
from audio_evals.summary import RunSummary
from flows.credentials import apply_store_credentials
from flows.regressions import evaluate_and_check
from tasks.report import artifact_key

DEFAULT_SUITE = "sample"  # bundled with the package (audio_evals.suites.find_suite)
Evaluation = tuple[str, str, str | None]  # dataset, model, prompt


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


@task(name="suite-report", cache_policy=NO_CACHE)
def suite_report(suite: Suite, name: str, summaries: list[RunSummary], output: str) -> dict[str, Any]:
    """Write report.md, chart.png and report.html under ``<output>/suites/<name>/<time>/``; publish artifacts."""
    folder = storage.join(output, "suites", name, dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ"))
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
    create_markdown_artifact(key=artifact_key("suite", name), markdown=markdown, description=f"{suite.title}: {folder}")
    create_table_artifact(key=artifact_key("leaderboard", name), table=table, description=f"{suite.title} leaderboard")
    return {"folder": folder, "paths": paths, "leaderboard": table,
            "regressions": [r.model_dump() for r in regressions]}


@flow(name="suite", flow_run_name="suite {suite_file}", validate_parameters=True)
def suite(
    suite_file: str = DEFAULT_SUITE,
    models: list[str] | None = None,
    max_parallel: int = 1,
    options: RunOptions = RunOptions(),
) -> dict[str, Any]:
    """Run every evaluation of ``suite_file`` (for ``models`` only, see ``select_models``) with
    ``options`` (a ``model_revision`` there applies to every model run: meant for one published
    model), then report."""
    logger = get_run_logger()
    apply_store_credentials()
    path = find_suite(suite_file)
    spec = select_models(load_suite(path), models)
    name = path.stem
    evaluations: list[Evaluation] = list(dict.fromkeys((row.dataset, row.model, row.prompt) for _, row in spec.rows()))

    def run(evaluation: Evaluation) -> RunSummary:
        dataset, model, prompt = evaluation
        try:
            row = options.spec(dataset, model, prompt)
            row.plan()  # a misspelt name is "not run" without a failed subflow
            return evaluate_and_check(row).mark_unrunnable()
        except Exception as e:  # noqa: BLE001 (one evaluation that cannot run must not stop the suite)
            logger.warning("%s on %s not run: %s: %s", model, dataset, type(e).__name__, e)
            return RunSummary.not_run(dataset, model, prompt, e)

    # Each thread gets its own copy of this flow's context, so the evaluations are its subflows.
    with ThreadPoolExecutor(max_workers=max(1, max_parallel)) as pool:
        futures = [pool.submit(contextvars.copy_context().run, run, e) for e in evaluations]
        summaries = [f.result() for f in futures]
    report = suite_report(spec, name, summaries, options.output)
    runs = [{"dataset": d, "model": m, "prompt": p, "run_id": s.run_id, "error": s.error, "summary": s.paths.get("summary")}
            for (d, m, p), s in zip(evaluations, summaries)]
    logger.info("suite %s: %d evaluations (%d not run); report %s", name, len(runs),
                sum(bool(r["error"]) for r in runs), report["paths"]["report"])
    return {"suite": spec.title, "name": name, "runs": runs, **report}


@flow(name="model-published", flow_run_name="{model} {model_revision}", validate_parameters=True)
def model_published(
    model: str,
    model_revision: str | None = None,
    suite_file: str = DEFAULT_SUITE,
    max_parallel: int = 1,
    options: RunOptions = RunOptions(),
) -> dict[str, Any]:
    """A newly published revision of ``model``: run the suite for it (the ``audio_evals.model.published``
    trigger gives ``model`` and ``model_revision``)."""
    return suite(suite_file=suite_file, models=[model], max_parallel=max_parallel,
                 options=options.replace(model_revision=model_revision))
