"""``genesis infer model run``: send a prompt, stream the answer, report usage.

Output rules: the answer goes to stdout: its text as it arrives, or, when it
has no text, its tool calls as ``name(arguments)``; with ``n`` > 1 each choice
under a ``--- choice i ---`` header, printed at the end. Everything else goes
to stderr: reasoning marked ``[reasoning]`` (with or without text: stdout
stays the answer alone, so the reasoning is never in a pipe's way), a choice
with no text, reasoning or tool call as ``[no text]``, retry and failover notices,
the final status line, errors; coloured only on a terminal
(``pipeline.commands.output``). ``--json`` prints one object at the end instead
(camelCase keys throughout; the shape is in the README). A failure exits 1
with one line and its hint on stderr (``ok: false`` with ``--json``, with the
attempts and what of the answer had arrived); user errors exit 2.
``--explain`` also says what each of the seven stages and every answer-side
stage did (on stderr after the status line; ``"explain"`` with ``--json``).
"""

from __future__ import annotations

import sys
from typing import Any

import msgspec

from pipeline.api import outputs_of
from pipeline.commands.common import load_genesis, parse_headers, request_from_args
from pipeline.commands.output import painted, program, warn
from pipeline.errors import ConfigError, ErrorClass, GenesisError, ProviderError

CAPABILITY = "model.run"
REASONING_MARK = "[reasoning] "
NO_TEXT_MARK = "[no text]"


class Progress:
    """What reached the command during a run: the attempts it was told about, and the
    answer's text and reasoning per choice (kept for the report when the run fails)."""

    def __init__(self) -> None:
        self.attempts: list[Any] = []
        self.text: dict[int, list[str]] = {}
        self.reasoning: dict[int, list[str]] = {}

    def partial(self) -> dict[str, Any] | None:
        """``{text, reasoning}`` of choice 0, and ``outputs`` when another choice began; None when nothing arrived.

        >>> p = Progress(); p.text[0] = ["Hel", "lo"]; p.partial()
        {'text': 'Hello', 'reasoning': ''}
        """
        choices = sorted(set(self.text) | set(self.reasoning))
        if not choices:
            return None

        def joined(index: int) -> dict[str, Any]:
            return {"text": "".join(self.text.get(index, ())), "reasoning": "".join(self.reasoning.get(index, ()))}

        partial = joined(0)
        if choices != [0]:
            partial["outputs"] = [{"index": index, **joined(index)} for index in choices]
        return partial


def run_infer(args: Any) -> int:
    from backends import eventloop

    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="replace")
    progress = Progress()
    try:
        return eventloop.run(lambda: _run(args, progress))  # uvloop with genesis[fast], as Genesis.run_sync
    except KeyboardInterrupt:
        _fail(args, GenesisError("aborted: the run was cancelled"), progress.attempts, progress.partial(), error_class=ErrorClass.ABORTED)
        return ErrorClass.ABORTED.exit_code


