"""Resolve command-line names into a validated evaluation plan before any work starts."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

from audio_evals import postprocess
from audio_evals.metrics import metric_class
from audio_evals.models import check_generation, generation_params, get_backend, with_backend_args
from audio_evals.plugins import UnknownName, check_name
from audio_evals.records import Sample
from audio_evals.redaction import redact
from audio_evals.registry import DatasetEntry, ModelEntry, PromptEntry, Registry, TaskEntry, load_registry
from audio_evals.registry.entries import ManifestSource, for_language
from audio_evals.registry.loader import registry_version
from audio_evals.run.spec import RunSpec, is_manifest_path, manifest_stem


@dataclass(frozen=True)
class EvalPlan:
    """Everything one evaluation needs, resolved and validated."""

    dataset: DatasetEntry
    task: TaskEntry
    model: ModelEntry
    prompt: PromptEntry
    generation: dict[str, Any] = field(default_factory=dict)
    prompt_given: bool = False
    #: Speech-out models: the ASR model transcribing the generated audio, per sample language
    #: (``"*"`` = any other); empty for text-out models.
    transcribers: dict[str, ModelEntry] = field(default_factory=dict)

    @property
    def post_process(self) -> tuple[str, ...]:
        """Steps applied to every reply before scoring: the prompt's (its output format), then the task's."""
        return (*self.prompt.post_process, *self.task.post_process)

    def transcriber_for(self, lang: str | None) -> ModelEntry | None:
        return for_language(self.transcribers, lang)

    def sent_parameters(self) -> dict[str, Any]:
        """What every model call carries besides its input (the backend's view of ``generation``)."""
        return get_backend(self.model, self.generation).sent_parameters()

    def transcriber_record(self) -> dict[str, dict[str, Any]]:
        """Each language's transcriber as results record it: name, backend, arguments, what it is sent."""
        return {lang: {"name": m.name, "backend": m.backend, "args": m.args,
                       "sent": get_backend(m, generation_params(m)).sent_parameters()}
                for lang, m in self.transcribers.items()}

    def skip_reason(self, sample: Sample) -> str | None:
        """Why a sample is not run: a language the model, the task or the transcriber cannot handle."""
        if self.task.metric_for(sample.lang) is None:
            if sample.lang is None:
                return (f"sample has no language and task {self.task.name!r} scores by language: add 'lang' "
                        "(e.g. en, zh) to its row, or pass --task asr-en / asr-zh")
            return f"task {self.task.name!r} has no metric for language {sample.lang!r}"
        languages = self.model.languages
        if languages and sample.lang and sample.lang not in languages:
            return f"model {self.model.name!r} supports {', '.join(languages)} only; sample language is {sample.lang!r}"
        return self._transcriber_skip(sample.lang)

    def _transcriber_skip(self, lang: str | None) -> str | None:
        """A spoken answer nobody here can transcribe would be scored as garbage: skip it instead."""
        if not self.transcribers:
            return None
        transcriber = self.transcriber_for(lang)
        if transcriber is None:
            return (f"model {self.model.name!r} has spoken answers transcribed for {', '.join(self.transcribers)} "
                    f"only; sample language is {lang!r}")
        if transcriber.languages and lang not in transcriber.languages:
            return (f"spoken answers are transcribed by {transcriber.name!r}, which supports "
                    f"{', '.join(transcriber.languages)} only; sample language is {lang!r}")
        return None

    def reference_problem(self, sample: Sample) -> str | None:
        """Why the sample's reference cannot be scored by its metric, so it fails before inference.

        Per family, as the reference tool fails them: WER/CER and BLEU have nothing to count
        against an empty reference; QA, multiple choice and MMAU score an empty one (QA fails only
        on a missing one, MMAU on a missing or non-text one); a list is refused by a one-text metric.
        """
        metric = self.task.metric_for(sample.lang)
        if metric is None:
            return None
        if isinstance(sample.reference, list) and metric_class(metric).one_reference:
            return f"'text' is a list of {len(sample.reference)}, but {metric} scores against one string"
        return metric_class(metric).reference_problem(sample.reference)

    def skip_key(self) -> str:
        """Identity of ``skip_reason`` and ``reference_problem`` for cache keys."""
        key: list[Any] = [self.task.metric, self.model.languages, "references checked per metric",
                          "skipped rows keep lang and reference"]
        if self.transcribers:
            key.append({lang: [m.name, m.languages] for lang, m in sorted(self.transcribers.items())})
        return repr(key)

    def redacted(self) -> "EvalPlan":
        """The plan as it may be recorded: secret-named generation parameters and model arguments masked."""
        return replace(self, generation=redact(self.generation),
                       model=self.model.model_copy(update={"args": redact(self.model.args)}))





def manifest_entry(path: str, task: str = "asr", lang: str | None = None, name: str | None = None) -> DatasetEntry:
    """An ad-hoc dataset for a manifest a user names directly (absolute audio paths allowed).

    ``lang`` is the language of rows that give none; ``name`` defaults to the file's stem.
    """
    location = path if "://" in path else os.path.abspath(path)
    return DatasetEntry(
        name=name or manifest_stem(location),
        task=task,
        description=f"manifest {location}",
        source=ManifestSource(path=location, allow_absolute=True),
        lang=lang,
    )


def resolve(
    registry: Registry,
    dataset: str,
    model: str,
    prompt: str | None = None,
    generation: dict[str, Any] | None = None,
    task: str | None = None,
    model_revision: str | None = None,
    name: str | None = None,
    model_args: dict[str, Any] | None = None,
) -> EvalPlan:
    """Look every name up; unknown names fail here, with close-match suggestions, and so do
    generation parameters the model's backend would not use and backend arguments it does not take.

    ``model_revision`` (a published revision: hub commit, folder version) is passed to the
    backend as its ``revision`` argument and recorded with the results; ``model_args`` (device,
    batch size, ...) replace the registry entry's arguments and are recorded with it. ``name``
    names a manifest dataset (default: its file's stem).
    """
    model_entry = with_backend_args(registry.model(model), model_args or {})
    # A user's own manifest may leave out ``lang``: for a one-language model, that is its language.
    only_language = model_entry.languages[0] if model_entry.languages and len(model_entry.languages) == 1 else None
    entry = (manifest_entry(dataset, task or "asr", only_language, name) if is_manifest_path(dataset)
             else registry.dataset(dataset))
    task_entry = registry.task(task or entry.task)
    if model_revision:
        model_entry = model_entry.model_copy(update={"args": {**model_entry.args, "revision": model_revision}})
    prompt_entry = registry.prompt(prompt or task_entry.default_prompt)
    params = generation_params(model_entry, generation)
    check_generation(model_entry, params)
    transcribers = {lang: registry.model(name) for lang, name in model_entry.transcribers().items()}
    for transcriber in transcribers.values():
        check_generation(transcriber, generation_params(transcriber))
    return EvalPlan(
        dataset=entry,
        task=task_entry,
        model=model_entry,
        prompt=prompt_entry,
        generation=params,
        prompt_given=prompt is not None,
        transcribers=transcribers,
    )


def with_overrides(plan: EvalPlan, post_process: list[str] | None = None, evaluator: str | None = None) -> EvalPlan:
    """``plan`` with the reply's post-processing chain and/or the headline metric replaced.

    Raises ValueError for an unknown step and UnknownName for an evaluator without an equivalent.
    """
    if post_process is not None:
        postprocess.check(post_process)
        plan = replace(plan, prompt=plan.prompt.model_copy(update={"post_process": []}),
                       task=plan.task.model_copy(update={"post_process": list(post_process)}))
    if evaluator is not None and evaluator != plan.task.metric:
        try:
            check_name("audio_evals.metrics", evaluator, "metric")
        except UnknownName as e:
            raise UnknownName(f"--evaluator {evaluator!r} has no equivalent here: {e}") from None
        # Parameters belong to the replaced metric (e.g. BLEU's tokenizer), not to this one.
        plan = replace(plan, task=plan.task.model_copy(update={"metric": evaluator, "metric_params": {}}))
    return plan


#: The fields of a ``RunSpec`` its plan depends on.
PLAN_FIELDS = frozenset({"registry_paths", "dataset", "name", "model", "prompt", "task", "generation", "model_args",
                         "model_revision", "post_process", "evaluator"})
_plans: dict[tuple[str, tuple], EvalPlan] = {}


def plan_of(spec: RunSpec) -> EvalPlan:
    """Every name of ``spec`` looked up and checked (``resolve``), the scoring overrides applied.

    Resolved once per process for the same fields and registry files (the CLI checks a plan before
    Prefect starts, and the flow it starts asks for it again): a plan is frozen, so it is shared.
    """
    key = (spec.model_dump_json(include=PLAN_FIELDS), registry_version(spec.registry_paths))
    if key not in _plans:
        plan = resolve(load_registry(spec.registry_paths), spec.dataset, spec.model, spec.prompt, spec.generation,
                       spec.task, spec.model_revision, name=spec.name, model_args=spec.model_args)
        _plans[key] = with_overrides(plan, spec.post_process, spec.evaluator)
    return _plans[key]
