"""A stand-in for a model server, for the tests of the server scripts and of the server choice.

It answers only what those and the demo look at: ``GET /health`` (200, no key needed, as
vLLM does), ``GET /v1/models`` (the served model) and ``POST /v1/chat/completions`` (a fixed
answer, "4", streamed when asked), both behind a Bearer key. In a thread::

    with FakeModelServer(model="other-model", key="their-key") as server: ...  # server.base_url

or as a process that takes vLLM's flags (``--port``, ``--api-key``, ``--served-model-name``;
the rest ignored) and listens only after ``GENESIS_FAKE_START_DELAY`` seconds, as vLLM
does while it loads: the tests run it as ``python -m vllm.entrypoints.openai.api_server``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

USAGE = {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}


def _handler(model: str, key: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                self._answer(200, b"")
            elif self.path == "/v1/models":
                if self.headers.get("Authorization") != f"Bearer {key}":
                    self._answer(401, b'{"error": "Unauthorized"}')
                else:
                    self._answer(200, json.dumps({"object": "list", "data": [{"id": model, "object": "model"}]}).encode())
            else:
                self._answer(404, b'{"detail": "Not Found"}')

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if self.path != "/v1/chat/completions":
                self._answer(404, b'{"detail": "Not Found"}')
            elif self.headers.get("Authorization") != f"Bearer {key}":
                self._answer(401, b'{"error": "Unauthorized"}')
            elif request.get("model") != model:
                self._answer(404, json.dumps({"error": {"message": f"The model `{request.get('model')}` does not exist."}}).encode())
            elif request.get("stream"):
                chunks: list[dict[str, Any]] = [
                    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "4"}, "finish_reason": None}]},
                    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                    {"choices": [], "usage": USAGE},
                ]
                frames = [f"data: {json.dumps({'id': 'fake', 'object': 'chat.completion.chunk', 'model': model, **c})}\n\n" for c in chunks]
                self._answer(200, ("".join(frames) + "data: [DONE]\n\n").encode(), "text/event-stream")
            else:
                message = {"role": "assistant", "content": "4"}
                answer = {
                    "id": "fake",
                    "object": "chat.completion",
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": USAGE,
                }
                self._answer(200, json.dumps(answer).encode())

        def _answer(self, status: int, body: bytes, media: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", media)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


class FakeModelServer:
    """Serves ``model`` to ``key`` on 127.0.0.1 (``port`` 0: a free one) in a thread."""

    def __init__(self, *, model: str = "tiny-model", key: str = "test-key", port: int = 0) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(model, key))
        self.port = int(self._server.server_address[1])
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeModelServer:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", default="")
    parser.add_argument("--served-model-name", default="tiny-model")
    options, _ = parser.parse_known_args(argv)
    time.sleep(float(os.environ.get("GENESIS_FAKE_START_DELAY", "0")))
    server = ThreadingHTTPServer(("127.0.0.1", options.port), _handler(options.served_model_name, options.api_key))
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