async def _run(args: Any, progress: Progress) -> int:
    from backends.audit import JsonlAudit
    from pipeline.events import AttemptFailed, ReasoningDelta, TextDelta, ToolCallDelta

    try:
        genesis = load_genesis(args)
        request = request_from_args(args)
        headers = parse_headers(args.header)
    except GenesisError as error:
        return _fail(args, error, [], None)
    genesis.warn = warn
    explain = getattr(args, "explain", False)
    if explain:  # parse_stream's notes then count the events by kind (off otherwise: it is a step on every read)
        genesis.pipeline = genesis.pipeline.counting_events()
    choices = request.get("n")
    # Several choices arrive interleaved: they are printed one after the other at the end.
    streaming = not args.json and request.get("stream") is True and not (isinstance(choices, int) and choices > 1)
    live = _LiveOutput()

    def on_event(event: Any) -> None:
        kind = type(event)
        if kind is TextDelta:
            progress.text.setdefault(event.choice, []).append(event.text)
            if streaming:
                live.text(event.text)
        elif kind is ReasoningDelta:
            progress.reasoning.setdefault(event.choice, []).append(event.text)
            if streaming:
                live.reasoning(event.text)
        elif kind is ToolCallDelta:
            if streaming:
                live.end_reasoning()
        elif kind is AttemptFailed:
            progress.attempts.append(event.attempt)
            live.end_reasoning()
            print(painted(attempt_notice(event.attempt), "warning", sys.stderr), file=sys.stderr)

    audit = JsonlAudit(args.audit) if args.audit else None
    try:
        async with genesis:
            completion = await genesis.run(
                args.model, request, headers=headers, audit=audit, fallbacks=not args.no_fallbacks, on_event=on_event
            )
    except ProviderError as error:
        live.finish()
        return _fail(args, error, error.attempts, progress.partial(), exit_code=error.error_class.exit_code)
    except GenesisError as error:
        live.finish()
        return _fail(args, error, progress.attempts, progress.partial())
    live.end_reasoning()
    provider = genesis.catalog.providers[completion.provider]
    entry = provider.find(completion.model) or provider.synthesize(completion.model)  # the limits the request was built with
    window = entry.config.context_window if isinstance(entry.config.context_window, int) else None
    explained = explain_lines(genesis, completion, request, headers) if explain else []
    if args.json:
        result = document(completion, window)
        if explain:
            result["explain"] = explained
        print(msgspec.json.encode(result).decode())
        return 0
    for where, text in text_pieces(completion, streamed=streaming):
        if where == "stdout":
            sys.stdout.write(text)
            sys.stdout.flush()
        else:  # the marked lines: reasoning, no text
            sys.stderr.write(painted(text, "dim", sys.stderr))
            sys.stderr.flush()
    print(painted(status_line(completion, window), "dim", sys.stderr), file=sys.stderr)
    if explain:
        print("\n# what each stage did\n" + "\n".join(explained), file=sys.stderr)
    return 0


def explain_lines(genesis: Any, completion: Any, request: Any, headers: Any) -> list[str]:
    """What each stage did, in pipeline order: the request-side trace of the request that answered
    (rebuilt by ``Genesis.build``: pure, nothing is sent), then send, parse_stream and each
    answer-side stage from the completion's ``answer_trace``."""
    from returns.result import Success

    from pipeline.trace import render_trace

    pipeline = genesis.pipeline
    built = genesis.build_result(f"{completion.provider}/{completion.model}", request, headers=headers)
    trace = built.unwrap().trace if isinstance(built, Success) else ()
    lines = render_trace(trace, tuple(stage.name for stage in pipeline.request_stages))
    answer_side = ("send", "parse_stream", *(stage.name for stage in pipeline.answer_stages))
    for name in answer_side:
        notes = [note.note for note in completion.answer_trace if note.stage == name]
        if notes:
            lines.append(f"{name}:")
            lines.extend(f"  {note}" for note in notes)
        else:
            lines.append(f"{name}: no changes")
    return lines


class _LiveOutput:
    """Text to stdout as it arrives; reasoning to stderr on a line marked ``[reasoning]``."""

    def __init__(self) -> None:
        self.reasoning_open = False
        self.wrote_text = False
        self.text_ends_line = True

    def text(self, text: str) -> None:
        self.end_reasoning()
        sys.stdout.write(text)
        sys.stdout.flush()
        if text:
            self.wrote_text, self.text_ends_line = True, text.endswith("\n")

    def reasoning(self, text: str) -> None:
        if not self.reasoning_open:
            sys.stderr.write(painted(REASONING_MARK, "dim", sys.stderr))
            self.reasoning_open = True
        sys.stderr.write(painted(text, "dim", sys.stderr))
        sys.stderr.flush()

    def end_reasoning(self) -> None:
        if self.reasoning_open:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.reasoning_open = False

    def finish(self) -> None:
        """Before an error line: close what was left open."""
        self.end_reasoning()
        if self.wrote_text and not self.text_ends_line:
            sys.stdout.write("\n")
            sys.stdout.flush()


