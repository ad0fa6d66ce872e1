"""Hub-style dataset repos built from the embedded sample clips, for loaders to read offline.

The layout is what the hub serves for a parquet dataset: a README.md whose ``configs:`` front
matter names each split's data files, and parquet shards written by ``datasets`` with an
``Audio`` column of embedded ``{bytes, path}``. Tests can therefore compare a mirror load with
``datasets.load_dataset(<folder>)`` on the very same files.

``build_seed_repo`` writes a seed dataset's repo as ``fixtures/hub_layouts.json`` records the real
one (file names, README configs, columns and types, each with its evidence), so a registry entry
that names a split, folder or column the real data lacks fails here as it would against the hub.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
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
    become columns as they are. Calling again for another split or config adds it to the same
    repo and README. With ``readme_configs=False`` the README has no ``configs:`` block, so
    readers must find the shards by their layout.
    """
    from datasets import Audio, Dataset

    repo = Path(dest_dir) / repo_id
    folder = repo / (config or "data")
    folder.mkdir(parents=True, exist_ok=True)
    columns: dict[str, list[Any]] = {audio_column: [_embedded(r["audio"]) if r["audio"] else None for r in rows]}
    for key in rows[0]:
        if key != "audio":
            columns[reference_column if key == "text" else key] = [r.get(key) for r in rows]
    dataset = Dataset.from_dict(columns).cast_column(audio_column, Audio())
    for index in range(num_shards):
        shard = dataset.shard(num_shards, index, contiguous=True)
        shard.to_parquet(str(folder / f"{split}-{index:05d}-of-{num_shards:05d}.parquet"))
    _add_to_readme(repo, config or "default", split, f"{config or 'data'}/{split}-*", readme_configs)
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


# --- the seed datasets' real layouts ----------------------------------------------------------

#: Each seed repo's files, README configs and columns as the hub holds them, with the evidence
#: (dataset cards, the parquet converter's commits, or only the reference tool's registry).
HUB_LAYOUTS: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).with_name("fixtures") / "hub_layouts.json").read_text(encoding="utf-8"))


def _feature(spec: str) -> Any:
    """A ``datasets`` feature from the fixture's type names (``audio:16000``, ``classlabel:a,b``, ...)."""
    from datasets import Audio, ClassLabel, List, Value

    kind, _, arg = spec.partition(":")
    if kind == "audio":
        return Audio(sampling_rate=int(arg))
    if kind == "classlabel":
        return ClassLabel(names=arg.split(","))
    return List(Value("string")) if kind == "strings" else Value(kind)


def _filler(spec: str, column: str, clip: dict[str, Any], index: int) -> Any:
    """A plausible value of a column the test does not set itself."""
    kind = spec.partition(":")[0]
    if kind == "strings":
        return [f"{column} {clip['id']}"]
    if kind in ("classlabel", "int32", "int64"):
        return index % 2
    return float(index) if kind == "float64" else f"{column} {clip['id']}"


def _letter(index: int) -> str:
    return "ABCD"[index % 4]


#: Values some tests rely on, per repo (a column that the repo lacks is an error, not a new column).
ROW_VALUES: dict[str, Callable[[dict[str, Any], int], dict[str, Any]]] = {
    # FLEURS ids name the sentence: two readings of one sentence share an id.
    "google/fleurs": lambda clip, i: {"id": 1000 + i // 2, "num_samples": 16000, "path": f"{clip['id']}.wav",
                                      "transcription": clip["text"].lower(), "lang_id": 19 if clip["lang"] == "en" else 13,
                                      "language": clip["lang"], "lang_group_id": 0 if clip["lang"] == "en" else 6},
    "TwinkStart/speech-CMMLU": lambda clip, i: {"Question": clip["text"], "A": "甲", "B": "乙", "C": "丙", "D": "丁",
                                                "Answer": _letter(i)},
    "TwinkStart/speech-HSK": lambda clip, i: {"ans_choice": _letter(i)},
    "TwinkStart/speech-chatbot-alpaca-eval": lambda clip, i: {"instruction": clip["text"]},
    "TwinkStart/MMAU": lambda clip, i: {"question": "What is said?", "choices": [clip["text"], "silence", "music"],
                                        "answer": clip["text"]},
}


def seed_features(repo_id: str) -> dict[str, Any]:
    """The repo's columns as ``datasets`` features, in the card's order."""
    return {name: _feature(spec) for name, spec in HUB_LAYOUTS[repo_id]["features"].items()}


def seed_splits(repo_id: str, folder: str | None = None) -> list[str]:
    """The splits the repo has in ``folder`` (its config or data_dir; None: the default one)."""
    return list(HUB_LAYOUTS[repo_id]["layouts"][0]["files"][folder or "default"])


def build_seed_repo(dest_dir: str | os.PathLike, repo_id: str, folder: str | None, split: str,
                    clips: list[dict[str, Any]], reference_column: str, layout: int = 0) -> Path:
    """Write ``split`` of a seed repo as the hub holds it (``HUB_LAYOUTS``): its file names (the
    clips spread over the split's shards), its README ``configs:`` (none on a parquet branch) and
    its columns. ``folder`` is the config or data_dir; ``layout`` picks one of the repo's recorded
    layouts (FLEURS: the converter's first file names, or its later ``<split>/NNNN.parquet``).

    Each clip's transcript fills ``reference_column`` unless the repo's ``ROW_VALUES`` set it.
    """
    from datasets import Dataset, Features, Value

    spec = HUB_LAYOUTS[repo_id]
    recorded = spec["layouts"][layout]
    files = recorded["files"][folder or "default"][split]
    specs = spec["features"]
    if reference_column not in specs:
        raise KeyError(f"{repo_id} has no column {reference_column!r} (has {sorted(specs)})")
    rows = []
    for index, clip in enumerate(clips):
        row = {name: _filler(kind, name, clip, index) for name, kind in specs.items()}
        row[reference_column] = [clip["text"]] if specs[reference_column] == "strings" else clip["text"]
        values = ROW_VALUES.get(repo_id, lambda c, i: {})(clip, index)
        if set(values) - set(specs):
            raise KeyError(f"{repo_id} has no column(s) {sorted(set(values) - set(specs))}")
        row.update(values)
        row["audio"] = _embedded(clip["audio"])
        rows.append(row)
    features = seed_features(repo_id)
    # Embedded {bytes, path} structs first: encoding through Audio would re-encode the clips.
    stored = Features({**features, "audio": {"bytes": Value("binary"), "path": Value("string")}})
    dataset = Dataset.from_list(rows, features=stored).cast_column("audio", features["audio"])
    repo = Path(dest_dir) / repo_id
    shards = min(len(files), len(rows))
    for index, name in enumerate(files[:shards]):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        dataset.shard(shards, index, contiguous=True).to_parquet(str(repo / name))
    if "configs" in recorded:
        # The card's configs block, less the splits not written here (datasets refuses a split with no files).
        configs = [{**c, "data_files": built} for c in recorded["configs"]
                   if (built := [f for f in c["data_files"] if any(repo.glob(f["path"]))])]
        front = yaml.safe_dump({"configs": configs}, sort_keys=False, allow_unicode=True)
        (repo / "README.md").write_text(f"---\n{front}---\n\n# {repo_id}\n\nTest fixture: the sample clips in the "
                                        "repo's real layout.\n", encoding="utf-8")
    return repo
