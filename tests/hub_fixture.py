"""Hub-style dataset repos built from the embedded sample clips, for loaders to read offline.

The layout is what the hub serves for a parquet dataset: a README.md whose ``configs:`` front
matter names each split's data files, and parquet shards written by ``datasets`` with an
``Audio`` column of embedded ``{bytes, path}``. Tests can therefore compare a mirror load with
``datasets.load_dataset(<folder>)`` on the very same files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from audio_evals.paths import ASSETS_DIR

SAMPLE_DIR = Path(ASSETS_DIR) / "speech-sample"


def manifest_rows() -> list[dict[str, Any]]:
    """The sample manifest rows (``id``, ``audio`` relative to SAMPLE_DIR, ``text``, ``lang``...)."""
    with open(SAMPLE_DIR / "manifest.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def build_hub_repo(
    dest_dir: str | os.PathLike,
    repo_id: str,
    config: str | None,
    split: str,
    rows: list[dict[str, Any]],
    audio_column: str = "audio",
    reference_column: str = "text",
    num_shards: int = 1,
    readme_configs: bool = True,
) -> Path:
    """Write ``split`` of ``config`` into ``<dest_dir>/<repo_id>`` and return the repo folder.

    ``rows`` are manifest-like: ``audio`` names a clip (relative to the sample folder, or
    absolute; None leaves the cell empty), ``text`` becomes ``reference_column``; other keys
    become columns as they are.
    Calling again for another split or config adds it to the same repo and README. With
    ``readme_configs=False`` the README has no ``configs:`` block, so readers must find the
    shards by their layout.
    """
    from datasets import Audio, Dataset

    repo = Path(dest_dir) / repo_id
    folder = config or "data"
    (repo / folder).mkdir(parents=True, exist_ok=True)
    columns: dict[str, list[Any]] = {audio_column: [_embedded(r["audio"]) if r["audio"] else None for r in rows]}
    for key in rows[0]:
        if key != "audio":
            columns[reference_column if key == "text" else key] = [r.get(key) for r in rows]
    dataset = Dataset.from_dict(columns).cast_column(audio_column, Audio())
    for index in range(num_shards):
        shard = dataset.shard(num_shards, index, contiguous=True)
        shard.to_parquet(str(repo / folder / f"{split}-{index:05d}-of-{num_shards:05d}.parquet"))
    _add_to_readme(repo, config or "default", split, f"{folder}/{split}-*", readme_configs)
    return repo


def _embedded(audio: str) -> dict[str, Any]:
    """An audio cell as the hub stores it: the encoded bytes plus the original file name."""
    path = Path(audio) if os.path.isabs(audio) else SAMPLE_DIR / audio
    return {"bytes": path.read_bytes(), "path": path.name}


def _add_to_readme(repo: Path, config: str, split: str, pattern: str, with_configs: bool) -> None:
    readme = repo / "README.md"
    meta: dict[str, Any] = {"configs": []}
    if readme.exists():
        meta = yaml.safe_load(readme.read_text(encoding="utf-8").split("---")[1]) or {"configs": []}
    configs = meta.setdefault("configs", [])
    entry = next((c for c in configs if c["config_name"] == config), None)
    if entry is None:
        entry = {"config_name": config, "data_files": []}
        configs.append(entry)
    entry["data_files"] = [f for f in entry["data_files"] if f["split"] != split] + [{"split": split, "path": pattern}]
    front = yaml.safe_dump(meta if with_configs else {"license": "cc-by-4.0"}, sort_keys=False, allow_unicode=True)
    readme.write_text(f"---\n{front}---\n\n# {repo.name}\n\nTest fixture built from the speech-sample clips.\n",
                      encoding="utf-8")
