"""Secrets never written: the one place that decides what is a secret and masks it.

Three kinds are masked with ``***``:

* values of parameters whose name looks secret: a name part ending in ``key``, ``token``,
  ``secret``, ``password`` or ``passwd``, case-insensitive (``api_key``, ``apiKey``, ``HF_TOKEN``,
  ``db_password``; not ``max_tokens`` or ``keywords``; ``*_env`` names a variable, not a value);
* credentials inside URLs (``https://user:pass@host`` becomes ``https://***@host``);
* any secret value this process was told about (``remember``), wherever it appears in a text.

Every boundary where a run writes or logs uses it: result files, console, Prefect parameters,
artifacts and log records (``install_log_redaction``).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

MARK = "***"
_SECRET_PART = re.compile(r"(key|token|secret|password|passwd)$")
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@'\"]+@")
_known: set[str] = set()
_known_lock = threading.Lock()


def secret_name(name: str) -> bool:
    """Whether a parameter called ``name`` holds a secret value: its last name part ends in key,
    token, secret, password or passwd (``api_key``, ``HF_TOKEN``, ``apiKey``), so ``max_tokens``,
    ``stop_token_ids`` and ``api_key_env`` (the variable's name) stay readable."""
    parts = [p for p in re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name)).lower()) if p]
    return bool(parts) and bool(_SECRET_PART.search(parts[-1]))


def remember(value: str) -> None:
    """Mask ``value`` in every text this process redacts from now on (short values are ignored)."""
    if isinstance(value, str) and len(value) >= 4:
        with _known_lock:
            _known.add(value)


def redact_text(text: str) -> str:
    """``text`` with URL credentials and remembered secrets masked."""
    text = _URL_CREDENTIALS.sub(rf"\1{MARK}@", text)
    for value in sorted(_known, key=len, reverse=True):
        text = text.replace(value, MARK)
    return text


def redact(value: Any) -> Any:
    """A copy of parameters (JSON-like) with secret-named entries, URL credentials and known secrets masked."""
    if isinstance(value, dict):
        return {k: MARK if secret_name(k) and v not in (None, "") else redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_strings(value: Any) -> Any:
    """Like ``redact`` but keeping every entry: for records (rows, summaries) whose field names are not parameters."""
    if isinstance(value, dict):
        return {k: redact_strings(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_strings(v) for v in value]
    return redact_text(value) if isinstance(value, str) else value


def remember_secret_params(params: dict[str, Any]) -> None:
    """Remember the values of the secret-named entries of ``params`` (e.g. ``--param api_key=...``)."""
    for name, value in params.items():
        if secret_name(name):
            remember(str(value))


class _RedactingRecordFactory:
    """Log records whose message and traceback are redacted when made, whichever handler emits them."""

    def __init__(self, make: Any):
        self.make = make

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.make(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: leave it to logging's own error report
            return record
        record.msg, record.args = redact_text(message), ()
        if record.exc_info:  # rendered now, so no handler renders the raw exception later
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return record


def install_log_redaction() -> None:
    """Redact every log record of this process from now on (idempotent)."""
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _RedactingRecordFactory):
        logging.setLogRecordFactory(_RedactingRecordFactory(factory))
