"""The Python API's readers of results already written: typed records, never dicts.

``load_run`` reads a run folder (its ``summary.json`` and rows validated like input), ``compare``
sets two runs side by side as ``audio-evals view A B`` does, ``leaderboard`` builds the models ×
datasets table of a results folder as ``audio-evals leaderboard`` does. Imported lazily, so
``import audio_evals`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from audio_evals.report.compare import Comparison
    from audio_evals.report.leaderboard import Leaderboard
    from audio_evals.report.samples import RunRecord


def load_run(path: str) -> RunRecord:
    """The run in folder ``path`` (or its ``summary.json``): ``.summary`` (a ``RunSummary``) and ``.rows``."""
    from audio_evals.report.samples import read_run

    return read_run(path)


def compare(a: str, b: str) -> Comparison:
    """Run ``b`` against run ``a``, sample by sample, with each metric's paired 95% CI of B − A."""
    from audio_evals.report.compare import compare_runs

    return compare_runs(load_run(a), load_run(b))


def leaderboard(folder: str = "results") -> Leaderboard:
    """The models × datasets table of the runs under ``folder`` (``.records()``, ``.markdown()``, ``.skipped``)."""
    from audio_evals.report.leaderboard import leaderboard_of_results

    return leaderboard_of_results(folder)
