"""The library's two entry points into the layers above it: the reference tool's script and the Python API.

``python audio_evals/main.py --dataset D --model M`` hands its command line to the ``audio-evals``
CLI; ``audio_evals.evaluate(dataset=..., model=...)`` runs the ``evaluate`` flow from Python (a
notebook). Both import the upper layers only when called: importing the library never imports
Prefect (the CLI's quick commands and Dask workers load it without an orchestrator), and this
module is the one place in the library allowed to reach up.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audio_evals.run.summary import RunSummary


def evaluate(dataset: str = "speech-sample", model: str = "whisper-tiny.en", **fields: Any) -> RunSummary:
    """Evaluate ``model`` on ``dataset`` as ``audio-evals run`` does; ``fields`` are ``RunSpec``'s
    (``limit=26``, ``prompt=...``, ``generation={"beam_size": 1}``, ``model_args={"device": "cpu"}``).
    Returns the run's typed summary (``audio_evals.run.summary.RunSummary``).

    Raises pydantic's ``ValidationError`` for an absurd value and ``UnknownName`` (a ``KeyError``) for a
    misspelt name, before any flow run starts.
    """
    from audio_evals.run.plan import plan_of
    from audio_evals.run.spec import RunSpec

    spec = RunSpec(dataset=dataset, model=model, **fields)
    plan_of(spec)  # every name looked up now: a typo is an exception here, not a failed flow run
    from flows.evaluate import evaluate as evaluate_flow

    return evaluate_flow(spec)


if __name__ == "__main__":
    # Run as a script, Python puts this folder first on sys.path, where our module names
    # could shadow installed packages; the project root belongs there instead.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.path.insert(0, os.path.dirname(here))
    from cli.main import main

    main(["run", *sys.argv[1:]] if sys.argv[1:2] != ["run"] else sys.argv[1:])
