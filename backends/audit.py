"""Audit records: the exact request sent (secrets redacted) and what came back.

An audit hook is any callable taking an ``AuditRecord``; ``JsonlAudit``
appends each record as one JSON line. A record is made for every attempt,
failed or not, after the attempt ends.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgspec

from backends.events import Usage
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
    request: AuditRequest
    ok: bool
    status: int | None = None
    error_class: str | None = msgspec.field(default=None, name="class")
    message: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    timing: dict[str, float | None] = {}


def audit_request(wire: WireRequest) -> AuditRequest:
    return AuditRequest(wire.method, wire.url, dict(wire.redacted_headers()), wire.body.decode("utf-8", "replace"))


def make_record(wire: WireRequest, **fields: Any) -> AuditRecord:
    return AuditRecord(time=time.time(), ref=wire.ref, provider=wire.provider, model=wire.model, request=audit_request(wire), **fields)


class JsonlAudit:
    """Appends one JSON object per attempt to a file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._encoder = msgspec.json.Encoder()

    def __call__(self, record: AuditRecord) -> None:
        with self.path.open("ab") as handle:
            handle.write(self._encoder.encode(record) + b"\n")