def attempt_notice(attempt: Any) -> str:
    """The stderr line for a failed or skipped attempt that is not the run's final error.

    It states what happened, and what comes next only when that is decided (a
    retry); what follows a failover shows on the next line (another notice, the
    status line naming the model that answered, or the error that ended the run).

    >>> from pipeline.events import Attempt
    >>> attempt_notice(Attempt("vllm", "m", ok=False, error_class="overloaded", message="Loading model", status=503, delay_ms=420))
    'genesis: vllm/m failed (overloaded: Loading model); retrying in 0.4 s'
    >>> attempt_notice(Attempt("vllm", "m", ok=False, error_class="auth", message="Unauthorized", status=401))
    'genesis: vllm/m failed (auth: Unauthorized)'
    >>> attempt_notice(Attempt("vllm", "m", ok=False, error_class="cooldown", message="cooling down for 30 s more"))
    'genesis: vllm/m skipped (cooling down for 30 s more)'
    """
    name = f"{attempt.provider}/{attempt.model}" if attempt.provider else attempt.model
    if attempt.error_class == ErrorClass.COOLDOWN:
        return f"{program()}: {name} skipped ({attempt.message})"
    failed = f"{program()}: {name} failed ({attempt.error_class}: {attempt.message})"
    if attempt.delay_ms is not None:
        return f"{failed}; retrying in {attempt.delay_ms / 1000:.1f} s"
    return failed


def text_pieces(completion: Any, *, streamed: bool) -> list[tuple[str, str]]:
    """What text mode prints at the end of a run, as ``(stream, text)`` in order.

    Rules: text to stdout, ending in a newline; tool calls as ``name(arguments)``
    on stdout when a choice has no text; reasoning on stderr marked
    ``[reasoning]``, whether or not there is text; a choice with no text,
    reasoning or tool call says ``[no text]`` on stderr, so an empty answer is never
    silence; several choices each under a ``--- choice i ---`` header.
    When the answer streamed, its text and reasoning are already out.

    >>> from pipeline.events import Completion, ToolCall
    >>> text_pieces(Completion("", "tool_use", "tool_calls", reasoning="hmm", tool_calls=(ToolCall("c1", "f", '{"x": 1}'),)), streamed=False)
    [('stderr', '[reasoning] hmm\\n'), ('stdout', 'f({"x": 1})\\n')]
    """
    outputs = outputs_of(completion)
    several = len(outputs) > 1
    pieces: list[tuple[str, str]] = []
    for output in outputs:
        if several:
            pieces.append(("stdout", f"--- choice {output.index} ---\n"))
        if output.reasoning and not streamed:
            pieces.append(("stderr", f"{REASONING_MARK}{output.reasoning}\n"))
        if output.text:
            if not streamed:
                pieces.append(("stdout", output.text))
            if not output.text.endswith("\n"):
                pieces.append(("stdout", "\n"))
        elif output.tool_calls:
            pieces.extend(("stdout", f"{call.name}({call.arguments})\n") for call in output.tool_calls)
        elif not output.reasoning:
            pieces.append(("stderr", f"{NO_TEXT_MARK}\n"))
    return pieces


def status_line(completion: Any, window: int | None) -> str:
    """One line after a run: tokens from the streamed usage, the share of the context window used, the cost.

    >>> from pipeline.events import Completion, Usage
    >>> status_line(Completion("hi", "stop", "stop", usage=Usage(30, 20, 50), provider="vllm", model="tiny-model"), 1024)
    'genesis: vllm/tiny-model · 30 prompt + 20 completion = 50 tokens · context 50/1,024 (4.9%) · finish stop'
    >>> status_line(Completion("hi", "stop", "stop", usage=Usage(30, 20, 50), provider="p", model="m", cost=0.000123), None)
    'genesis: p/m · 30 prompt + 20 completion = 50 tokens · $0.000123 · finish stop'
    """
    parts = [f"{program()}: {completion.provider}/{completion.model}"]
    usage = completion.usage
    if usage is None:
        parts.append("no token usage reported by the server")
    else:
        parts.append(f"{usage.prompt_tokens} prompt + {usage.completion_tokens} completion = {usage.total_tokens} tokens")
        if window:
            parts.append(f"context {usage.total_tokens:,}/{window:,} ({usage.total_tokens / window:.1%})")
    if completion.cost is not None:
        parts.append(f"${completion.cost:.6f}")
    parts.append(f"finish {completion.raw_finish_reason}")
    return " · ".join(parts)


