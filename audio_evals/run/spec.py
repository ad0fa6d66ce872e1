"""``RunSpec``: what one evaluation runs and where, the one list of run parameters.

The CLI parses its options into a ``RunSpec``, the ``evaluate`` flow takes one (Prefect renders it
as the deployment's parameter form), suites and deployments build one per evaluation, and
``retry`` reloads the one a run recorded in its ``summary.json``. Every rule about an absurd value
lives on these fields, so each entry point refuses the same values with the same words.

``RunOptions`` are the fields any evaluation of a suite shares; ``RunSpec`` adds what names one
evaluation. Fields marked ``SkipJsonSchema`` are left out of the deployment form (a person filling
in a run never sets them; the API still takes them); those also marked ``INTERNAL`` are no
command-line option either: ``retry``, deployments and tests set them.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StrictBool,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic.json_schema import SkipJsonSchema
from typing_extensions import Self

from audio_evals.redaction import redact
from audio_evals.registry import load_registry
from audio_evals.registry.loader import SECTIONS, registry_version
from audio_evals.storage import stable_hash

#: Run ids are folder names: letters, digits, '.', '_' and '-', never a path or '..'.
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_run_id(run_id: str) -> str:
    """``run_id`` if it can name a run folder; ``ValueError`` (one line) otherwise."""
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id) or ".." in run_id:
        raise ValueError(f"run id {run_id!r} is not allowed: use letters, digits, '.', '_' and '-' "
                         "(no path separators, no '..'), at most 128 characters")
    return run_id


def is_manifest_path(dataset: str) -> bool:
    return dataset.endswith((".jsonl", ".json")) and ("/" in dataset or os.path.exists(dataset))


def manifest_stem(path: str) -> str:
    """A manifest's default dataset name: its file name without ``.jsonl``/``.json``."""
    return re.sub(r"\.jsonl?$", "", os.path.basename(path.rstrip("/")))


def _at_least_one(value: int) -> int:
    if value < 1:
        raise ValueError(f"must be at least 1, not {value}")
    return value


def _positive_seconds(value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"must be a positive number of seconds, not {value:g}")
    return value


def _positive(value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"must be a positive number, not {value:g}")
    return value


def _share(value: float) -> float:
    if not 0 <= value <= 1:
        raise ValueError(f"must be a share between 0 and 1, not {value:g}")
    return value


def _not_negative(value: float) -> float:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"must be 0 or more, not {value:g}")
    return value


class _Internal:
    """Marks a field that no command-line option sets."""


INTERNAL = _Internal()


def is_internal(field: FieldInfo) -> bool:
    return any(isinstance(m, _Internal) for m in field.metadata)


Count = Annotated[int, AfterValidator(_at_least_one), Field(json_schema_extra={"minimum": 1})]
Seconds = Annotated[float, AfterValidator(_positive_seconds), Field(json_schema_extra={"exclusiveMinimum": 0})]


@dataclass(frozen=True)
class Choices:
    """Names a form offers as examples, listed when the schema is made (a choice, never a limit:
    manifests and extra registry folders name others). Annotating a type with it composes with
    the flow parameters' own schema extras, which a ``json_schema_extra`` function does not."""

    names: Callable[[], list[str]]

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        return {**handler(core_schema), "examples": self.names()}


@functools.lru_cache(maxsize=4)
def _registry_names(version: tuple[tuple[str, int, int], ...]) -> dict[str, list[str]]:
    """Every section's names of the built-in registry at ``version``: one load for all the fields
    a schema offers names for, however often pydantic and Prefect make it (flow definition,
    ``with_options``, each deployment), instead of one per field and schema."""
    registry = load_registry()
    return {section: sorted(getattr(registry, section)) for section in SECTIONS}


def registry_choices(section: str) -> Choices:
    """The built-in registry's ``section`` names (datasets, models, prompts, tasks) as a form's examples."""
    return Choices(lambda: list(_registry_names(registry_version())[section]))


