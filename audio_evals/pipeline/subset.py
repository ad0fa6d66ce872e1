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
    if storage.exists(meta_path):
        return DatasetRef(**storage.read_json(meta_path))
    total = dataset.n_samples + dataset.n_failed
    drawn = set(random.Random(seed).sample(range(total), min(n, total)))
    samples = (row for i, row in enumerate(storage.read_jsonl(dataset.samples_path)) if i in drawn)
    failures = (row for i, row in enumerate(storage.read_jsonl(dataset.failures_path), dataset.n_samples)
                if i in drawn)
    ref = replace(dataset, samples_path=storage.join(folder, "samples.jsonl"),
                  failures_path=storage.join(folder, "failures.jsonl"), fingerprint=fingerprint)
    ref = replace(ref, n_samples=storage.write_jsonl(ref.samples_path, samples),
                  n_failed=storage.write_jsonl(ref.failures_path, failures))
    storage.write_json(meta_path, ref.to_dict())
    return ref
