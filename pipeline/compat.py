"""Compat flags: the resolved set, and the defaults it is built from.

Resolution order, later wins: the endpoint's defaults (native OpenAI or
proxy-style), the built-in provider's declared quirks, the model's explicit
``compat`` block. The table below is the whole policy; stages only read the
resolved ``Compat``.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import msgspec

from pipeline.config import CompatConfig, ExtractThinkTags, MaxTokensField, ModelConfig, ThinkingFormat


class Compat(msgspec.Struct, frozen=True):
    """The resolved flags. Each field's default is its proxy-style default (what a
    self-hosted server gets); ``_endpoint_defaults`` overrides the few that depend on
    the endpoint. A flag is declared here and in ``pipeline.config.CompatConfig``
    (the same name and type, ``UNSET`` allowed there); tests/test_compat_flags.py
    fails naming a flag that is missing from either, or from the README's table.
    """

    requires_string_content: bool = False
    supports_tools: bool = True
    supports_store: bool = False
    supports_developer_role: bool = False
    supports_reasoning_effort: bool = False
    supports_usage_in_streaming: bool = False
    max_tokens_field: MaxTokensField = "max_tokens"
    supports_strict_mode: bool = False
    requires_tool_result_name: bool = False
    requires_assistant_after_tool_result: bool = False
    thinking_format: ThinkingFormat = "openai"
    requires_thinking_as_text: bool = False
    extract_think_tags: ExtractThinkTags = False


def _endpoint_defaults(native: bool, loopback: bool, reasoning: bool) -> Compat:
    """The defaults that depend on the endpoint: native OpenAI, a loopback URL, a reasoning model."""
    return Compat(
        supports_store=native,
        supports_developer_role=native,
        supports_reasoning_effort=reasoning,
        supports_usage_in_streaming=native or loopback,
        max_tokens_field="max_completion_tokens" if native else "max_tokens",
        supports_strict_mode=native,
    )


def resolve_compat(model: ModelConfig, *, native: bool, loopback: bool, provider_compat: CompatConfig = CompatConfig()) -> Compat:
    """The flags in force for one model on one endpoint.

    >>> from pipeline.config import ModelConfig, CompatConfig
    >>> c = resolve_compat(ModelConfig(id="m", compat=CompatConfig(requires_string_content=True)),
    ...                    native=False, loopback=True)
    >>> c.requires_string_content, c.supports_developer_role, c.max_tokens_field
    (True, False, 'max_tokens')
    """
    resolved = _endpoint_defaults(native, loopback, model.reasoning)
    overrides: dict[str, object] = {}
    for layer in (provider_compat, model.compat):
        for field in layer.__struct_fields__:
            value = getattr(layer, field)
            if value is not msgspec.UNSET:
                overrides[field] = value
    return msgspec.structs.replace(resolved, **overrides) if overrides else resolved


def is_native_openai(base_url: str) -> bool:
    """Native OpenAI: api.openai.com or an Azure OpenAI host; everything else is proxy-style.

    >>> is_native_openai("https://api.openai.com/v1"), is_native_openai("http://127.0.0.1:8000/v1")
    (True, False)
    """
    host = (urlsplit(base_url).hostname or "").lower()
    return host == "api.openai.com" or host.endswith(".openai.azure.com")


def is_loopback(base_url: str) -> bool:
    """A base URL on this machine (localhost, 127.0.0.0/8, ::1).

    >>> is_loopback("http://localhost:8080/v1"), is_loopback("http://127.0.0.2/v1"), is_loopback("http://10.0.0.5/v1")
    (True, True, False)
    """
    host = (urlsplit(base_url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
