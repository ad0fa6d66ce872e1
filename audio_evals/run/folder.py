"""The run folder: per-sample rows, ``summary.json`` and the seed-format ``report.md``.

``results/<model>/<dataset>/<run-id>/`` holds everything needed to reproduce and audit a
number: dataset and model revisions, prompt, generation parameters, code version, timings.
Secrets never reach it: only names of environment variables are recorded, never values, and
what else is written goes through ``audio_evals.redaction``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import posixpath
import re
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from audio_evals import storage
from audio_evals.paths import folder_name
from audio_evals.provenance import code_version
from audio_evals.records import DatasetRef, PreparedRef, SampleRow
from audio_evals.redaction import redact_strings
from audio_evals.run.plan import EvalPlan
from audio_evals.run.spec import check_run_id
from audio_evals.run.summary import (
    SAMPLES_FILE,
    SUMMARY_FILE,
    DatasetInfo,
    FailedShard,
    ModelInfo,
    PromptInfo,
    RunSummary,
    Scored,
    ShardStats,
    speed,
)

log = logging.getLogger(__name__)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def new_run_id() -> str:
    """Sortable and unique: UTC time to the microsecond plus a random part, so runs started in
    the same instant (on any machine) never share a folder."""
    stamp = _utcnow().strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{stamp}-{secrets.token_hex(4)}"






def _inside(root: str, folder: str) -> bool:
    """Whether ``folder`` lies strictly inside ``root`` once '.' and '..' are resolved."""
    if storage.is_remote(root):
        return posixpath.normpath(folder).startswith(posixpath.normpath(root) + "/")
    root, folder = os.path.abspath(root), os.path.abspath(folder)
    return folder != root and os.path.commonpath([root, folder]) == root


def run_dir(output: str, plan: EvalPlan, run_id: str) -> str:
    """The folder of a new run under the results root ``output``; refuses a used or unsafe run id."""
    folder = storage.join(output, folder_name(plan.model.name), folder_name(plan.dataset.name), check_run_id(run_id))
    if not _inside(output, folder):
        raise ValueError(f"run folder {folder} would leave the results root {output}")
    if storage.exists(folder):
        raise ValueError(f"run folder {folder} already exists: a run id names one run only")
    return folder


def create_run_dir(folder: str) -> None:
    """Create the run folder exclusively: a second run with the same id fails instead of mixing in.

    Object stores have no folders: there the random part of the run id keeps runs apart.
    """
    if storage.is_remote(folder):
        if storage.exists(folder):
            raise ValueError(f"run folder {folder} already exists: a run id names one run only")
        return
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    try:
        os.mkdir(folder)
    except FileExistsError:
        raise ValueError(f"run folder {folder} already exists: a run id names one run only") from None


@contextmanager
def reserved_run_dir(folder: str) -> Iterator[None]:
    """The run folder, created now (``create_run_dir``) so a second run with the same id is refused
    before any work, and removed again when the run fails before writing anything into it."""
    create_run_dir(folder)
    try:
        yield
    except BaseException:
        if not storage.is_remote(folder):
            with suppress(OSError):  # not empty: what was written stays
                os.rmdir(folder)
        raise


def _writer_alive(name: str) -> bool:
    """Whether the process that is writing the temporary file ``name`` (``.tmp-<pid>-...``) still runs."""
    match = re.match(r"\.tmp-(\d+)-", name)
    if not match:
        return False
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # alive, someone else's
    return True


def report_debris(folder: str) -> None:
    """Before a run writes ``folder``: delete the temporary files crashed runs left beside it (their
    writer is gone) and say, in one line, which earlier run folders have no ``summary.json``."""
    parent = os.path.dirname(folder)
    if storage.is_remote(folder) or not os.path.isdir(parent):
        return
    removed, unfinished = 0, []
    for run in sorted(os.scandir(parent), key=lambda e: e.name):
        if not run.is_dir(follow_symlinks=False):
            continue
        for entry in os.scandir(run.path):
            if entry.name.startswith(".tmp-") and entry.is_file(follow_symlinks=False) and not _writer_alive(entry.name):
                with suppress(OSError):
                    os.unlink(entry.path)
                    removed += 1
        if not os.path.exists(os.path.join(run.path, SUMMARY_FILE)):
            unfinished.append(run.name)
    if removed:
        log.warning("removed %d temporary file(s) that crashed runs left under %s", removed, parent)
    if unfinished:
        log.warning("%d run folder(s) under %s have no %s (crashed, or still running): %s", len(unfinished), parent,
                    SUMMARY_FILE, ", ".join(unfinished[:5]) + (" ..." if len(unfinished) > 5 else ""))


def run_identity(plan: EvalPlan, dataset: DatasetRef, prepared: PreparedRef, model_fingerprint: dict[str, Any],
                 **options: Any) -> dict[str, Any]:
    """What a run evaluated, as a retry compares it: data, shards, model, prompt and the options
    that shape the numbers. Any difference means a retry would not finish the same run."""
    return {
        "dataset": {"name": plan.dataset.name, "revision": dataset.revision, "fingerprint": dataset.fingerprint,
                    "samples": dataset.n_samples, "bad_rows": dataset.n_failed},
        "prepared": {"key": prepared.key, "shards": len(prepared.shards), "samples": prepared.n_prepared,
                     "failed": prepared.n_failed, "skipped": prepared.n_skipped},
        "model": {"name": plan.model.name, "fingerprint": storage.stable_hash(model_fingerprint)},
        "prompt": {"name": plan.prompt.name, "messages": storage.stable_hash(plan.prompt.model_dump(mode="json"))},
        "task": plan.task.name,
        "generation": plan.generation,
        "options": options,  # limit, shard size, max duration, strict
    }


def build_summary(
    *,
    run_id: str,
    identity: dict[str, Any],
    plan: EvalPlan,
    dataset: DatasetRef,
    prepared: PreparedRef,
    model_fingerprint: dict[str, Any],
    scored: Scored,
    failed_shards: list[FailedShard],
    shard_stats: ShardStats,
    timings: dict[str, float],
    options: dict[str, Any],
    command: str,
    eval_cli: str,
    peak_rss_mb: dict[str, float] | None = None,
    parent_run_id: str | None = None,
    model_load_s: float | None = None,
) -> RunSummary:
    """The record of one run; a retry names its parent run."""
    summary = RunSummary(
        run_id=run_id,
        parent_run_id=parent_run_id,
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        status="completed" if not failed_shards else "completed_with_failures",
        strict=options.get("strict", False),
        dataset=DatasetInfo(
            name=plan.dataset.name, task=plan.task.name, task_label=plan.task.label, family=plan.task.family,
            source=plan.dataset.source.model_dump(mode="json"), revision=dataset.revision,
            fingerprint=dataset.fingerprint,
        ),
        model=ModelInfo(
            name=plan.model.name, backend=plan.model.backend, args=plan.model.args,
            revision=plan.model.args.get("revision") or model_fingerprint.get("revision")
            or model_fingerprint.get("weights_sha256"),
            fingerprint=model_fingerprint, generation=plan.generation, sent=plan.sent_parameters(),
            transcribers=plan.transcriber_record(),
        ),
        prompt=PromptInfo(name=plan.prompt.name, messages=plan.prompt.model_dump(mode="json")["messages"]),
        metrics=scored.metrics,
        counts=scored.counts,
        failed_shards=failed_shards,
        shards=shard_stats,
        timings_s=timings,
        peak_rss_mb=peak_rss_mb or {},
        audio_seconds=round(prepared.audio_seconds, 3),
        model_load_s=model_load_s,
        options=options,
        identity=identity,
        code=code_version(),
        command=command,
        eval_cli=eval_cli,
    )
    return summary.model_copy(update={"rtfx": speed(summary.shards.audio_seconds, summary.infer_seconds)})


def generated_audio_name(sample_id: str, source: str) -> str:
    """The run-folder file of a sample's generated clip: its id made safe (and short), then a hash of
    the exact id, so ids that read alike once made safe (``a/b``, ``a_b``, ``a b``, all-non-ASCII
    ones) never share a file."""
    extension = os.path.splitext(source)[1]
    extension = extension if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", extension) else ".wav"
    digest = hashlib.sha256(sample_id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"generated/{folder_name(sample_id)[:80]}-{digest}{extension}"


def _keep_generated_audio(folder: str, row: SampleRow) -> SampleRow:
    """Copy a speech-out model's generated clip into the run folder; the row points at the copy."""
    source = row.generated_audio
    if source and storage.exists(source):
        name = generated_audio_name(row.id, source)
        storage.write_bytes(storage.join(folder, name), storage.read_bytes(source))
        row.generated_audio = name
    return row


def write_rows(folder: str, rows: Iterable[SampleRow]) -> int:
    """Stream the per-sample rows into the run folder (generated audio copied alongside, secrets masked)."""
    return storage.write_jsonl(storage.join(folder, SAMPLES_FILE),
                               (redact_strings(_keep_generated_audio(folder, r).to_json()) for r in rows))


def write_run(folder: str, summary: RunSummary, report_md: str, view_html: str) -> dict[str, str]:
    """Write the report, the sample viewer and (last, so its presence means the run is whole) the summary.

    The rows were written by ``write_rows`` during scoring.
    """
    paths = {name: storage.join(folder, f) for name, f in summary.files.model_dump().items()}
    storage.write_text(paths["report"], report_md)
    storage.write_text(paths["view"], view_html)
    storage.write_json(paths["summary"], summary.model_dump(mode="json"))
    return paths
