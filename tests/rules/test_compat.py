"""Rule table for compat flag resolution (pipeline/compat.py, README "Compat flags", SPEC 3 and 4).

"Unset flags default from the endpoint (native OpenAI is api.openai.com or *.openai.azure.com; everything
else is proxy-style) and the built-in provider"; the model's explicit ``compat`` wins over both.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from pipeline.compat import Compat, is_loopback, is_native_openai, resolve_compat
from pipeline.config import CompatConfig, ModelConfig
from tests.rules.support import catalog_of

PROXY_DEFAULTS = Compat(
    requires_string_content=False,
    supports_tools=True,
    supports_store=False,
    supports_developer_role=False,
    supports_reasoning_effort=False,
    supports_usage_in_streaming=False,
    max_tokens_field="max_tokens",
    supports_strict_mode=False,
    requires_tool_result_name=False,
    requires_assistant_after_tool_result=False,
    thinking_format="openai",
    requires_thinking_as_text=False,
)
NATIVE_DEFAULTS = msgspec.structs.replace(
    PROXY_DEFAULTS,
    supports_store=True,
    supports_developer_role=True,
    supports_usage_in_streaming=True,
    max_tokens_field="max_completion_tokens",
    supports_strict_mode=True,
)

# (rule, model, native, loopback, provider compat, the fields that differ from the proxy defaults)
ROWS: dict[str, tuple[str, ModelConfig, bool, bool, CompatConfig, dict[str, Any]]] = {
    "proxy_defaults": ("proxy-style defaults (the table's middle column)", ModelConfig(id="m"), False, False, CompatConfig(), {}),
    "native_defaults": (
        "native: store, developer role, usage in streaming, strict mode, max_completion_tokens",
        ModelConfig(id="m"),
        True,
        False,
        CompatConfig(),
        {
            "supports_store": True,
            "supports_developer_role": True,
            "supports_usage_in_streaming": True,
            "max_tokens_field": "max_completion_tokens",
            "supports_strict_mode": True,
        },
    ),
    "loopback_usage": (
        "supportsUsageInStreaming is true on loopback URLs",
        ModelConfig(id="m"),
        False,
        True,
        CompatConfig(),
        {"supports_usage_in_streaming": True},
    ),
    "reasoning_effort_follows_reasoning": (
        "supportsReasoningEffort defaults to the model's reasoning",
        ModelConfig(id="m", reasoning=True),
        False,
        False,
        CompatConfig(),
        {"supports_reasoning_effort": True},
    ),
    "provider_quirk": (
        "the built-in provider's declared quirks override the endpoint defaults",
        ModelConfig(id="m"),
        False,
        False,
        CompatConfig(supports_usage_in_streaming=True, requires_string_content=True),
        {"supports_usage_in_streaming": True, "requires_string_content": True},
    ),
    "model_wins_over_provider": (
        "the model's explicit compat wins over the provider's quirks",
        ModelConfig(id="m", compat=CompatConfig(supports_usage_in_streaming=False)),
        False,
        True,
        CompatConfig(supports_usage_in_streaming=True),
        {},
    ),
    "model_wins_over_endpoint": (
        "the model's explicit compat wins over the endpoint defaults, even a false one",
        ModelConfig(
            id="m", reasoning=True, compat=CompatConfig(supports_reasoning_effort=False, supports_tools=False, thinking_format="qwen")
        ),
        False,
        False,
        CompatConfig(),
        {"supports_tools": False, "thinking_format": "qwen"},
    ),
    "model_flag_on_native": (
        "a model's flag on a native endpoint",
        ModelConfig(id="m", compat=CompatConfig(supports_store=False, max_tokens_field="max_tokens")),
        True,
        False,
        CompatConfig(),
        {"supports_developer_role": True, "supports_usage_in_streaming": True, "supports_strict_mode": True},
    ),
}


@pytest.mark.parametrize(("rule", "model", "native", "loopback", "provider", "differs"), list(ROWS.values()), ids=list(ROWS))
def test_resolve_compat(
    rule: str, model: ModelConfig, native: bool, loopback: bool, provider: CompatConfig, differs: dict[str, Any]
) -> None:
    assert resolve_compat(model, native=native, loopback=loopback, provider_compat=provider) == msgspec.structs.replace(
        PROXY_DEFAULTS, **differs
    )


def test_native_defaults_table() -> None:
    assert resolve_compat(ModelConfig(id="m"), native=True, loopback=False) == NATIVE_DEFAULTS


@pytest.mark.parametrize(
    ("provider", "usage"),
    [("vllm", True), ("sglang", True), ("llamacpp", True), ("lmstudio", True), ("ollama", True)],
)
def test_builtin_providers_stream_usage(provider: str, usage: bool) -> None:
    """supportsUsageInStreaming: true for vllm, sglang, llamacpp, lmstudio, ollama, even away from loopback."""
    text = f'{{models: {{providers: {{{provider}: {{baseUrl: "http://10.0.0.9/v1", models: [{{id: "m"}}]}}}}}}}}'
    entry = catalog_of(text).providers[provider].models[0]
    assert entry.compat.supports_usage_in_streaming is usage


@pytest.mark.parametrize(
    ("url", "native"),
    [
        ("https://api.openai.com/v1", True),
        ("https://API.OpenAI.com/v1", True),
        ("https://team.openai.azure.com/openai", True),
        ("https://openai.azure.com.evil.example/v1", False),
        ("https://api.openai.com.evil.example/v1", False),
        ("https://notapi.openai.com/v1", False),
        ("http://127.0.0.1:8000/v1", False),
        ("not a url", False),
    ],
)
def test_is_native_openai(url: str, native: bool) -> None:
    assert is_native_openai(url) is native


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://localhost:8080/v1", True),
        ("http://LOCALHOST/v1", True),
        ("http://api.localhost/v1", True),
        ("http://127.0.0.2/v1", True),
        ("http://[::1]:8000/v1", True),
        ("http://10.0.0.5/v1", False),
        ("http://localhost.example.com/v1", False),
        ("http://mylocalhost/v1", False),
        ("https://api.openai.com/v1", False),
        ("", False),
    ],
)
def test_is_loopback(url: str, loopback: bool) -> None:
    assert is_loopback(url) is loopback
