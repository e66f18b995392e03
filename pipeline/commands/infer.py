"""``genesis infer model run``: send a prompt, stream the answer, report usage.

Output rules: text goes to stdout as it arrives; everything else (failover
notices, the final status line, errors) goes to stderr, so stdout is only
the answer. ``--json`` prints one object at the end instead. A failure
exits 1 with one line and its hint on stderr (and ``ok: false`` with
``--json``); user errors exit 2.
"""

from __future__ import annotations

import sys
from typing import Any

import msgspec

from pipeline.commands.common import load_genesis, parse_headers, request_from_args
from pipeline.errors import ConfigError, GenesisError, ProviderError

CAPABILITY = "model.run"


def run_infer(args: Any) -> int:
    import anyio

    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="replace")
    try:
        return anyio.run(_run, args)
    except KeyboardInterrupt:
        _fail(args, GenesisError("aborted: the run was cancelled"), [], error_class="aborted")
        return 130


async def _run(args: Any) -> int:
    from backends.audit import JsonlAudit
    from backends.events import AttemptFailed, TextDelta

    try:
        genesis = load_genesis(args)
        request = request_from_args(args)
        headers = parse_headers(args.header)
    except GenesisError as error:
        return _fail(args, error, [])
    genesis.warn = lambda message: print(f"genesis: warning: {message}", file=sys.stderr)
    streaming = not args.json and request.get("stream") is True
    wrote_text = [False]

    def on_event(event: Any) -> None:
        if isinstance(event, AttemptFailed):
            attempt = event.attempt
            print(f"genesis: {attempt.provider}/{attempt.model} failed ({attempt.error_class}: {attempt.message}); trying the next fallback", file=sys.stderr)
        elif streaming and isinstance(event, TextDelta):
            sys.stdout.write(event.text)
            sys.stdout.flush()
            wrote_text[0] = True

    audit = JsonlAudit(args.audit) if args.audit else None
    try:
        async with genesis:
            completion = await genesis.run(args.model, request, headers=headers, audit=audit, fallbacks=not args.no_fallbacks, on_event=on_event)
    except ProviderError as error:
        if wrote_text[0]:
            sys.stdout.write("\n")
        return _fail(args, error, error.attempts, exit_code=1)
    except GenesisError as error:
        return _fail(args, error, [])
    target = genesis.catalog.providers[completion.provider].find(completion.model)
    window = target.config.context_window if target is not None else None
    window = window if isinstance(window, int) else None
    if args.json:
        print(msgspec.json.encode(_document(completion, window)).decode())
        return 0
    if not streaming:
        sys.stdout.write(completion.text)
    if completion.text and not completion.text.endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()
    print(status_line(completion, window), file=sys.stderr)
    return 0


def status_line(completion: Any, window: int | None) -> str:
    """One line after a run: tokens from the streamed usage, and the share of the context window used.

    >>> from backends.events import Completion, Usage
    >>> status_line(Completion("hi", "stop", "stop", usage=Usage(30, 20, 50), provider="vllm", model="tiny-model"), 1024)
    'genesis: vllm/tiny-model · 30 prompt + 20 completion = 50 tokens · context 50/1,024 (4.9%) · finish stop'
    """
    parts = [f"genesis: {completion.provider}/{completion.model}"]
    usage = completion.usage
    if usage is None:
        parts.append("no token usage reported by the server")
    else:
        parts.append(f"{usage.prompt_tokens} prompt + {usage.completion_tokens} completion = {usage.total_tokens} tokens")
        if window:
            parts.append(f"context {usage.total_tokens:,}/{window:,} ({usage.total_tokens / window:.1%})")
    parts.append(f"finish {completion.raw_finish_reason}")
    return " · ".join(parts)


def _document(completion: Any, window: int | None) -> dict[str, Any]:
    output: dict[str, Any] = {"text": completion.text}
    if completion.reasoning:
        output["reasoning"] = completion.reasoning
    if completion.tool_calls:
        output["toolCalls"] = [msgspec.to_builtins(call) for call in completion.tool_calls]
    usage = completion.usage
    return {
        "ok": True,
        "capability": CAPABILITY,
        "provider": completion.provider,
        "model": completion.model,
        "attempts": msgspec.to_builtins(completion.attempts),
        "outputs": [output],
        "usage": None if usage is None else {
            "promptTokens": usage.prompt_tokens, "completionTokens": usage.completion_tokens,
            "totalTokens": usage.total_tokens, "contextWindow": window,
        },
        "finishReason": completion.finish_reason,
    }


def _fail(args: Any, error: GenesisError, attempts: list[Any], *, exit_code: int = 2, error_class: str | None = None) -> int:
    from pipeline.cli import report_error

    report_error(error)
    if getattr(args, "json", False):
        detail: dict[str, Any] = {"class": error_class or error.kind, "message": str(error)}
        if error.hint:
            detail["hint"] = error.hint
        if isinstance(error, ProviderError):
            detail.update(status=error.status, url=error.url, serverMessage=error.server_message)
        if isinstance(error, ConfigError):
            detail["issues"] = [str(issue) for issue in error.issues]
        print(msgspec.json.encode({"ok": False, "capability": CAPABILITY, "attempts": msgspec.to_builtins(attempts), "error": detail}).decode())
    return exit_code
