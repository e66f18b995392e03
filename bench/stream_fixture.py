"""A recorded-looking vLLM chat-completions SSE stream, generated deterministically.

The stream imitates what vLLM's OpenAI server (``/v1/chat/completions`` with
``"stream": true`` and ``stream_options.include_usage``) sends for a reasoning model
that thinks, answers, then calls two tools:

    role chunk      delta {"role":"assistant","content":""}
    reasoning       delta {"reasoning": "<token>"}            (~40 % of the chunks)
    content         delta {"content": "<token>"}              (~30 %)
    tool call 0     delta {"tool_calls":[{"id":..,"type":"function","index":0,"function":{"name":..}}]}
                    delta {"tool_calls":[{"index":0,"function":{"arguments":"<piece>"}}]}  x k
    tool call 1     the same with index 1                     (~30 % for both calls)
    finish          delta {}, "finish_reason":"tool_calls", "stop_reason":null
    usage           "choices": [], "usage": {...}
    data: [DONE]

Every chunk carries vLLM's envelope: ``id``, ``object: "chat.completion.chunk"``,
``created``, ``model``, and each choice ``index``, ``delta``, ``logprobs: null``,
``finish_reason``. JSON is compact with raw UTF-8, as pydantic's ``model_dump_json``
writes it. Tokens include spaces, punctuation, newlines, quotes, backslashes and
non-ASCII text, so string escapes are exercised. Tool-call argument pieces
concatenate to valid JSON.

Current vLLM names the reasoning field ``reasoning`` (it was ``reasoning_content``
before the rename); ``reasoning_field=`` picks the name.

Standard library only: the loopback server imports it too.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

CREATED = 1767225600
DEFAULT_CHUNKS = 2000
DEFAULT_SEED = 20260101
PIECE_SIZE = 16 * 1024

_WORDS = (
    "the",
    "weather",
    "in",
    "Paris",
    "is",
    "mild",
    "today",
    "and",
    "user",
    "asked",
    "about",
    "tomorrow",
    "so",
    "I",
    "should",
    "check",
    "forecast",
    "tool",
    "first",
    "then",
    "search",
    "documentation",
    "for",
    "the",
    "deployment",
    "guide",
    "of",
    "vLLM",
    "server",
    "with",
    "tensor",
    "parallel",
    "size",
    "two",
    "Let",
    "me",
    "think",
    "step",
    "by",
    "carefully",
    "café",
    "naïve",
    "Zürich",
    "—",
    "→",
    "✓",
    "東京",
    "🙂",
    "42",
    "3.14",
    "100%",
)
_PUNCT = (",", ".", ":", ";", "?", "!", "\n", "\n\n", ' "', '"', "'", " (", ")", "\\", "`", "\t")


@dataclass(frozen=True)
class StreamShape:
    """How many chunks of each kind a stream of ``total`` chunks has."""

    total: int
    reasoning: int
    content: int
    tool_args: tuple[int, int]  # argument pieces per tool call (after each call's header chunk)

    @staticmethod
    def for_total(total: int) -> StreamShape:
        if total < 10:
            raise ValueError("a stream needs at least 10 chunks")
        rest = total - 3 - 2  # role, finish, usage; two tool-call header chunks
        reasoning = rest * 4 // 10
        content = rest * 3 // 10
        args = rest - reasoning - content
        return StreamShape(total, reasoning, content, (args - args // 2, args // 2))


def _token(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.12:
        return rng.choice(_PUNCT)
    word = rng.choice(_WORDS)
    return word if r < 0.2 else " " + word


def _chunk_id(rng: random.Random, prefix: str) -> str:
    return prefix + "%032x" % rng.getrandbits(128)


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _chunk(cid: str, model: str, delta: dict, finish_reason: str | None = None, *, stop: bool = False) -> bytes:
    """One vLLM chat.completion.chunk with a single choice."""
    choice: dict = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    if stop:
        choice["stop_reason"] = None
    return _dumps({"id": cid, "object": "chat.completion.chunk", "created": CREATED, "model": model, "choices": [choice]})


def _split(text: str, pieces: int) -> list[str]:
    """``text`` cut into exactly ``pieces`` non-empty parts (text must be long enough)."""
    n = len(text)
    bounds = [round(i * n / pieces) for i in range(pieces + 1)]
    return [text[bounds[i] : bounds[i + 1]] for i in range(pieces)]


def _arguments(rng: random.Random, name: str, min_len: int) -> str:
    words: list[str] = []
    while True:
        notes = "".join(words)
        if name == "get_weather":
            args = {"city": "Paris", "unit": "celsius", "days": 3, "notes": notes}
        else:
            args = {"query": notes, "top_k": 5, "filters": {"lang": "en", "since": "2025-01-01"}}
        text = json.dumps(args, ensure_ascii=False)  # the model writes spaced JSON
        if len(text) >= min_len:
            return text
        words.append(_token(rng))


def make_payloads(
    total: int = DEFAULT_CHUNKS,
    *,
    seed: int = DEFAULT_SEED,
    model: str = "tiny-model",
    reasoning_field: str = "reasoning",
) -> list[bytes]:
    """The ``total`` JSON payloads of the stream (one per ``data:`` event, no ``[DONE]``)."""
    shape = StreamShape.for_total(total)
    rng = random.Random(seed)
    cid = _chunk_id(rng, "chatcmpl-")

    def chunk(delta: dict, finish_reason: str | None = None, *, stop: bool = False) -> bytes:
        return _chunk(cid, model, delta, finish_reason, stop=stop)

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({reasoning_field: _token(rng)}) for _ in range(shape.reasoning)]
    out += [chunk({"content": _token(rng)}) for _ in range(shape.content)]
    for index, (name, pieces) in enumerate(zip(("get_weather", "search_docs"), shape.tool_args, strict=True)):
        call_id = _chunk_id(rng, "chatcmpl-tool-")
        out.append(chunk({"tool_calls": [{"id": call_id, "type": "function", "index": index, "function": {"name": name}}]}))
        for piece in _split(_arguments(rng, name, pieces * 4), pieces):
            out.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    out.append(chunk({}, "tool_calls", stop=True))
    completion_tokens = total - 1
    out.append(
        _dumps(
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": model,
                "choices": [],
                "usage": {
                    "prompt_tokens": 412,
                    "total_tokens": 412 + completion_tokens,
                    "completion_tokens": completion_tokens,
                    "prompt_tokens_details": None,
                },
            }
        )
    )
    assert len(out) == total, (len(out), total)
    return out


def content_stream_payloads(tokens: int = 50, *, seed: int = DEFAULT_SEED, model: str = "tiny-model") -> list[bytes]:
    """A plain answer: role chunk, ``tokens`` content chunks, finish ``stop``, usage chunk."""
    rng = random.Random(seed)
    cid = _chunk_id(rng, "chatcmpl-")

    def chunk(delta: dict, finish_reason: str | None = None, *, stop: bool = False) -> bytes:
        return _chunk(cid, model, delta, finish_reason, stop=stop)

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": _token(rng)}) for _ in range(tokens)]
    out.append(chunk({"content": ""}, "stop", stop=True))
    out.append(
        _dumps(
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": model,
                "choices": [],
                "usage": {"prompt_tokens": 12, "total_tokens": 12 + tokens, "completion_tokens": tokens, "prompt_tokens_details": None},
            }
        )
    )
    return out


def sse_events(payloads: list[bytes]) -> list[bytes]:
    """Each payload framed as vLLM frames it (``data: <json>\\n\\n``), then ``data: [DONE]``."""
    return [b"data: " + p + b"\n\n" for p in payloads] + [b"data: [DONE]\n\n"]


def sse_bytes(payloads: list[bytes]) -> bytes:
    return b"".join(sse_events(payloads))


def pieces(stream: bytes, size: int = PIECE_SIZE) -> list[bytes]:
    """The stream as network reads of ``size`` bytes (the last one shorter); cuts fall mid-event."""
    return [stream[i : i + size] for i in range(0, len(stream), size)]


@dataclass(frozen=True)
class Recording:
    payloads: list[bytes]
    stream: bytes
    pieces: list[bytes]

    @property
    def chunks(self) -> int:
        return len(self.payloads)


def recording(total: int = DEFAULT_CHUNKS, *, piece_size: int = PIECE_SIZE, **kw: object) -> Recording:
    payloads = make_payloads(total, **kw)  # type: ignore[arg-type]
    stream = sse_bytes(payloads)
    return Recording(payloads, stream, pieces(stream, piece_size))


def check(rec: Recording) -> dict[str, int]:
    """Sanity check of a recording; returns counts by kind (used by the harness and tests)."""
    counts = {"role": 0, "reasoning": 0, "content": 0, "tool_header": 0, "tool_args": 0, "finish": 0, "usage": 0}
    args: dict[int, str] = {}
    for p in rec.payloads:
        obj = json.loads(p)
        assert obj["object"] == "chat.completion.chunk"
        if not obj["choices"]:
            assert "usage" in obj
            counts["usage"] += 1
            continue
        (choice,) = obj["choices"]
        assert set(choice) >= {"index", "delta", "logprobs", "finish_reason"}
        delta = choice["delta"]
        if choice["finish_reason"]:
            counts["finish"] += 1
        elif "role" in delta:
            counts["role"] += 1
        elif "content" in delta:
            counts["content"] += 1
        elif "tool_calls" in delta:
            (tc,) = delta["tool_calls"]
            if "id" in tc:
                counts["tool_header"] += 1
            else:
                counts["tool_args"] += 1
                args[tc["index"]] = args.get(tc["index"], "") + tc["function"]["arguments"]
        else:
            counts["reasoning"] += 1
    for text in args.values():
        json.loads(text)  # the pieces make valid JSON
    assert rec.stream.endswith(b"data: [DONE]\n\n")
    assert b"".join(rec.pieces) == rec.stream
    return counts


if __name__ == "__main__":  # print a few events and the counts
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CHUNKS
    rec = recording(n)
    for line in sse_events(rec.payloads)[:3] + sse_events(rec.payloads)[-4:]:
        sys.stdout.write(line.decode())
    print(check(rec), f"{len(rec.stream)} bytes in {len(rec.pieces)} pieces")
