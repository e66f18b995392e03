"""``genesis wire``: print the exact request a chat request becomes, without sending it."""

from __future__ import annotations

import sys
from typing import Any

import msgspec

from pipeline.commands.common import load_genesis, parse_headers, request_from_args
from pipeline.errors import unwrap_or_raise
from pipeline.render import as_json, as_text
from pipeline.trace import render_trace
from pipeline.wire import encode_wire


def run_wire(args: Any) -> int:
    genesis = load_genesis(args)
    request = request_from_args(args)
    ctx = unwrap_or_raise(genesis.shape(args.model, request, headers=parse_headers(args.header)))
    wire = encode_wire(ctx)
    out = sys.stdout
    if args.json:
        document: dict[str, Any] = as_json(wire, show_secrets=args.show_secrets)
        if args.explain:
            document["trace"] = [msgspec.to_builtins(change) for change in ctx.trace]
        out.write(msgspec.json.format(msgspec.json.encode(document), indent=2).decode() + "\n")
        return 0
    out.write(as_text(wire, show_secrets=args.show_secrets, raw_body=args.raw) + "\n")
    if args.explain:
        out.write("\n# what each stage did\n")
        out.write("\n".join(render_trace(ctx.trace, genesis.pipeline.names)) + "\n")
    return 0
