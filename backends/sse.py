"""An incremental Server-Sent Events decoder: bytes in, events out, no I/O.

Rules (the WHATWG event-stream format, as servers really send it):
- Lines end in CR, LF or CRLF, mixed freely. A CR ends its line at once; an
  LF right after it, even at the start of the next ``feed()``, belongs to it.
- ``data:`` lines accumulate (joined with LF); a blank line dispatches the
  event; ``event:`` names it; lines starting with ``:`` are comments
  (``: ping``); ``id:``, ``retry:`` and unknown fields are ignored, except
  ``error:``, which llama.cpp sends instead of ``data:`` for failures and
  which is surfaced as an event named ``error``.
- An event whose data is ``[DONE]`` (OpenAI's end marker) ends the stream:
  ``done`` is set as soon as that frame is complete and every byte after it
  is ignored, so the reader can stop right there.
- Split invariance: the events never depend on how the bytes arrive; frames
  may be split anywhere across ``feed()`` calls.
- Limits: no line (without its end) and no event's data may be larger than
  ``max_event_bytes``. Crossing it raises ``SSEError`` carrying the events
  decoded before it; a partial line is measured the same way, so it fails
  exactly where the whole line would.
- Linear time: each byte is examined a bounded number of times. Line-end
  searches are cached and never rescan; a line still incomplete is kept as
  pieces and joined once; a run attempt that fails is not retried before the
  end of the bytes it looked at.
- ``close()`` ends the input: a last line without its terminator still
  counts, and pending data is dispatched.

Fast paths (``pack_json_runs=True``): a piece that is exactly one plain frame
(``data: <one line>`` plus a blank line, LF or CRLF ends), fed between frames,
is decoded without the line scan: one event per read is how a server that
writes each token as it comes is read. And a run of complete frames that are all
exactly ``data: <one line>`` plus a blank line (LF or CRLF ends) is handed out
as one ``DataRun`` of payloads, cut with one split, instead of one event per
frame. The run is taken only when no payload holds a CR or LF after the split
(so every frame has that shape) and its payloads are the ones the line rules
give; anything else goes through the line rules.

>>> d = SSEDecoder()
>>> d.feed(b"data: {\\"a\\": 1}\\r\\n\\r\\n: ping\\n\\ndata: x\\ndata: y\\n")
[SSEEvent(event='message', data=b'{"a": 1}')]
>>> d.feed(b"\\n") + d.close()
[SSEEvent(event='message', data=b'x\\ny')]
>>> SSEDecoder(pack_json_runs=True).feed(b"data: 1\\n\\ndata: 2\\n\\ndata: [DONE]\\n\\nignored")
[DataRun(payloads=[b'1', b'2']), SSEEvent(event='message', data=b'[DONE]')]
"""

from __future__ import annotations

from typing import NamedTuple, TypeAlias

DEFAULT_MAX_EVENT_BYTES = 256 * 1024 * 1024

DONE = b"[DONE]"
_DATA_PREFIX = b"data: "

# The byte primitives the decoder scans and copies with, named once so that a test can
# meter how many bytes it examines (linearity is a rule; tests count, they never time).
_find = bytes.find
_rfind = bytes.rfind
_split = bytes.split
_join = bytes.join


class SSEError(ValueError):
    """The byte stream cannot be decoded as events (a line or an event over the limit).

    ``events`` holds what was decoded in the same ``feed()`` before the failure.
    """

    def __init__(self, message: str, events: list[SSEEvent | DataRun] | None = None) -> None:
        super().__init__(message)
        self.events: list[SSEEvent | DataRun] = events if events is not None else []


class SSEEvent(NamedTuple):
    event: str
    data: bytes


class DataRun(NamedTuple):
    """Consecutive plain ``data:`` events (named ``message``), as their payloads in order."""

    payloads: list[bytes]


Item: TypeAlias = SSEEvent | DataRun


