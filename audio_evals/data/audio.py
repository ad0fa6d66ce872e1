"""Decode, validate, downmix and resample one clip.

Every way a clip can be unusable raises ``AudioError`` with a reason a person can act on.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
import soxr


class AudioError(ValueError):
    """The clip cannot be used; the message says why (missing, unreadable, empty, ...)."""


def decode(data: bytes, target_rate: int, max_duration_s: float | None = None) -> np.ndarray:
    """Mono float32 samples at ``target_rate`` from encoded audio bytes (WAV, FLAC, OGG, MP3)."""
    if not data:
        raise AudioError("empty file (0 bytes)")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate = f.samplerate
            if f.frames == 0:
                raise AudioError("zero duration (no audio frames)")
            # Checked before decoding, so an over-long file never fills memory.
            if max_duration_s is not None and f.frames / rate > max_duration_s:
                raise AudioError(f"duration {f.frames / rate:.1f} s exceeds max_duration_s={max_duration_s:g}")
            samples = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        # libsndfile's own reason ("Format not recognised"), without the in-memory buffer's repr.
        raise AudioError(f"unreadable audio: {getattr(e, 'error_string', None) or e}") from None
    if samples.shape[0] == 0:
        raise AudioError("zero duration (no audio frames)")
    if not np.isfinite(samples).all():
        raise AudioError("non-finite samples (NaN or Inf) in the audio")
    mono = samples.mean(axis=1)
    if rate != target_rate:
        mono = soxr.resample(mono, rate, target_rate, quality="HQ").astype(np.float32)
    return mono


def encode_wav(samples: np.ndarray, rate: int) -> bytes:
    """32-bit float WAV: lossless for the decoded samples, readable by every backend."""
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()
