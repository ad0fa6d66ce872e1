"""Hub-style dataset repos built from the embedded sample clips, for loaders to read offline.

The layout is what the hub serves for a parquet dataset: a README.md whose ``configs:`` front
matter names each split's data files, and parquet shards written by ``datasets`` with an
``Audio`` column of embedded ``{bytes, path}``. Tests can therefore compare a mirror load with
``datasets.load_dataset(<folder>)`` on the very same files. ``parquet_branch`` writes the hub's
``refs/convert/parquet`` layout instead: ``<config>/<split>/0000.parquet`` and no README.

``SEED_LAYOUTS`` gives each seed dataset's repo its real columns and types, so a registry entry
that names a column the real data lacks fails here as it would against the hub.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
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
    features: dict[str, Any] | None = None,
    parquet_branch: bool = False,
) -> Path:
    """Write ``split`` of ``config`` into ``<dest_dir>/<repo_id>`` and return the repo folder.

    ``rows`` are manifest-like: ``audio`` names a clip (relative to the sample folder, or
    absolute; None leaves the cell empty), ``text`` becomes ``reference_column``; other keys
    become columns as they are. ``features`` (column -> ``datasets`` feature, the audio column
    included) fixes the columns' order and types, as a real dataset's card does.
    Calling again for another split or config adds it to the same repo and README. With
    ``readme_configs=False`` the README has no ``configs:`` block, so readers must find the
    shards by their layout; ``parquet_branch`` lays shards out as the hub's parquet conversion.
    """
    from datasets import Audio, Dataset, Features, Value

    repo = Path(dest_dir) / repo_id
    folder = repo / (config or "default") / split if parquet_branch else repo / (config or "data")
    folder.mkdir(parents=True, exist_ok=True)
    columns: dict[str, list[Any]] = {audio_column: [_embedded(r["audio"]) if r["audio"] else None for r in rows]}
    for key in rows[0]:
        if key != "audio":
            columns[reference_column if key == "text" else key] = [r.get(key) for r in rows]
    if features is None:
        dataset = Dataset.from_dict(columns).cast_column(audio_column, Audio())
    else:  # embedded {bytes, path} structs first: encoding through Audio would re-encode the clips
        stored = {**features, audio_column: {"bytes": Value("binary"), "path": Value("string")}}
        dataset = Dataset.from_dict({name: columns[name] for name in features}, features=Features(stored))
        dataset = dataset.cast_column(audio_column, features[audio_column])
    for index in range(num_shards):
        shard = dataset.shard(num_shards, index, contiguous=True)
        name = f"{index:04d}.parquet" if parquet_branch else f"{split}-{index:05d}-of-{num_shards:05d}.parquet"
        shard.to_parquet(str(folder / name))
    if not parquet_branch:
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


@dataclass(frozen=True)
class SeedLayout:
    """One seed repo as the hub holds it: its columns and types, and where its shards lie.

    ``row`` fills the columns (audio excepted) for sample clip ``clip`` at position ``index``.
    ``parquet_branch``: the repo is read from its ``refs/convert/parquet`` branch.
    """

    features: Callable[[], dict[str, Any]]
    row: Callable[[dict[str, Any], int], dict[str, Any]]
    parquet_branch: bool = False


def _audio(rate: int = 16000) -> Any:
    from datasets import Audio

    return Audio(sampling_rate=rate)


def _string() -> Any:
    from datasets import Value

    return Value("string")


def _int(bits: int = 64) -> Any:
    from datasets import Value

    return Value(f"int{bits}")


def _float() -> Any:
    from datasets import Value

    return Value("float64")


def _strings() -> Any:
    from datasets import List, Value

    return List(Value("string"))


def _labels(*names: str) -> Any:
    from datasets import ClassLabel

    return ClassLabel(names=list(names))


def _letter(index: int) -> str:
    return "ABCD"[index % 4]


# Columns and types per seed repo. WenetSpeech's are copied from its dataset card; FLEURS's from
# the features of google/fleurs (the parquet conversion keeps them, audio as {bytes, path});
# LibriSpeech, TED-LIUM, Common Voice, CoVoST 2, WebQuestions, TriviaQA, CMMLU, AlpacaEval and
# MMAU follow their upstream datasets' features under the column names the reference registry
# and prompts read (ref_col, {{question}}, {{choices}}); AISHELL-1 and HSK have the WenetSpeech
# pattern of the same uploader (transcript or answer, audio).
SEED_LAYOUTS: dict[str, SeedLayout] = {
    "TwinkStart/librispeech": SeedLayout(
        lambda: {"file": _string(), "audio": _audio(), "text": _string(), "speaker_id": _int(),
                 "chapter_id": _int(), "id": _string()},
        lambda clip, i: {"file": f"{clip['id']}.flac", "speaker_id": 1272 + i, "chapter_id": 128104, "id": clip["id"]}),
    "TwinkStart/tedlium": SeedLayout(
        lambda: {"audio": _audio(), "text": _string(), "speaker_id": _string(),
                 "gender": _labels("unknown", "female", "male"), "file": _string(), "id": _string()},
        lambda clip, i: {"speaker_id": f"speaker{i}", "gender": i % 3, "file": f"{clip['id']}.sph", "id": clip["id"]}),
    "TwinkStart/CommonVoice_15": SeedLayout(
        lambda: {"client_id": _string(), "path": _string(), "audio": _audio(48000), "sentence": _string(),
                 "up_votes": _int(), "down_votes": _int(), "age": _string(), "gender": _string(),
                 "accent": _string(), "locale": _string(), "segment": _string(), "variant": _string()},
        lambda clip, i: {"client_id": f"client{i}", "path": f"common_voice_{clip['id']}.mp3", "up_votes": 2,
                         "down_votes": 0, "age": "", "gender": "", "accent": "", "locale": clip["lang"],
                         "segment": "", "variant": ""}),
    "google/fleurs": SeedLayout(
        lambda: {"id": _int(32), "num_samples": _int(32), "path": _string(), "audio": _audio(),
                 "transcription": _string(), "raw_transcription": _string(),
                 "gender": _labels("male", "female", "other"), "lang_id": _labels("cmn_hans_cn", "en_us"),
                 "language": _string(), "lang_group_id": _labels("western_european_we", "chinese_japanase_korean_cjk")},
        lambda clip, i: {"id": 1000 + i // 2, "num_samples": 16000, "path": f"{clip['id']}.wav",
                         "transcription": clip["text"].lower(), "gender": i % 2, "lang_id": int(clip["lang"] == "en"),
                         "language": clip["lang"], "lang_group_id": int(clip["lang"] == "zh")},
        parquet_branch=True),
    "TwinkStart/AISHELL-1": SeedLayout(
        lambda: {"WavPath": _string(), "text": _string(), "audio": _audio()},
        lambda clip, i: {"WavPath": f"raw/{clip['id']}.wav"}),
    "TwinkStart/WenetSpeech": SeedLayout(
        lambda: {"sid": _string(), "confidence": _int(), "begin_time": _float(), "end_time": _float(),
                 "subsets": _strings(), "text": _string(), "WavPath": _string(), "audio": _audio()},
        lambda clip, i: {"sid": clip["id"], "confidence": 1, "begin_time": 0.0, "end_time": 3.0,
                         "subsets": ["TEST_NET"], "WavPath": f"raw/{clip['id']}.wav"}),
    "TwinkStart/covost2": SeedLayout(
        lambda: {"id": _string(), "sentence": _string(), "text": _string(), "audio": _audio()},
        lambda clip, i: {"id": clip["id"], "sentence": clip["text"]}),
    "TwinkStart/speech-web-questions": SeedLayout(
        lambda: {"url": _string(), "question": _string(), "answers": _strings(), "audio": _audio()},
        lambda clip, i: {"url": f"http://www.freebase.com/view/en/q{i}", "question": clip["text"],
                         "answers": [clip["text"].split()[-1]]}),
    "TwinkStart/speech-triavia-qa": SeedLayout(
        lambda: {"question_id": _string(), "question": _string(), "answer": _strings(), "audio": _audio()},
        lambda clip, i: {"question_id": f"tc_{i}", "question": clip["text"], "answer": [clip["text"].split()[0]]}),
    "TwinkStart/speech-CMMLU": SeedLayout(
        lambda: {"Question": _string(), "A": _string(), "B": _string(), "C": _string(), "D": _string(),
                 "Answer": _string(), "audio": _audio()},
        lambda clip, i: {"Question": clip["text"], "A": "甲", "B": "乙", "C": "丙", "D": "丁", "Answer": _letter(i)}),
    "TwinkStart/speech-HSK": SeedLayout(
        lambda: {"ans_choice": _string(), "audio": _audio()},
        lambda clip, i: {"ans_choice": _letter(i)}),
    "TwinkStart/speech-chatbot-alpaca-eval": SeedLayout(
        lambda: {"instruction": _string(), "output": _string(), "generator": _string(), "dataset": _string(),
                 "audio": _audio()},
        lambda clip, i: {"instruction": clip["text"], "output": f"An answer to: {clip['text']}",
                         "generator": "gpt4_1106_preview", "dataset": "helpful_base"}),
    "TwinkStart/MMAU": SeedLayout(
        lambda: {"id": _string(), "audio": _audio(), "question": _string(), "choices": _strings(), "answer": _string(),
                 "dataset": _string(), "task": _string(), "split": _string(), "category": _string(),
                 "sub-category": _string(), "difficulty": _string()},
        lambda clip, i: {"id": clip["id"], "question": "What is said?", "choices": [clip["text"], "silence", "music"],
                         "answer": clip["text"], "dataset": "sample", "task": "speech", "split": "test-mini",
                         "category": "Speaker Identification", "sub-category": "", "difficulty": "easy"}),
}


def build_seed_repo(dest_dir: str | os.PathLike, repo_id: str, folder: str | None, split: str,
                    clips: list[dict[str, Any]], reference_column: str, num_shards: int = 1) -> Path:
    """Write ``split`` of a seed repo in its real layout; ``folder`` is its config or data_dir.

    Each clip's transcript fills ``reference_column`` unless the layout sets that column itself.
    """
    layout = SEED_LAYOUTS[repo_id]
    features = layout.features()
    rows = []
    for index, clip in enumerate(clips):
        row = {name: None for name in features}
        row[reference_column] = clip["text"]
        row.update(layout.row(clip, index))
        row["audio"] = clip["audio"]
        rows.append(row)
    return build_hub_repo(dest_dir, repo_id, folder, split, rows, reference_column=reference_column,
                          num_shards=num_shards, features=features, parquet_branch=layout.parquet_branch)
