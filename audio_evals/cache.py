"""Cache identity and verified reads: a cache entry is used only while it is what was recorded.

One rule for every entry: what a file held is recorded when it is written and checked when it is
read back; a file that does not match is said once in the log (one line naming it) and
recomputed, never trusted.

- Materialised datasets and prepared shards are JSONL files whose size, SHA-256 and row count
  are recorded in the index listing them (``dataset.json``, ``index.json``).
- Decoded audio files carry a sidecar record (``<file>.record.json``).
- Shard results are JSON documents holding their cache key and the SHA-256 of their payload.
  They are parsed, never unpickled: a crafted file in a cache or a shared store is data, not code.
- A dataset's identity covers the bytes of every audio file it reads (``ContentIndex``), not
  only its manifest: audio replaced behind an unchanged manifest is a new dataset.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import stat
from collections.abc import Iterable
from typing import Any

from typing_extensions import Self

from audio_evals import storage
from audio_evals.records import FileRecord

log = logging.getLogger(__name__)

RECORD_SUFFIX = ".record.json"


def stale(url: str, why: str) -> None:
    """Say, once and in one line, that a cache file is not used and why."""
    log.warning("cache file %s %s; recomputing it", url, why)


def _size_and_sha256(url: str) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with storage.open_binary(url) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def mismatch(url: str, record: FileRecord) -> str | None:
    """Why ``url`` no longer holds what ``record`` describes, or None when it does."""
    try:
        size, digest = _size_and_sha256(url)
    except FileNotFoundError:
        return "is missing"
    if size != record.size:
        return f"has {size} bytes where {record.size} were written (cut short or overwritten)"
    if digest != record.sha256:
        return f"has changed since it was written (sha256 {digest[:12]}, recorded {record.sha256[:12]})"
    return None


def verified(url: str, record: FileRecord) -> bool:
    """Whether ``url`` still matches ``record``; a mismatch is said once."""
    why = mismatch(url, record)
    if why:
        stale(url, why)
    return why is None


def write_jsonl(url: str, rows: Iterable[dict[str, Any]]) -> FileRecord:
    """Write rows as JSON lines atomically and return the record to check them against later."""
    digest, size, count = hashlib.sha256(), 0, 0
    with storage.atomic_writer(url) as f:
        for row in rows:
            line = storage.jsonl_line(row)
            f.write(line)
            digest.update(line)
            size += len(line)
            count += 1
    return FileRecord(size=size, sha256=digest.hexdigest(), rows=count)


def read_index(url: str) -> dict[str, Any] | None:
    """A cache index (JSON object) or None when absent; an unreadable one is said once."""
    try:
        value = storage.read_json(url)
    except FileNotFoundError:
        return None
    except ValueError as e:
        stale(url, f"is not valid JSON ({e})")
        return None
    if not isinstance(value, dict):
        stale(url, "is not a JSON object")
        return None
    return value


# --- blobs with a sidecar record (decoded audio) ---------------------------------------------------

def write_blob(url: str, data: bytes, **meta: Any) -> dict[str, Any]:
    """Write ``data`` and then its record (size, SHA-256, ``meta``); returns the record."""
    storage.write_bytes(url, data)
    record = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), **meta}
    storage.write_json(url + RECORD_SUFFIX, record)
    return record


def blob_record(url: str) -> dict[str, Any] | None:
    """The record of a blob that still matches it; None when never written (silently) or stale (said)."""
    record = read_index(url + RECORD_SUFFIX)
    if record is None:
        return None
    try:
        expected = FileRecord.from_dict(record)
    except (KeyError, TypeError, ValueError):
        stale(url + RECORD_SUFFIX, "is not a record of this package")
        return None
    return record if verified(url, expected) else None


def write_content_addressed(url: str, data: bytes, sha256: str) -> None:
    """Write ``data`` (whose hash names ``url``) unless a local file there already holds exactly it."""
    if storage.is_remote(url) or not os.path.isfile(url) or storage.sha256(url) != sha256:
        storage.write_bytes(url, data)


# --- JSON entries (shard results) ------------------------------------------------------------------

def entry_path(cache_dir: str, stage: str, key: str) -> str:
    return storage.join(cache_dir, "entries", stage, key[:2], f"{key}.json")


def write_entry(url: str, key: str, payload: Any) -> None:
    """Store a JSON payload under ``key`` with the hash it is checked against when read."""
    storage.write_json(url, {"key": key, "sha256": storage.stable_hash(payload), "payload": payload})


def read_entry(url: str, key: str) -> Any | None:
    """The payload stored under ``key`` at ``url``, parsed as JSON and checked; None when absent or stale."""
    try:
        raw = storage.read_bytes(url)
    except FileNotFoundError:
        return None
    try:
        entry = json.loads(raw.decode("utf-8"))
    except ValueError as e:
        stale(url, f"is not a JSON cache entry ({str(e)[:80]})")
        return None
    if not isinstance(entry, dict) or entry.keys() != {"key", "sha256", "payload"}:
        stale(url, "is not a cache entry of this package")
        return None
    if entry["key"] != key or entry["sha256"] != storage.stable_hash(entry["payload"]):
        stale(url, "does not match its recorded key and hash")
        return None
    return entry["payload"]


# --- content identity of the files a dataset reads -------------------------------------------------

class ContentIndex:
    """Content identities of files, each hashed once per version of the file.

    A local file's identity is ``sha256:<hex>``, recomputed only when its device, inode, size,
    mtime or ctime changed (ctime cannot be set back, so a replaced file is always seen). An
    object in a store is identified by its ETag (or size and time), from one listing per folder.
    Special files (FIFOs, devices) are never opened. ``fresh`` rehashes every file.
    """

    def __init__(self, path: str, fresh: bool = False) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._path = path
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError as e:  # garbage, cut short or from elsewhere: it only saves hashing
            self._db = self._rebuild(e)
        self._fresh = fresh
        self._listings: dict[str, dict[str, dict[str, Any]]] = {}

    def _connect(self) -> sqlite3.Connection:
        """The index database, checked whole (``quick_check``); ``sqlite3.DatabaseError`` if damaged."""
        # Autocommit: concurrent runs never wait on each other's long transaction.
        db = sqlite3.connect(self._path, timeout=60, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            (verdict,) = db.execute("PRAGMA quick_check").fetchone()
            if verdict != "ok":
                raise sqlite3.DatabaseError(verdict)
            db.execute("CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, version TEXT, sha256 TEXT)")
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _rebuild(self, error: sqlite3.DatabaseError) -> sqlite3.Connection:
        """Say once that the index is damaged, delete it and start an empty one (files are hashed again)."""
        log.warning("cache file %s is damaged (%s); rebuilding it (every file is hashed again)", self._path, error)
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(self._path + suffix)
            except FileNotFoundError:
                pass
        return self._connect()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._db.close()

    def identity(self, url: str) -> str | None:
        """The file's content identity; None when it does not exist or cannot be read."""
        if storage.is_remote(url):
            return self._object_identity(url)
        path = os.path.abspath(url)
        try:
            st = os.stat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return f"special:{stat.filemode(st.st_mode)}"
        version = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"
        if not self._fresh:
            row = self._query("SELECT sha256 FROM files WHERE path = ? AND version = ?", (path, version))
            if row:
                return f"sha256:{row[0]}"
        try:
            digest = storage.sha256(path)
        except OSError:
            return None
        self._query("INSERT OR REPLACE INTO files VALUES (?, ?, ?)", (path, version, digest))
        return f"sha256:{digest}"

    def _query(self, sql: str, args: tuple[str, ...]) -> tuple[Any, ...] | None:
        """One statement's first row; damage found only now (a page ``quick_check`` passed) rebuilds the index."""
        try:
            return self._db.execute(sql, args).fetchone()
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
                raise
            self._db.close()
            self._db = self._rebuild(e)
            return self._db.execute(sql, args).fetchone()

    def _object_identity(self, url: str) -> str | None:
        fs, path = storage.filesystem(url)
        folder = path.rsplit("/", 1)[0]
        if folder not in self._listings:
            fs.invalidate_cache(folder)
            try:
                self._listings[folder] = {i["name"].rstrip("/"): i for i in fs.ls(folder, detail=True)}
            except FileNotFoundError:
                self._listings[folder] = {}
        info = self._listings[folder].get(path)
        if info is None:
            return None
        tag = info.get("ETag") or info.get("etag")
        if tag:
            return f"etag:{str(tag).strip(chr(34))}"
        return f"stat:{info.get('size')}:{info.get('LastModified') or info.get('mtime')}"


def folder_fingerprint(folder: str, index_path: str) -> str:
    """SHA-256 over the relative path and content identity of every file under ``folder``.

    The one identity of a local folder of weights: each file's content is hashed once per version
    of the file (``ContentIndex`` at ``index_path``), so a file edited in place, even at the same
    size, is seen. Hidden files and folders (``.cache/`` and ``.gitattributes`` of
    ``hf download --local-dir``) are download bookkeeping, not weights, and are left out.
    """
    entries = []
    with ContentIndex(index_path) as index:
        for root, dirs, files in os.walk(folder, followlinks=True):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(n for n in files if not n.startswith(".")):
                path = os.path.join(root, name)
                entries.append((os.path.relpath(path, folder), index.identity(path)))
    return storage.stable_hash(entries)
