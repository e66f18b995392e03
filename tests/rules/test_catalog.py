"""Rule table for the catalog (pipeline/catalog.py): config, environment and discovered models in; the
providers, keys, aliases, primary, fallbacks, params and secrets a request can use out.

Each row names its rule, builds a catalog, and reads one fact of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import pytest

from pipeline.catalog import Catalog, build_catalog
from pipeline.config import CompatConfig, ModelConfig, parse_config
from pipeline.policy import DEFAULT_POLICY, SendPolicy
from pipeline.providers import BUILTIN_PROVIDERS

LAN = '{models: {providers: {lan: {baseUrl: "http://10.0.0.9/v1", apiKey: "lan-key-123", headers: {"X-Api-Key": "hdr-secret", "X-Team": "ml"}, models: [{id: "m"}]}}}}'


class Row(NamedTuple):
    rule: str
    text: str
    env: tuple[tuple[str, str], ...]
    read: Callable[[Catalog], Any]
    expected: Any
    discovered: tuple[tuple[str, tuple[str, ...]], ...] = ()


def provider_fact(provider: str, *fields: str) -> Callable[[Catalog], Any]:
    return lambda catalog: tuple(getattr(catalog.providers[provider], field) for field in fields)


ROWS: dict[str, Row] = {
    "builtin_inactive_without_key": Row(
        "a built-in provider without its key variable is there but inactive, keyless, discovery off",
        "{}",
        (),
        provider_fact("vllm", "active", "api_key", "key_source", "discovery", "origin", "base_url", "loopback", "native"),
        (False, None, "none", False, "builtin", "http://127.0.0.1:8000/v1", True, False),
    ),
    "builtin_empty_key_is_none": Row(
        "an empty key variable counts as not set",
        "{}",
        (("VLLM_API_KEY", ""),),
        provider_fact("vllm", "active", "api_key"),
        (False, None),
    ),
    "builtin_active_with_key": Row(
        "a built-in provider's key comes from its variable; it is active and discovers",
        "{}",
        (("SGLANG_API_KEY", "sg-key"),),
        provider_fact("sglang", "active", "api_key", "key_source", "discovery", "key_env"),
        (True, "sg-key", "env SGLANG_API_KEY", True, "SGLANG_API_KEY"),
    ),
    "discovered_models_are_entries": Row(
        "discovered models become entries of their built-in provider, origin discovered, with its quirks",
        "{}",
        (("VLLM_API_KEY", "k"),),
        lambda c: [(m.ref, m.origin, m.compat.supports_usage_in_streaming) for m in c.providers["vllm"].models],
        [("vllm/a", "discovered", True), ("vllm/b", "discovered", True)],
        (("vllm", ("a", "b")),),
    ),
    "builtin_carries_its_quirks": Row(
        "a built-in provider's entry carries the quirks declared for it (applied to what it discovers or synthesizes)",
        "{}",
        (("VLLM_API_KEY", "k"),),
        lambda c: {pid: c.providers[pid].builtin_compat for pid in BUILTIN_PROVIDERS},
        {pid: CompatConfig(supports_usage_in_streaming=True) for pid in ("vllm", "sglang", "llamacpp", "lmstudio", "ollama")},
    ),
    "configured_send_policy": Row(
        "a configured provider's timeouts, retries and TLS become its send policy; a built-in one has the default",
        '{models: {providers: {lan: {baseUrl: "https://10.0.0.9/v1", timeoutSeconds: 5, maxRetries: 0, tls: {verify: false}}}}}',
        (),
        lambda c: (c.providers["lan"].policy, c.providers["vllm"].policy),
        (SendPolicy(connect_timeout=5, read_timeout=5, max_retries=0, tls_verify=False), DEFAULT_POLICY),
    ),
    "configured_replaces_builtin": Row(
        "merge: a configured provider replaces the built-in of the same id and turns its discovery off",
        '{models: {providers: {VLLM: {baseUrl: "http://10.0.0.9:8000/v1", models: [{id: "m"}]}}}}',
        (("VLLM_API_KEY", "env-key"),),
        provider_fact("vllm", "origin", "base_url", "discovery", "api_key", "key_source", "key_env", "loopback"),
        ("configured", "http://10.0.0.9:8000/v1", False, "env-key", "env VLLM_API_KEY", "VLLM_API_KEY", False),
    ),
    "configured_builtin_keeps_quirks": Row(
        "a configured provider with a built-in id keeps the built-in's declared quirks",
        '{models: {providers: {vllm: {baseUrl: "http://10.0.0.9:8000/v1", models: [{id: "m"}]}}}}',
        (),
        lambda c: c.providers["vllm"].models[0].compat.supports_usage_in_streaming,
        True,
    ),
    "config_key_wins_over_env": Row(
        "a provider's apiKey wins over its key variable",
        '{models: {providers: {vllm: {baseUrl: "http://10.0.0.9:8000/v1", apiKey: "cfg-key"}}}}',
        (("VLLM_API_KEY", "env-key"),),
        provider_fact("vllm", "api_key", "key_source"),
        ("cfg-key", "config models.providers.vllm.apiKey"),
    ),
    "empty_config_key_is_none": Row(
        "an empty apiKey is no key (no Authorization)",
        '{models: {providers: {lan: {baseUrl: "http://10.0.0.9/v1", apiKey: ""}}}}',
        (),
        provider_fact("lan", "api_key", "key_source", "active", "key_env"),
        (None, "none", True, None),
    ),
    "configured_entry_fields": Row(
        "a configured provider: active, its key, headers, authHeader, models configured, native from its URL",
        '{models: {providers: {oa: {baseUrl: "https://api.openai.com/v1", apiKey: "sk-1", authHeader: false, headers: {"X": "1"}, models: [{id: "m"}]}}}}',
        (),
        lambda c: (
            provider_fact("oa", "active", "api_key", "auth_header", "headers", "native", "loopback", "origin")(c),
            [(m.ref, m.origin) for m in c.providers["oa"].models],
        ),
        ((True, "sk-1", False, {"X": "1"}, True, False, "configured"), [("oa/m", "configured")]),
    ),
    "replace_mode": Row(
        "replace: exactly the configured providers",
        '{models: {mode: "replace", providers: {lan: {baseUrl: "http://10.0.0.9/v1"}}}}',
        (("VLLM_API_KEY", "k"),),
        lambda c: list(c.providers),
        ["lan"],
    ),
    "merge_order": Row(
        "merge: the built-ins first, then the configured providers, ids lower-cased",
        '{models: {providers: {Lan: {baseUrl: "http://10.0.0.9/v1"}}}}',
        (),
        lambda c: list(c.providers),
        ["vllm", "sglang", "llamacpp", "lmstudio", "ollama", "lan"],
    ),
    "aliases_lower_cased_refs_normalized": Row(
        "aliases are case-insensitive and point to the normalized ref; entries without alias add none",
        '{agents: {defaults: {models: {"LAN/Model-X": {alias: "Fast"}, "lan/y": {params: {seed: 1}}}}}}',
        (),
        lambda c: c.aliases,
        {"fast": "lan/Model-X"},
    ),
    "params_by_normalized_ref": Row(
        "params are keyed by the normalized ref (provider lower-cased, model id as written)",
        '{agents: {defaults: {models: {"LAN/Model-X": {params: {temperature: 0.1}}, "lan/y": {alias: "y"}}}}}',
        (),
        lambda c: c.params,
        {"lan/Model-X": {"temperature": 0.1}, "lan/y": {}},
    ),
    "primary_string": Row(
        "agents.defaults.model as a string is the primary",
        '{agents: {defaults: {model: "lan/m"}}}',
        (),
        lambda c: (c.primary, c.fallbacks),
        ("lan/m", ()),
    ),
    "primary_object": Row(
        "agents.defaults.model as {primary, fallbacks}",
        '{agents: {defaults: {model: {primary: "lan/m", fallbacks: ["a/b", "c/d"]}}}}',
        (),
        lambda c: (c.primary, c.fallbacks),
        ("lan/m", ("a/b", "c/d")),
    ),
    "no_primary": Row("no agents.defaults.model: no primary, no fallbacks", "{}", (), lambda c: (c.primary, c.fallbacks), (None, ())),
    "fallbacks_without_primary": Row(
        "fallbacks without a primary",
        '{agents: {defaults: {model: {fallbacks: ["a/b"]}}}}',
        (),
        lambda c: (c.primary, c.fallbacks),
        (None, ("a/b",)),
    ),
    "secrets_known": Row(
        "the catalog knows every key: configured, from the environment, and header values from the environment",
        '{models: {providers: {lan: {baseUrl: "http://10.0.0.9/v1", apiKey: "lan-key", headers: {"X-T": "${TEAM}"}}}}}',
        (("VLLM_API_KEY", "vllm-key"), ("TEAM", "team-token"), ("OLLAMA_API_KEY", "")),
        lambda c: c.secrets,
        frozenset({"lan-key", "vllm-key", "team-token"}),
    ),
    "source_kept": Row("the catalog says where its config came from", "{}", (), lambda c: c.source, "<config>"),
}


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
def test_catalog_rule(row: Row) -> None:
    env = dict(row.env)
    discovered = {provider: [ModelConfig(id=model_id) for model_id in ids] for provider, ids in row.discovered}
    catalog = build_catalog(parse_config(row.text, env), env, discovered or None)
    assert row.read(catalog) == row.expected


def test_lookup_and_synthesis() -> None:
    catalog = build_catalog(
        parse_config(
            '{models: {providers: {lan: {baseUrl: "http://10.0.0.9/v1", models: [{id: "m", maxTokens: 7, contextWindow: 70}, {id: "n"}]}}}}',
            {},
        ),
        {},
    )
    lan = catalog.providers["lan"]
    assert lan.config_path == "models.providers.lan"
    found = lan.find("n")
    assert found is not None and found.config.id == "n"
    assert lan.find("M") is None, "ids are case-sensitive within a provider"
    made = lan.synthesize("z")
    assert (made.ref, made.origin, made.config.max_tokens, made.config.context_window) == ("lan/z", "synthesized", 7, 70)
    assert [m.ref for m in catalog.active_models()] == ["lan/m", "lan/n"]


def test_no_repr_shows_a_key() -> None:
    catalog = build_catalog(parse_config(LAN, {"VLLM_API_KEY": "vllm-key-456"}), {"VLLM_API_KEY": "vllm-key-456"})
    shown = repr(catalog) + repr(catalog.providers["lan"]) + repr(catalog.providers["vllm"])
    for secret in ("lan-key-123", "hdr-secret", "vllm-key-456"):
        assert secret not in shown
    assert "X-Team" in shown and "10.0.0.9" in shown and "<2 hidden>" in shown
