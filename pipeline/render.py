"""Showing a WireRequest to a person or a tool, with secrets redacted.

The headers shown are the ones that go on the socket: ``Host`` first and
``Content-Length`` last are added by the HTTP client (httpx) exactly as
rendered here; a test checks the two agree.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import msgspec

from pipeline.types import Headers, WireRequest


def wire_headers(wire: WireRequest, *, show_secrets: bool = False) -> Headers:
    """All headers of the request as sent, in order."""
    url = urlsplit(wire.url)
    shown = wire.headers if show_secrets else wire.redacted_headers()
    return (("Host", url.netloc), *shown, ("Content-Length", str(len(wire.body))))


def request_target(wire: WireRequest) -> str:
    url = urlsplit(wire.url)
    return (url.path or "/") + (f"?{url.query}" if url.query else "")


def as_text(wire: WireRequest, *, show_secrets: bool = False, raw_body: bool = False) -> str:
    """The HTTP/1.1 request as text; the body pretty-printed unless ``raw_body``."""
    lines = [f"{wire.method} {request_target(wire)} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in wire_headers(wire, show_secrets=show_secrets)]
    if raw_body:
        return "\r\n".join(lines) + "\r\n\r\n" + wire.body.decode("utf-8", "replace")
    pretty = msgspec.json.format(wire.body, indent=2).decode("utf-8", "replace")
    return "\n".join(lines) + "\n\n" + pretty


def as_json(wire: WireRequest, *, show_secrets: bool = False) -> dict[str, Any]:
    """``{"method", "url", "headers", "body"}`` with the body decoded from the exact bytes."""
    return {
        "method": wire.method,
        "url": wire.url,
        "headers": dict(wire_headers(wire, show_secrets=show_secrets)),
        "body": msgspec.json.decode(wire.body),
    }
