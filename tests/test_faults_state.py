"""Corrupt internal state: named once and rebuilt (caches, indexes), or one line saying what to do (Prefect's DB)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from audio_evals.paths import file_index_path
from tests.conftest import ROOT, calls_made, scripted_run_command

ENGLISH = 26  # samples of speech-sample-en


def _params(tmp_path: Path, registry: dict, **extra) -> dict:
    return dict(dataset="speech-sample-en", model="scripted", registry_paths=[registry["path"]],
                cache_dir=str(tmp_path / "cache"), output=str(tmp_path / "results"), shard_size=8, **extra)


@contextmanager
def cache_warnings() -> Iterator[list[str]]:
    """The messages ``audio_evals.cache`` logs inside the block (Prefect's logging config stops propagation)."""
    seen: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("audio_evals.cache")
    logger.addHandler(handler)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)


def _damage(path: Path, how: str) -> None:
    """Replace the file with garbage, or cut it to its first half (a crash or a full disk mid-write)."""
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    if how == "garbage":
        path.write_bytes(os.urandom(4096))
    else:
        os.truncate(path, path.stat().st_size // 2)


@pytest.mark.parametrize("fresh", [False, True], ids=["cached", "fresh"])
@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_a_damaged_file_hash_index_is_named_once_and_rebuilt(prefect_api, tmp_path, scripted_registry,
                                                            how, fresh):
    from audio_evals import evaluate

    first = evaluate(**_params(tmp_path, scripted_registry))
    index = Path(file_index_path(str(tmp_path / "cache")))
    if how == "truncated":  # enough rows that half the file cuts pages the schema points at
        import sqlite3

        with sqlite3.connect(index) as db:
            db.executemany("INSERT INTO files VALUES (?, 'v', ?)", [(f"/x/{i:06d}" * 8, "0" * 64) for i in range(4000)])
            db.commit()
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    _damage(index, how)
    with cache_warnings() as warned:
        second = evaluate(**_params(tmp_path, scripted_registry, fresh=fresh))

    named = [m for m in warned if str(index) in m]
    assert len(named) == 1 and "damaged" in named[0] and "rebuilding" in named[0], named
    assert second.counts.samples == first.counts.samples == ENGLISH and second.counts.failed == 0
    assert [m.value for m in second.metrics] == [m.value for m in first.metrics]
    import sqlite3

    with sqlite3.connect(index) as db:  # rebuilt: a working index again, holding this run's audio files
        assert db.execute("SELECT count(*) FROM files").fetchone()[0] >= ENGLISH


def test_a_prepared_index_that_lost_a_shard_is_not_used(prefect_api, tmp_path, scripted_registry):
    from audio_evals import evaluate

    evaluate(**_params(tmp_path, scripted_registry))
    (index,) = (tmp_path / "cache" / "prepared").glob("*/index.json")
    record = json.loads(index.read_text())
    dropped = record["shards"].pop()  # an index edited by hand, every file it still lists intact
    record["n_prepared"] -= dropped["n"]
    index.write_text(json.dumps(record))
    with cache_warnings() as warned:
        second = evaluate(**_params(tmp_path, scripted_registry))

    assert second.counts.samples == ENGLISH and second.counts.scored == ENGLISH
    assert any(str(index) in m and "not the dataset's 26" in m for m in warned), warned


def test_a_dataset_record_with_edited_counts_is_not_used(prefect_api, tmp_path, scripted_registry):
    from audio_evals import evaluate

    evaluate(**_params(tmp_path, scripted_registry))
    (meta,) = (tmp_path / "cache" / "datasets").glob("*/dataset.json")
    record = json.loads(meta.read_text())
    meta.write_text(json.dumps({**record, "n_samples": record["n_samples"] - 4}))
    with cache_warnings() as warned:
        second = evaluate(**_params(tmp_path, scripted_registry))

    assert second.counts.samples == ENGLISH
    assert any(str(meta) in m and "counts 22 samples" in m for m in warned), warned


@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_a_damaged_prefect_database_is_one_line_saying_what_to_do(tmp_path, scripted_registry, how):
    home = tmp_path / "prefect-home"
    home.mkdir()
    database = home / "prefect.db"
    if how == "truncated":  # a real SQLite database with pages beyond the cut
        import sqlite3

        with sqlite3.connect(database) as db:
            db.execute("CREATE TABLE log (line TEXT)")
            db.executemany("INSERT INTO log VALUES (?)", [("x" * 200,) for _ in range(2000)])
    _damage(database, how)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}  # the ephemeral API server
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", TERM="dumb")
    start = time.monotonic()
    done = subprocess.run(scripted_run_command(scripted_registry["path"], tmp_path, "db"), cwd=ROOT, env=env,
                          check=False, capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - start

    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2 and seconds < 60, (seconds, lines[-20:])
    (line,) = lines
    assert line.startswith(f"error: Prefect's database {database} is damaged") and "delete it" in line, line
    assert not calls_made(scripted_registry["calls"])  # nothing was sent to the model
