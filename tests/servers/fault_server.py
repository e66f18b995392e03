"""A local HTTP/1.1 server that imitates faults real LLM servers won't produce on demand.

Standard library only. In tests::

    with FaultServer() as server:
        client = Client(base_url=server.base_url)      # "http://127.0.0.1:PORT/v1"
        ...                                            # model="<scenario>"
        server.requests[-1]["headers"]["authorization"]

By hand::

    python tests/servers/fault_server.py --port 8100
    curl -s localhost:8100/v1/chat/completions -d '{"model":"crlf","stream":true,"messages":[]}'

Routes: ``GET /health`` -> ``{"status":"ok"}``; ``GET /v1/models`` lists the scenarios;
``POST /v1/chat/completions`` behaves as the scenario named by the body's ``"model"``
(see ``SCENARIOS``). Unknown model -> vLLM's 404. No API key is checked.
Under ``/echo-auth`` (base URL ``.../echo-auth/v1``) errors repeat the request's
Authorization header back: ``/health`` and ``/v1/models`` answer 401 with it, and
the chat models in ``ECHO_SCENARIOS`` put it in a 401/403 body, an HTML page, or an
in-stream error.

HTTP details: every request is answered with HTTP/1.1; fixed bodies carry
Content-Length, streams (``"stream": true``) use chunked transfer-encoding with one
HTTP chunk per SSE event. Connections are kept alive unless the client sends
``Connection: close`` (or speaks HTTP/1.0), or the scenario breaks the connection.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
from typing import Any

__all__ = ["SCENARIOS", "FaultServer"]

SCENARIOS: dict[str, str] = {
    "ok": "a normal answer 'Hello world' (stream: role delta, 'Hello', ' world', stop, usage if asked)",
    "drop-mid-stream": "200 stream; 2 content chunks, then the TCP connection closes mid-chunk (FIN)",
    "reset-mid-stream": "like drop-mid-stream but the connection is reset (RST)",
    "malformed-chunk": "one good chunk, then an event with broken JSON, then [DONE]",
    "serde-422": "422 text/plain serde error (inferrs/axum) for a content-part array",
    "finish-error": "200, content 'Error: engine failed: out of memory', finish_reason 'error'",
    "stream-error-object": '200 stream: one content chunk, then data: {"error": {...}}, then [DONE]',
    "slow": "waits 30 s (FaultServer.slow_seconds) before sending anything",
    "huge-event": "200 stream with ONE data: event whose content delta is 64 MiB of 'a'",
    "unauthorized": '401 {"error":"Unauthorized"} (vLLM\'s shape)',
    "overloaded": "503 text/plain 'Service Unavailable'",
    "crlf": "the ok stream with \\r\\n line endings",
    "cr": "the ok stream with \\r line endings",
    "reasoning": "deltas with reasoning_content, then content; finish stop",
    "tool-stream": "one get_weather tool call built across deltas; finish tool_calls",
    "strict-inferrs": "422/400 for developer role, content arrays, tools, stream_options without stream",
    "llama-cpp-python": "500 (not 4xx) for content-part arrays and the developer role, as llama-cpp-python's server answers",
    "breaks-after-first": "the first request of a connection's life answers ok, every later one 500 (a server falling over)",
}

# ---- retries, cooldown and held usage (session) ----------------------------------------
SCENARIOS.update(
    {
        "loading": '503 llama.cpp\'s {"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}',
        "warming-up": "503 'Loading model' (as loading) to the first FaultServer.warmup_failures (2) requests with the same messages, then ok",
        "rate-limited": "429 with Retry-After: 1 and an OpenAI-shaped rate_limit_error body",
        "usage-then-error": '200 stream: an empty delta, a usage chunk (always), then data: {"error": ...}',
        "reasoning-only": "200: reasoning deltas only, no content; finish stop",
    }
)
# ---- end of the session block ------------------------------------------------------------

# echo-auth block (see FaultServer._echo_route): routes under ECHO_PREFIX echo the credentials.
ECHO_PREFIX = "/echo-auth"
ECHO_SCENARIOS: dict[str, str] = {
    "echo-401": "401 OpenAI-shaped error repeating the Authorization header and the bare key",
    "echo-403": "403 FastAPI {detail} repeating the Authorization header, the bare key, and an x-api-key echo",
    "echo-html": "502 HTML error page dumping every request header, a link with the key URL-encoded, the bare key",
    "echo-stream": "200 stream: an empty delta, then an in-stream error object repeating the Authorization header",
    "echo-strict": "a plain 'Say hi' answers like ok; any other request (a models-probe variant) is a 400 repeating the header",
}


def _bare_key(auth: str) -> str:
    return auth.partition(" ")[2] or auth


def _echo_text(auth: str) -> str:
    return f"Incorrect API key provided: {_bare_key(auth)}. You sent 'Authorization: {auth}'."


# --- stream parser scenarios: hostile chunks and answers with several choices ---
SCENARIOS.update(
    {
        "deep-json": "200 stream: one content chunk, then a chunk whose skipped field nests 100,000 arrays deep, then [DONE]",
        "bad-utf8": "200 stream: one content chunk, then a content string holding invalid UTF-8 bytes, then [DONE]",
        "two-choices": "200 stream answering n=2: choices 0 ('Hello') and 1 ('Bonjour') interleaved, each finishing",
        "parallel-tools-index0": "Ollama's parallel tool calls: two calls, both index 0, told apart by their ids",
    }
)
DEEP_JSON = b"[" * 100_000 + b"]" * 100_000

# POST /v1/embeddings, by model (any other model: 404 as vLLM says it). "ok" answers as llama.cpp
# does (tools/server/server-common.cpp format_embeddings_response_oaicompat): one 4-number vector per input.
EMBEDDING_SCENARIOS: dict[str, str] = {
    "ok": "200: one vector [index, 0.5, -0.25, 1] per input, usage",
    "embed-reversed": "200: the vectors of ok, listed last index first",
    "embed-not-json": "200 application/json whose body is an HTML page",
    "embed-short": "200: one vector fewer than inputs",
    "embed-ragged": "200: vector 1 one number shorter than vector 0",
    "embed-base64": "200: each embedding a base64 string, not numbers",
    "embed-overflow": "200: a number (1e999) beyond float range",
    "embed-error-200": '200 {"error": {...}} instead of data',
    "embed-huge": "200: a valid answer padded past 2 MiB with spaces",
    "embed-truncated": "200: the Content-Length promises more than is sent, then the connection closes",
}

SERDE_422 = (
    "Failed to deserialize the JSON body into the target type: messages[{i}].content: "
    "invalid type: sequence, expected a string at line 1 column 97"
)
DEVELOPER_422 = (
    "Failed to deserialize the JSON body into the target type: messages[{i}].role: "
    "unknown variant `developer`, expected one of `system`, `user`, `assistant`, `tool` "
    "at line 1 column 30"
)
HUGE_EVENT_BYTES = 64 * 1024 * 1024
_PIECE = b"a" * (1024 * 1024)
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_MAX_BODY = 64 * 1024 * 1024


class _Close(Exception):
    """Raised by a handler to end the connection without further writes."""


class FaultServer:
    """The fault server, run on its own event loop in a background thread.

    ``FaultServer(port=0)`` picks a free port. Leaving the ``with`` block (or calling
    ``close()``) stops it at once, cancelling pending (e.g. ``slow``) requests.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, slow_seconds: float = 30.0):
        self.host = host
        self.port = port
        self.slow_seconds = slow_seconds
        self.requests: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ids = 0
        self.warmup_failures = 2  # session block: "warming-up" answers 503 this often per conversation
        self.warmup_seen: dict[str, int] = {}

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> FaultServer:
        self._thread = threading.Thread(target=self._run, name="fault-server", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise RuntimeError(f"fault server failed to start: {self._error}") from self._error
        if not self._ready.is_set():
            raise RuntimeError("fault server did not start within 10 s")
        return self

    def close(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            if self._thread.is_alive():
                self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(5)
        self._thread = None

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def serve_forever(self) -> None:
        """Run in the calling thread until interrupted (for the command line)."""
        if self._thread is None:
            self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.close()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._on_connection, self.host, self.port, limit=1024 * 1024, reuse_address=True)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=1)
            try:
                await asyncio.wait_for(server.wait_closed(), 1)
            except TimeoutError:
                pass
            await asyncio.sleep(0)  # let the transports' close callbacks run

    # -- HTTP/1.1 ----------------------------------------------------------------------

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                keep_alive = await self._one_request(reader, writer)
                if not keep_alive:
                    break
        except (_Close, asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            self._tasks.discard(task)
            if not writer.is_closing():
                writer.close()

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        line = await reader.readline()
        if not line:
            return False  # client closed between requests
        try:
            method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ")
        except ValueError:
            await _send(writer, 400, b"bad request line\n", "text/plain", keep_alive=False)
            return False
        headers: dict[str, str] = {}
        while True:
            hline = await reader.readline()
            if hline in (b"\r\n", b"\n", b""):
                break
            name, _, value = hline.decode("latin-1").partition(":")
            key, value = name.strip().lower(), value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value

        connection = headers.get("connection", "").lower()
        keep_alive = ("close" not in connection) if version == "HTTP/1.1" else ("keep-alive" in connection)

        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await _read_chunked(reader)
        else:
            length = int(headers.get("content-length", "0") or 0)
            if length > _MAX_BODY:
                await _send(writer, 413, b"too large\n", "text/plain", keep_alive=False)
                return False
            body = await reader.readexactly(length) if length else b""

        self.requests.append({"method": method, "path": target, "headers": headers, "body": body})
        await self._route(method, target.split("?", 1)[0], body, writer, keep_alive)
        return keep_alive

    async def _route(self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter, keep_alive: bool) -> None:
        if path.startswith(ECHO_PREFIX):  # read before any await: requests[-1] is this request
            return await self._echo_route(method, path[len(ECHO_PREFIX) :], body, writer, keep_alive, self.requests[-1]["headers"])
        if path == "/health":
            if method != "GET":
                return await _send_json(writer, 405, {"detail": "Method Not Allowed"}, keep_alive)
            return await _send_json(writer, 200, {"status": "ok"}, keep_alive)
        if path == "/v1/models":
            if method != "GET":
                return await _send_json(writer, 405, {"detail": "Method Not Allowed"}, keep_alive)
            data = [{"id": name, "object": "model", "created": 0, "owned_by": "genesis-fault-server"} for name in SCENARIOS]
            return await _send_json(writer, 200, {"object": "list", "data": data}, keep_alive)
        if path == "/v1/embeddings" and method == "POST":
            return await self._embeddings(body, writer, keep_alive)
        if path == "/v1/chat/completions":
            if method != "POST":
                return await _send_json(writer, 405, {"detail": "Method Not Allowed"}, keep_alive)
            return await self._chat(body, writer, keep_alive)
        return await _send_json(writer, 404, {"detail": "Not Found"}, keep_alive)

    # -- embeddings ----------------------------------------------------------------------

    async def _embeddings(self, raw: bytes, writer: asyncio.StreamWriter, keep_alive: bool) -> None:
        body = json.loads(raw)
        model, inputs = body.get("model"), body.get("input")
        if model not in EMBEDDING_SCENARIOS:
            err = _error(f"The model `{model}` does not exist.", "NotFoundError", 404, param="model")
            return await _send_json(writer, 404, err, keep_alive)
        count = len(inputs) if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int) else 1
        data: list[dict[str, Any]] = [{"index": i, "object": "embedding", "embedding": [float(i), 0.5, -0.25, 1.0]} for i in range(count)]
        answer: dict[str, Any] = {"model": model, "object": "list", "usage": {"prompt_tokens": count, "total_tokens": count}, "data": data}
        if model == "embed-reversed":
            answer["data"] = data[::-1]
        elif model == "embed-short":
            answer["data"] = data[:-1]
        elif model == "embed-ragged":
            data[-1]["embedding"] = data[-1]["embedding"][:-1]
        elif model == "embed-base64":
            for item in data:
                item["embedding"] = "AAAAPwAAgL4AAIA/"
        elif model == "embed-error-200":
            answer = {"error": {"message": "embedding failed", "type": "server_error", "code": 500}}
        payload = json.dumps(answer).encode()
        if model == "embed-not-json":
            payload = b"<html><body>502 Bad Gateway</body></html>"
        elif model == "embed-overflow":
            payload = payload.replace(b"0.5", b"1e999", 1)
        elif model == "embed-huge":
            payload = payload[:-1] + b" " * (2 * 1024 * 1024) + b"}"
        if model == "embed-truncated":
            writer.write(_head(200, "application/json", len(payload) + 100, keep_alive) + payload)
            await writer.drain()
            raise _Close
        await _send(writer, 200, payload, "application/json", keep_alive)

    # -- chat completions --------------------------------------------------------------

    async def _chat(self, raw: bytes, writer: asyncio.StreamWriter, keep_alive: bool) -> None:
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("body is not an object")
        except ValueError as exc:
            return await _send_json(writer, 400, _error(f"Invalid JSON body: {exc}", "BadRequestError", 400), keep_alive)
        model = body.get("model")
        if model not in SCENARIOS:
            err = _error(f"The model `{model}` does not exist.", "NotFoundError", 404, param="model")
            return await _send_json(writer, 404, err, keep_alive)
        self._ids += 1
        chat = _Chat(model, f"chatcmpl-fault-{self._ids}", body, writer, keep_alive)
        handler = getattr(self, "_scenario_" + model.replace("-", "_"))
        await handler(chat)

    async def _scenario_ok(self, chat: _Chat, *, sep: bytes = b"\n", usage: bool = True) -> None:
        if not chat.stream:
            return await chat.completion({"role": "assistant", "content": "Hello world"}, "stop", usage=usage)
        await chat.begin_stream()
        await chat.chunk({"role": "assistant", "content": ""}, sep=sep)
        await chat.chunk({"content": "Hello"}, sep=sep)
        await chat.chunk({"content": " world"}, sep=sep)
        await chat.chunk({}, "stop", sep=sep)
        if usage:
            await chat.usage_chunk(sep=sep)
        await chat.done(sep=sep)

    async def _scenario_crlf(self, chat: _Chat) -> None:
        await self._scenario_ok(chat, sep=b"\r\n")

    async def _scenario_cr(self, chat: _Chat) -> None:
        await self._scenario_ok(chat, sep=b"\r")

    async def _drop(self, chat: _Chat, *, reset: bool) -> None:
        first, second = {"role": "assistant", "content": "Hello"}, {"content": " world"}
        if not chat.stream:
            # Content-Length promises the whole answer; half of it arrives.
            payload = json.dumps(chat.completion_body({"role": "assistant", "content": "Hello world"}, "stop")).encode()
            chat.writer.write(_head(200, "application/json", len(payload), keep_alive=True) + payload[: len(payload) // 2])
            await chat.writer.drain()
        else:
            await chat.begin_stream()
            await chat.chunk(first)
            await chat.chunk(second)
            # Announce the next event's full chunk, send half of it, and go away.
            event = chat.event_bytes(chat.chunk_body({"content": "!"}))
            chat.writer.write(b"%x\r\n" % len(event) + event[: len(event) // 2])
            await chat.writer.drain()
        await asyncio.sleep(0.05)  # let the client read what was sent before the connection dies
        if reset:
            sock = chat.writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            chat.writer.transport.abort()
        else:
            chat.writer.close()
        raise _Close

    async def _scenario_drop_mid_stream(self, chat: _Chat) -> None:
        await self._drop(chat, reset=False)

    async def _scenario_reset_mid_stream(self, chat: _Chat) -> None:
        await self._drop(chat, reset=True)

    async def _scenario_malformed_chunk(self, chat: _Chat) -> None:
        if not chat.stream:
            return await chat.send(200, b'{"choices": [{"message": {"content": "x"', "application/json")
        await chat.begin_stream()
        await chat.chunk({"role": "assistant", "content": "Hello"})
        await chat.raw_event(b'data: {"choices": [{"delta": {"content": "x"\n\n')
        await chat.done()

    async def _scenario_serde_422(self, chat: _Chat) -> None:
        index = next((i for i, m in enumerate(chat.messages) if isinstance(m, dict) and isinstance(m.get("content"), list)), 1)
        await chat.send(422, SERDE_422.format(i=index).encode(), "text/plain; charset=utf-8")

    async def _scenario_finish_error(self, chat: _Chat) -> None:
        text = "Error: engine failed: out of memory"
        if not chat.stream:
            return await chat.completion({"role": "assistant", "content": text}, "error")
        await chat.begin_stream()
        await chat.chunk({"role": "assistant", "content": ""})
        await chat.chunk({"content": text})
        await chat.chunk({}, "error")
        await chat.usage_chunk()
        await chat.done()

    async def _scenario_stream_error_object(self, chat: _Chat) -> None:
        error = {"error": {"message": "boom", "type": "InternalServerError", "code": 500}}
        if not chat.stream:
            return await chat.send(200, json.dumps(error).encode(), "application/json")
        await chat.begin_stream()
        await chat.chunk({"role": "assistant", "content": "Hello"})
        await chat.raw_event(b"data: " + json.dumps(error).encode() + b"\n\n")
        await chat.done()

    async def _scenario_slow(self, chat: _Chat) -> None:
        await asyncio.sleep(self.slow_seconds)  # cancelled by close()
        await self._scenario_ok(chat)

    async def _scenario_huge_event(self, chat: _Chat) -> None:
        if not chat.stream:
            head, tail = _split_around(chat.completion_body({"role": "assistant", "content": "@"}, "stop"))
            chat.writer.write(_head(200, "application/json", len(head) + HUGE_EVENT_BYTES + len(tail), chat.keep_alive) + head)
            await _write_huge(chat.writer, HUGE_EVENT_BYTES, chunked=False)
            chat.writer.write(tail)
            return await chat.writer.drain()
        await chat.begin_stream()
        head, tail = _split_around(chat.chunk_body({"role": "assistant", "content": "@"}))
        # One SSE event, written as many HTTP chunks.
        chat.writer.write(_chunk(b"data: " + head))
        await _write_huge(chat.writer, HUGE_EVENT_BYTES, chunked=True)
        chat.writer.write(_chunk(tail + b"\n\n"))
        await chat.chunk({}, "stop")
        await chat.usage_chunk()
        await chat.done()

    async def _scenario_unauthorized(self, chat: _Chat) -> None:
        await chat.send(401, b'{"error":"Unauthorized"}', "application/json")

    async def _scenario_overloaded(self, chat: _Chat) -> None:
        await chat.send(503, b"Service Unavailable", "text/plain; charset=utf-8")

    async def _scenario_reasoning(self, chat: _Chat) -> None:
        if not chat.stream:
            message = {"role": "assistant", "reasoning_content": "Let me think. The user greets me.", "content": "Hello world"}
            return await chat.completion(message, "stop")
        await chat.begin_stream()
        await chat.chunk({"role": "assistant", "content": ""})
        await chat.chunk({"reasoning_content": "Let me think."})
        await chat.chunk({"reasoning_content": " The user greets me."})
        await chat.chunk({"content": "Hello"})
        await chat.chunk({"content": " world"})
        await chat.chunk({}, "stop")
        await chat.usage_chunk()
        await chat.done()

    async def _scenario_tool_stream(self, chat: _Chat) -> None:
        if not chat.stream:
            call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
            return await chat.completion({"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls")
        await chat.begin_stream()
        await chat.chunk({"role": "assistant", "content": ""})
        await chat.chunk(
            {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}
        )
        await chat.chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]})
        await chat.chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]})
        await chat.chunk({}, "tool_calls")
        await chat.usage_chunk()
        await chat.done()

    async def _scenario_strict_inferrs(self, chat: _Chat) -> None:
        for i, message in enumerate(chat.messages):
            if isinstance(message, dict) and message.get("role") == "developer":
                return await chat.send(422, DEVELOPER_422.format(i=i).encode(), "text/plain; charset=utf-8")
        for i, message in enumerate(chat.messages):
            if isinstance(message, dict) and isinstance(message.get("content"), list):
                return await chat.send(422, SERDE_422.format(i=i).encode(), "text/plain; charset=utf-8")
        if "tools" in chat.body:
            message = '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
            return await chat.send_json(400, _error(message, "BadRequestError", 400))
        if "stream_options" in chat.body and chat.body.get("stream") is not True:
            message = "Stream options can only be defined when `stream=True`."
            return await chat.send_json(400, _error(message, "BadRequestError", 400))
        await self._scenario_ok(chat, usage=False)

    # ==== echo-auth: a server that repeats the credentials it was sent ===========================
    # Under ECHO_PREFIX (base URL http://HOST:PORT/echo-auth/v1) every answer that is an error
    # repeats the request's Authorization header and the bare key after "Bearer " (echo-html: every
    # request header, and the key URL-encoded): /health and /v1/models answer 401, and the chat
    # models named in ECHO_SCENARIOS fail as described there; any other chat model behaves as in
    # SCENARIOS (e.g. "ok"), so an echoing model can fall back to a working one.

    async def _echo_route(
        self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter, keep_alive: bool, headers: dict[str, str]
    ) -> None:
        auth = headers.get("authorization", "")
        if path == "/health":
            text = f"Unauthorized. Authorization: {auth} is not valid (key {_bare_key(auth)})"
            return await _send(writer, 401, text.encode(), "text/plain; charset=utf-8", keep_alive)
        if path == "/v1/models":
            return await _send_json(writer, 401, _error(_echo_text(auth), "AuthenticationError", 401), keep_alive)
        if path == "/v1/chat/completions" and method == "POST":
            try:
                model = json.loads(body).get("model")
            except (ValueError, AttributeError):
                model = None
            if model in ECHO_SCENARIOS:
                self._ids += 1
                chat = _Chat(model, f"chatcmpl-echo-{self._ids}", json.loads(body), writer, keep_alive)
                await getattr(self, "_answer_" + model.replace("-", "_"))(chat, headers)
                return
        return await self._route(method, path, body, writer, keep_alive)

    async def _answer_echo_401(self, chat: _Chat, headers: dict[str, str]) -> None:
        auth = headers.get("authorization", "")
        await chat.send_json(401, _error(_echo_text(auth), "AuthenticationError", 401))

    async def _answer_echo_403(self, chat: _Chat, headers: dict[str, str]) -> None:
        auth = headers.get("authorization", "")
        await chat.send_json(403, {"detail": f"Forbidden: {_echo_text(auth)} x-api-key: {_bare_key(auth)}"})

    async def _answer_echo_html(self, chat: _Chat, headers: dict[str, str]) -> None:
        auth = headers.get("authorization", "")
        key = _bare_key(auth)
        dump = "".join(f"{name}: {value}\n" for name, value in headers.items())
        page = (
            f"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>"
            f"<pre>POST /v1/chat/completions\n{dump}</pre>"
            f'<a href="/login?api_key={urllib.parse.quote(key, safe="")}">retry</a> {key}</body></html>'
        )
        await chat.send(502, page.encode(), "text/html; charset=utf-8")

    async def _answer_echo_strict(self, chat: _Chat, headers: dict[str, str]) -> None:
        auth = headers.get("authorization", "")
        plain = chat.messages == [{"role": "user", "content": "Say hi"}] and set(chat.body) <= {"model", "messages", "max_tokens", "stream"}
        if plain:
            return await self._scenario_ok(chat)
        await chat.send_json(400, _error(f"unsupported request; {_echo_text(auth)}", "BadRequestError", 400))

    async def _answer_echo_stream(self, chat: _Chat, headers: dict[str, str]) -> None:
        auth = headers.get("authorization", "")
        error = _error(_echo_text(auth), "AuthenticationError", 401)
        if not chat.stream:
            return await chat.send(200, json.dumps(error).encode(), "application/json")
        await chat.begin_stream()
        await chat.chunk({"role": "assistant", "content": ""})
        await chat.raw_event(b"data: " + json.dumps(error).encode() + b"\n\n")
        await chat.done()

    async def _scenario_llama_cpp_python(self, chat: _Chat) -> None:
        for message in chat.messages:
            if isinstance(message, dict) and (message.get("role") == "developer" or isinstance(message.get("content"), list)):
                return await chat.send_json(500, _error("Internal Server Error", "internal_server_error", 500))
        await self._scenario_ok(chat, usage=False)

    async def _scenario_breaks_after_first(self, chat: _Chat) -> None:
        self.broken_calls = getattr(self, "broken_calls", 0) + 1
        if self.broken_calls > 1:
            return await chat.send_json(500, _error("Internal Server Error", "internal_server_error", 500))
        await self._scenario_ok(chat, usage=False)

    # ---- retries, cooldown and held usage (session) ------------------------------------

    async def _scenario_loading(self, chat: _Chat) -> None:
        await chat.send_json(503, {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}})

    async def _scenario_warming_up(self, chat: _Chat) -> None:
        # Counted per conversation, so each test (its own prompt) sees a server that warms up.
        key = json.dumps(chat.messages, sort_keys=True)
        seen = self.warmup_seen.get(key, 0)
        self.warmup_seen[key] = seen + 1
        if seen < self.warmup_failures:
            return await self._scenario_loading(chat)
        await self._scenario_ok(chat)

    async def _scenario_rate_limited(self, chat: _Chat) -> None:
        payload = json.dumps(_error("Rate limit reached, retry later", "rate_limit_error", 429)).encode()
        head = _head(429, "application/json", len(payload), chat.keep_alive)
        chat.writer.write(head.replace(b"\r\n\r\n", b"\r\nretry-after: 1\r\n\r\n", 1) + payload)
        await chat.writer.drain()

    async def _scenario_usage_then_error(self, chat: _Chat) -> None:
        error = {"error": {"message": "engine died", "type": "InternalServerError", "code": 500}}
        if not chat.stream:
            return await chat.send(200, json.dumps(error).encode(), "application/json")
        await chat.begin_stream()
        await chat.chunk({"role": "assistant", "content": ""})
        body = chat.chunk_body({})
        body["choices"], body["usage"] = [], _USAGE
        await chat.raw_event(chat.event_bytes(body))
        await chat.raw_event(b"data: " + json.dumps(error).encode() + b"\n\n")
        await chat.done()

    async def _scenario_reasoning_only(self, chat: _Chat) -> None:
        if not chat.stream:
            return await chat.completion({"role": "assistant", "reasoning_content": "Thinking it over.", "content": None}, "stop")
        await chat.begin_stream()
        await chat.chunk({"role": "assistant", "content": ""})
        await chat.chunk({"reasoning_content": "Thinking"})
        await chat.chunk({"reasoning_content": " it over."})
        await chat.chunk({}, "stop")
        await chat.usage_chunk()
        await chat.done()

    # ---- end of the session block ------------------------------------------------------

    # --- stream parser scenarios ---

    async def _scenario_deep_json(self, chat: _Chat) -> None:
        if not chat.stream:
            return await chat.send(200, b'{"x": ' + DEEP_JSON + b', "choices": []}', "application/json")
        await chat.begin_stream()
        await chat.chunk({"role": "assistant", "content": "Hello"})
        await chat.raw_event(b'data: {"x": ' + DEEP_JSON + b', "choices": []}\n\n')
        await chat.done()

    async def _scenario_bad_utf8(self, chat: _Chat) -> None:
        bad = b'{"choices": [{"index": 0, "delta": {"content": "caf\xc3\x28"}, "finish_reason": null}]}'
        if not chat.stream:
            return await chat.send(200, bad.replace(b"delta", b"message"), "application/json")
        await chat.begin_stream()
        await chat.chunk({"role": "assistant", "content": "Hello"})
        await chat.raw_event(b"data: " + bad + b"\n\n")
        await chat.done()

    async def _scenario_two_choices(self, chat: _Chat) -> None:
        def body(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            chunk = chat.chunk_body(delta, finish_reason)
            chunk["choices"][0]["index"] = index
            return chunk

        if not chat.stream:
            answer = chat.completion_body({"role": "assistant", "content": "Hello"}, "stop")
            answer["choices"].append(
                {"index": 1, "message": {"role": "assistant", "content": "Bonjour"}, "logprobs": None, "finish_reason": "length"}
            )
            return await chat.send_json(200, answer)
        await chat.begin_stream()
        for index, delta, finish in [
            (0, {"role": "assistant", "content": ""}, None),
            (1, {"role": "assistant", "content": ""}, None),
            (0, {"content": "Hel"}, None),
            (1, {"content": "Bon"}, None),
            (0, {"content": "lo"}, None),
            (1, {"content": "jour"}, None),
            (1, {}, "length"),
            (0, {}, "stop"),
        ]:
            await chat.raw_event(chat.event_bytes(body(index, delta, finish)))
        await chat.usage_chunk()
        await chat.done()

    async def _scenario_parallel_tools_index0(self, chat: _Chat) -> None:
        calls = [
            {"index": 0, "id": "call_paris", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"index": 0, "id": "call_rome", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}},
        ]
        if not chat.stream:
            return await chat.completion({"role": "assistant", "content": "", "tool_calls": calls}, "tool_calls")
        await chat.begin_stream()
        await chat.chunk({"role": "assistant", "content": ""})
        for call in calls:
            await chat.chunk({"tool_calls": [call]})
        await chat.chunk({}, "tool_calls")
        await chat.usage_chunk()
        await chat.done()


