"""What one read of a streamed answer costs, counted in Python bytecodes (deterministic, unlike wall clock).

Run: ``.venv/bin/python bench/per_read_cost.py [--top N]``. Each path streams an answer whose every
SSE event comes in its own read, with ``sys.settrace`` opcode events on, for 20 and for 60 content
events; the difference over 40 reads is the per-read cost (start-up, the request build and the end
of the answer cancel out); what is left of the 20-event run is the cost per answer besides its reads
(the request build, its send, the response head, the end; for ``tcp`` the connection too). Paths:

- ``parser``: ``StreamParser.feed`` with one event per call (no I/O, no async);
- ``mock``: ``Genesis.stream`` over an ``httpx.MockTransport`` whose body yields one event per read;
- ``tcp``: ``Genesis.stream`` over loopback TCP through Genesis's own transport, against a server in
  the same process (its own thread and event loop, not metered) that writes the next event (one
  HTTP chunk) only once the caller has the last one, so every socket read carries one event. The
  event loop may still wake more than once for a read (timing decides): the fewest of ``--repeat``
  runs is shown.
- ``tcp-uvloop``: the same, the client's event loop uvloop (``genesis[fast]``).

``--top N`` also lists the N functions that execute the most bytecodes per read on each path
(where the per-read cost goes). C code (msgspec's decode, the socket's ``recv``, the event loop's
selector) runs no bytecodes: this counts the Python around it, which is what a change to the
Python code can cut. No test asserts a count.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator
from types import FrameType
from typing import Any

import httpx

from backends.stream import StreamParser
from pipeline.api import Genesis

PROMPT = {"messages": [{"role": "user", "content": "hi"}], "stream": True}


def config(base_url: str) -> str:
    return '{models: {mode: "replace", providers: {local: {baseUrl: "%s", models: [{id: "m"}]}}}}' % base_url


def frames(reads: int) -> list[bytes]:
    chunks = [{"choices": [{"index": 0, "delta": {"content": f"t{i}"}}]} for i in range(reads)]
    out = [b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks]
    return out + [b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n', b"data: [DONE]\n\n"]


class Meter:
    """Counts opcodes while on, in total and by function."""

    def __init__(self) -> None:
        self.total = 0
        self.by_function: Counter[str] = Counter()

    def tracer(self, frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            self.total += 1
            code = frame.f_code
            self.by_function[f"{'/'.join(code.co_filename.rsplit('/', 2)[-2:])}:{code.co_qualname}"] += 1
        return self.tracer

    def __enter__(self) -> Meter:
        sys.settrace(self.tracer)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.settrace(None)


def parser_run(reads: int, meter: Meter) -> None:
    pieces = frames(reads)
    with meter:
        parser = StreamParser()
        for piece in pieces:
            parser.feed(piece)
        parser.close()
    assert parser.done


async def consume(genesis: Genesis, reads: int, meter: Meter, after_each: Any = None) -> None:
    text = []
    with meter:
        async for event in genesis.stream("local/m", PROMPT):
            text.append(getattr(event, "text", ""))
            if after_each is not None:
                after_each()
    assert "".join(text) == "".join(f"t{i}" for i in range(reads)), text


def mock_run(reads: int, meter: Meter) -> None:
    pieces = frames(reads)

    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    async def main() -> None:
        async with Genesis.from_config_text(config("http://local.invalid/v1"), env={}, transport=httpx.MockTransport(handler)) as g:
            await consume(g, reads, meter)

    asyncio.run(main())


def tcp_run(reads: int, meter: Meter, uvloop: bool = False) -> None:
    events = frames(reads)
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    # The server runs its own event loop in another thread: sys.settrace meters this thread only.
    server_loop = asyncio.new_event_loop()
    ready: list[Any] = []
    started = threading.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        taken = ready[1]
        await reader.readuntil(b"\r\n\r\n")  # the request head; its small body is read below and ignored
        await reader.read(65536)
        writer.write(head)
        for index, event in enumerate(events):
            writer.write(b"%x\r\n%s\r\n" % (len(event), event) + (b"0\r\n\r\n" if index == len(events) - 1 else b""))
            await writer.drain()
            if index < len(events) - 2:  # wait until the caller has this event (the finish chunk is held to the end)
                await taken.wait()
                taken.clear()
        await reader.read()  # until the client closes the connection

    async def start() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        ready.extend([server.sockets[0].getsockname()[1], asyncio.Event()])
        started.set()

    def run_server() -> None:
        asyncio.set_event_loop(server_loop)
        server_loop.run_until_complete(start())
        server_loop.run_forever()

    thread = threading.Thread(target=run_server, daemon=True)
    thread.start()
    started.wait()

    def taken() -> None:
        server_loop.call_soon_threadsafe(ready[1].set)

    async def main() -> None:
        async with Genesis.from_config_text(config(f"http://127.0.0.1:{ready[0]}/v1"), env={}) as g:
            await consume(g, reads, meter, taken)

    try:
        if uvloop:
            import uvloop as module

            module.run(main())
        else:
            asyncio.run(main())
    finally:
        server_loop.call_soon_threadsafe(server_loop.stop)
        thread.join(5)


def tcp_uvloop_run(reads: int, meter: Meter) -> None:
    tcp_run(reads, meter, uvloop=True)


PATHS = {"parser": parser_run, "mock": mock_run, "tcp": tcp_run, "tcp-uvloop": tcp_uvloop_run}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--top", type=int, default=0, help="list the N functions with the most bytecodes per read")
    ap.add_argument(
        "--repeat", type=int, default=5, help="tcp: the fewest of this many runs (the event loop may wake more than once per read)"
    )
    ap.add_argument(
        "paths", nargs="*", default=[p for p in PATHS if p != "tcp-uvloop" or importlib.util.find_spec("uvloop")], help=", ".join(PATHS)
    )
    args = ap.parse_args()
    for name in args.paths:
        run = PATHS[name]
        run(5, Meter())  # first use: imports and caches are not the hot path
        best: tuple[float, Meter, Meter] | None = None
        for _ in range(args.repeat if name.startswith("tcp") else 1):
            small, large = Meter(), Meter()
            run(20, small)
            run(60, large)
            per_read = (large.total - small.total) / 40
            if best is None or per_read < best[0]:
                best = (per_read, small, large)
        assert best is not None
        per_read, small, large = best
        per_answer = small.total - 20 * per_read  # what does not grow with the reads: build, send, head, end
        print(f"{name:<7} {per_read:8.1f} bytecodes per read, {per_answer:8.0f} per answer besides its reads")
        if args.top:
            diff = Counter({key: (large.by_function[key] - small.by_function.get(key, 0)) / 40 for key in large.by_function})
            for function, count in diff.most_common(args.top):
                print(f"        {count:7.1f}  {function}")


if __name__ == "__main__":
    main()