class SSEDecoder:
    __slots__ = ("_broken", "_data", "_data_size", "_event", "_max", "_pack", "_pending", "_pending_size", "_skip_lf", "done")

    def __init__(self, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES, pack_json_runs: bool = False) -> None:
        self._pending: list[bytes] = []  # the start of a line whose end has not arrived, as fed
        self._pending_size = 0
        self._skip_lf = False  # the last byte fed was a CR: an LF first in the next piece is its CRLF
        self._data: list[bytes] = []
        self._data_size = 0
        self._event = ""
        self._max = max_event_bytes
        self._pack = pack_json_runs
        self._broken = False
        self.done = False

    def feed(self, data: bytes) -> list[Item]:
        out: list[Item] = []
        if self.done or self._broken or not data:
            return out
        if type(data) is not bytes:
            data = bytes(data)
        if self._pack and not self._pending and not self._skip_lf and not self._data and not self._event:
            frame = self._one_frame(data)
            if frame is not None:
                out.append(frame)
                return out
        start = 0
        if self._skip_lf:
            self._skip_lf = False  # a CR ended the last piece, so no line is pending
            start = 1 if data[0] == 0x0A else 0
        if self._pending:
            if _find(data, b"\n") < 0 and _find(data, b"\r") < 0:
                self._pending.append(data)
                self._pending_size += len(data)
                self._check_line(self._pending_size, out)
                return out
            buffer = _join(b"", [*self._pending, data])
            self._pending.clear()
            self._pending_size = 0
        else:
            buffer = data
        end = len(buffer)
        pos = self._scan(buffer, start, out)
        if pos < end and not self.done:
            tail = buffer[pos:]
            self._pending.append(tail)
            self._pending_size = len(tail)
            self._check_line(len(tail), out)
        return out

    def _one_frame(self, data: bytes) -> Item | None:
        """The item of a piece that is exactly one plain frame (``data: <line>`` and a blank line, LF or
        CRLF ends), the decoder being between frames; None for anything else (the line rules decide).

        The one-event-per-read fast path: a server that writes each token as it comes is read a frame at
        a time. It gives the items the line rules give for the same bytes, and keeps their limit.
        """
        if not data.startswith(_DATA_PREFIX):
            return None
        if data.endswith(b"\r\n\r\n"):
            end = len(data) - 4
        elif data.endswith(b"\n\n"):
            end = len(data) - 2
        else:
            return None
        # One line (no other CR or LF before the end), no longer than the limit the line rules keep.
        if end > self._max or _find(data, b"\n", 6, end) >= 0 or _find(data, b"\r", 6, end) >= 0:
            return None
        payload = data[6:end]
        if payload == DONE:
            self.done = True
            return SSEEvent("message", DONE)
        return DataRun([payload])

    def close(self) -> list[Item]:
        out: list[Item] = []
        if self.done or self._broken:
            return out
        if self._pending:
            line = _join(b"", self._pending)
            self._pending.clear()
            self._pending_size = 0
            self._line(line, 0, len(line), out)
        if not self.done:
            self._dispatch(out)
        return out

    def _scan(self, buffer: bytes, pos: int, out: list[Item]) -> int:
        """Decode the complete lines of ``buffer`` from ``pos``; the position of the first byte not consumed."""
        end_of_buffer = len(buffer)
        lf = cr = -1  # cached positions of the next LF / CR at or after pos (end_of_buffer: none)
        runs_from = 0 if self._pack else end_of_buffer + 1
        while pos < end_of_buffer:
            if pos >= runs_from and not self._data and not self._event and buffer.startswith(_DATA_PREFIX, pos):
                after, runs_from = self._run(buffer, pos, out)
                if self.done:
                    return end_of_buffer
                if after > pos:
                    pos = after
                    continue
            if lf < pos:
                lf = _find(buffer, b"\n", pos)
                if lf < 0:
                    lf = end_of_buffer
            if cr < pos:
                cr = _find(buffer, b"\r", pos)
                if cr < 0:
                    cr = end_of_buffer
            if lf < cr:
                line_end, pos_next = lf, lf + 1
            elif cr < end_of_buffer:
                line_end = cr
                if cr + 1 < end_of_buffer:
                    pos_next = cr + 2 if buffer[cr + 1] == 0x0A else cr + 1
                else:
                    pos_next = end_of_buffer
                    self._skip_lf = True
            else:
                break
            self._check_line(line_end - pos, out)
            self._line(buffer, pos, line_end, out)
            pos = pos_next
            if self.done:
                return end_of_buffer
        return pos

    def _run(self, buffer: bytes, pos: int, out: list[Item]) -> tuple[int, int]:
        """Take the plain ``data:`` frames from ``pos`` as one DataRun.

        Returns the position after the run (``pos`` when none was taken) and the
        position before which no run is tried again.
        """
        first_lf = _find(buffer, b"\n", pos)
        if first_lf < 0:
            return pos, len(buffer)
        crlf = buffer[first_lf - 1] == 0x0D
        frame_end, separator = (b"\r\n\r\n", b"\r\n\r\ndata: ") if crlf else (b"\n\n", b"\n\ndata: ")
        last = _rfind(buffer, frame_end, pos)
        if last < 0:
            return pos, len(buffer)
        after = last + len(frame_end)
        if last - pos > self._max:
            return pos, after  # the line rules say which line is too large
        region = buffer[pos + len(_DATA_PREFIX) : last]
        payloads = _split(region, separator)
        # The split took every separator out; a CR or LF left in a payload means another line
        # or another line end (a field, a comment, multi-line data, a stray CR): line rules.
        joined = payloads[0] if len(payloads) == 1 else _join(b"", payloads)  # one copy, then memchr
        if _find(joined, b"\n") >= 0 or _find(joined, b"\r") >= 0:
            return pos, after
        if DONE in payloads:
            payloads = payloads[: payloads.index(DONE)]
            if payloads:
                out.append(DataRun(payloads))
            out.append(SSEEvent("message", DONE))
            self.done = True
            return len(buffer), len(buffer)
        out.append(DataRun(payloads))
        return after, len(buffer)  # no frame end is left after the last one

    def _line(self, buffer: bytes, pos: int, end: int, out: list[Item]) -> None:
        if pos == end:
            self._dispatch(out)
            return
        if buffer[pos] == 0x3A:  # ":" starts a comment
            return
        if buffer.startswith(_DATA_PREFIX, pos, end):
            self._append_data(buffer[pos + len(_DATA_PREFIX) : end], out)
            return
        colon = _find(buffer, b":", pos, end)
        if colon < 0:
            field, value = buffer[pos:end], b""
        else:
            field = buffer[pos:colon]
            value_start = colon + 2 if colon + 1 < end and buffer[colon + 1] == 0x20 else colon + 1
            value = buffer[value_start:end]
        if field == b"data":
            self._append_data(value, out)
        elif field == b"event":
            self._event = value.decode("utf-8", "replace")
        elif field == b"error":  # llama.cpp's non-standard error frame
            self._event = "error"
            self._append_data(value, out)

    def _append_data(self, value: bytes, out: list[Item]) -> None:
        self._data.append(value)
        self._data_size += len(value) + 1
        if self._data_size > self._max + 1:  # the LF after the last line is not part of the data
            self._broken = True
            raise SSEError(f"an event is larger than the limit of {self._max} bytes", out)

    def _check_line(self, size: int, out: list[Item]) -> None:
        if size > self._max:
            self._broken = True
            raise SSEError(f"a line is larger than the limit of {self._max} bytes", out)

    def _dispatch(self, out: list[Item]) -> None:
        if self._data:
            data = self._data[0] if len(self._data) == 1 else _join(b"\n", self._data)
            out.append(SSEEvent(self._event or "message", data))
            if data == DONE:
                self.done = True
            self._data.clear()
            self._data_size = 0
        self._event = ""
