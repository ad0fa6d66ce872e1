"""Model backends: one module per backend, each exposing ``BACKEND``.

Backends are built once per worker process and reused across shards (``get_backend``); their
construction is cheap and weights load on first use, so a fully cached run loads nothing.
"""

from __future__ import annotations

import atexit
import dataclasses
import threading
from typing import Any

from audio_evals.models.base import Backend, BackendUnavailable
from audio_evals.plugins import load_plugin
from audio_evals.registry.entries import ModelEntry
from audio_evals.storage import stable_hash

_POOL: dict[str, Backend] = {}
_LOCK = threading.Lock()


def _fits(default: Any, value: Any) -> bool:
    """Whether an override may replace a numeric or boolean registry value (an int stands for a float)."""
    if default is None or value is None or not isinstance(default, (bool, int, float)):
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    return isinstance(value, int) or (isinstance(value, float) and isinstance(default, float))


def generation_params(entry: ModelEntry, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The registry's generation parameters with command-line overrides applied.

    An override of a numeric or boolean parameter must keep its type (``beam_size=abc`` is refused
    here, before any work, rather than failing every shard).
    """
    for key, value in (overrides or {}).items():
        default = entry.generation.get(key)
        if not _fits(default, value):
            raise ValueError(f"generation parameter {key}={value!r}: model {entry.name!r} takes "
                             f"{type(default).__name__} values for it (registry: {key}={default!r})")
    return {**entry.generation, **(overrides or {})}


class UnusedParameter(ValueError):
    """A generation parameter the model's backend never hands to the model."""


def check_generation(entry: ModelEntry, generation: dict[str, Any]) -> None:
    """Refuse generation keys the backend does not use, naming the ones it does.

    Without this, ``-P device=cuda`` would be recorded as applied and change the cache key while
    the model never saw it.
    """
    backend = get_backend(entry, generation)
    accepted = backend.generation_keys()
    unused = sorted(set(generation) - accepted) if accepted is not None else []
    if not unused:
        return
    message = (f"model {entry.name!r} does not use generation parameter(s) {', '.join(unused)}; "
               f"backend {entry.backend} uses: {', '.join(sorted(accepted)) or 'none'}")
    arguments = sorted(set(unused) & {f.name for f in dataclasses.fields(backend)})
    if arguments:
        message += (f" ({', '.join(arguments)}: a backend argument, set with --model-args {arguments[0]}=... "
                    "or under args: in a registry entry)")
    raise UnusedParameter(message)


def backend_arguments(entry: ModelEntry) -> dict[str, dataclasses.Field]:
    """The arguments the model's backend is built with (its dataclass fields), by name; not
    ``generation`` (``--param``) nor ``thread_safe``, which is what the backend's code allows."""
    backend = load_plugin("audio_evals.models", entry.backend, "backend").BACKEND
    return {f.name: f for f in dataclasses.fields(backend) if f.init and f.name not in ("generation", "thread_safe")}


def with_backend_args(entry: ModelEntry, args: dict[str, Any]) -> ModelEntry:
    """``entry`` with backend arguments given on the command line (``--model-args``, ``--device``,
    ``--batch-size``) over the registry's.

    An argument the backend does not take, or a value of the wrong type for a numeric or boolean
    one, is refused here in one line naming the accepted ones; later it would be a TypeError in
    every shard, or a value the backend silently misreads.
    """
    if not args:
        return entry
    accepted = backend_arguments(entry)
    unknown = sorted(set(args) - set(accepted))
    if unknown:
        raise ValueError(f"model {entry.name!r} (backend {entry.backend}) takes no argument {', '.join(unknown)}; "
                         f"it takes: {', '.join(sorted(accepted))}")
    for key, value in args.items():
        default = entry.args.get(key, accepted[key].default)
        if not _fits(default, value):
            raise ValueError(f"backend argument {key}={value!r}: backend {entry.backend} takes "
                             f"{type(default).__name__} values for it (default: {key}={default!r})")
    return entry.model_copy(update={"args": {**entry.args, **args}})


def get_backend(entry: ModelEntry, generation: dict[str, Any]) -> Backend:
    """The process-wide backend instance for this model and generation parameters."""
    key = stable_hash([entry.backend, entry.args, generation])
    with _LOCK:
        if key not in _POOL:
            module = load_plugin("audio_evals.models", entry.backend, "backend")
            try:
                _POOL[key] = module.BACKEND(generation=dict(generation), **entry.args)
            except TypeError as e:
                raise BackendUnavailable(f"model {entry.name!r}: bad backend arguments: {e}") from None
        return _POOL[key]


def close_all() -> None:
    """Close every pooled backend (weights, GPU memory, subprocesses)."""
    with _LOCK:
        backends = list(_POOL.values())
        _POOL.clear()
    for backend in backends:
        backend.close()


atexit.register(close_all)
