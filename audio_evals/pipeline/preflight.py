"""Whether this machine can run an evaluation's stages, checked before any of them starts.

Cheap: no weights load and at most one hub request, so a run that could never finish stops at
once with one line naming everything that is missing.
"""

from __future__ import annotations

from audio_evals.models import generation_params, get_backend
from audio_evals.models.base import BackendUnavailable
from audio_evals.pipeline.download import check_reachable
from audio_evals.run.plan import EvalPlan


def preflight(plan: EvalPlan, model: bool = True) -> None:
    """Whether this machine can run the plan: the model and every transcriber of its spoken
    answers (unless ``model`` is False: replies read from a file), then the dataset's source.

    Cheap (no weights load, one hub request at most) and done before any download. Raises
    ``BackendUnavailable`` naming, in one line, everything that is missing, or the dataset's own
    error (``DatasetUnavailable``, ``FileNotFoundError``, ``ValueError``).
    """
    if model:
        check_backends(plan)
    check_reachable(plan.dataset)


def check_backends(plan: EvalPlan) -> None:
    """``BackendUnavailable`` naming every model of the plan this machine cannot run."""
    unique = {m.name: m for m in plan.transcribers.values()}.values()  # one model may serve several languages
    entries = [("model", plan.model, plan.generation), *(("transcriber", m, generation_params(m)) for m in unique)]
    problems = []
    for role, entry, generation in entries:
        try:
            get_backend(entry, generation).check()
        except BackendUnavailable as e:
            problems.append(f"{role} {entry.name!r} cannot run here: {e}")
    if problems:
        raise BackendUnavailable("; ".join(problems))