def document(completion: Any, window: int | None) -> dict[str, Any]:
    """The ``--json`` object of a run that answered (camelCase keys, README "Sending, streaming, errors")."""
    usage = completion.usage
    result: dict[str, Any] = {
        "ok": True,
        "capability": CAPABILITY,
        "provider": completion.provider,
        "model": completion.model,
        "attempts": [attempt_json(attempt) for attempt in completion.attempts],
        "outputs": [_output_json(output) for output in outputs_of(completion)],
        "usage": None if usage is None else usage_json(usage, window),
        "finishReason": completion.finish_reason,
    }
    if completion.cost is not None:
        result["cost"] = completion.cost
    if completion.timings is not None:
        result["timings"] = {camel(name): value for name, value in completion.timings.items()}
    return result


def camel(name: str) -> str:
    """A server's snake_case key in the document's style (llama.cpp's timings).

    >>> camel("predicted_per_second"), camel("cache_n"), camel("promptMs")
    ('predictedPerSecond', 'cacheN', 'promptMs')
    """
    first, *rest = name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def attempt_json(attempt: Any) -> dict[str, Any]:
    """An attempt in ``--json``: provider, model, ok; class, message, status when known; retry (> 0) and delayMs when set.

    >>> from pipeline.events import Attempt
    >>> attempt_json(Attempt("vllm", "m", ok=False, error_class="overloaded", message="Loading model", status=503, retry=1, delay_ms=900))
    {'provider': 'vllm', 'model': 'm', 'ok': False, 'class': 'overloaded', 'message': 'Loading model', 'status': 503, 'retry': 1, 'delayMs': 900}
    """
    result: dict[str, Any] = {"provider": attempt.provider, "model": attempt.model, "ok": attempt.ok}
    optional = (
        ("class", attempt.error_class),
        ("message", attempt.message),
        ("status", attempt.status),
        ("retry", attempt.retry or None),
        ("delayMs", attempt.delay_ms),
    )
    result.update((key, value) for key, value in optional if value is not None)
    return result


def usage_json(usage: Any, window: int | None) -> dict[str, Any]:
    """Token counts in ``--json``; reasoningTokens and cacheWriteTokens only when the server reported some.

    >>> from pipeline.events import Usage
    >>> usage_json(Usage(30, 20, 50, cached_tokens=10), 1024)
    {'promptTokens': 30, 'completionTokens': 20, 'totalTokens': 50, 'cachedTokens': 10, 'contextWindow': 1024}
    """
    result: dict[str, Any] = {
        "promptTokens": usage.prompt_tokens,
        "completionTokens": usage.completion_tokens,
        "totalTokens": usage.total_tokens,
        "cachedTokens": usage.cached_tokens,
    }
    if usage.reasoning_tokens > 0:
        result["reasoningTokens"] = usage.reasoning_tokens
    if usage.cache_write_tokens > 0:
        result["cacheWriteTokens"] = usage.cache_write_tokens
    result["contextWindow"] = window
    return result


def _output_json(output: Any) -> dict[str, Any]:
    return {
        "index": output.index,
        "text": output.text,
        "reasoning": output.reasoning,
        "toolCalls": [
            {
                "id": call.id,
                "name": call.name,
                "arguments": call.arguments,
                "parsedArguments": call.parsed_arguments,
                "argumentsError": call.arguments_error,
            }
            for call in output.tool_calls
        ],
        "finishReason": output.finish_reason,
    }


def error_json(error: GenesisError, error_class: str) -> dict[str, Any]:
    """The ``error`` object of a failed command's ``--json``: class, message, hint, and what the error kind carries."""
    detail: dict[str, Any] = {"class": error_class, "message": str(error)}
    if error.hint:
        detail["hint"] = error.hint
    if isinstance(error, ProviderError):
        detail.update(status=error.status, url=error.url, serverMessage=error.server_message)
    if isinstance(error, ConfigError):
        detail["issues"] = [str(issue) for issue in error.issues]
    return detail


def _fail(
    args: Any,
    error: GenesisError,
    attempts: list[Any],
    partial: dict[str, Any] | None,
    *,
    exit_code: int = 2,
    error_class: str | None = None,
) -> int:
    from pipeline.commands.output import report_error

    report_error(error)
    if getattr(args, "json", False):
        detail = error_json(error, error_class or error.kind)
        failed: dict[str, Any] = {"ok": False, "capability": CAPABILITY, "attempts": [attempt_json(a) for a in attempts], "error": detail}
        if partial is not None:
            failed["partial"] = partial
        print(msgspec.json.encode(failed).decode())
    return exit_code
