"""Datasets: download a registry source into a cached manifest, then preprocess (decode, shard) the audio."""

from audio_evals.data.download import DatasetRef, check_reachable, check_source, download
from audio_evals.data.preprocess import PreparedRef, preprocess

__all__ = ["DatasetRef", "PreparedRef", "check_reachable", "check_source", "download", "preprocess"]
