"""The infer stage for one shard: render prompts, call the backend once, check what came back, cache it.

Cache key = model fingerprint (weights, settings, generation params) + transcribers + prompt +
shard content hash, so a re-run recomputes only shards that failed or are new. Results are JSON
entries in the cache folder (``audio_evals.cache``), checked against their key when read, never
pickles. The answers a failed attempt did receive are kept in an ``infer-answered`` entry under
the same key, so the next attempt (a retry, or the next run) sends only the other samples.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from audio_evals import cache, storage
from audio_evals.cache import blob_record, mismatch
from audio_evals.data.audio import AudioError
from audio_evals.models.base import Backend, ModelRequest, ShardIncomplete
from audio_evals.pipeline.preprocess import decode_to_cache
from audio_evals.records import ModelOutput, PreparedSample, Sample, ShardRef, ShardResult
from audio_evals.registry.entries import PromptEntry, for_language


class ShardChanged(RuntimeError):
    """A prepared shard file no longer matches its record (not retried: the next run rebuilds it)."""


_calls = 0
_calls_lock = threading.Lock()


def model_calls() -> int:
    """Samples sent to a backend by this process so far (tests count cache hits with it)."""
    return _calls


def _count(n: int) -> None:
    global _calls
    with _calls_lock:
        _calls += n


def _local(p: PreparedSample, audio_dir: str) -> PreparedSample:
    """The sample with intact decoded audio on this machine: decoded again when another machine
    made it or the file no longer matches its record."""
    if blob_record(p.prepared) is not None:
        return p
    local = decode_to_cache(p.sample, audio_dir, p.sample_rate, reuse=False)
    if local.audio_sha256 != p.audio_sha256:
        raise AudioError(f"audio file {p.sample.audio} of sample {p.sample.id!r} changed since preprocessing "
                         "(run again)")
    return local


def _prepared_rows(shard: ShardRef) -> list[dict[str, Any]]:
    """The shard's rows, only while its file is what preprocessing wrote."""
    why = mismatch(shard.path, shard.record)
    if why:
        raise ShardChanged(f"prepared shard {shard.path} {why}: run again to rebuild it")
    return list(storage.read_jsonl(shard.path))


def transcribe_generated(outputs: list[ModelOutput], langs: dict[str, str | None],
                         transcribers: dict[str, Backend], audio_dir: str) -> None:
    """Speech-out models: transcribe each generated clip with the transcriber for its sample's
    language (``langs``: sample id → language); the transcript is what gets scored. A reply with no
    audio fails, as in the reference tool (its speech-to-text step asserts the file exists): its
    text is never scored in place of the speech."""
    batches: dict[int, tuple[Backend, list[ModelRequest]]] = {}
    for output in outputs:
        if output.error:
            continue
        if not output.audio_path:
            output.error = "the speech-out model generated no audio (its text reply is not scored in place of speech)"
            continue
        asr = for_language(transcribers, langs.get(output.sample_id))
        if asr is None:  # the plan skips such samples; a stray one fails rather than go unscored
            output.error = f"no transcriber for language {langs.get(output.sample_id)!r}"
            continue
        try:
            clip = decode_to_cache(Sample(output.sample_id, output.audio_path), audio_dir, asr.requirements.sample_rate)
        except AudioError as e:
            output.error = f"generated audio unusable: {e}"
            continue
        request = ModelRequest(output.sample_id, clip.prepared, clip.sample_rate)
        batches.setdefault(id(asr), (asr, []))[1].append(request)
    by_id = {o.sample_id: o for o in outputs}
    for asr, requests in batches.values():
        _count(len(requests))
        for result in asr.generate(requests):
            target = by_id[result.sample_id]
            if result.error:
                target.error = f"transcribing the generated audio failed: {result.error}"
            else:
                target.transcript = result.text


def load_model(backend: Backend) -> float:
    """Load the backend's weights now, if it has not yet; the seconds it waited for them (a load
    the flow started early, ``Backend.start_loading``, is waited for here).

    Timed apart from inference so RTFx leaves model loading out, as the Open ASR Leaderboard
    measures it. ``Backend.loaded`` loads once under a lock (a loaded model returns at once).
    """
    start = time.perf_counter()
    backend.loaded()
    return time.perf_counter() - start


