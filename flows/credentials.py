"""Object-store credentials from a Prefect ``Secret`` block, for machines without AWS variables.

``AUDIO_EVALS_AWS_SECRET_BLOCK`` names a ``Secret`` block whose value is a JSON object with
``aws_access_key_id`` and ``aws_secret_access_key`` (optionally ``aws_session_token``,
``endpoint_url``, ``region_name``). They are exported to this process's environment, where s3fs
and worker processes started afterwards read them; they are never written anywhere. Variables
already set win: the environment is the explicit choice.
"""

from __future__ import annotations

import json
import os

BLOCK_ENV = "AUDIO_EVALS_AWS_SECRET_BLOCK"
VARIABLES = {
    "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "aws_session_token": "AWS_SESSION_TOKEN",
    "endpoint_url": "AWS_ENDPOINT_URL",
    "region_name": "AWS_DEFAULT_REGION",
}


def apply_store_credentials() -> list[str]:
    """Export the block's credentials (when ``AUDIO_EVALS_AWS_SECRET_BLOCK`` is set); returns the variable names set."""
    name = os.environ.get(BLOCK_ENV)
    if not name:
        return []
    from prefect.blocks.system import Secret

    value = Secret.load(name).get()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = None
    unknown = sorted(set(value) - set(VARIABLES)) if isinstance(value, dict) else []
    if not isinstance(value, dict) or unknown:
        raise ValueError(f"Secret block {name!r} ({BLOCK_ENV}) must hold a JSON object with keys among "
                         f"{', '.join(VARIABLES)}" + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
    applied = []
    for key, variable in VARIABLES.items():
        if value.get(key) and not os.environ.get(variable):
            os.environ[variable] = str(value[key])
            applied.append(variable)
    return applied
