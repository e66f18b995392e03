"""A recorded-replay sender: the ``send`` stage for tests, no socket.

``Replay`` plays recorded answers (a status, a content type, the body in the pieces it came in) in
place of ``backends.http.send``, through the same API as any stage::

    genesis.pipeline = genesis.pipeline.replace("send", Replay(Recording.sse(b"data: ...")))

An error status is classified as a real send would (``backends.classify.http_error``), so
retries and failover see the same ProviderError. ``sse_of`` writes events as the chunks a
server would send for them, for scripts that think in events.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from backends.classify import http_error
from pipeline.answer import SendRecord
from pipeline.errors import ProviderError
from pipeline.events import Event, Finish, ReasoningDelta, ServerError, TextDelta, Timings, ToolCallDelta, Usage
from pipeline.types import WireRequest

SSE = "text/event-stream"
JSON = "application/json"


@dataclass(frozen=True)
class Recording:
    """One recorded answer: what a server sent for one request."""

    status: int = 200
    content_type: str = SSE
    pieces: tuple[bytes, ...] = ()
    error: ProviderError | None = None  # raised after the pieces (a connection that broke mid-answer)

    @classmethod
    def sse(cls, body: bytes, *, piece_size: int | None = None) -> Recording:
        """A streamed answer, cut into reads of ``piece_size`` bytes (one read when None)."""
        return cls(200, SSE, split(body, piece_size))

    @classmethod
    def whole(cls, body: bytes) -> Recording:
        return cls(200, JSON, (body,))


def split(body: bytes, piece_size: int | None) -> tuple[bytes, ...]:
    if piece_size is None:
        return (body,)
    return tuple(body[start : start + piece_size] for start in range(0, len(body), piece_size))


class Replay:
    """Plays its recordings in order, one per try; ``sent`` is every wire request it was given."""

    def __init__(self, *recordings: Recording) -> None:
        self.recordings = list(recordings)
        self.sent: list[WireRequest] = []

    def __call__(self, client: Any, wire: WireRequest, hints: Any, record: SendRecord) -> AsyncGenerator[bytes, None]:
        self.sent.append(wire)
        return self._play(self.recordings.pop(0), wire, hints, record)

    @staticmethod
    async def _play(recording: Recording, wire: WireRequest, hints: Any, record: SendRecord) -> AsyncGenerator[bytes, None]:
        record.status = recording.status
        record.content_type = recording.content_type
        try:
            if recording.status >= 400:
                raise http_error(recording.status, b"".join(recording.pieces), url=wire.url, ref=wire.ref, context=hints)
            for piece in recording.pieces:
                if record.first_byte is None:
                    record.first_byte = time.perf_counter()
                yield piece
            if recording.error is not None:
                raise recording.error
        finally:
            record.end = time.perf_counter()


def sse_of(events: Sequence[Event], *, done: bool = False) -> bytes:
    """The SSE body a server would send for ``events``: one chunk per event (``data: [DONE]`` last if ``done``)."""
    frames = [b"data: " + msgspec.json.encode(_chunk(event)) + b"\n\n" for event in events]
    return b"".join(frames) + (b"data: [DONE]\n\n" if done else b"")


def _chunk(event: Event) -> dict[str, Any]:
    if isinstance(event, TextDelta):
        return {"choices": [{"index": event.choice, "delta": {"content": event.text}}]}
    if isinstance(event, ReasoningDelta):
        return {"choices": [{"index": event.choice, "delta": {"reasoning_content": event.text}}]}
    if isinstance(event, ToolCallDelta):
        call: dict[str, Any] = {"index": event.index, "function": {"arguments": event.arguments}}
        if event.id is not None:
            call["id"] = event.id
        if event.name is not None:
            call["function"]["name"] = event.name
        return {"choices": [{"index": event.choice, "delta": {"tool_calls": [call]}}]}
    if isinstance(event, Finish):
        return {"choices": [{"index": event.choice, "delta": {}, "finish_reason": event.reason}]}
    if isinstance(event, Usage):
        return {"choices": [], "usage": msgspec.to_builtins(event)}
    if isinstance(event, Timings):
        return {"choices": [], "timings": event.values}
    if isinstance(event, ServerError):
        return {"error": {"message": event.message, "type": event.type, "code": event.code}}
    raise TypeError(f"no chunk for {type(event).__name__}")
