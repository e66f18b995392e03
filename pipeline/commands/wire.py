"""``genesis wire``: print the exact request a chat request becomes, without sending it."""

from __future__ import annotations

import sys
from typing import Any

import msgspec

from pipeline.commands.common import load_genesis, parse_headers, request_from_args
from pipeline.render import as_json, as_text
from pipeline.trace import render_trace


def run_wire(args: Any) -> int:
    genesis = load_genesis(args)
    request = request_from_args(args)
    wire = genesis.build(args.model, request, headers=parse_headers(args.header))
    out = sys.stdout
    if args.json:
        document: dict[str, Any] = as_json(wire, show_secrets=args.show_secrets)
        if args.explain:
            document["trace"] = [msgspec.to_builtins(change) for change in wire.trace]
        out.write(msgspec.json.format(msgspec.json.encode(document), indent=2).decode() + "\n")
        return 0
    out.write(as_text(wire, show_secrets=args.show_secrets, raw_body=args.raw) + "\n")
    if args.explain:
        out.write("\n# what each stage did\n")
        request_side = tuple(stage.name for stage in genesis.pipeline.request_stages)
        out.write("\n".join(render_trace(wire.trace, request_side)) + "\n")
        out.write("send, parse_stream: not run (genesis wire sends nothing; genesis infer model run --explain does)\n")
    return 0
