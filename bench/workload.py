"""The work every library does in the benchmark: one request, one recording, one server answer.

No library calls here (the sides import this); standard library only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

MODEL = "tiny-model"
GENESIS_REF = "vllm/" + MODEL
LITELLM_MODEL = "hosted_vllm/" + MODEL
API_KEY = "k"
MOCK_BASE_URL = "http://127.0.0.1:9/v1"  # never contacted: the mock transports answer in-process

TOOLS: list[dict] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather and a short forecast for a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name, e.g. Paris"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                    "days": {"type": "integer", "minimum": 1, "maximum": 7},
                },
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search_docs",
            "description": "Search the deployment documentation and return the best passages.",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string"},
                    "top_k": {"type": "integer", "default": 5},
                    "filters": {
                        "type": "object",
                        "properties": {"lang": {"type": "string"}, "since": {"type": "string", "format": "date"}},
                    },
                },
                "required": ["query"],
            },
        },
    },
]

MESSAGES: list[dict] = [
    {"role": "system", "content": "You are a concise assistant for an operations team. Use the tools when they help."},
    {"role": "user", "content": "Hi! I'm planning a trip to Paris next week and also deploying vLLM there."},
    {"role": "assistant", "content": "Happy to help with both. What would you like to know first?"},
    {"role": "user", "content": "What's the weather going to be like? Celsius please."},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "chatcmpl-tool-5f0c1e2d3b4a49c8a7e6d5c4b3a29180",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius", "days": 3}'},
            }
        ],
    },
    {
        "role": "tool",
        "tool_call_id": "chatcmpl-tool-5f0c1e2d3b4a49c8a7e6d5c4b3a29180",
        "content": '{"city": "Paris", "now": {"temp": 14, "sky": "cloudy"}, "forecast": [16, 18, 15]}',
    },
    {"role": "assistant", "content": "Paris is 14 °C and cloudy now; the next three days look like 16, 18 and 15 °C."},
    {"role": "user", "content": "Great. Now, how do I run vLLM with tensor parallelism on two GPUs?"},
    {"role": "assistant", "content": "Use --tensor-parallel-size 2 when you start the server. Want the full guide?"},
    {"role": "user", "content": "Yes — find the deployment guide section on tensor parallel size, please."},
]
assert len(MESSAGES) == 10

#: The request body every library builds (what Genesis's ``build`` takes; the peers get
#: the same fields as keyword arguments).
REQUEST: dict = {"messages": MESSAGES, "tools": TOOLS, "stream": True}

#: A short chat for the non-streaming call and the concurrency benchmark.
SHORT_MESSAGES: list[dict] = [{"role": "user", "content": "Say hello in fifty tokens."}]


def genesis_config(base_url: str = MOCK_BASE_URL) -> str:
    """The JSON5 provider config Genesis loads (once, outside the timed loops)."""
    return (
        "{\n"
        "  // the benchmark's only provider: a vLLM server\n"
        "  models: {\n"
        "    providers: {\n"
        "      vllm: {\n"
        f'        baseUrl: "{base_url}",\n'
        '        apiKey: "${VLLM_API_KEY}",\n'
        f'        models: [{{ id: "{MODEL}" }}],\n'
        "      },\n"
        "    },\n"
        "  },\n"
        "}\n"
    )


GENESIS_ENV = {"VLLM_API_KEY": API_KEY}

#: The instant answer of the mock transports to a non-streaming call.
COMPLETION_BODY: bytes = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1767225600,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello!", "tool_calls": []},
                "logprobs": None,
                "finish_reason": "stop",
                "stop_reason": None,
            }
        ],
        "usage": {"prompt_tokens": 12, "total_tokens": 14, "completion_tokens": 2, "prompt_tokens_details": None},
    },
    separators=(",", ":"),
).encode()

#: What a stream that only needs to start answers (the request-build benchmark with stream=True).
EMPTY_STREAM: bytes = b"data: [DONE]\n\n"

SSE_HEADERS = [("content-type", "text/event-stream; charset=utf-8")]
JSON_HEADERS = [("content-type", "application/json")]


@dataclass
class StreamSummary:
    """What a consumer of the stream gets out of it; compared against the recording."""

    reasoning: str = ""
    content: str = ""
    tool_names: dict[int, str] = field(default_factory=dict)
    tool_args: dict[int, str] = field(default_factory=dict)
    finish_reason: str | None = None
    completion_tokens: int | None = None

    def diff(self, other: StreamSummary, *, reasoning: bool = True) -> list[str]:
        out = []
        for name in ("reasoning", "content", "tool_names", "tool_args", "finish_reason", "completion_tokens"):
            if name == "reasoning" and not reasoning:
                continue
            a, b = getattr(self, name), getattr(other, name)
            if a != b:
                ra, rb = repr(a), repr(b)
                out.append(f"{name}: got {ra[:60]}{'…' if len(ra) > 60 else ''} expected {rb[:60]}{'…' if len(rb) > 60 else ''}")
        return out


def per_event(pieces: list[bytes]) -> list[bytes]:
    """The same body, one read per SSE frame (cut after each blank line): what a client that keeps
    up with a server writing one event per token reads."""
    body = b"".join(pieces)
    frames = body.split(b"\n\n")
    out = [frame + b"\n\n" for frame in frames[:-1]]
    return out + ([frames[-1]] if frames[-1] else [])


def stream_text(tokens: int) -> str:
    """The text of the loopback server's answer (what each concurrent stream must deliver)."""
    from stream_fixture import content_stream_payloads

    return expected_summary(content_stream_payloads(tokens)).content


def expected_summary(payloads: list[bytes], reasoning_field: str = "reasoning") -> StreamSummary:
    s = StreamSummary()
    for p in payloads:
        obj = json.loads(p)
        if obj.get("usage"):
            s.completion_tokens = obj["usage"]["completion_tokens"]
        for choice in obj["choices"]:
            d = choice["delta"]
            s.reasoning += d.get(reasoning_field) or ""
            s.content += d.get("content") or ""
            for tc in d.get("tool_calls") or []:
                i = tc["index"]
                fn = tc.get("function") or {}
                if fn.get("name"):
                    s.tool_names[i] = fn["name"]
                s.tool_args[i] = s.tool_args.get(i, "") + (fn.get("arguments") or "")
            if choice.get("finish_reason"):
                s.finish_reason = choice["finish_reason"]
    return s


def summarize_openai_like(chunks: list) -> StreamSummary:
    """Summary of OpenAI-SDK-shaped chunk objects (``openai`` ChatCompletionChunk, LiteLLM ModelResponseStream)."""
    s = StreamSummary()
    for c in chunks:
        usage = getattr(c, "usage", None)
        if usage is not None and getattr(usage, "completion_tokens", None) is not None:
            s.completion_tokens = usage.completion_tokens
        for choice in getattr(c, "choices", None) or []:
            d = choice.delta
            r = getattr(d, "reasoning", None) or getattr(d, "reasoning_content", None)
            if isinstance(r, str):
                s.reasoning += r
            s.content += getattr(d, "content", None) or ""
            for tc in getattr(d, "tool_calls", None) or []:
                i = tc.index
                fn = tc.function
                if fn is not None and getattr(fn, "name", None):
                    s.tool_names[i] = fn.name
                s.tool_args[i] = s.tool_args.get(i, "") + ((fn.arguments if fn is not None else None) or "")
            if choice.finish_reason:
                s.finish_reason = choice.finish_reason
    return s
