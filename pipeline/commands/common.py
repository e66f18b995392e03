"""What several commands share: loading the Genesis object, reading a request file."""

from __future__ import annotations

import sys
from typing import Any

import msgspec

from pipeline.api import Genesis
from pipeline.errors import RequestError
from pipeline.request import prompt_request


def load_genesis(args: Any) -> Genesis:
    return Genesis.from_config_file(getattr(args, "config", None))


def request_from_args(args: Any) -> dict[str, Any]:
    """The chat request named on the command line: ``--prompt`` (+ ``--system``) or ``--request FILE``."""
    stream = not getattr(args, "no_stream", False)
    if args.prompt is not None:
        return prompt_request(args.prompt, system=args.system, max_tokens=args.max_tokens, stream=stream)
    source = "stdin" if args.request == "-" else args.request
    try:
        data = sys.stdin.buffer.read() if args.request == "-" else open(args.request, "rb").read()
    except OSError as exc:
        raise RequestError(f"--request {source}: cannot be read: {exc.strerror or exc}") from None
    try:
        request = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise RequestError(f"--request {source}: not valid JSON: {exc}") from None
    if not isinstance(request, dict):
        raise RequestError(f"--request {source}: expected a JSON object (a chat completion body)")
    if args.system:
        request["messages"] = [{"role": "system", "content": args.system}, *request.get("messages", [])]
    if args.max_tokens is not None:
        request["max_tokens"] = args.max_tokens
    return request


def parse_headers(values: list[str]) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for value in values:
        name, colon, content = value.partition(":")
        if not colon or not name.strip():
            raise RequestError(f"--header {value!r}: expected 'Name: value'")
        headers.append((name.strip(), content.strip()))
    return headers