class _Chat:
    """One chat completion request and the helpers to answer it."""

    def __init__(self, model: str, cid: str, body: dict[str, Any], writer: asyncio.StreamWriter, keep_alive: bool):
        self.model, self.id, self.body, self.writer, self.keep_alive = model, cid, body, writer, keep_alive
        self.created = int(time.time())
        self.stream = body.get("stream") is True
        options = body.get("stream_options")
        self.include_usage = isinstance(options, dict) and options.get("include_usage") is True
        messages = body.get("messages")
        self.messages: list[Any] = messages if isinstance(messages, list) else []

    async def send(self, status: int, payload: bytes, content_type: str) -> None:
        await _send(self.writer, status, payload, content_type, self.keep_alive)

    async def send_json(self, status: int, obj: Any) -> None:
        await _send_json(self.writer, status, obj, self.keep_alive)

    def completion_body(self, message: dict[str, Any], finish_reason: str, *, usage: bool = True) -> dict[str, Any]:
        body = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        }
        if usage:
            body["usage"] = _USAGE
        return body

    async def completion(self, message: dict[str, Any], finish_reason: str, *, usage: bool = True) -> None:
        await self.send_json(200, self.completion_body(message, finish_reason, usage=usage))

    def chunk_body(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }

    @staticmethod
    def event_bytes(obj: Any, sep: bytes = b"\n") -> bytes:
        return b"data: " + json.dumps(obj).encode() + sep + sep

    async def begin_stream(self) -> None:
        self.writer.write(
            b"HTTP/1.1 200 OK\r\n"
            b"content-type: text/event-stream; charset=utf-8\r\n"
            b"cache-control: no-cache\r\n"
            b"transfer-encoding: chunked\r\n"
            + (b"" if self.keep_alive else b"connection: close\r\n")
            + b"server: genesis-fault-server\r\n\r\n"
        )
        await self.writer.drain()

    async def raw_event(self, data: bytes) -> None:
        self.writer.write(_chunk(data))
        await self.writer.drain()

    async def chunk(self, delta: dict[str, Any], finish_reason: str | None = None, *, sep: bytes = b"\n") -> None:
        await self.raw_event(self.event_bytes(self.chunk_body(delta, finish_reason), sep))

    async def usage_chunk(self, *, sep: bytes = b"\n") -> None:
        """The final `"choices": []` chunk, sent only if stream_options.include_usage."""
        if self.include_usage:
            body = self.chunk_body({})
            body["choices"] = []
            body["usage"] = _USAGE
            await self.raw_event(self.event_bytes(body, sep))

    async def done(self, *, sep: bytes = b"\n") -> None:
        self.writer.write(_chunk(b"data: [DONE]" + sep + sep) + b"0\r\n\r\n")
        await self.writer.drain()


