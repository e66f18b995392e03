"""What several commands share: loading the Genesis object, reading a prompt or a request file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import msgspec

from pipeline.api import Genesis
from pipeline.errors import RequestError
from pipeline.jsontext import shown, structure_issues
from pipeline.request import prompt_request
from pipeline.validate import describe_value

# Deeper than any chat body needs (tool schemas included), and shallow enough that every
# later walk and msgspec's encoder stay far from the interpreter's recursion limit.
MAX_REQUEST_DEPTH = 128
# A prompt or request file is read no further than this: /dev/zero or a log given by mistake must not fill memory.
MAX_INPUT_BYTES = 64 * 1024 * 1024


def load_genesis(args: Any) -> Genesis:
    return Genesis.from_config_file(getattr(args, "config", None))


def request_from_args(args: Any) -> dict[str, Any]:
    """The chat request named on the command line: ``--prompt TEXT`` or ``--prompt-file FILE``
    (+ ``--system``), or ``--request FILE``."""
    stream = not getattr(args, "no_stream", False)
    prompt_file: str | None = getattr(args, "prompt_file", None)
    if prompt_file is not None:
        prompt = decode_prompt(read_input(prompt_file, "--prompt-file"), _named("--prompt-file", prompt_file))
        return prompt_request(prompt, system=args.system, max_tokens=args.max_tokens, stream=stream)
    if args.prompt is not None:
        return prompt_request(args.prompt, system=args.system, max_tokens=args.max_tokens, stream=stream)
    request = decode_request(read_input(args.request, "--request"), _named("--request", args.request))
    if args.system:
        request["messages"] = [{"role": "system", "content": args.system}, *request.get("messages", [])]
    if args.max_tokens is not None:
        request["max_tokens"] = args.max_tokens
    return request


def _named(option: str, path: str) -> str:
    return f"{option} {'stdin' if path == '-' else path}"


def read_input(path: str, option: str) -> bytes:
    """The bytes of the file an option names (``-``: stdin), or a one-line RequestError naming the
    option and the file: it cannot be read (missing, a directory, no permission), or it is larger
    than ``MAX_INPUT_BYTES`` (read no further)."""
    where = _named(option, path)
    try:
        if path == "-":
            stdin = getattr(sys.stdin, "buffer", None)
            if stdin is None:
                raise RequestError(f"{where}: there is no standard input to read")
            data: bytes = stdin.read(MAX_INPUT_BYTES + 1)
        else:
            with Path(path).open("rb") as file:
                data = file.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        raise RequestError(f"{where}: cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_INPUT_BYTES:
        raise RequestError(f"{where}: larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB; is it the right file?")
    return data


def decode_prompt(data: bytes, source: str) -> str:
    """A prompt file's text, exactly as written (a final line break included), less a UTF-8 byte order mark;
    a one-line RequestError when it is not UTF-8 or is empty.

    >>> decode_prompt(b"\\xef\\xbb\\xbfWhat is 2 + 2?\\n", "--prompt-file p.txt")
    'What is 2 + 2?\\n'
    >>> decode_prompt(b"caf\\xe9", "--prompt-file p.txt")
    Traceback (most recent call last):
    ...
    pipeline.errors.RequestError: --prompt-file p.txt: not valid UTF-8: byte 0xe9 at offset 3 (a prompt file is UTF-8 text)
    """
    text = _utf8(data, source, " (a prompt file is UTF-8 text)").removeprefix("\ufeff")
    if not text:
        raise RequestError(f"{source}: is empty; the prompt is the file's text")
    return text


def _utf8(data: bytes, source: str, note: str = "") -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(f"{source}: not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}{note}") from None


def decode_request(data: bytes, source: str) -> dict[str, Any]:
    """A request file's bytes as a JSON object, or a one-line RequestError saying what is wrong and where.

    >>> decode_request(b'{"messages": []}', "--request r.json")
    {'messages': []}
    >>> decode_request(b'{"a": "\\xff"}', "--request r.json")
    Traceback (most recent call last):
    ...
    pipeline.errors.RequestError: --request r.json: not valid UTF-8: byte 0xff at offset 7
    """
    text = _utf8(data, source)
    try:
        request = msgspec.json.decode(text)
    except RecursionError:
        raise RequestError(f"{source}: {_too_deep()}") from None
    except msgspec.ValidationError as exc:  # numbers msgspec will not hold (beyond 64-bit ints, beyond float range)
        raise RequestError(f"{source}: a number is out of range ({shown(str(exc), 120)})") from None
    except msgspec.DecodeError as exc:
        raise RequestError(f"{source}: not valid JSON: {shown(str(exc), 160)}") from None
    if not isinstance(request, dict):
        raise RequestError(f"{source}: expected a JSON object (a chat completion body), found {describe_value(request)}")
    issues = structure_issues(request, MAX_REQUEST_DEPTH)
    if issues:
        raise RequestError(f"{source}: {issues[0]}")
    return request


def _too_deep() -> str:
    return f"nested too deep; the limit is {MAX_REQUEST_DEPTH} levels of objects and lists"


def parse_headers(values: list[str]) -> list[tuple[str, str]]:
    """``--header 'Name: value'`` arguments, each name and value checked as HTTP allows.

    >>> parse_headers(["X-Trace: abc"])
    [('X-Trace', 'abc')]
    """
    from pipeline.header_rules import caller_header_error

    headers: list[tuple[str, str]] = []
    for value in values:
        name, colon, content = value.partition(":")
        if not colon or not name.strip(" \t"):
            raise RequestError("--header: expected 'Name: value' (a name, a colon, then the value)")
        # Only spaces and tabs around them are dropped (HTTP's optional whitespace); a line break is an error.
        name, content = name.strip(" \t"), content.strip(" \t")
        error = caller_header_error(name, content, "--header")
        if error is not None:
            raise error
        headers.append((name, content))
    return headers
