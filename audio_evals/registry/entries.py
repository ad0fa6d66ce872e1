"""Typed registry entries. Unknown keys are errors, so a typo in YAML fails at load."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from audio_evals import postprocess


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""


class _PostProcessed(_Entry):
    """An entry that names post-processing steps (``audio_evals.postprocess``) for the reply."""

    post_process: list[str] = Field(default_factory=list)

    @field_validator("post_process")
    @classmethod
    def _known_steps(cls, names: list[str]) -> list[str]:
        postprocess.check(names)
        return names


class ManifestSource(BaseModel):
    """A JSONL manifest (``id``, ``audio``, ``text``, optional ``lang``) on disk or any fsspec URL.

    Relative audio paths resolve against the manifest's folder and may not escape it; absolute
    paths and URLs are refused unless ``allow_absolute`` (set for manifests a user names on the
    command line, never by default for registry entries).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["manifest"] = "manifest"
    path: str
    filter: dict[str, str] = Field(default_factory=dict)
    allow_absolute: bool = False


class FolderSource(BaseModel):
    """A folder of audio files with same-stem ``.txt`` transcripts beside them."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["folder"] = "folder"
    path: str
    lang: str | None = None


class HubSource(BaseModel):
    """A Hugging Face dataset, loaded with ``datasets`` (or from a mirror laid out like the hub).

    ``data_dir`` names the folder of a revision without a README listing configs, such as the
    hub's ``refs/convert/parquet`` branch (``en_us/test/0000.parquet``): there ``datasets`` knows
    only the ``default`` config, so the folder, not ``config``, selects the subset.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["hf"] = "hf"
    repo: str
    config: str | None = None
    data_dir: str | None = None
    split: str | list[str] = "test"
    revision: str | None = None
    audio_column: str = "audio"
    reference_column: str = "text"
    id_column: str | None = None
    lang: str | None = None
    keep_columns: list[str] | None = None


Source = ManifestSource | FolderSource | HubSource


class DatasetEntry(_Entry):
    task: str
    source: Source = Field(discriminator="type")
    lang: str | None = None
    #: Sample fields built from source columns for prompts and metrics: ``{field: column}``, or
    #: ``{field: "A,B,C,D"}`` to gather several columns into a list (multiple-choice options).
    fields: dict[str, str] = Field(default_factory=dict)
    #: A sample field whose values are the dataset's levels (speech-HSK's ``split``): each figure
    #: is then the mean of the per-level figures, as the published one is.
    macro_over: str | None = None


class ModelEntry(_Entry):
    backend: str
    args: dict[str, Any] = Field(default_factory=dict)
    generation: dict[str, Any] = Field(default_factory=dict)
    #: Languages the model can handle; samples in others are skipped with a recorded reason.
    languages: list[str] | None = None
    #: What running it needs, shown by ``list models`` (e.g. "1 GPU, 24 GB").
    needs: str = "CPU"
    #: Speech-out models: the generated audio is transcribed and the transcript is scored. One
    #: registry model for every language, or one per sample language (``{en: whisper-large-v3,
    #: zh: seaco-paraformer-zh}``, ``"*"`` = any other), as the reference tool reads English answers
    #: with Whisper large-v3 and Mandarin ones with Paraformer.
    transcribe_with: str | dict[str, str] | None = None

    def transcribers(self) -> dict[str, str]:
        """``transcribe_with`` as ``{language or "*": model name}``."""
        if isinstance(self.transcribe_with, str):
            return {"*": self.transcribe_with}
        return dict(self.transcribe_with or {})


def for_language(by_language: dict[str, Any], lang: str | None) -> Any:
    """The value for a sample's language in a ``{language: value, "*": fallback}`` mapping, or None."""
    return by_language.get(lang or "", by_language.get("*"))


class ContentTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["text", "audio"]
    value: str


class MessageTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    role: Literal["system", "user", "assistant"] = "user"
    contents: list[ContentTemplate]


class PromptEntry(_PostProcessed):
    """A chat prompt; text values are Jinja templates over sample fields (``{{ question }}``).

    ``post_process`` reads the answer back out of the format the prompt asked for.
    """

    messages: list[MessageTemplate]

    @field_validator("messages")
    @classmethod
    def _has_audio(cls, messages: list[MessageTemplate]) -> list[MessageTemplate]:
        if not any(c.type == "audio" for m in messages for c in m.contents):
            raise ValueError("a prompt must contain an audio part")
        return messages


class TaskEntry(_PostProcessed):
    """How a dataset is scored: the metric (or one per language) and the report placement.

    ``metric`` gives the headline (the reference protocol); ``secondary`` metrics are computed on
    the same replies and reported beside it, never instead of it (e.g. strict MCQ accuracy): a
    list for every headline, or per headline metric (``{wer: [wer_oasr]}``: English rows only).
    """

    metric: str | dict[str, str]
    metric_params: dict[str, Any] = Field(default_factory=dict)
    secondary: list[str] | dict[str, list[str]] = Field(default_factory=list)
    default_prompt: str
    label: str
    family: str

    def secondary_for(self, metric: str) -> list[str]:
        """The secondary metrics reported beside the headline ``metric``."""
        return self.secondary if isinstance(self.secondary, list) else self.secondary.get(metric, [])

    def secondary_metrics(self) -> set[str]:
        """Every secondary metric of the task."""
        return set(self.secondary) if isinstance(self.secondary, list) else {m for ms in self.secondary.values() for m in ms}

    def metric_for(self, lang: str | None) -> str | None:
        """The metric for a sample's language; None when the task has none for it."""
        if isinstance(self.metric, str):
            return self.metric
        return self.metric.get(lang or "", self.metric.get("*"))
