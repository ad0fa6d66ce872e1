"""Resolve registry names to modules *inside this project* only.

A registry entry says ``backend: faster_whisper`` or ``metric: wer``; the name must be a module
of the given package (``audio_evals.models.faster_whisper``). YAML can therefore never make the
program import or run arbitrary code, and a newcomer adds a backend or metric with one module.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import re
from types import ModuleType

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: Modules of a plugin package that are infrastructure, not plugins.
_NOT_PLUGINS = {"base", "bootstrap", "normalize", "http_client", "reasoning"}


class UnknownName(KeyError):
    """A registry name that does not exist; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def suggest(name: str, known: list[str]) -> str:
    """`` (did you mean: a, b?)`` for near misses, else the full list of known names."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if close:
        return f" (did you mean: {', '.join(close)}?)"
    return f" (known: {', '.join(sorted(known))})"


def available(package: str) -> list[str]:
    """The plugin module names of ``package``."""
    pkg = importlib.import_module(package)
    return sorted(
        m.name for m in pkgutil.iter_modules(pkg.__path__)
        if not m.name.startswith("_") and m.name not in _NOT_PLUGINS
    )


def check_name(package: str, name: str, kind: str) -> None:
    """Raise ``UnknownName`` unless ``name`` is a plugin module of ``package`` (no import)."""
    known = available(package)
    if not _NAME.match(name or "") or name not in known:
        raise UnknownName(f"unknown {kind} {name!r}{suggest(str(name), known)}")


def load_plugin(package: str, name: str, kind: str) -> ModuleType:
    """Import ``package.name`` after checking that ``name`` is one of its plugin modules."""
    check_name(package, name, kind)
    return importlib.import_module(f"{package}.{name}")