_USAGE = {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}


def _error(message: str, type_: str, code: int, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _head(status: int, content_type: str, length: int, keep_alive: bool) -> bytes:
    return (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
        f"content-type: {content_type}\r\n"
        f"content-length: {length}\r\n" + ("" if keep_alive else "connection: close\r\n") + "server: genesis-fault-server\r\n\r\n"
    ).encode("latin-1")


async def _send(writer: asyncio.StreamWriter, status: int, payload: bytes, content_type: str, keep_alive: bool) -> None:
    writer.write(_head(status, content_type, len(payload), keep_alive) + payload)
    await writer.drain()


async def _send_json(writer: asyncio.StreamWriter, status: int, obj: Any, keep_alive: bool) -> None:
    await _send(writer, status, json.dumps(obj).encode(), "application/json", keep_alive)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _split_around(obj: dict[str, Any]) -> tuple[bytes, bytes]:
    """JSON of obj split where the (unique) content "@" is, to splice a huge content in."""
    head, _, tail = json.dumps(obj).encode().partition(b'"content": "@"')
    return head + b'"content": "', b'"' + tail


async def _write_huge(writer: asyncio.StreamWriter, size: int, *, chunked: bool) -> None:
    left = size
    while left:
        piece = _PIECE if left >= len(_PIECE) else _PIECE[:left]
        writer.write(_chunk(piece) if chunked else piece)
        await writer.drain()
        left -= len(piece)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        total += size
        if total > _MAX_BODY:
            raise _Close
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


# ---- transport scenarios: hostile HTTP framing and unbounded answers (backends/http.py, backends/transport.py) ----
#
# Each writes raw bytes, as a hostile server would. Knobs are FaultServer attributes a test may set on its own
# instance: ``trickle_seconds`` (pause between single bytes, default 2 s), ``token_seconds`` (pause between
# endless tokens, default 0.02 s), ``bomb_bytes`` (decoded size of the gzip bomb, default 4 GiB). The ones that
# say so record ``(model, client port)`` in ``server.peers``, to tell a reused connection from a new one.

SCENARIOS.update(
    {
        "done-keep-open": "200 stream that ends with data: [DONE] but never ends the HTTP body: no 0-chunk, the connection stays open",
        "done-then-end": "the ok stream, [DONE] and the 0-chunk in one write (records its peer in server.peers)",
        "trickle": "200 stream whose body comes one byte every trickle_seconds, forever (below any idle timeout)",
        "continue-flood": "100 Continue informational responses, without end",
        "continue-trickle": "100 Continue responses, one byte every trickle_seconds",
        "continue-then-ok": "two 100 Continue responses, then the ok answer",
        "endless-tokens": "200 stream: a content token every token_seconds, forever",
        "token-flood": "200 stream: content tokens as fast as the client reads, forever",
        "huge-html": "200 text/html announcing 1 GiB in Content-Length, sent until the client leaves",
        "huge-html-chunked": "200 text/html, chunked, no length: 1 MiB pieces until the client leaves",
        "gzip-bomb": "200 JSON (stream: SSE), Content-Encoding gzip: a small wire body that inflates to bomb_bytes of spaces",
        "gzip-bomb-error": "503 with the gzip bomb as its body",
        "redirect": "308 to https://llm.example.invalid/v1/chat/completions",
        "rate-limited": "429 with Retry-After: 7",
    }
)

_ZEROS = bytes(1024 * 1024)
_SPACES = b" " * (1024 * 1024)


def _transport_peer(server: FaultServer, chat: _Chat) -> None:
    peer = chat.writer.get_extra_info("peername")
    server.__dict__.setdefault("peers", []).append((chat.model, peer[1] if peer else None))


async def _dribble(writer: asyncio.StreamWriter, data: bytes, seconds: float) -> None:
    for index in range(len(data)):
        writer.write(data[index : index + 1])
        await writer.drain()
        await asyncio.sleep(seconds)


async def _done_keep_open(self: FaultServer, chat: _Chat) -> None:
    _transport_peer(self, chat)
    await chat.begin_stream()
    await chat.chunk({"role": "assistant", "content": "Hello"})
    await chat.chunk({}, "stop")
    await chat.raw_event(b"data: [DONE]\n\n")  # the HTTP body is not ended: no 0-chunk follows
    await asyncio.sleep(self.slow_seconds)
    raise _Close


async def _done_then_end(self: FaultServer, chat: _Chat) -> None:
    _transport_peer(self, chat)
    await self._scenario_ok(chat)


async def _trickle(self: FaultServer, chat: _Chat) -> None:
    await chat.begin_stream()
    seconds = getattr(self, "trickle_seconds", 2.0)
    event = chat.event_bytes(chat.chunk_body({"content": "x"}))
    while True:
        await _dribble(chat.writer, _chunk(event), seconds)


_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


async def _continue_flood(self: FaultServer, chat: _Chat) -> None:
    while True:
        chat.writer.write(_CONTINUE * 64)
        await chat.writer.drain()


async def _continue_trickle(self: FaultServer, chat: _Chat) -> None:
    while True:
        await _dribble(chat.writer, _CONTINUE, getattr(self, "trickle_seconds", 2.0))


async def _continue_then_ok(self: FaultServer, chat: _Chat) -> None:
    chat.writer.write(_CONTINUE + _CONTINUE)
    await self._scenario_ok(chat)


async def _endless_tokens(self: FaultServer, chat: _Chat, *, seconds: float | None = None) -> None:
    await chat.begin_stream()
    await chat.chunk({"role": "assistant", "content": ""})
    pause = getattr(self, "token_seconds", 0.02) if seconds is None else seconds
    event = _chunk(chat.event_bytes(chat.chunk_body({"content": "token "})))
    while True:
        chat.writer.write(event * (1 if pause else 256))
        await chat.writer.drain()
        await asyncio.sleep(pause)


async def _token_flood(self: FaultServer, chat: _Chat) -> None:
    await _endless_tokens(self, chat, seconds=0)


async def _huge_html(self: FaultServer, chat: _Chat, *, chunked: bool = False) -> None:
    length = b"transfer-encoding: chunked\r\n" if chunked else b"content-length: %d\r\n" % (1 << 30)
    chat.writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\n" + length + b"\r\n")
    piece = b"<p>" + b"x" * (1024 * 1024 - 7) + b"</p>"
    while True:
        chat.writer.write(_chunk(piece) if chunked else piece)
        await chat.writer.drain()


async def _huge_html_chunked(self: FaultServer, chat: _Chat) -> None:
    await _huge_html(self, chat, chunked=True)


async def _gzip_bomb(self: FaultServer, chat: _Chat, *, status: int = 200) -> None:
    import zlib

    reason = _REASONS.get(status, "Status").encode()
    kind = b"text/event-stream" if chat.stream and status == 200 else b"application/json"
    chat.writer.write(
        b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n" % (status, reason, kind)
    )
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    left = getattr(self, "bomb_bytes", 4 << 30)
    while left > 0:
        compressed = deflate.compress(_SPACES if left >= len(_SPACES) else _SPACES[:left])
        left -= len(_SPACES)
        if compressed:
            chat.writer.write(_chunk(compressed))
            await chat.writer.drain()
    chat.writer.write(_chunk(deflate.flush()) + b"0\r\n\r\n")
    await chat.writer.drain()


async def _gzip_bomb_error(self: FaultServer, chat: _Chat) -> None:
    await _gzip_bomb(self, chat, status=503)


async def _redirect(self: FaultServer, chat: _Chat) -> None:
    chat.writer.write(
        b"HTTP/1.1 308 Permanent Redirect\r\nlocation: https://llm.example.invalid/v1/chat/completions\r\ncontent-length: 0\r\n\r\n"
    )
    await chat.writer.drain()


async def _rate_limited(self: FaultServer, chat: _Chat) -> None:
    payload = json.dumps(_error("Too many requests", "RateLimitError", 429)).encode()
    chat.writer.write(
        b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 7\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(payload), payload)
    )
    await chat.writer.drain()


for _name, _handler in {
    "done-keep-open": _done_keep_open,
    "done-then-end": _done_then_end,
    "trickle": _trickle,
    "continue-flood": _continue_flood,
    "continue-trickle": _continue_trickle,
    "continue-then-ok": _continue_then_ok,
    "endless-tokens": _endless_tokens,
    "token-flood": _token_flood,
    "huge-html": _huge_html,
    "huge-html-chunked": _huge_html_chunked,
    "gzip-bomb": _gzip_bomb,
    "gzip-bomb-error": _gzip_bomb_error,
    "redirect": _redirect,
    "rate-limited": _rate_limited,
}.items():
    setattr(FaultServer, "_scenario_" + _name.replace("-", "_"), _handler)

# ---- end of transport scenarios ----


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--slow-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as cleanly as Ctrl-C
    server = FaultServer(args.host, args.port, slow_seconds=args.slow_seconds)
    try:
        server.start()
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"fault server on {server.base_url} (scenarios: {', '.join(SCENARIOS)}); Ctrl-C stops it", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
