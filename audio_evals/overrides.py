"""Command-line overrides: ``key=value`` assignments, and the reference tool's scoring
overrides, ``--post_process`` and ``--evaluator``, on a plan.

The reference sets each given option on the task config (``setattr(task_cfg, ...)``): the
post-processing list given replaces the whole chain, and the evaluator replaces the task's. Here
the chain is the prompt's steps then the task's (``EvalPlan.post_process``), so an override
replaces both; the evaluator must name one of this project's metrics, scored for every language.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import yaml

from audio_evals import postprocess
from audio_evals.plan import EvalPlan
from audio_evals.plugins import UnknownName, check_name


def parse_assignments(items: list[str], option: str) -> dict[str, Any]:
    """``key=value`` items (``-P beam_size=1``, ``--model-args device=cuda``) as a dict, each value
    read as YAML (``1`` an int, ``true`` a bool, ``[a, b]`` a list); ValueError names the bad item."""
    values = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{option} takes key=value, got {item!r}")
        try:
            values[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ValueError(f"{option} {key.strip()}: cannot read the value {raw!r} ({type(e).__name__})") from None
    return values


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
