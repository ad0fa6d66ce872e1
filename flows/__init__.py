"""Prefect flows composing the stage tasks: ``evaluate`` (one model × dataset) and ``suite``."""

import os

# Prefect reads settings at import: keep analytics off unless a user asked for them.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# The ephemeral API server migrates a new database on first start; on a busy 2-core machine
# that can take longer than Prefect's default wait.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
