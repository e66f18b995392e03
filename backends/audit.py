"""Audit records: the exact request sent (secrets redacted) and what came back.

An audit hook is any callable taking an ``AuditRecord``; ``JsonlAudit``
appends each record as one JSON line. A record is made for every attempt,
failed or not, retries included, after the attempt ends; a model skipped
while it cools down gets a record of class ``cooldown`` without a request
(nothing was sent).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgspec

from pipeline.events import Usage
from pipeline.types import WireRequest


class AuditRequest(msgspec.Struct, frozen=True):
    method: str
    url: str
    headers: dict[str, str]
    body: str


class AuditRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    time: float
    ref: str
    provider: str
    model: str
    ok: bool
    request: AuditRequest | None = None
    retry: int = 0
    delay_ms: int | None = None
    status: int | None = None
    error_class: str | None = msgspec.field(default=None, name="class")
    message: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    timing: dict[str, float | None] = {}


def audit_request(wire: WireRequest) -> AuditRequest:
    return AuditRequest(wire.method, wire.url, dict(wire.redacted_headers()), wire.body.decode("utf-8", "replace"))


def make_record(wire: WireRequest, *, sent: bool = True, **fields: Any) -> AuditRecord:
    """The record of one attempt with ``wire``; ``sent=False`` (a cooldown skip) leaves the request out."""
    request = audit_request(wire) if sent else None
    return AuditRecord(time=time.time(), ref=wire.ref, provider=wire.provider, model=wire.model, request=request, **fields)


class JsonlAudit:
    """Appends one JSON object per attempt to a file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._encoder = msgspec.json.Encoder()

    def __call__(self, record: AuditRecord) -> None:
        with self.path.open("ab") as handle:
            handle.write(self._encoder.encode(record) + b"\n")
