"""Datasets: materialise a registry source into a manifest, then decode and shard the audio."""

from audio_evals.data.materialise import DatasetRef, materialise
from audio_evals.data.prepare import PreparedRef, prepare

__all__ = ["DatasetRef", "PreparedRef", "materialise", "prepare"]
