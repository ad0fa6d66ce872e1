"""Load and cross-check registry YAML files.

Files come from ``--registry-path`` too, so parsing is bounded (file size, alias expansion) and a
hostile file is one ``RegistryError`` line; each file version is parsed once per process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from audio_evals.plugins import UnknownName, check_name, suggest
from audio_evals.redaction import redact
from audio_evals.registry.entries import DatasetEntry, ModelEntry, PromptEntry, TaskEntry

BUILTIN_DIR = Path(__file__).parent
SECTIONS = {"datasets": DatasetEntry, "models": ModelEntry, "prompts": PromptEntry, "tasks": TaskEntry}
#: The largest registry file read, and the most YAML nodes its aliases may expand to.
MAX_FILE_BYTES = 4 << 20
MAX_NODES = 200_000
#: libyaml's safe loader where PyYAML was built with it (about 10x faster), else the Python one.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: Validated entries per registry file version (path, size, mtime, ctime, inode): each file is parsed once.
_parsed: dict[tuple[Any, ...], list[tuple[str, str, Any]]] = {}


class RegistryError(ValueError):
    """A registry file that does not parse or validate; the message names the file and entry."""


@dataclass
class Registry:
    datasets: dict[str, DatasetEntry] = field(default_factory=dict)
    models: dict[str, ModelEntry] = field(default_factory=dict)
    prompts: dict[str, PromptEntry] = field(default_factory=dict)
    tasks: dict[str, TaskEntry] = field(default_factory=dict)

    def _get(self, section: str, name: str) -> Any:
        entries = getattr(self, section)
        if name not in entries:
            raise UnknownName(f"unknown {section[:-1]} {name!r}{suggest(name, list(entries))}")
        return entries[name]

    def section(self, kind: str) -> dict[str, Any]:
        """One section's entries by name; ``UnknownName`` for a section that does not exist."""
        if kind not in SECTIONS:
            raise UnknownName(f"unknown registry section {kind!r}{suggest(kind, list(SECTIONS))}")
        return getattr(self, kind)

    def listing(self, kind: str) -> list[dict[str, Any]]:
        """One section as JSON-able records sorted by name (``audio-evals list KIND --json``),
        secret-looking values masked as everywhere else this project writes."""
        return [redact(entry.model_dump(mode="json")) for _, entry in sorted(self.section(kind).items())]

    def dataset(self, name: str) -> DatasetEntry:
        return self._get("datasets", name)

    def model(self, name: str) -> ModelEntry:
        return self._get("models", name)

    def prompt(self, name: str) -> PromptEntry:
        return self._get("prompts", name)

    def task(self, name: str) -> TaskEntry:
        return self._get("tasks", name)

    def validate(self) -> None:
        """Cross-references: every task, prompt, backend and metric named must exist."""
        for d in self.datasets.values():
            _check(lambda d=d: self.task(d.task), f"dataset {d.name!r}")
        for t in self.tasks.values():
            _check(lambda t=t: self.prompt(t.default_prompt), f"task {t.name!r}")
            metrics = [t.metric] if isinstance(t.metric, str) else list(t.metric.values())
            for m in [*metrics, *sorted(t.secondary_metrics())]:
                _check(lambda m=m: check_name("audio_evals.metrics", m, "metric"), f"task {t.name!r}")
        for m in self.models.values():
            _check(lambda m=m: check_name("audio_evals.models", m.backend, "backend"), f"model {m.name!r}")
            for name in m.transcribers().values():
                _check(lambda name=name: self.model(name), f"model {m.name!r} transcribe_with")


def _check(fn: Any, where: str) -> None:
    try:
        fn()
    except UnknownName as e:
        raise RegistryError(f"{where}: {e}") from None


def _yaml_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise RegistryError(f"registry path {str(folder)!r} is not a folder")
    return sorted(p for p in folder.rglob("*.y*ml") if p.suffix in (".yaml", ".yml"))


