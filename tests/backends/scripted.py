"""A deterministic test backend: canned answers and fault switches, no model.

Test-only: it lives outside the installed package and exists only where the test suite names it
(``AUDIO_EVALS_EXTRA_BACKENDS``, tests/conftest.py), since its files arguments write anywhere.

Pipeline tests use it to prove sharding, retries, caching and failure handling without paying
for inference. ``responses_file`` maps sample ids to answers; ``faults_file`` (read on every
call, so a test can flip it mid-run) lists ``fail_shard_ids`` (the shard holding one of them
raises a transient error), ``fail_once_ids`` (the first call holding one of them answers the
others, then raises a transient error carrying those answers, as a backend dying mid-shard does,
and drops the ids from the file so the retry succeeds) and ``error_ids`` (per-sample errors). ``audio_responses_file`` maps
sample ids to audio files returned as generated speech, to test speech-out scoring.
``loads_file`` gets one line (the process id) when an instance first loads (``_load``, on the
first generate, as a real backend loads its weights): tests count loads per worker process;
``load_s`` is how long that load takes. The faults are deliberately
not part of the fingerprint: removing a fault must not invalidate cached shards.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from audio_evals.models.base import Backend, ModelOutput, ModelRequest, TransientBackendError
from audio_evals.storage import stable_hash


def _load(path: str | None) -> dict[str, Any]:
    if not path or not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@dataclass(kw_only=True)
class ScriptedBackend(Backend):
    responses_file: str | None = None
    audio_responses_file: str | None = None
    faults_file: str | None = None
    calls_file: str | None = None
    loads_file: str | None = None
    default_answer: str = ""
    delay_s: float = 0.0
    load_s: float = 0.0
    thread_safe: bool = True

    #: A stand-in for any model: every generation key is taken (and recorded), none used.
    GENERATION_KEYS: ClassVar[frozenset[str] | None] = None

    def fingerprint(self) -> dict[str, Any]:
        return {"backend": "scripted", "responses": stable_hash(_load(self.responses_file)),
                "audio_responses": stable_hash(_load(self.audio_responses_file)),
                "default_answer": self.default_answer, "generation": self.generation}

    def _load(self) -> bool:
        """The stand-in for loading weights: once per instance (the base class locks it), taking ``load_s``."""
        time.sleep(self.load_s)
        if self.loads_file:
            with open(self.loads_file, "a", encoding="utf-8") as f:
                f.write(f"{os.getpid()}\n")
        return True

    def _generate(self, loaded: bool, requests: list[ModelRequest]) -> list[ModelOutput]:
        faults = _load(self.faults_file)
        ids = {r.sample_id for r in requests}
        if ids & set(faults.get("fail_shard_ids", [])):
            raise TransientBackendError("injected shard fault (scripted backend)")
        if self.calls_file:
            with open(self.calls_file, "a", encoding="utf-8") as f:
                f.writelines(r.sample_id + "\n" for r in requests)
        responses, audio = _load(self.responses_file), _load(self.audio_responses_file)
        outputs = []
        for request in requests:
            time.sleep(self.delay_s)
            if request.sample_id in faults.get("error_ids", []):
                outputs.append(ModelOutput(request.sample_id, error="injected sample error (scripted backend)"))
            else:
                outputs.append(ModelOutput(request.sample_id, text=responses.get(request.sample_id, self.default_answer),
                                           audio_path=audio.get(request.sample_id)))
        once = ids & set(faults.get("fail_once_ids", []))
        if once:
            faults["fail_once_ids"] = sorted(set(faults["fail_once_ids"]) - once)
            with open(self.faults_file, "w", encoding="utf-8") as f:  # type: ignore[arg-type]
                json.dump(faults, f)
            raise TransientBackendError("injected mid-shard failure (scripted backend)",
                                        [o for o in outputs if o.sample_id not in once])
        return outputs


BACKEND = ScriptedBackend
