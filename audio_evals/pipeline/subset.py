"""A seeded random subset of a downloaded dataset: the reference tool's ``--rand N``.

The reference draws ``random.sample(rows, N)`` after ``--limit``, unseeded; here the draw is seeded
(``--seed``, default 0) and recorded, so the same command scores the same samples again. Rows
keep their dataset order, and a row that failed to download is drawn like any other, so the
subset's failures are counted as the whole dataset's are.
"""

from __future__ import annotations

import random
from dataclasses import replace

from audio_evals import storage
from audio_evals.cache import write_jsonl
from audio_evals.pipeline.download import dataset_record
from audio_evals.records import DatasetRef


def draw_subset(dataset: DatasetRef, n: int, seed: int, cache_dir: str) -> DatasetRef:
    """``n`` rows of ``dataset`` drawn with ``random.Random(seed)`` (all of them when it has fewer).

    Written beside the dataset's own cache folder, keyed by its fingerprint, ``n`` and ``seed``;
    memory holds the drawn positions only.
    """
    if n < 1:
        raise ValueError(f"--rand takes a positive number of samples, not {n}")
    fingerprint = storage.stable_hash([dataset.fingerprint, "rand", n, seed])
    folder = storage.join(cache_dir, "datasets", f"rand-{fingerprint[:24]}")
    meta_path = storage.join(folder, "dataset.json")
    cached = dataset_record(meta_path)  # checked as a downloaded dataset's record is
    if cached is not None:
        return cached
    total = dataset.n_samples + dataset.n_failed
    drawn = set(random.Random(seed).sample(range(total), min(n, total)))
    samples = (row for i, row in enumerate(storage.read_jsonl(dataset.samples_path)) if i in drawn)
    failures = (row for i, row in enumerate(storage.read_jsonl(dataset.failures_path), dataset.n_samples)
                if i in drawn)
    ref = replace(dataset, samples_path=storage.join(folder, "samples.jsonl"),
                  failures_path=storage.join(folder, "failures.jsonl"), fingerprint=fingerprint)
    samples_record, failures_record = write_jsonl(ref.samples_path, samples), write_jsonl(ref.failures_path, failures)
    ref = replace(ref, n_samples=samples_record.rows or 0, n_failed=failures_record.rows or 0,
                  samples=samples_record, failures=failures_record)
    storage.write_json(meta_path, ref.to_dict())
    return ref
