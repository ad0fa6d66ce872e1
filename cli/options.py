"""Command-line options made from ``RunSpec`` fields, and the checks of what a run writes into.

A command taking ``spec: RunSpec`` (or ``RunOptions``) gets one option per field, with the
field's default and description; the command receives the validated model, and an absurd value
is refused before any work, in one line naming the option (the rule itself lives on the field).
Only the spelling is the CLI's: the short flags and aliases below, and ``--param key=value`` for
the ``generation`` mapping, ``--model-args key=value`` for ``model_args`` (whose ``device`` and
``batch_size`` ``run`` also takes as ``--device`` and ``--batch-size``).
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import tempfile
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Optional, TypeVar, Union, get_args, get_origin

import typer
import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from audio_evals import storage
from audio_evals.redaction import remember_secret_params
from audio_evals.run.spec import is_internal
from cli.errors import fail

Command = TypeVar("Command", bound=Callable[..., Any])


def registry_paths(values: list[str]) -> list[str]:
    """The reference tool takes ``--registry_path "DIR1 DIR2"``; accept both forms."""
    return [p for v in values for p in v.split()]


#: ``a=1,b=2`` (lm-eval's ``--model_args`` habit) is two items: a comma followed by the next ``key=``.
_ITEMS = re.compile(r",(?=[A-Za-z_][\w.-]*=)")


def parse_assignments(items: list[str], option: str) -> dict[str, Any]:
    """``key=value`` items (``-P beam_size=1``, ``--model-args device=cuda``, or several in one:
    ``-A device=cpu,compute_type=int8``) as a dict, each value read as YAML (``1`` an int, ``true`` a
    bool, ``[a, b]`` a list); ValueError names the bad item."""
    values = {}
    for item in (part for given in items for part in _ITEMS.split(given)):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{option} takes key=value, got {item!r}")
        try:
            values[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ValueError(f"{option} {key.strip()}: cannot read the value {raw!r} ({type(e).__name__})") from None
    return values


def assignments(option: str) -> Callable[[list[str]], dict[str, Any]]:
    """``option key=value`` items (values read as YAML scalars) into the field's mapping."""
    def parse(values: list[str]) -> dict[str, Any]:
        try:
            params = parse_assignments(values, option)
        except ValueError as e:
            fail(str(e), 2)
        remember_secret_params(params)  # masked wherever the run writes or logs
        return params
    return parse


generation = assignments("--param")


@dataclass(frozen=True)
class Spelling:
    """How the command line spells a field, where not ``--field-name`` with the field's type."""

    flags: tuple[str, ...] = ()
    envvar: str | None = None
    help: str | None = None
    parse: Callable[[list[str]], Any] | None = None  # the option is a list of strings made into the field's value
    metavar: str | None = None


SPELLINGS = {
    "dataset": Spelling(("--dataset", "-d")),
    "model": Spelling(("--model", "-m")),
    "prompt": Spelling(("--prompt", "-p")),
    "output": Spelling(("--output", "-o")),
    "max_duration_s": Spelling(("--max-duration",)),
    "cache_dir": Spelling(envvar="AUDIO_EVALS_CACHE"),
    "registry_paths": Spelling(("--registry-path", "--registry_path"), parse=registry_paths),
    "generation": Spelling(("--param", "-P"), help="Generation parameter override key=value (e.g. -P beam_size=1).",
                           parse=generation, metavar="KEY=VALUE"),
    "model_args": Spelling(("--model-args", "-A"), help="Backend argument key=value (recorded; refused, naming the "
                           "accepted ones, if the backend does not take it). --device and --batch-size set two.",
                           parse=assignments("--model-args"), metavar="KEY=VALUE"),
    "inf_file": Spelling(("--inf_file", "--inf-file")),
    "post_process": Spelling(("--post_process", "--post-process")),
}


def flags(name: str) -> tuple[str, ...]:
    return SPELLINGS.get(name, Spelling()).flags or ("--" + name.replace("_", "-"),)


def _plain(annotation: Any) -> Any:
    """The type click parses: constraints (``Annotated``) left to the model, ``X | None`` as
    Optional, a list as a repeated option (given none: the field's default)."""
    if get_origin(annotation) is Annotated:
        return _plain(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        (inner,) = [_plain(a) for a in get_args(annotation) if a is not type(None)]
        return inner if get_origin(inner) is list else Optional[inner]
    return annotation


def _option(name: str, field: FieldInfo) -> inspect.Parameter:
    spelling = SPELLINGS.get(name, Spelling())
    annotation = list[str] if spelling.parse else _plain(field.annotation)
    default = [] if get_origin(annotation) is list else field.default
    option = typer.Option(default, *flags(name), envvar=spelling.envvar, help=spelling.help or field.description,
                          metavar=spelling.metavar)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)


def _validated(model: type[BaseModel], given: dict[str, Any]) -> BaseModel:
    """The model from the options given; a refused value exits 2 in one line naming its option."""
    values = {}
    for name, value in given.items():
        parse = SPELLINGS.get(name, Spelling()).parse
        if parse:
            value = parse(value)
        if value != []:  # a list option not given: the field's default
            values[name] = value
    try:
        return model.model_validate(values)
    except ValidationError as e:
        error = e.errors()[0]
        option = flags(str(error["loc"][0]))[0] if error["loc"] else "options"
        fail(f"{option} {error['msg'].removeprefix('Value error, ')}", 2)


def spec_options(command: Command) -> Command:
    """``command`` with its parameter annotated ``RunSpec``/``RunOptions`` replaced by one option per field.

    The options come first in ``--help``, the evaluation's own fields before the shared ones.
    """
    own = list(inspect.signature(command, eval_str=True).parameters.values())
    (target,) = [p for p in own if isinstance(p.annotation, type) and issubclass(p.annotation, BaseModel)]
    model = target.annotation
    fields = {name: f for name, f in model.model_fields.items() if not is_internal(f)}
    names = sorted(fields, key=lambda n: n not in model.__annotations__)  # stable: a subclass's fields first

    @functools.wraps(command)
    def wrapper(**given: Any) -> Any:
        spec = _validated(model, {name: given.pop(name) for name in fields})
        return command(**{target.name: spec}, **given)

    rest = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own if p is not target]  # click passes names
    wrapper.__signature__ = inspect.Signature([*(_option(n, fields[n]) for n in names), *rest])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in rest}
    return wrapper  # type: ignore[return-value]


def folder_problem(option: str, path: str) -> str | None:
    """Why ``path`` cannot hold what a run writes (not a folder, not writable), or None.

    Creates the folder, as the run would; object-store URLs are not checked here.
    """
    if storage.is_remote(path):
        return None
    if os.path.exists(path) and not os.path.isdir(path):
        return f"{option} {path} is not a folder"
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        return f"{option} {path} is not writable: {e.strerror or e}"
    return None
