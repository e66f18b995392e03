"""A small, fast vLLM-like SSE server on loopback, for the concurrency benchmark.

Run in its own process (the harness starts it)::

    python bench/sse_server.py --port 0 --tokens 50 --tick-ms 5

It prints ``PORT <n>`` on stdout once listening on 127.0.0.1 (only), then serves:

- ``POST /v1/chat/completions``: the request body is read (Content-Length) and
  ignored; the answer is vLLM's stream for a plain answer of ``--tokens`` content
  chunks (role chunk, tokens, finish ``stop``, usage chunk, ``data: [DONE]``),
  HTTP/1.1 chunked transfer-encoding with one HTTP chunk per SSE event, as uvicorn
  sends it. Requests with ``"stream": false`` get the whole completion as JSON.
  With ``--recording N`` the streamed answer is instead the stream benchmark's
  recording of N chunks (``stream_fixture.make_payloads``), same framing: the
  loopback rows of the stream benchmark use it with ``--tick-ms 0``.
- ``GET /health``, ``GET /v1/models``, and ``GET /stats`` (streams started and
  finished, non-streamed completions) so the harness can check that every client
  really streamed.

Pacing imitates a batching engine: one global tick every ``--tick-ms`` writes the
next event of *every* open stream (like one decode step that yields one token per
running sequence), so each event leaves in its own write and arrives in its own read
on the client side, and a tick over 1,000 streams simply takes longer, as a step
with a bigger batch does. ``--tick-ms 0`` yields to the loop between ticks only.

Connections are kept alive. The server stops by itself: when its standard input
closes (the harness exits or dies), on SIGTERM/SIGINT, or after ``--max-seconds``.
Standard library only (plus ``stream_fixture`` next to it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stream_fixture import content_stream_payloads, make_payloads, sse_events

_HEAD_STREAM = (
    b"HTTP/1.1 200 OK\r\n"
    b"date: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
    b"server: uvicorn\r\n"
    b"content-type: text/event-stream; charset=utf-8\r\n"
    b"transfer-encoding: chunked\r\n"
    b"\r\n"
)


MODELS = b'{"object":"list","data":[{"id":"tiny-model","object":"model"}]}'


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _fixed(status: str, body: bytes, ctype: bytes = b"application/json") -> bytes:
    return (
        b"HTTP/1.1 "
        + status.encode()
        + b"\r\nserver: uvicorn\r\ncontent-type: "
        + ctype
        + b"\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


class Server:
    def __init__(self, tokens: int, tick: float, recording: int = 0) -> None:
        payloads = make_payloads(recording) if recording else content_stream_payloads(tokens)
        self.events = [_chunked(e) for e in sse_events(payloads)]
        self.events[-1] += b"0\r\n\r\n"  # the last event carries the chunked terminator
        self.tick = tick
        self.active: list[list] = []  # [protocol, next event index]
        self.wake = asyncio.Event()
        self.streams_done = 0
        self.streams_started = 0
        self.completions = 0
        text = "".join(json.loads(p)["choices"][0]["delta"].get("content", "") for p in content_stream_payloads(tokens)[1:-1])
        # (with --recording the streamed answer is the benchmark's recording; the whole answer stays the plain one)
        self.completion = _fixed(
            "200 OK",
            json.dumps(
                {
                    "id": "chatcmpl-bench",
                    "object": "chat.completion",
                    "created": 1767225600,
                    "model": "tiny-model",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text, "tool_calls": []},
                            "logprobs": None,
                            "finish_reason": "stop",
                            "stop_reason": None,
                        }
                    ],
                    "usage": {"prompt_tokens": 12, "total_tokens": 12 + tokens, "completion_tokens": tokens},
                },
                separators=(",", ":"),
            ).encode(),
        )

    async def ticker(self) -> None:
        while True:
            if not self.active:
                self.wake.clear()
                await self.wake.wait()
            current, self.active = self.active, []  # streams started meanwhile go to the new list
            still = []
            for entry in current:
                proto, i = entry
                if proto.transport is None or proto.transport.is_closing():
                    continue
                proto.transport.write(self.events[i])
                if i + 1 == len(self.events):
                    self.streams_done += 1
                    proto.streaming = False
                    proto.process()  # a pipelined next request, if any
                else:
                    entry[1] = i + 1
                    still.append(entry)
            self.active = still + self.active
            await asyncio.sleep(self.tick)

    def start_stream(self, proto: Conn) -> None:
        self.streams_started += 1
        proto.transport.write(_HEAD_STREAM)
        self.active.append([proto, 0])
        self.wake.set()


class Conn(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.streaming = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.process()

    def process(self) -> None:
        while not self.streaming and self.transport is not None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(self.buf) < end + 4 + length:
                return
            body = bytes(self.buf[end + 4 : end + 4 + length])
            del self.buf[: end + 4 + length]
            method, _, rest = head[0].partition(" ")
            path = rest.split(" ", 1)[0]
            if method == "POST" and path.endswith("/chat/completions"):
                try:
                    stream = json.loads(body or b"{}").get("stream") is True
                except ValueError:
                    self.transport.write(_fixed("400 Bad Request", b'{"error":"bad json"}'))
                    continue
                if stream:
                    self.streaming = True
                    self.server.start_stream(self)
                else:
                    self.server.completions += 1
                    self.transport.write(self.server.completion)
            elif method == "GET" and path == "/stats":
                srv = self.server
                self.transport.write(
                    _fixed(
                        "200 OK",
                        json.dumps(
                            {
                                "streams_started": srv.streams_started,
                                "streams_done": srv.streams_done,
                                "completions": srv.completions,
                                "active": len(srv.active),
                            }
                        ).encode(),
                    )
                )
            elif method == "GET" and path == "/health":
                self.transport.write(_fixed("200 OK", b""))
            elif method == "GET" and path.endswith("/models"):
                self.transport.write(_fixed("200 OK", MODELS))
            else:
                self.transport.write(_fixed("404 Not Found", b'{"error":"not found"}'))


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))
        except (ValueError, OSError):
            pass


async def serve(port: int, tokens: int, tick_ms: float, max_seconds: float, recording: int = 0) -> None:
    loop = asyncio.get_running_loop()
    server = Server(tokens, tick_ms / 1000.0, recording)
    srv = await loop.create_server(lambda: Conn(server), "127.0.0.1", port, backlog=4096, reuse_address=True)
    print(f"PORT {srv.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Stop when stdin closes (the parent went away).
    if not sys.stdin.isatty():
        reader = asyncio.StreamReader()
        try:
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

            async def watch_stdin() -> None:
                while await reader.read(4096):
                    pass
                stop.set()

            loop.create_task(watch_stdin())
        except (OSError, ValueError):
            pass
    ticker = loop.create_task(server.ticker())
    try:
        await asyncio.wait_for(stop.wait(), timeout=max_seconds)
    except TimeoutError:
        print("sse_server: --max-seconds reached, stopping", file=sys.stderr)
    ticker.cancel()
    srv.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tokens", type=int, default=50)
    ap.add_argument("--tick-ms", type=float, default=5.0)
    ap.add_argument("--max-seconds", type=float, default=1800.0)
    ap.add_argument("--recording", type=int, default=0, help="stream the benchmark's recording of this many chunks instead")
    args = ap.parse_args()
    _raise_nofile()
    asyncio.run(serve(args.port, args.tokens, args.tick_ms, args.max_seconds, args.recording))


if __name__ == "__main__":
    main()
