"""Read, decode, validate, downmix and resample one clip, in bounded time and memory.

Every way a clip can be unusable raises ``AudioError`` with a reason a person can act on. Special
files (a FIFO, a device) are refused before they are opened; sizes, sample rates and durations are
checked from the file and its header before anything is decoded.
"""

from __future__ import annotations

import io
import os
import stat

import numpy as np
import soundfile as sf
import soxr

from audio_evals import storage

#: The duration cap (s) when neither the command line nor the backend sets one.
DEFAULT_MAX_DURATION_S = 1800.0
#: Sample rates a recording can have; a header outside them is broken or hostile.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 768_000
#: The most memory one decoded clip (all channels, float32) may take, and the largest file read.
MAX_DECODED_BYTES = 1 << 30
MAX_FILE_BYTES = 2 << 30


class AudioError(ValueError):
    """The clip cannot be used; the message says why (missing, unreadable, empty, ...)."""


def _file_kind(mode: int) -> str:
    """What a file that is not a regular one is, for messages."""
    kinds = {stat.S_ISFIFO: "a FIFO", stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device",
             stat.S_ISSOCK: "a socket", stat.S_ISDIR: "a directory"}
    return next((name for test, name in kinds.items() if test(mode)), "not a regular file")


def read_clip(location: str) -> bytes:
    """The encoded bytes of a clip, local or remote; a local one must be a regular file.

    The file type is checked before opening (opening a FIFO blocks, a device may act); the open
    never blocks and the read is bounded, so a file swapped after the check costs nothing either.
    """
    if storage.is_remote(location):
        try:
            fs, path = storage.filesystem(location)
            if (fs.size(path) or 0) > MAX_FILE_BYTES:
                raise AudioError(f"audio file larger than {MAX_FILE_BYTES >> 20} MB, refused unread")
            return storage.read_bytes(location)
        except FileNotFoundError:
            raise AudioError(f"audio file not found: {location}") from None
        except OSError as e:
            raise AudioError(f"audio file cannot be read: {e}") from None
    try:
        mode = os.stat(location).st_mode
    except FileNotFoundError:
        what = "is a dangling symlink" if os.path.islink(location) else "not found"
        raise AudioError(f"audio file {what}: {location}") from None
    except OSError as e:
        raise AudioError(f"audio file cannot be read: {e}") from None
    if not stat.S_ISREG(mode):
        raise AudioError(f"audio {location} is {_file_kind(mode)}, not a regular file (refused unopened)")
    try:
        with os.fdopen(os.open(location, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            size = os.fstat(f.fileno()).st_size  # of the file opened, so a sparse or swapped one is never read
            if size > MAX_FILE_BYTES:
                raise AudioError(f"audio file larger than {MAX_FILE_BYTES >> 20} MB ({size >> 20} MB), refused unread")
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise AudioError(f"audio file cannot be read: {e}") from None
    if len(data) > MAX_FILE_BYTES:
        raise AudioError(f"audio file larger than {MAX_FILE_BYTES >> 20} MB")
    return data


def decode(data: bytes, target_rate: int, max_duration_s: float | None = None) -> np.ndarray:
    """Mono float32 samples at ``target_rate`` from encoded audio bytes (WAV, FLAC, OGG, MP3)."""
    if not data:
        raise AudioError("empty file (0 bytes)")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate = f.samplerate
            if f.frames == 0:
                raise AudioError("zero duration (no audio frames)")
            # Checked from the header before decoding, so no clip fills memory or resamples for long.
            if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
                raise AudioError(f"sample rate {rate} Hz is not plausible audio "
                                 f"({MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz)")
            if max_duration_s is not None and f.frames / rate > max_duration_s:
                raise AudioError(f"duration {f.frames / rate:.1f} s exceeds max_duration_s={max_duration_s:g}")
            needed = f.frames * f.channels * 4
            if needed > MAX_DECODED_BYTES:
                raise AudioError(f"decoding needs {needed >> 20} MB ({f.channels} channels, {f.frames / rate:.0f} s), "
                                 f"over the {MAX_DECODED_BYTES >> 20} MB limit")
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
