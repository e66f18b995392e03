"""Genesis in each benchmark. Every Genesis call of the benchmark is in this module.

API used (adapt here if it moves):

    g = pipeline.Genesis.from_config_text(text, env={...}, transport=...)
    g.build(ref, request) -> WireRequest (.body bytes)
    backends.stream.StreamParser().feed(piece) -> list[event]; .close() -> list[event]
    g.pipeline.insert_after("parse_stream", name, stage) -> Pipeline (an answer-side stage)
    async for event in g.stream(ref, request): ...
    await g.run(ref, request) -> Completion
    await g.aclose()

The mock transport is an ``httpx.MockTransport`` (Genesis sends through httpx); it
answers at once and hands over the recorded bytes in the same pieces every library gets.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import workload as W

NAME = "genesis"
LABEL = "genesis"
IMPORT_STMT = "from pipeline import Genesis"
CLI = "genesis"
# g.stream sends the request as given: without "stream": true it is a non-streamed call.
STREAM_REQUEST = {"messages": W.SHORT_MESSAGES, "stream": True, "stream_options": {"include_usage": True}}


def _genesis_class() -> Any:
    import pipeline

    cls = getattr(pipeline, "Genesis", None)
    if cls is None:  # before pipeline/__init__ re-exports it
        from pipeline.api import Genesis as cls  # type: ignore[no-redef]
    return cls


def version() -> str:
    try:
        from importlib.metadata import version as v

        return v("genesis")
    except Exception:
        from pipeline.version import __version__  # type: ignore[attr-defined]

        return str(__version__)


def _events() -> dict[str, type]:
    from pipeline import events as E

    return {"text": E.TextDelta, "reasoning": E.ReasoningDelta, "tool": E.ToolCallDelta, "usage": E.Usage, "finish": E.Finish}


class Side:
    def __init__(self) -> None:
        Genesis = _genesis_class()
        from backends.stream import StreamParser

        self.StreamParser = StreamParser
        self.pieces: list[bytes] = []
        self.ev = _events()

        def call_handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, headers=W.JSON_HEADERS, content=W.COMPLETION_BODY)

        async def apieces() -> AsyncIterator[bytes]:
            for p in self.pieces:
                yield p

        def stream_handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, headers=W.SSE_HEADERS, content=apieces())

        config = W.genesis_config()
        self.g = Genesis.from_config_text(config, env=W.GENESIS_ENV)  # build only: no transport needed
        self.g_call = Genesis.from_config_text(config, env=W.GENESIS_ENV, transport=httpx.MockTransport(call_handler))
        self.g_stream = Genesis.from_config_text(config, env=W.GENESIS_ENV, transport=httpx.MockTransport(stream_handler))
        # The same stream with an answer-side stage after parse_stream: one that has nothing to do for
        # the request (returns None: the run must read exactly as without it), and one whose step passes
        # every event on (what any answer-side stage costs at the least).
        self.g_stream_off = Genesis.from_config_text(config, env=W.GENESIS_ENV, transport=httpx.MockTransport(stream_handler))
        self.g_stream_off.pipeline = self.g_stream_off.pipeline.insert_after("parse_stream", "off", _no_step)
        self.g_stream_step = Genesis.from_config_text(config, env=W.GENESIS_ENV, transport=httpx.MockTransport(stream_handler))
        self.g_stream_step.pipeline = self.g_stream_step.pipeline.insert_after("parse_stream", "pass", _pass_through)
        self.Genesis = Genesis

    # -- 1. request build ----------------------------------------------------------------
    def build_once(self) -> float:
        t0 = time.perf_counter()
        wire = self.g.build(W.GENESIS_REF, W.REQUEST)
        body = wire.body
        elapsed = time.perf_counter() - t0
        assert body
        return elapsed

    def built_body(self) -> bytes:
        return bytes(self.g.build(W.GENESIS_REF, W.REQUEST).body)

    async def call_once(self) -> float:
        t0 = time.perf_counter()
        completion = await self.g_call.run(W.GENESIS_REF, {"messages": W.MESSAGES, "tools": W.TOOLS})
        elapsed = time.perf_counter() - t0
        assert completion.text == "Hello!", completion
        return elapsed

    # -- 2. stream parse -----------------------------------------------------------------
    def stream_paths(self) -> dict[str, Any]:
        # "a read per event": the body cut after every SSE frame, so each network read carries one chunk
        # (one event): the per-read cost of the run (send, parse_stream, answer-side steps) shows in full.
        return {
            "StreamParser.feed (parser only)": self.parse_only,
            "StreamParser.feed, one event per feed": lambda pieces: self.parse_only(per_event(pieces)),
            "Genesis.stream": self.stream_async,
            "Genesis.stream + answer stage, step passes all": lambda pieces: self.stream_async(pieces, self.g_stream_step),
            "Genesis.stream, a read per event": lambda pieces: self.stream_async(per_event(pieces)),
            "Genesis.stream, a read per event + answer stage returning None": lambda pieces: self.stream_async(
                per_event(pieces), self.g_stream_off
            ),
            "Genesis.stream, a read per event + answer stage, step passes all": lambda pieces: self.stream_async(
                per_event(pieces), self.g_stream_step
            ),
        }

    def loopback_paths(self, base_url: str) -> dict[str, Any]:
        """The recording from the loopback server (one HTTP chunk per event), through Genesis's own transport."""
        self.loopback = self.Genesis.from_config_text(W.genesis_config(base_url), env=W.GENESIS_ENV)
        return {"Genesis.stream over loopback TCP": lambda pieces: self.stream_async(pieces, self.loopback)}

    def parse_only(self, pieces: list[bytes]) -> tuple[float, float, list]:
        out: list = []
        extend = out.extend
        t0 = time.perf_counter()
        parser = self.StreamParser()
        for piece in pieces:
            extend(parser.feed(piece))
        t_last = time.perf_counter()
        extend(parser.close())
        t_end = time.perf_counter()
        return t_end - t0, t_end - t_last, out

    async def stream_async(self, pieces: list[bytes], genesis: Any = None) -> tuple[float, float, list]:
        self.pieces = pieces
        out: list = []
        append = out.append
        g = self.g_stream if genesis is None else genesis
        t0 = time.perf_counter()
        t_last = t0
        async for event in g.stream(W.GENESIS_REF, STREAM_REQUEST):
            append(event)
            t_last = time.perf_counter()
        t_end = time.perf_counter()
        return t_end - t0, t_end - t_last, out

    def summarize(self, events: list) -> W.StreamSummary:
        ev = self.ev
        s = W.StreamSummary()
        for e in events:
            if isinstance(e, ev["text"]):
                s.content += e.text
            elif isinstance(e, ev["reasoning"]):
                s.reasoning += e.text
            elif isinstance(e, ev["tool"]):
                if e.name:
                    s.tool_names[e.index] = e.name
                s.tool_args[e.index] = s.tool_args.get(e.index, "") + (e.arguments or "")
            elif isinstance(e, ev["finish"]):
                s.finish_reason = e.reason
            elif isinstance(e, ev["usage"]):
                s.completion_tokens = e.completion_tokens
        return s

    # -- 4. concurrency ------------------------------------------------------------------
    async def concurrency_open(self, base_url: str) -> None:
        # Genesis's own default transport.
        self.live = self.Genesis.from_config_text(W.genesis_config(base_url), env=W.GENESIS_ENV)
        self.TextDelta = self.ev["text"]

    async def one_stream(self) -> str:
        parts: list[str] = []
        TextDelta = self.TextDelta
        async for event in self.live.stream(W.GENESIS_REF, STREAM_REQUEST):
            if type(event) is TextDelta:
                parts.append(event.text)
        return "".join(parts)

    async def concurrency_close(self) -> None:
        await self.live.aclose()

    async def aclose(self) -> None:
        for g in (self.g_call, self.g_stream, self.g_stream_off, self.g_stream_step, getattr(self, "loopback", None)):
            close = getattr(g, "aclose", None)
            if close is not None:
                await close()


per_event = W.per_event


def _no_step(ctx: Any) -> None:
    """An answer-side stage with nothing to do for this request."""
    return None


class _PassThrough:
    __slots__ = ()

    def feed(self, events: Any) -> Any:
        return events

    def finish(self) -> tuple[()]:
        return ()

    def notes(self) -> tuple[str, ...]:
        return ()


def _pass_through(ctx: Any) -> _PassThrough:
    """An answer-side stage whose step passes every event on, unchanged."""
    return _PassThrough()