def _form(schema: dict[str, Any]) -> None:
    """The form lists what a person sets; fields it leaves out still pass the server's check of a
    deployment run's parameters (pydantic then refuses unknown names when the flow starts). The
    Prefect UI shows descriptions but not examples, so a field's choices join its description."""
    schema.pop("additionalProperties", None)
    for field in schema.get("properties", {}).values():
        if field.get("examples") and field.get("description"):
            field["description"] += " Registry names: " + ", ".join(field["examples"]) + "."


def _what_first(schema: dict[str, Any]) -> None:
    """The form opens with what names the evaluation (pydantic lists a base class's fields first)."""
    _form(schema)
    properties = schema["properties"]
    schema["properties"] = {**{k: properties[k] for k in ("dataset", "model", "prompt", "task")}, **properties}


class ParentRun(BaseModel):
    """The run a retry finishes: its id, and what it evaluated (``identity`` in its summary)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    identity: dict[str, Any]


class RunOptions(BaseModel):
    """How and where an evaluation runs: the fields every evaluation of a suite shares."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_form)

    limit: Count | None = Field(None, description="Evaluate the first N samples (default: all).")
    rand: Count | None = Field(None, description="Score a random subset of N samples (after limit), drawn with seed.")
    seed: int = Field(0, description="Seed of the rand draw (recorded in the summary).")
    model_revision: str | None = Field(None, description="Published model revision to load and record.")
    strict: StrictBool = Field(False, description="Score failed samples as errors; the run fails when any did.")
    fresh: StrictBool = Field(False, description="Ignore caches and recompute every stage.")
    max_duration_s: Seconds | None = Field(
        None, description="Reject clips longer than this (s); default: the model's limit, else 1800.")
    drop_above_wer: Annotated[float, AfterValidator(_positive)] | None = Field(
        None, description="Leave out samples whose per-sample WER/CER (percent) exceeds this, e.g. 1000; counted as dropped.")
    workers: Count = Field(1, description="Shards in flight at once.")
    shard_size: Count = Field(32, description="Samples per shard (the unit of caching and retry).")
    output: str = Field("results", min_length=1, description="Results root folder or s3:// URL.")
    registry_paths: list[str] = Field([], description="Extra registry folders (datasets, models, prompts, tasks).")
    cache_dir: str | None = Field(None, description="Dataset, decoded-audio and shard cache (default ~/.cache/audio-evals).")
    shard_retries: SkipJsonSchema[Annotated[int, AfterValidator(_not_negative), INTERNAL]] = Field(
        2, description="Attempts after the first for a failed shard.")
    retry_delay_s: SkipJsonSchema[Annotated[float, AfterValidator(_not_negative), INTERNAL]] = Field(
        2.0, description="Delay before a shard's first retry (s), then 4 times longer each time.")

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes``, validated like any input."""
        return self.model_validate({**self.model_dump(), **changes})

    def spec(self, dataset: str, model: str, prompt: str | None = None) -> RunSpec:
        """The evaluation of ``model`` on ``dataset`` (with ``prompt``) under these options: a suite's row."""
        return RunSpec.model_validate({**self.model_dump(), "dataset": dataset, "model": model, "prompt": prompt})

    def shaping(self) -> dict[str, Any]:
        """The options that shape a run's numbers beyond its plan: a retry must find them unchanged."""
        return self.model_dump(include={"limit", "shard_size", "max_duration_s", "strict", "rand", "seed",
                                        "drop_above_wer"})

    def numbers(self) -> dict[str, Any]:
        """The fields of these options that change the numbers: what ``variant`` hashes."""
        return {**self.shaping(), "model_revision": self.model_revision}

    @property
    def variant(self) -> str:
        """A short hash of ``numbers``: it ends a run's artifact keys, so a ``--limit 2`` smoke run or
        other parameters never replace a full run's artifacts."""
        return stable_hash(self.numbers())[:8]

    def title_parts(self) -> list[str]:
        """The readable part of the title these options add: revision and limit."""
        return ([f"revision {self.model_revision}"] if self.model_revision else []) + \
            ([f"limit {self.limit}"] if self.limit else [])


