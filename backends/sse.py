"""An incremental Server-Sent Events decoder: bytes in, events out, no I/O.

Rules (the WHATWG event-stream format, as servers really send it):
- Lines end in CR, LF or CRLF, mixed freely; a CR at the end of the input
  so far waits for the next byte to know whether an LF follows.
- ``data:`` lines accumulate (joined with LF); a blank line dispatches the
  event; ``event:`` names it; lines starting with ``:`` are comments
  (``: ping``); ``id:``, ``retry:`` and unknown fields are ignored, except
  ``error:``, which llama.cpp sends instead of ``data:`` for failures and
  which is surfaced as an event named ``error``.
- Frames may be split anywhere across ``feed()`` calls.
- Linear time: each byte is scanned for line ends once, consumed input is
  dropped from the front of the buffer in O(1), and one event may not grow
  past ``max_event_bytes`` (a clear ``SSEError`` instead of eating memory).
- ``close()`` ends the input: a last line without its terminator still
  counts, and pending data is dispatched.

Fast path (``pack_json_runs=True``): a run of complete frames that are all
exactly ``data: <one-line JSON>`` is handed out as one ``JsonRun``: the JSON
array of those payloads, built with two bytes operations, so the consumer
decodes the whole run with one msgspec call. Anything else in the run (CR,
comments, multi-line data, other fields) falls back to the line rules above,
with the same result.

>>> d = SSEDecoder()
>>> d.feed(b"data: {\\"a\\": 1}\\r\\n\\r\\n: ping\\n\\ndata: x\\ndata: y\\n")
[SSEEvent(event='message', data=b'{"a": 1}')]
>>> d.feed(b"\\n") + d.close()
[SSEEvent(event='message', data=b'x\\ny')]
"""

from __future__ import annotations

from typing import NamedTuple

DEFAULT_MAX_EVENT_BYTES = 256 * 1024 * 1024

_DATA_PREFIX = b"data: "
_DONE_FRAME = b"data: [DONE]"
_RUN_SEPARATOR = b"\n\ndata: "


class SSEError(ValueError):
    """The byte stream cannot be decoded as events (an event larger than the limit)."""


class SSEEvent(NamedTuple):
    event: str
    data: bytes


class JsonRun(NamedTuple):
    """Consecutive ``data:`` events whose payloads are packed into one JSON array."""

    array: bytes
    frames: bytes

    def payloads(self) -> list[bytes]:
        """The run's payloads one by one (for a consumer whose one-call decode failed)."""
        return [frame[len(_DATA_PREFIX) :] for frame in self.frames.split(b"\n\n")]


class SSEDecoder:
    __slots__ = ("_buffer", "_scanned", "_data", "_data_size", "_event", "_max", "_pack")

    def __init__(self, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES, pack_json_runs: bool = False) -> None:
        self._buffer = bytearray()
        self._scanned = 0  # bytes at the buffer's start already known to hold no line end
        self._data: list[bytes] = []
        self._data_size = 0
        self._event = ""
        self._max = max_event_bytes
        self._pack = pack_json_runs

    def feed(self, data: bytes) -> list[SSEEvent | JsonRun]:
        out: list[SSEEvent | JsonRun] = []
        self._buffer += data
        while True:
            if self._pack and not self._data and not self._event and self._pack_run(out):
                if not self._buffer:
                    break
                continue
            line = self._next_line(final=False)
            if line is None:
                break
            self._process_line(line, out)
        if len(self._buffer) + self._data_size > self._max:
            raise SSEError(f"an event is larger than the limit of {self._max} bytes")
        return out

    def close(self) -> list[SSEEvent | JsonRun]:
        out: list[SSEEvent | JsonRun] = []
        while (line := self._next_line(final=True)) is not None:
            self._process_line(line, out)
        self._dispatch(out)
        return out

    def _pack_run(self, out: list[SSEEvent | JsonRun]) -> bool:
        buffer = self._buffer
        if not buffer.startswith(_DATA_PREFIX):
            return False
        end = buffer.rfind(b"\n\n", max(0, self._scanned - 1))
        if end < 0:
            return False
        frames = bytes(buffer[:end])
        if b"\r" in frames:
            return False
        done = frames.endswith(_DONE_FRAME)
        if done:
            frames = frames[: -len(_DONE_FRAME)].rstrip(b"\n")
        if frames:
            joined = frames[len(_DATA_PREFIX) :].replace(_RUN_SEPARATOR, b",")
            if b"\n" in joined or not joined:
                return False
            out.append(JsonRun(b"[" + joined + b"]", frames))
        if done:
            out.append(SSEEvent("message", b"[DONE]"))
        del buffer[: end + 2]
        self._scanned = 0
        return True

    def _next_line(self, *, final: bool) -> bytes | None:
        buffer = self._buffer
        start = self._scanned
        lf = buffer.find(b"\n", start)
        cr = buffer.find(b"\r", start, lf if lf >= 0 else len(buffer))
        if cr >= 0:
            if cr + 1 == len(buffer) and not final:
                self._scanned = cr  # a CR at the end: wait to see whether an LF follows
                return None
            cut, skip = cr, (2 if cr + 1 < len(buffer) and buffer[cr + 1] == 0x0A else 1)
        elif lf >= 0:
            cut, skip = lf, 1
        elif final and buffer:
            cut, skip = len(buffer), 0
        else:
            self._scanned = len(buffer)
            return None
        line = bytes(buffer[:cut])
        del buffer[: cut + skip]
        self._scanned = 0
        return line

    def _process_line(self, line: bytes, out: list[SSEEvent | JsonRun]) -> None:
        if not line:
            self._dispatch(out)
            return
        if line[0] == 0x3A:  # ":" starts a comment
            return
        field, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            self._append_data(value)
        elif field == b"event":
            self._event = value.decode("utf-8", "replace")
        elif field == b"error":  # llama.cpp's non-standard error frame
            self._event = "error"
            self._append_data(value)

    def _append_data(self, value: bytes) -> None:
        self._data.append(value)
        self._data_size += len(value) + 1
        if self._data_size > self._max:
            raise SSEError(f"an event is larger than the limit of {self._max} bytes")

    def _dispatch(self, out: list[SSEEvent | JsonRun]) -> None:
        if self._data:
            data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
            out.append(SSEEvent(self._event or "message", data))
        self._data = []
        self._data_size = 0
        self._event = ""
