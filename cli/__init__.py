"""The ``audio-evals`` command line: the top floor, above deployments, flows, tasks and the library.

``audio-evals run --dataset D --model M`` and the reference tool's form
``python audio_evals/main.py --dataset D --model M [--prompt P]`` are the same command.
"""

import os

# Before Prefect is imported: readable console output unless --verbose, no analytics.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_TASK_RUNS_LEVEL", "WARNING")
