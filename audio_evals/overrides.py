"""The reference tool's scoring overrides, ``--post_process`` and ``--evaluator``, on a plan.

The reference sets each given option on the task config (``setattr(task_cfg, ...)``): the
post-processing list given replaces the whole chain, and the evaluator replaces the task's. Here
the chain is the prompt's steps then the task's (``EvalPlan.post_process``), so an override
replaces both; the evaluator must name one of this project's metrics, scored for every language.
"""

from __future__ import annotations

from dataclasses import replace

from audio_evals import postprocess
from audio_evals.plan import EvalPlan
from audio_evals.plugins import UnknownName, check_name


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