class RunSpec(RunOptions):
    """One evaluation: which model on which dataset, with which prompt and scoring, and its options."""

    model_config = ConfigDict(json_schema_extra=_what_first)

    dataset: Annotated[str, registry_choices("datasets")] = Field(
        "speech-sample", min_length=1, description="Registry name, or a JSONL manifest path/URL.")
    name: str | None = Field(None, min_length=1, description="The dataset's name when it is a manifest path "
                                                             "(default: the file name without .jsonl).")
    model: Annotated[str, registry_choices("models")] = Field("whisper-tiny.en", min_length=1,
                                                               description="Registry model name.")
    prompt: Annotated[str | None, registry_choices("prompts")] = Field(
        None, description="Registry prompt (default: the task's).")
    task: Annotated[str | None, registry_choices("tasks")] = Field(
        None, description="Override the dataset's task (how its samples are scored).")
    generation: dict[str, Any] = Field({}, description="Generation parameter overrides, e.g. {beam_size: 1}.")
    model_args: dict[str, Any] = Field(
        {}, description="Backend arguments replacing the registry entry's, e.g. {device: cuda, batch_size: 8} "
                        "(recorded; refused, naming the accepted ones, if the backend does not take one).")
    post_process: list[str] | None = Field(
        None, description="Post-processing step(s) replacing the prompt's and task's (e.g. json_content).")
    evaluator: str | None = Field(
        None, description="Metric replacing the task's headline metric (wer, cer, bleu, acc, choice, mmau, g_eval).")
    inf_file: str | None = Field(
        None, description="Score the replies in this file (an earlier run's samples.jsonl, or the reference tool's "
                          "record jsonl) without running the model.")
    max_fail_rate: SkipJsonSchema[Annotated[float, AfterValidator(_share)]] = Field(
        0.5, description="The CLI exits 1 when more than this share of samples failed (0-1).")
    run_id: SkipJsonSchema[str | None] = Field(None, description="Id of this run (default: new); names one run only.")
    command: SkipJsonSchema[Annotated[str | None, INTERNAL]] = Field(
        None, description="The command that started the run, as typed (recorded in the summary).")
    parent: SkipJsonSchema[Annotated[ParentRun | None, INTERNAL]] = Field(
        None, description="The run a retry finishes: this run stops before inference if it would not evaluate "
                          "what the parent did.")

    @field_validator("model_args", mode="before")
    @classmethod
    def _model_args(cls, value: Any) -> Any:
        return {} if value is None else value  # summaries written before the field record null

    @field_validator("run_id")
    @classmethod
    def _run_id(cls, value: str | None) -> str | None:
        return value if value is None else check_run_id(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None, info: ValidationInfo) -> str | None:
        dataset = info.data.get("dataset", "")
        if value is not None and not is_manifest_path(dataset):
            raise ValueError(f"names a dataset given as a manifest path; {dataset!r} is a registry dataset")
        return value

    @property
    def dataset_name(self) -> str:
        """The dataset's name in results and run names: ``name``, or a manifest path's file stem."""
        return (self.name or manifest_stem(self.dataset)) if is_manifest_path(self.dataset) else self.dataset

    @property
    def title(self) -> str:
        """A readable flow-run name: ``whisper-tiny.en · speech-sample-en · limit 26``."""
        prompt = [f"prompt {self.prompt}"] if self.prompt else []
        return " · ".join([self.model, self.dataset_name, *prompt, *self.title_parts()])

    def numbers(self) -> dict[str, Any]:
        """The options' fields that change the numbers, and what names the evaluation and scores it."""
        named = self.model_dump(mode="json", include={"dataset", "name", "model", "prompt", "task", "generation",
                                                      "model_args", "post_process", "evaluator", "inf_file"})
        return {**super().numbers(), **redact(named)}


