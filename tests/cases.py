"""The table of wire cases: a config, a model ref and a request each (shared by snapshot and CLI tests)."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
INFERRS = (ROOT / "examples" / "inferrs.json5").read_text()

VLLM = """{
  models: { providers: { vllm: {
    baseUrl: "http://127.0.0.1:8000/v1", apiKey: "${VLLM_API_KEY}",
    models: [{ id: "tiny-model" }, { id: "deep-r1", reasoning: true }],
  } } },
}"""

OPENAI = """{
  models: { providers: { openai: {
    baseUrl: "https://api.openai.com/v1", apiKey: "${OPENAI_API_KEY}",
    models: [{ id: "o4-mini", reasoning: true }, { id: "gpt-4.1" }],
  } } },
}"""

KEYLESS = """{
  models: { providers: { local: { baseUrl: "http://localhost:8080/v1", models: [{ id: "qwen3" }] } } },
}"""

NO_TOOLS = """{
  models: { providers: { inferrs: {
    baseUrl: "http://127.0.0.1:8080/v1",
    models: [{ id: "gemma", compat: { requiresStringContent: true, supportsTools: false } }],
  } } },
}"""

STRICT_TOOLS = """{
  models: { providers: { lan: {
    baseUrl: "http://192.168.1.50:9000/v1", apiKey: "lan-secret-key", headers: { "X-Team": "ml", "X-Api-Key": "${TEAM_TOKEN}" },
    models: [{ id: "mistral", headers: { "X-Team": "inference" },
               compat: { requiresToolResultName: true, requiresAssistantAfterToolResult: true, maxTokensField: "max_completion_tokens" } }],
  } } },
}"""

QWEN = """{
  models: { providers: { sglang: {
    baseUrl: "http://127.0.0.1:30000/v1",
    models: [{ id: "qwen3-8b", reasoning: true, compat: { thinkingFormat: "qwen" } },
             { id: "qwen3-chat", reasoning: true, compat: { thinkingFormat: "qwen-chat-template" } }],
  } } },
}"""

VISION = """{
  models: { providers: { inferrs: {
    baseUrl: "http://127.0.0.1:8080/v1",
    models: [{ id: "gemma-vision", input: ["text", "image"], compat: { requiresStringContent: true } }],
  } } },
}"""

THINKING_AS_TEXT = """{
  models: { providers: { llamacpp: {
    baseUrl: "http://127.0.0.1:8080/v1",
    models: [{ id: "mistral-small", reasoning: true, compat: { requiresThinkingAsText: true } }],
  } } },
}"""

ENV = {"VLLM_API_KEY": "vllm-secret-123", "OPENAI_API_KEY": "sk-test-abcdefghijklmnopqrstuvwxyz", "TEAM_TOKEN": "team-token-999"}

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "strict": True,
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    },
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
]

TOOL_HISTORY = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "18 C, clear"},
    {"role": "user", "content": "And in London?"},
]

NATIVE_EXTRAS = {"service_tier": "flex", "store": True, "prompt_cache_key": "session-42", "reasoning_effort": "low"}

_CASES: dict[str, dict[str, Any]] = {
    "inferrs_seed_content_parts": {
        "config": INFERRS,
        "model": "inferrs/google/gemma-4-E2B-it",
        "request": {
            "messages": [{"role": "user", "content": [{"type": "text", "text": "What is"}, {"type": "text", "text": "2 + 2?"}]}],
            "service_tier": "auto",
            "store": True,
            "prompt_cache_key": "k",
            "stream": True,
        },
    },
    "inferrs_text_only_image_removed": {
        "config": INFERRS,
        "model": "Gemma 4 (inferrs)",
        "request": {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Describe"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    ],
                },
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,BBBB"}}]},
            ]
        },
    },
    "vision_mixed_content_kept": {
        "config": VISION,
        "model": "inferrs/gemma-vision",
        "request": {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Describe"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    ],
                }
            ]
        },
    },
    "history_hygiene_thinking_as_text": {
        "config": THINKING_AS_TEXT,
        "model": "llamacpp/mistral-small",
        "request": {
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": "",
                    "reasoning_content": "Two cities: two calls.",
                    "tool_calls": [
                        {"id": "call_p", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
                        {"id": "call_r", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}},
                    ],
                },
                {"role": "tool", "tool_call_id": "call_p", "content": "18 C"},
                {"role": "assistant", "content": ""},
                {"role": "user", "content": "Thanks"},
            ],
            "stream": True,
        },
    },
    "vllm_native_only_fields": {
        "config": VLLM,
        "model": "vllm/tiny-model",
        "request": {"messages": [{"role": "user", "content": "hi"}], "stream": True, **NATIVE_EXTRAS},
    },
    "vllm_reasoning_model_keeps_effort": {
        "config": VLLM,
        "model": "vllm/deep-r1",
        "request": {
            "messages": [{"role": "user", "content": "think"}],
            "stream": False,
            "stream_options": {"include_usage": True},
            **NATIVE_EXTRAS,
        },
    },
    "openai_native_contrast": {
        "config": OPENAI,
        "model": "openai/o4-mini",
        "request": {
            "messages": [{"role": "developer", "content": "terse"}, {"role": "user", "content": "hi"}],
            "stream": True,
            "max_tokens": 256,
            "tools": TOOLS,
            **NATIVE_EXTRAS,
        },
    },
    "vllm_developer_message": {
        "config": VLLM,
        "model": "vllm/tiny-model",
        "request": {"messages": [{"role": "developer", "content": "terse"}, {"role": "user", "content": "hi"}]},
    },
    "supports_tools_false_history": {
        "config": NO_TOOLS,
        "model": "inferrs/gemma",
        "request": {"messages": TOOL_HISTORY, "tools": TOOLS, "tool_choice": "auto", "stream": True},
    },
    "keyless_loopback": {
        "config": KEYLESS,
        "model": "local/qwen3",
        "request": {"messages": [{"role": "user", "content": "hi"}], "stream": True},
    },
    "env_var_keys_and_header_merge": {
        "config": STRICT_TOOLS,
        "model": "lan/mistral",
        "headers": [("X-Team", "caller"), ("X-Request-Id", "r-1")],
        "request": {"messages": TOOL_HISTORY, "tools": TOOLS, "max_tokens": 64},
    },
    "qwen_thinking_top_level": {
        "config": QWEN,
        "model": "qwen3-8b",
        "request": {"messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "none"},
    },
    "qwen_thinking_chat_template": {
        "config": QWEN,
        "model": "sglang/qwen3-chat",
        "request": {"messages": [{"role": "user", "content": "hi"}], "chat_template_kwargs": {"foo": 1}},
    },
    "unlisted_model_synthesized": {
        "config": INFERRS,
        "model": "inferrs/google/gemma-4-E4B-it",
        "request": {"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 32},
    },
}


class _FreshCases(Mapping[str, dict[str, Any]]):
    """The cases, handed out as fresh deep copies.

    Rule: no test can see what another test did to a case. A purity check
    deep-copies its case before building and compares after; were the cases
    shared, a stage that mutated a request would already have mutated the
    shared copy in an earlier test, and the check would compare the damage
    with itself (it passed or failed by test order).
    """

    def __getitem__(self, name: str) -> dict[str, Any]:
        return copy.deepcopy(_CASES[name])

    def __iter__(self) -> Iterator[str]:
        return iter(_CASES)

    def __len__(self) -> int:
        return len(_CASES)


CASES: Mapping[str, dict[str, Any]] = _FreshCases()
