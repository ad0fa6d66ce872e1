"""Suite files: which (dataset, model, prompt) runs make up a published report, in what order.

A suite mirrors one seed report: sections per task family, one row per ``eval_cli`` command,
optionally the officially reported figure. Reports are rendered from a suite plus whatever run
summaries exist, so a missing run shows up as a row marked "not run" instead of vanishing.
The package ships its suites (``assets/suites/``): a name such as ``sample`` finds them anywhere.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from audio_evals.paths import ASSETS_DIR
from audio_evals.run.spec import RunOptions, RunSpec

SUITES_DIR = Path(ASSETS_DIR) / "suites"


class SuiteError(ValueError):
    """A suite file that cannot be used; the message names the file and the offending row."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SuiteRow(_Strict):
    """One evaluation: the command's names, the measure reported, and the published figure.

    ``label`` is the dataset's display name in the table when the seed shows one that differs
    from the command-line name (``Speech Web Questions`` for ``speech-web-questions``).
    ``drop_above_wer`` is the seed's per-sample WER/CER filter for this row (``--drop-above-wer``);
    the report's note then says so, as the seed's does.
    """

    dataset: str = Field(min_length=1)
    model: str = Field(min_length=1)
    prompt: str | None = None
    measure: str = Field(min_length=1)
    label: str | None = None
    official: float | None = None
    note: str = ""
    drop_above_wer: float | None = Field(None, gt=0)

    def spec(self, options: RunOptions) -> RunSpec:
        """This row's evaluation under the suite's ``options`` (the row's own filter over theirs)."""
        spec = options.spec(self.dataset, self.model, self.prompt)
        return spec if self.drop_above_wer is None else spec.replace(drop_above_wer=self.drop_above_wer)


class SuiteSection(_Strict):
    """A task family: its heading, the task label of its rows, and the rows in report order."""

    family: str = Field(min_length=1)
    task: str = Field(min_length=1)
    rows: list[SuiteRow] = Field(min_length=1)


class Suite(_Strict):
    """A validated suite file."""

    title: str = Field(min_length=1)
    model_card: list[str] = Field(default_factory=list)
    sections: list[SuiteSection] = Field(min_length=1)

    @model_validator(mode="after")
    def _no_duplicate_rows(self) -> "Suite":
        """Two identical rows would show one run twice; that is always a copy-paste slip."""
        seen: set[tuple[str, str]] = set()
        for section, row in self.rows():
            key = (self.eval_cli(row), row.measure)
            if key in seen:
                raise ValueError(f"duplicate row in section {section.family!r}: {key[0]} ({row.measure})")
            seen.add(key)
        return self

    def rows(self) -> list[tuple[SuiteSection, SuiteRow]]:
        """Every row with its section, in report order (the numbering of the commands)."""
        return [(section, row) for section in self.sections for row in section.rows]

    @staticmethod
    def eval_cli(row: SuiteRow) -> str:
        """The reference tool's command for a row, in the same form a run records."""
        parts = ["python", "audio_evals/main.py", "--dataset", row.dataset, "--model", row.model]
        if row.prompt:
            parts += ["--prompt", row.prompt]
        return shlex.join(parts)


def _where(loc: tuple[Any, ...], raw: dict[str, Any]) -> str:
    """``sections[1].rows[3].official (row of dataset 'x')``: the file position a person can find."""
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    if len(loc) < 4 or loc[0] != "sections" or loc[2] != "rows":
        return path or "suite"
    try:
        dataset = raw["sections"][loc[1]]["rows"][loc[3]].get("dataset")
    except (AttributeError, IndexError, KeyError, TypeError):
        return path
    return f"{path} (row of dataset {dataset!r})"


def bundled_suites() -> list[str]:
    """The names of the suites shipped with the package."""
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def find_suite(name_or_path: str | Path) -> Path:
    """The suite file ``name_or_path`` when it exists, else the bundled suite it names: ``sample``,
    ``sample.yaml`` and ``suites/sample.yaml`` (where the checkout kept them) all name ``sample``."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = path.name.removesuffix(".yaml")
    bundled = SUITES_DIR / f"{name}.yaml"
    if path.parent.as_posix() in (".", "suites") and bundled.is_file():
        return bundled
    raise SuiteError(f"no suite file {str(name_or_path)!r} and no bundled suite of that name "
                     f"(bundled: {', '.join(bundled_suites())})")


def load_suite(name_or_path: str | Path) -> Suite:
    """Read and validate a suite file (see ``find_suite``); every problem is reported with the file and the row."""
    path = find_suite(name_or_path)
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SuiteError(f"{path}: expected a mapping with title and sections, got {type(raw).__name__}")
    try:
        return Suite.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{_where(e['loc'], raw)}: {e['msg']}" for e in exc.errors())
        raise SuiteError(f"{path}: {problems}") from exc
