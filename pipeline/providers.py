"""Built-in self-hosted providers, as data.

Rule: a server's quirks are declared here and in ``pipeline.compat``, never
coded as a subclass per provider. A built-in provider exists in every config
(``models.mode: "merge"``) but is *active*, meaning its models resolve, only
when it is configured under ``models.providers.<id>``, or its key variable is
set (any value works for a server without auth), or it has an auth profile
(``genesis auth set <id>``): the last two are the opt-in that also turns on
discovery of its models (``GET {baseUrl}/models``).
"""

from __future__ import annotations

import msgspec

from pipeline.config import CompatConfig


class BuiltinProvider(msgspec.Struct, frozen=True):
    id: str
    base_url: str
    key_env: str
    compat: CompatConfig = CompatConfig()


_STREAMED_USAGE = CompatConfig(supports_usage_in_streaming=True)

BUILTIN_PROVIDERS: dict[str, BuiltinProvider] = {
    provider.id: provider
    for provider in (
        BuiltinProvider("vllm", "http://127.0.0.1:8000/v1", "VLLM_API_KEY", _STREAMED_USAGE),
        BuiltinProvider("sglang", "http://127.0.0.1:30000/v1", "SGLANG_API_KEY", _STREAMED_USAGE),
        BuiltinProvider("llamacpp", "http://127.0.0.1:8080/v1", "LLAMACPP_API_KEY", _STREAMED_USAGE),
        BuiltinProvider("lmstudio", "http://127.0.0.1:1234/v1", "LMSTUDIO_API_KEY", _STREAMED_USAGE),
        # Ollama's OpenAI-compatible route; its native /api routes are not used.
        BuiltinProvider("ollama", "http://127.0.0.1:11434/v1", "OLLAMA_API_KEY", _STREAMED_USAGE),
    )
}


def activation_hint(provider_id: str) -> str:
    """How to make a provider's models resolvable.

    >>> activation_hint("vllm")
    'set VLLM_API_KEY (any value works) or add models.providers.vllm to the config, or store a key: genesis auth set vllm'
    """
    builtin = BUILTIN_PROVIDERS.get(provider_id)
    if builtin is None:
        return f"add models.providers.{provider_id} (baseUrl and models) to the config"
    return f"set {builtin.key_env} (any value works) or add models.providers.{provider_id} to the config, or store a key: genesis auth set {provider_id}"
