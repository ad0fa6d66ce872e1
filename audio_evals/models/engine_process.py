"""A backend's weights in a child process of their own: ``Backend(own_process=True)``.

Why: the process that orchestrates a run (Prefect, its client, the report code) then never holds
the model. Its peak memory is that of the orchestration alone; the child's is that of the engine
alone, as in a bare inference loop. A crash inside the engine (a segfault in CTranslate2, the
kernel's OOM killer) fails the shard it was running with a message, instead of ending the run.

The parent (``audio_evals.models.base.EngineProcess``) starts ``python -m audio_evals.models.engine_process`` and speaks
JSON lines to it: the backend's plugin name and arguments first (resolved by ``load_plugin``, as
in the parent, so no data ever names code), then one ``generate`` call per line. The child loads
the weights before it says it is ready, answers in order, and sends the exceptions of
``audio_evals.models.base`` back by name, so the parent raises the same kind (a retried
``TransientBackendError``, a ``ShardIncomplete`` with the answers it carries). The child ends
when its stdin closes: when the parent closes it, and also when the parent dies in any way,
``kill -9`` included. It ignores Ctrl-C, which the parent handles for the whole run.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sys
import threading
from typing import IO, Any

from audio_evals.memory import peak_rss_mb
from audio_evals.models.base import Backend, engine_error, engine_request


def _lifeline(lines: IO[str], inbox: "queue.Queue[str]") -> None:
    """Hand the parent's lines over; when the parent's end closes (it stopped or died), end at once,
    even in the middle of a generate call."""
    for line in lines:
        inbox.put(line)
    os._exit(0)


def _serve() -> None:
    """The child: build the backend, load it, then answer each generate call with a line."""
    from audio_evals.plugins import load_plugin

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # what libraries print goes to stderr, not into replies
    inbox: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lifeline, args=(sys.stdin, inbox), daemon=True).start()

    def answer(call: Any) -> bool:
        try:
            reply: dict[str, Any] = {"result": call()}
        except Exception as e:  # sent back by kind; the parent raises it
            reply = {"error": engine_error(e)}
        reply["peak_rss_mb"] = peak_rss_mb()
        replies.write(json.dumps(reply) + "\n")
        replies.flush()
        return "result" in reply

    setup = json.loads(inbox.get())
    built: list[Backend] = []

    def build() -> None:
        module = load_plugin("audio_evals.models", setup["plugin"], "backend")
        built.append(module.BACKEND(**setup["arguments"]))
        built[0].loaded()

    if not answer(build):
        return  # the parent raises why
    backend = built[0]
    while True:
        requests = [engine_request(r) for r in json.loads(inbox.get())["generate"]]
        answer(lambda: [o.to_dict() for o in backend.generate(requests)])


if __name__ == "__main__":
    _serve()
