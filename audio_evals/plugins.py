"""Resolve registry names to modules *inside this project* only.

A registry entry says ``backend: faster_whisper`` or ``metric: wer``; the name must be a module
of the given package defining its plugin attribute (``audio_evals.models.faster_whisper`` exposes
``BACKEND``, a metric module ``build``). YAML can therefore never make the
program import or run arbitrary code, and a newcomer adds a backend or metric with one module.

Whoever starts the process (never a registry file) may add modules from elsewhere through an
environment variable: the test suite registers its test-only backends this way
(``AUDIO_EVALS_EXTRA_BACKENDS=tests.backends.scripted``), so they never ship in the package.
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib
import importlib.util
import os
import pkgutil
import re
from types import ModuleType

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: Per plugin package, the top-level name a module must define to be a plugin (a backend module
#: exposes ``BACKEND``, a metric module ``build``); the package's other modules are infrastructure.
PLUGIN_ATTRIBUTE = {"audio_evals.models": "BACKEND", "audio_evals.metrics": "build"}
#: Per plugin package, the variable listing extra plugin modules (comma-separated dotted paths;
#: the plugin's name is the module's last part). Only adds names: a built-in one always wins.
EXTRA_MODULES_ENV = {"audio_evals.models": "AUDIO_EVALS_EXTRA_BACKENDS"}


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


def top_level_names(path: str) -> set[str]:
    """The names a Python file defines at its top level, read without importing it."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


@functools.cache
def _builtin(package: str) -> tuple[str, ...]:
    """The plugin modules shipped in ``package`` itself: those defining its ``PLUGIN_ATTRIBUTE``."""
    pkg = importlib.import_module(package)
    attribute = PLUGIN_ATTRIBUTE[package]
    found = []
    for m in pkgutil.iter_modules(pkg.__path__):
        if m.ispkg or m.name.startswith("_"):
            continue
        origin = importlib.util.find_spec(f"{package}.{m.name}").origin
        if origin and attribute in top_level_names(origin):
            found.append(m.name)
    return tuple(found)


def _extra(package: str) -> dict[str, str]:
    """Extra plugins named by the process environment: plugin name -> dotted module path."""
    value = os.environ.get(EXTRA_MODULES_ENV.get(package, ""), "")
    modules = [m.strip() for m in value.split(",") if m.strip()]
    return {m.rsplit(".", 1)[-1]: m for m in modules}


def available(package: str) -> list[str]:
    """The plugin module names of ``package``, with the extras of its environment variable."""
    return sorted(set(_builtin(package)) | set(_extra(package)))


def check_name(package: str, name: str, kind: str) -> None:
    """Raise ``UnknownName`` unless ``name`` is a plugin module of ``package`` (no import)."""
    known = available(package)
    if not _NAME.match(name or "") or name not in known:
        raise UnknownName(f"unknown {kind} {name!r}{suggest(str(name), known)}")


def load_plugin(package: str, name: str, kind: str) -> ModuleType:
    """Import ``package.name`` (or the extra module of that name) after checking the name."""
    check_name(package, name, kind)
    if name in _builtin(package):
        return importlib.import_module(f"{package}.{name}")
    return importlib.import_module(_extra(package)[name])
