"""``python -m deployments.serve`` (or ``audio-evals serve``): serve every deployment from this process.

- ``evaluate``: one evaluation with the regression check (parameters form in the UI);
- ``nightly-suite``: the suite on a cron (``0 2 * * *`` UTC by default);
- ``on-model-published``: runs the suite for a model when ``audio_evals.model.published`` arrives;
- ``watch-models``: polls the model sources of the watch config (every 15 minutes by default).

Also creates (or resizes) the ``gpu`` global concurrency limit GPU inference takes.
Needs ``PREFECT_API_URL`` pointing at a running server (``prefect server start``) or Prefect Cloud.
"""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer
from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.schedules import Cron
from prefect.types.entrypoint import EntrypointType

from audio_evals import storage
from audio_evals.run.spec import RunOptions
from audio_evals.run.suites import find_suite
from audio_evals.watch import DEFAULT_CONFIG, MODEL_PUBLISHED
from flows.regressions import evaluate_and_check
from flows.suite import DEFAULT_SUITE, model_published, suite
from flows.watch import watch_models
from tasks.gpu import ensure_gpu_limit

NIGHTLY_CRON = "0 2 * * *"
WATCH_CRON = "*/15 * * * *"
#: Parameters of the triggered run, rendered from the event (single expressions keep their type).
PUBLISHED_PARAMETERS = {"model": "{{ event.payload.model }}", "model_revision": "{{ event.payload.revision }}"}


def _absolute(path: str | None) -> str | None:
    """Runs may start in another working directory: local paths are fixed at serve time."""
    return path if path is None or storage.is_remote(path) else os.path.abspath(path)


def build_deployments(
    suite_file: str = DEFAULT_SUITE,
    output: str = "results",
    cache_dir: str | None = None,
    registry_paths: list[str] | None = None,
    limit: int | None = None,
    nightly_cron: str = NIGHTLY_CRON,
    watch_cron: str = WATCH_CRON,
    watch_config: str = DEFAULT_CONFIG,
) -> list[RunnerDeployment]:
    """The four deployments, with the store locations as default parameters."""
    store = RunOptions(output=_absolute(output), cache_dir=_absolute(cache_dir),
                       registry_paths=[_absolute(p) for p in registry_paths or []]).model_dump(exclude_unset=True)
    suite_options = RunOptions(**store, limit=limit).model_dump(exclude_unset=True)
    suite_params = {"suite_file": _absolute(str(find_suite(suite_file))), "options": suite_options}
    common = {"entrypoint_type": EntrypointType.MODULE_PATH, "tags": ["audio-evals"]}
    return [
        evaluate_and_check.to_deployment(name="evaluate", parameters={"spec": store}, **common,
                                         description="Evaluate a model on a dataset, then check for regressions."),
        suite.to_deployment(name="nightly-suite", parameters=suite_params, schedule=Cron(nightly_cron, timezone="UTC"),
                            **common, description=f"Every evaluation of {suite_file}, nightly."),
        model_published.to_deployment(
            name="on-model-published", parameters=suite_params, **common,
            triggers=[DeploymentEventTrigger(name="model published", expect={MODEL_PUBLISHED},
                                             match={"prefect.resource.id": "audio-evals.model.*"},
                                             parameters=PUBLISHED_PARAMETERS)],
            description=f"Run {suite_file} for a newly published model revision.",
        ),
        watch_models.to_deployment(name="watch-models", schedule=Cron(watch_cron, timezone="UTC"), **common,
                                   parameters={"config": _absolute(watch_config), "output": store["output"]},
                                   description="Poll model sources; announce new revisions."),
    ]


def main(
    suite_file: Annotated[str, typer.Option("--suite", envvar="AUDIO_EVALS_SUITE", help="Suite file or bundled suite name, of nightly-suite and on-model-published.")] = DEFAULT_SUITE,
    output: Annotated[str, typer.Option("--output", envvar="AUDIO_EVALS_OUTPUT", help="Results root folder or s3:// URL.")] = "results",
    cache_dir: Annotated[Optional[str], typer.Option("--cache-dir", envvar="AUDIO_EVALS_CACHE", help="Dataset/shard cache.")] = None,
    registry_path: Annotated[list[str], typer.Option("--registry-path", envvar="AUDIO_EVALS_REGISTRY_PATHS", help="Extra registry folder(s).")] = [],
    limit: Annotated[Optional[int], typer.Option("--limit", envvar="AUDIO_EVALS_LIMIT", help="Samples per evaluation (smoke tests).")] = None,
    nightly_cron: Annotated[str, typer.Option("--nightly-cron", envvar="AUDIO_EVALS_NIGHTLY_CRON", help="Cron (UTC) of nightly-suite.")] = NIGHTLY_CRON,
    watch_cron: Annotated[str, typer.Option("--watch-cron", envvar="AUDIO_EVALS_WATCH_CRON", help="Cron (UTC) of watch-models.")] = WATCH_CRON,
    watch_config: Annotated[str, typer.Option("--watch-config", envvar="AUDIO_EVALS_WATCH_CONFIG", help="Model sources to watch.")] = DEFAULT_CONFIG,
    gpu_slots: Annotated[int, typer.Option("--gpu-slots", envvar="AUDIO_EVALS_GPU_SLOTS", help="GPU inferences at once (the gpu limit).")] = 1,
) -> None:
    """Serve the evaluate, nightly-suite, on-model-published and watch-models deployments until stopped."""
    ensure_gpu_limit(gpu_slots)
    serve(*build_deployments(suite_file, output, cache_dir, registry_path, limit, nightly_cron, watch_cron, watch_config))


#: ``audio-evals serve`` hands its arguments to this app, so both entry points share one definition.
cli = typer.Typer(add_completion=False, rich_markup_mode=None)  # plain help, readable at 80 columns
cli.command()(main)

if __name__ == "__main__":
    cli(prog_name="python -m deployments.serve")
