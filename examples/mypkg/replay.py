"""A sender that replays one recorded answer instead of calling a server (``replace: "send"``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pipeline.types import WireRequest


async def replay(client: Any, wire: WireRequest, hints: Any, record: Any) -> AsyncIterator[bytes]:
    record.status, record.content_type = 200, "text/event-stream"
    yield b'data: {"choices": [{"delta": {"content": "Call 555-0100"}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'
