"""A stand-in for ``vllm serve`` (stdlib only), started by tests as ``python fake_vllm_server.py serve MODEL ...``.

It answers the routes the served backend uses: /health, /v1/models, /v1/chat/completions (a
reply wrapped in think tags, naming the model and how many audio parts came) and
/v1/audio/transcriptions. Like vLLM it forks a worker into its process group, whose pid it logs,
so a test can check that stopping the server stops the workers too.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("verb", choices=["serve"])
    parser.add_argument("model")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--startup-delay", type=float, default=0.0)
    args, unknown = parser.parse_known_args()

    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    print(f"fake vllm: serving {args.model} on {args.host}:{args.port}; worker pid {worker.pid}; "
          f"other flags {unknown}", flush=True)
    time.sleep(args.startup_delay)

    class Handler(BaseHTTPRequestHandler):
        def _send(self, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == "/health":
                self._send({})
            elif self.path == "/v1/models":
                self._send({"data": [{"id": args.model}]})
            else:
                self.send_error(404)

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path == "/v1/chat/completions":
                request = json.loads(body)
                parts = [p for m in request["messages"] if isinstance(m["content"], list) for p in m["content"]]
                audio = sum(p.get("type") == "input_audio" for p in parts)
                reply = f"<think>thinking about it</think>{request['model']} heard {audio} audio part(s)"
                self._send({"choices": [{"message": {"role": "assistant", "content": reply}}]})
            elif self.path == "/v1/audio/transcriptions":
                self._send({"text": f"transcript of a {'wav' if b'RIFF' in body else 'non-wav'} upload"})
            else:
                self.send_error(404)

        def log_message(self, *a: object) -> None:
            pass

    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