def infer_shard(shard: ShardRef, backend: Backend, prompt: PromptEntry, audio_dir: str,
                transcribers: dict[str, Backend] | None = None,
                answered: list[ModelOutput] | None = None) -> ShardResult:
    """Outputs for every sample of the shard; a backend exception fails the whole shard.

    ``answered`` are outputs an earlier attempt of this shard received: those samples are not sent
    again. When the backend answers only some requests (``ShardIncomplete``), the exception carries
    everything answered so far, for the next attempt. With ``transcribers`` (speech-out models: per
    language, ``"*"`` = any other) generated audio is transcribed for scoring.
    """
    from audio_evals.prompts import PromptError, render  # jinja2 (0.1 s): imported by runs that call a model

    prepared = [_local(PreparedSample.from_dict(r), audio_dir) for r in _prepared_rows(shard)]
    requests: list[ModelRequest] = []
    earlier = {o.sample_id: o for o in answered or []}
    outputs: dict[str, ModelOutput] = {}
    for p in prepared:
        if p.sample.id in earlier:
            continue
        try:
            messages = render(prompt, p)
        except PromptError as e:
            outputs[p.sample.id] = ModelOutput(p.sample.id, error=str(e))
            continue
        requests.append(ModelRequest(p.sample.id, p.prepared, p.sample_rate, messages))
    load_s = 0.0
    start = time.perf_counter()
    results: list[ModelOutput] = []
    if requests:
        _count(len(requests))
        load_s += load_model(backend)
        try:
            results = backend.generate(requests)
        except ShardIncomplete as e:
            e.answered = [*earlier.values(), *e.answered]
            raise
        if [o.sample_id for o in results] != [r.sample_id for r in requests]:
            raise RuntimeError(
                f"backend returned outputs for {len(results)} samples, not the {len(requests)} requested in order"
            )
        for output, request in zip(results, requests):
            output.prompt = request.sent()
    generated = [*earlier.values(), *results]
    if transcribers:
        load_s += sum(load_model(asr) for asr in transcribers.values())
        transcribe_generated(generated, {p.sample.id: p.sample.lang for p in prepared}, transcribers, audio_dir)
    outputs.update((o.sample_id, o) for o in generated)
    return ShardResult(index=shard.index, content_hash=shard.content_hash,
                       outputs=[outputs[p.sample.id] for p in prepared],
                       inference_s=time.perf_counter() - start - load_s, model_load_s=load_s,
                       audio_seconds=shard.audio_seconds, engine_peak_rss_mb=backend.engine_peak_rss_mb())


def infer_key(shard: ShardRef, prompt: PromptEntry, model_fingerprint: dict[str, Any],
              transcriber_fingerprints: dict[str, dict[str, Any]] | None) -> str:
    """The shard result's cache key: what the model is, what it is asked, and the shard's inputs."""
    return "infer-" + storage.stable_hash([
        model_fingerprint, transcriber_fingerprints or None, prompt.model_dump(mode="json")["messages"],
        shard.content_hash,
    ])


def cached_result(cache_dir: str, key: str) -> ShardResult | None:
    """The shard's cached result, if its entry is intact and holds this key."""
    entry = cache.read_entry(cache.entry_path(cache_dir, "infer", key), key)
    return None if entry is None else ShardResult.from_dict(entry)


def infer_cached(shard: ShardRef, backend: Backend, prompt: PromptEntry, audio_dir: str, cache_dir: str, key: str,
                 transcribers: dict[str, Backend] | None = None, keep_answered: bool = True) -> ShardResult:
    """``infer_shard``, starting from the answers an earlier attempt kept (unless not ``keep_answered``),
    keeping what it gets when some requests fail, and caching the whole result once no sample has
    a model error (those are sent again by the next run, the answers kept).

    The caller looks the result up first (``cached_result``): a cached shard needs no backend.
    """
    answered_entry = cache.entry_path(cache_dir, "infer-answered", key)
    kept = cache.read_entry(answered_entry, key) if keep_answered else None
    answered = [ModelOutput.from_dict(row) for row in kept or []]
    try:
        result = infer_shard(shard, backend, prompt, audio_dir, transcribers, answered)
    except ShardIncomplete as e:
        if e.answered:
            cache.write_entry(answered_entry, key, [o.to_dict() for o in e.answered])
        raise
    failed = {o.sample_id for o in result.outputs if o.error} - rendering_failed(result, prompt)
    if failed:  # a refused request (a wrong key, a 4xx) may succeed next time: only the answers are kept
        cache.write_entry(answered_entry, key, [o.to_dict() for o in result.outputs if o.sample_id not in failed])
    else:
        cache.write_entry(cache.entry_path(cache_dir, "infer", key), key, result.to_dict())
    return result


def rendering_failed(result: ShardResult, prompt: PromptEntry) -> set[str]:
    """Samples whose error is their prompt not rendering: decided here, not by the model, so the same again."""
    return {o.sample_id for o in result.outputs if o.error and o.error.startswith(f"prompt {prompt.name!r}")}
