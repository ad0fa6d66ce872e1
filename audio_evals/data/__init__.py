"""Datasets: materialise a registry source into a manifest, then decode and shard the audio."""

from audio_evals.data.materialise import DatasetRef, check_reachable, check_source, materialise
from audio_evals.data.prepare import PreparedRef, prepare

__all__ = ["DatasetRef", "PreparedRef", "check_reachable", "check_source", "materialise", "prepare"]
