"""The registry: datasets, models, prompts and tasks declared in YAML, validated at load.

Built-in entries live in the YAML files beside this module; ``--registry-path`` adds folders of
further YAML files (same layout: top-level ``datasets:``, ``models:``, ``prompts:``, ``tasks:``).
YAML is loaded with ``yaml.safe_load`` and may only name backends and metrics that are modules
of this project, so a registry file can never import or run arbitrary code.
"""

from audio_evals.registry.entries import DatasetEntry, ModelEntry, PromptEntry, TaskEntry
from audio_evals.registry.loader import Registry, RegistryError, load_registry

__all__ = [
    "DatasetEntry",
    "ModelEntry",
    "PromptEntry",
    "Registry",
    "RegistryError",
    "TaskEntry",
    "load_registry",
]
