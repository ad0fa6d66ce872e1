"""The model's own process is started before preprocessing where the shards will call the model, and
never where they will not: a fully cached re-run, or answers read from a file."""

from __future__ import annotations

import json
import os

import pytest

from audio_evals.models import close_all
from audio_evals.models.base import EngineProcess
from tests.conftest import slow_scripted


@pytest.fixture
def events(monkeypatch) -> list[str]:
    """What the flow did, in order: ``engine`` when a model's own process is started, ``preprocess``
    when the preprocess stage is called."""
    import flows.evaluate as flow

    seen: list[str] = []
    start, stage = EngineProcess.__init__, flow.preprocess

    def started(self, backend):
        seen.append("engine")
        start(self, backend)

    def preprocess(*args, **kwargs):
        seen.append("preprocess")
        return stage(*args, **kwargs)

    monkeypatch.setattr(EngineProcess, "__init__", started)
    monkeypatch.setattr(flow, "preprocess", preprocess)
    yield seen
    close_all()


def _evaluate(tmp_path, registry, **kwargs):
    from audio_evals import evaluate

    close_all()  # each run starts without a model process left by an earlier one in this process
    return evaluate(dataset="speech-sample-en", model="scripted", cache_dir=str(tmp_path / "cache"),
                    output=str(tmp_path / "results"), registry_paths=[registry["path"]], shard_size=4, **kwargs)


def test_a_fresh_run_starts_the_model_before_preprocessing_and_a_cached_one_never(
        prefect_api, tmp_path, scripted_registry, events):
    """Fresh: one child started before preprocess, and it answered every shard. Identical re-run: none
    started. New answers from the model (its fingerprint changes) on the cached audio: started after
    preprocess, once its shards are known to miss the cache."""
    loads = tmp_path / "loads"
    slow_scripted(scripted_registry, 0, own_process=True, loads_file=str(loads))
    first = _evaluate(tmp_path, scripted_registry)
    assert events == ["engine", "preprocess"]
    pids = loads.read_text().split()
    assert len(pids) == 1 and int(pids[0]) != os.getpid()
    assert first.shards.computed == first.shards.total > 1 and first.counts.failed == 0

    events.clear()
    second = _evaluate(tmp_path, scripted_registry)
    assert events == ["preprocess"] and second.shards.computed == 0
    assert len(loads.read_text().split()) == 1

    events.clear()
    answers = json.loads(scripted_registry["responses"].read_text())
    scripted_registry["responses"].write_text(json.dumps({k: v.lower() for k, v in answers.items()}))
    third = _evaluate(tmp_path, scripted_registry)
    assert events == ["preprocess", "engine"] and third.shards.computed == third.shards.total
    assert len(loads.read_text().split()) == 2


def test_answers_from_a_file_start_no_model(prefect_api, tmp_path, scripted_registry, events):
    """``inf_file``: the replies are read, so no model process is started, before or after preprocess."""
    slow_scripted(scripted_registry, 0, own_process=True)
    first = _evaluate(tmp_path, scripted_registry)
    events.clear()
    again = _evaluate(tmp_path, scripted_registry, inf_file=first.paths["samples"], fresh=True)
    assert events == ["preprocess"] and again.shards.from_inf_file == again.shards.total
