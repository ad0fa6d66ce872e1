"""Test-only model backends, registered with AUDIO_EVALS_EXTRA_BACKENDS (see tests/conftest.py)."""
