"""The printed command of a run (``eval_cli``) and the options that make one run's numbers differ from another's.

A run's command is the reference tool's form (``python audio_evals/main.py --dataset D --model M``)
with every option that changes its numbers as it was given: generation and backend arguments,
``--limit``, the ``--rand`` draw, the scoring overrides, a manifest's absolute path. Running it
again gives the same number. The same list of options, without the names, is what a leaderboard
shows beside a model whose run was not the default evaluation (``--limit 4``, ``-P beam_size=1``).
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from typing import Any

import yaml

from audio_evals.redaction import redact
from audio_evals.run.spec import is_manifest_path

SCRIPT = ("python", "audio_evals/main.py")


def _value(value: Any) -> str:
    """``value`` as ``-P key=value`` reads it back (each value is read as YAML): a string YAML would
    read as something else (``"1"``, ``"true"``) is quoted."""
    if isinstance(value, str):
        try:
            same = yaml.safe_load(value) == value
        except yaml.YAMLError:
            same = False
        return value if same else json.dumps(value)
    return json.dumps(value)


def _absolute(path: str) -> str:
    return path if "://" in path else os.path.abspath(path)


def number_options(options: Mapping[str, Any]) -> list[str]:
    """The command-line options in ``options`` (a ``RunSpec``'s fields) that change the numbers,
    each as typed; options left at their defaults are not listed."""
    args: list[str] = []
    for flag, field in (("--prompt", "prompt"), ("--task", "task"), ("--evaluator", "evaluator"),
                        ("--model-revision", "model_revision")):
        if options.get(field):
            args += [flag, str(options[field])]
    for step in options.get("post_process") or []:
        args += ["--post_process", step]
    if options.get("inf_file"):
        args += ["--inf_file", _absolute(options["inf_file"])]
    for flag, field in (("-P", "generation"), ("-A", "model_args")):
        for key, value in sorted((options.get(field) or {}).items()):
            args += [flag, f"{key}={_value(value)}"]
    if options.get("limit"):
        args += ["--limit", str(options["limit"])]
    if options.get("rand"):
        args += ["--rand", str(options["rand"]), "--seed", str(options.get("seed") or 0)]
    if options.get("drop_above_wer"):
        args += ["--drop-above-wer", f"{options['drop_above_wer']:g}"]
    if options.get("max_duration_s"):
        args += ["--max-duration", f"{options['max_duration_s']:g}"]
    if options.get("strict"):
        args.append("--strict")
    return args


def eval_cli(options: Mapping[str, Any]) -> str:
    """The command that gives this run's numbers again: names, registry folders, ``number_options``.

    ``options`` are a ``RunSpec``'s fields as given (before the flow fills in defaults such as the
    model's duration cap); a manifest's path is made absolute, so the command works from any folder.
    Secret-named parameters are masked (never recorded): such a command needs them typed again.
    """
    options = redact(dict(options))
    dataset = str(options.get("dataset", ""))
    parts = [*SCRIPT, "--dataset", _absolute(dataset) if is_manifest_path(dataset) else dataset,
             "--model", str(options.get("model", ""))]
    if options.get("name"):
        parts += ["--name", str(options["name"])]
    for folder in options.get("registry_paths") or []:
        parts += ["--registry_path", _absolute(folder)]
    return shlex.join(parts + number_options(options))


#: The options of a printed command that name the evaluation rather than change its numbers' setting.
NAMING = frozenset({"--dataset", "--model", "--name", "--registry_path", "--prompt"})


def setting_label(command: str) -> str:
    """``--limit 4 -P beam_size=1``: how the run of a printed command (``eval_cli``) differs from the
    default evaluation of its model, dataset and prompt ("" when it does not)."""
    parts = shlex.split(command)[len(SCRIPT):] if command.startswith(" ".join(SCRIPT)) else []
    kept, index = [], 0
    while index < len(parts):
        if parts[index] in NAMING:
            index += 2
            continue
        kept.append(parts[index])
        index += 1
    return shlex.join(kept)
