"""Where files live: local paths or any fsspec URL (``s3://bucket/prefix``), written atomically.

Local writes go to a temporary file in the same folder and are renamed into place; object
stores get the whole object in one PUT (never an append). Either way a crash never leaves a
half-written file that a later run would read.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, TypeVar

import fsspec
import tenacity

log = logging.getLogger(__name__)
T = TypeVar("T")


#: How long a store that stopped answering (connection refused, timeouts, 5xx) is retried before the
#: operation fails: an outage shorter than this costs a pause, not the shard.
STORE_RETRY_S = float(os.environ.get("AUDIO_EVALS_STORE_RETRY_S", "90"))


def _transient(error: BaseException) -> bool:
    """A store error that may pass: no connection, a timeout, a 5xx; never a missing file or a refusal."""
    if isinstance(error, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError | StoreFull):
        return False
    try:
        from botocore.exceptions import BotoCoreError
    except ImportError:  # no S3 support installed: only OSError-style failures
        BotoCoreError = OSError  # noqa: N806
    return isinstance(error, OSError | ConnectionError | TimeoutError | BotoCoreError)


def _remote(operation: Callable[[], T], url: str) -> T:
    """``operation()`` on the store of ``url``, retried with backoff for ``STORE_RETRY_S`` while it fails transiently."""
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_transient), stop=tenacity.stop_after_delay(STORE_RETRY_S),
        wait=tenacity.wait_exponential(multiplier=0.5, max=10), reraise=True,
        before_sleep=lambda state: log.warning("store did not answer for %s (%s); retrying", url,
                                               type(state.outcome.exception()).__name__),
    )
    return retrying(operation)


def is_remote(url: str) -> bool:
    return "://" in url and not url.startswith("file://")


def absolute(url: str) -> str:
    """A local path made absolute (so a record of it means the same from any directory); URLs as given."""
    return url if is_remote(url) else os.path.abspath(url)


def join(base: str, *parts: str) -> str:
    """Join path parts with '/' for URLs and os.path for local paths."""
    if is_remote(base):
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return os.path.join(base, *parts)


def parent(url: str) -> str:
    """The folder holding ``url`` (a local path or a URL)."""
    if is_remote(url):
        return url.rstrip("/").rsplit("/", 1)[0]
    return os.path.dirname(url)


def glob(url: str, pattern: str) -> list[str]:
    """Sorted paths under ``url`` matching ``pattern`` (``*/summary.json``), spelled as ``url`` is (a URL
    or a local path); the listing is not cached, so a file written a moment ago is found."""
    fs, root = filesystem(url)
    fs.invalidate_cache(root)
    found = fs.glob(f"{root.rstrip('/')}/{pattern}")
    return sorted(fs.unstrip_protocol(p) if is_remote(url) else p for p in found)


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = fsspec.core.url_to_fs(url)
    return fs, path


def exists(url: str) -> bool:
    if not is_remote(url):
        return os.path.exists(url)
    fs, path = filesystem(url)
    return _remote(lambda: fs.exists(path), url)


def read_bytes(url: str) -> bytes:
    if not is_remote(url):
        with open(url, "rb") as f:
            return f.read()
    fs, path = filesystem(url)
    return _remote(lambda: fs.cat_file(path), url)


def _umask() -> int:
    """The process umask, read without changing it where Linux tells it (``os.umask`` sets it, racing
    other threads creating files); elsewhere set and restored at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_writer(url: str) -> Iterator[BinaryIO]:
    """A binary file that appears at ``url`` whole when the block ends, or not at all.

    Rows are streamed to a temporary file (so memory stays flat however large the file), then
    renamed into place locally or uploaded as one object.
    """
    remote = is_remote(url)
    folder = tempfile.gettempdir() if remote else os.path.dirname(os.path.abspath(url))
    os.makedirs(folder, exist_ok=True)
    # The writer's pid in the name: a later run can tell a crashed writer's leftover from a live one's.
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".tmp-{os.getpid()}-", suffix=os.path.basename(url))
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if remote:
            fs, path = filesystem(url)
            _remote(lambda: fs.put_file(tmp, path), url)
        else:
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600: a result file gets what the umask gives
            os.replace(tmp, url)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EFBIG):
            raise StoreFull(e.errno, f"{e.strerror} writing {url}") from None
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class StoreFull(OSError):
    """A write refused by the place it goes (full disk, quota, read-only): named with its path, never retried."""


def write_bytes(url: str, data: bytes) -> None:
    """Write ``data`` to ``url`` atomically."""
    if is_remote(url):
        fs, path = filesystem(url)
        _remote(lambda: fs.pipe_file(path, data), url)
        return
    with atomic_writer(url) as f:
        f.write(data)


def write_text(url: str, text: str) -> None:
    write_bytes(url, text.encode("utf-8"))


def write_json(url: str, obj: Any) -> None:
    write_text(url, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def read_json(url: str) -> Any:
    return json.loads(read_bytes(url).decode("utf-8"))


def jsonl_line(row: dict[str, Any]) -> bytes:
    """One row as a JSON line, exactly as every JSONL file of this package is written."""
    return (json.dumps(row, ensure_ascii=False, default=str) + "\n").encode("utf-8")


def write_jsonl(url: str, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows (any iterable, consumed once) as JSON lines atomically; returns the row count."""
    count = 0
    with atomic_writer(url) as f:
        for row in rows:
            f.write(jsonl_line(row))
            count += 1
    return count


def open_binary(url: str) -> BinaryIO:
    """A file object to read ``url`` in chunks (local or remote)."""
    if not is_remote(url):
        return open(url, "rb")
    fs, path = filesystem(url)
    return fs.open(path, "rb")


def iter_lines(url: str) -> Iterator[bytes]:
    """The lines of a file, read one at a time (never the whole file in memory)."""
    with open_binary(url) as f:
        yield from f


def sha256(url: str) -> str:
    """SHA-256 of a file's content, read in chunks."""
    digest = hashlib.sha256()
    with open_binary(url) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_jsonl(url: str) -> Iterator[dict[str, Any]]:
    """Rows of a JSON-lines file written by this package, read one line at a time.

    A line that is not JSON raises ``ValueError`` naming the file and the line.
    """
    for number, line in enumerate(iter_lines(url), start=1):
        if line.strip():
            try:
                yield json.loads(line)
            except ValueError as e:
                raise ValueError(f"{url} line {number} is not valid JSON ({e})") from None


def stable_hash(obj: Any) -> str:
    """SHA-256 of the canonical JSON of ``obj``: the basis of every cache key."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
