"""The reference tool's command line (UltraEval-Audio ``audio_evals/main.py``) on this CLI.

Its argparse options that click cannot spell the same way are rewritten before parsing:
``-r/--resume`` and ``--use_model_pool`` take an optional value (``latest`` and ``on`` when bare),
``--post_process`` takes several values after one flag. Options with no work to do here are
accepted with a one-line note saying what stands in for them, options with no equivalent are
refused in one line; ``--save`` keeps its meaning, a file.
"""

from __future__ import annotations

from audio_evals import storage
from audio_evals.run.summary import RunSummary

#: Options whose value may be left out, with the value argparse gives them then (``const``).
OPTIONAL_VALUE = {"-r": "latest", "--resume": "latest", "--use_model_pool": "on"}
#: Options taking one or more values after a single flag (argparse ``nargs="+"``).
MANY_VALUES = {"--post_process", "--post-process"}
MODEL_POOL_CHOICES = ("auto", "on", "off")


def normalise_argv(args: list[str]) -> list[str]:
    """``args`` of ``run`` in click's spelling: bare optional values filled in, lists repeated."""
    out: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg in MANY_VALUES:
            values = []
            while index < len(args) and not args[index].startswith("-"):
                values.append(args[index])
                index += 1
            out += [item for value in values for item in (arg, value)] or [arg]
            continue
        out.append(arg)
        if arg in OPTIONAL_VALUE and (index == len(args) or args[index].startswith("-")):
            out.append(OPTIONAL_VALUE[arg])
    return out


def notes(resume: str | None, use_model_pool: str | None, two_phase: bool = False, agg: str | None = None,
          dataset_ref_col: str | None = None) -> list[str]:
    """One line per accepted reference option that changes nothing here, saying why.

    Raises ValueError, in one line, for an option with no equivalent.
    """
    if agg is not None:
        raise ValueError(f"--agg {agg!r}: not selectable here; each metric has its own aggregate "
                         "(corpus WER/CER/BLEU, mean accuracy), chosen with --evaluator")
    if dataset_ref_col is not None:
        raise ValueError(f"--dataset_ref_col {dataset_ref_col!r}: not supported; name the reference column "
                         "(reference_column) in a registry entry of your own (--registry-path)")
    lines = []
    if resume is not None:
        lines.append("-r/--resume: finished shards are always reused from the cache, so the same command resumes"
                     + ("" if resume == "latest" else f"; {resume} is not read (to score a predictions file: --inf_file)"))
    if use_model_pool is not None:
        if use_model_pool not in MODEL_POOL_CHOICES:
            raise ValueError(f"--use_model_pool takes one of {', '.join(MODEL_POOL_CHOICES)}, not {use_model_pool!r}")
        lines.append("--use_model_pool: no model pool here; each worker loads the model once: --workers N runs N "
                     "shards at a time, --task-runner dask --workers N in N processes")
    if two_phase:
        lines.append("--two_phase: inference and scoring are separate stages here already, scoring after all shards")
    return lines


def save_target(save: str, samples_path: str) -> str:
    """Where ``--save`` puts the per-sample rows: a ``.jsonl`` path as given; a bare name, as the
    reference's ``res/<model>/<dataset>/<name>.jsonl``, beside this run's folder."""
    if save.endswith(".jsonl"):
        return save
    return f"{samples_path.rsplit('/', 2)[0]}/{save}.jsonl"


def write_save(save: str, summary: RunSummary) -> dict[str, str]:
    """Copy the run's rows to the ``--save`` file and its summary to ``<file>-overall.json``."""
    rows = save_target(save, summary.paths["samples"])
    overall = rows.removesuffix(".jsonl") + "-overall.json"
    storage.write_bytes(rows, storage.read_bytes(summary.paths["samples"]))
    storage.write_json(overall, summary.model_dump(mode="json"))
    return {"save": rows, "overall": overall}
