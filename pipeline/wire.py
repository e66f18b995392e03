"""The last step of a build: a shaped context becomes an immutable WireRequest.

The body is encoded here, once, with one encoder built at import; what is
logged, snapshotted and sent are these same bytes.
"""

from __future__ import annotations

import msgspec

from pipeline.errors import RequestError, StageError
from pipeline.types import Context, WireRequest

_ENCODER = msgspec.json.Encoder()


def encode_wire(ctx: Context) -> WireRequest:
    target = ctx.target
    if target is None:
        raise StageError("resolve_ref", "no model was resolved; the resolve_ref stage must run before encoding")
    try:
        body = _ENCODER.encode(ctx.body)
    except (TypeError, ValueError, OverflowError) as exc:
        raise RequestError(f"request body cannot be encoded as JSON: {exc}") from None
    return WireRequest(
        method="POST",
        url=target.provider.base_url.rstrip("/") + "/chat/completions",
        headers=ctx.headers,
        body=body,
        secret_headers=ctx.secret_headers,
        provider=target.provider.id,
        model=target.model.config.id,
        ref=target.ref,
        stream=ctx.body.get("stream") is True,
        policy=target.provider.policy,
        context=ctx,
    )
