"""The records between the stages: ``samples.jsonl`` rows have a published schema that a real run
matches, old rows still read, and a shard result survives its JSON cache entry."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from audio_evals import storage
from audio_evals.records import ModelOutput, SampleRow, ShardResult, samples_schema
from tests.test_pipeline import _evaluate

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "schemas" / "samples.schema.json"


def test_committed_samples_schema_is_the_generated_one() -> None:
    """Regenerate with ``python -m audio_evals.records > schemas/samples.schema.json``."""
    assert json.loads(SCHEMA.read_text(encoding="utf-8")) == samples_schema()


def test_every_row_of_a_real_run_matches_the_schema_and_reads_back_unchanged(prefect_api, tmp_path,
                                                                             scripted_registry) -> None:
    """A scripted run with a failed shard and skipped Mandarin rows, so failed, skipped and scored
    rows are all checked against the published schema and the typed record."""
    scripted_registry["faults"].write_text(json.dumps({"fail_shard_ids": ["spk1_snt1"]}), encoding="utf-8")
    summary = _evaluate(tmp_path, scripted_registry, dataset="speech-sample", shard_retries=0)
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    rows = list(storage.read_jsonl(summary.paths["samples"]))
    assert {r["status"] for r in rows} >= {"ok", "failed"} and len(rows) == 28
    for row in rows:
        jsonschema.validate(row, schema)
        assert SampleRow.model_validate(row).to_json() == row


def test_a_row_of_an_older_or_newer_writer_still_reads() -> None:
    old = {"id": 7, "audio": "a.wav", "reference": "hi", "status": "ok", "value": 0.0, "a_newer_key": 1}
    row = SampleRow.model_validate(old)
    assert (row.id, row.stats, row.secondary, row.model_text) == ("7", {}, None, None)
    assert "a_newer_key" not in row.to_json() and row.to_json()["id"] == "7"


def test_a_shard_result_survives_its_json_cache_entry() -> None:
    result = ShardResult(index=3, content_hash="h", outputs=[ModelOutput("a", text="x", latency_s=0.5),
                                                             ModelOutput("b", error="boom")],
                         inference_s=1.5, model_load_s=0.25, audio_seconds=9.0)
    assert ShardResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