def _expanded_nodes(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many nodes ``node`` stands for once every alias is expanded (each shared node counted once per use)."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = MAX_NODES + 1  # a node that contains itself expands without end
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_nodes(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_nodes(k, sizes) + _expanded_nodes(v, sizes) for k, v in node.value)
    else:
        size = 1
    sizes[id(node)] = min(size, MAX_NODES + 1)
    return sizes[id(node)]


def parse_yaml(path: Path) -> Any:
    """A registry file's document, parsed by libyaml's safe loader, refused (``RegistryError``, one line)
    over ``MAX_FILE_BYTES`` or when its aliases expand past ``MAX_NODES`` (an alias bomb)."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise RegistryError(f"{path}: {size} bytes, over the {MAX_FILE_BYTES >> 20} MB a registry file may have")
    try:
        loader = _SafeLoader(path.read_text(encoding="utf-8"))
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            if _expanded_nodes(node, {}) > MAX_NODES:
                raise RegistryError(f"{path}: its aliases expand to more than {MAX_NODES} YAML nodes "
                                    "(an alias bomb?); write the entries out")
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise RegistryError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None


def _file_entries(path: Path) -> list[tuple[str, str, Any]]:
    """The validated (section, name, entry) of one registry file, parsed once per version of the file."""
    st = path.stat()
    version = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    if version not in _parsed:
        _parsed[version] = _validated_entries(path, parse_yaml(path) or {})
    return _parsed[version]


def _validated_entries(path: Path, doc: Any) -> list[tuple[str, str, Any]]:
    if not isinstance(doc, dict):
        raise RegistryError(f"{path}: expected a mapping with sections {sorted(SECTIONS)}")
    found = []
    for section, entries in doc.items():
        if section not in SECTIONS:
            raise RegistryError(f"{path}: unknown section {section!r}{suggest(section, list(SECTIONS))}")
        if not isinstance(entries, dict | None):
            raise RegistryError(f"{path}: section {section!r} must be a mapping of names to entries")
        for name, body in (entries or {}).items():
            if not isinstance(body, dict | None):
                raise RegistryError(f"{path}: {section[:-1]} {name!r} must be a mapping of fields")
            try:
                entry = SECTIONS[section].model_validate({"name": str(name), **(body or {})})
            except ValidationError as e:
                raise RegistryError(f"{path}: {section[:-1]} {name!r}: {e}") from None
            found.append((section, str(name), entry))
    return found


def _load_file(path: Path, registry: Registry, seen: dict[tuple[str, str], Path]) -> None:
    for section, name, entry in _file_entries(path):
        key = (section, name)
        if key in seen and seen[key].parent == path.parent:
            raise RegistryError(f"{path}: {section[:-1]} {name!r} is also defined in {seen[key]}")
        seen[key] = path
        getattr(registry, section)[name] = entry


def registry_files(extra_paths: list[str] | tuple[str, ...] = ()) -> list[Path]:
    """The YAML files ``load_registry`` reads, in order: built-in, ``AUDIO_EVALS_REGISTRY_PATH``
    (os.pathsep-separated), then each extra folder."""
    folders = [BUILTIN_DIR]
    env = os.environ.get("AUDIO_EVALS_REGISTRY_PATH", "")
    folders += [Path(p) for p in env.split(os.pathsep) if p]
    folders += [Path(p) for p in extra_paths]
    return [path for folder in folders for path in _yaml_files(folder)]


def registry_version(extra_paths: list[str] | tuple[str, ...] = ()) -> tuple[tuple[str, int, int], ...]:
    """What identifies the registry's content without reading it: each file's path, size and mtime."""
    return tuple((str(p), (st := p.stat()).st_size, st.st_mtime_ns) for p in registry_files(extra_paths))


def load_registry(extra_paths: list[str] | tuple[str, ...] = ()) -> Registry:
    """Built-in entries, then each extra folder in order (later entries override earlier ones)."""
    registry = Registry()
    seen: dict[tuple[str, str], Path] = {}
    for path in registry_files(extra_paths):
        _load_file(path, registry, seen)
    registry.validate()
    return registry
