"""Rule table for the strip native-only stage (transforms/strip_native_only.py).

SPEC 4: "Proxy-style endpoints never get: service_tier, store (unless supportsStore), prompt_cache_key,
prompt_cache_retention, OpenAI reasoning-compat payload shaping (reasoning: {...} objects)." Each field is
checked both ways: removed on a proxy-style endpoint, kept on a native one.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from tests.rules.support import NATIVE_URL, config, context, shaped, trace_lines
from transforms.strip_native_only import strip_native_only

STAGE = "strip_native_only"
BASE = {"messages": [{"role": "user", "content": "hi"}]}
PROXY = config()
NATIVE = config(base_url=NATIVE_URL)


class Row(NamedTuple):
    rule: str
    config: str
    extra: dict[str, Any]  # fields added to BASE
    kept: dict[str, Any]  # of those, what is still in the body
    trace: list[str]


ROWS: dict[str, Row] = {
    "service_tier_proxy": Row(
        "proxy-style endpoints never get service_tier",
        PROXY,
        {"service_tier": "flex"},
        {},
        ["service_tier removed: proxy-style endpoint (service tiers are an OpenAI billing feature)"],
    ),
    "prompt_cache_key_proxy": Row(
        "proxy-style endpoints never get prompt_cache_key",
        PROXY,
        {"prompt_cache_key": "k"},
        {},
        ["prompt_cache_key removed: proxy-style endpoint (prompt-cache hints are native OpenAI only)"],
    ),
    "prompt_cache_retention_proxy": Row(
        "proxy-style endpoints never get prompt_cache_retention",
        PROXY,
        {"prompt_cache_retention": "24h"},
        {},
        ["prompt_cache_retention removed: proxy-style endpoint (prompt-cache hints are native OpenAI only)"],
    ),
    "reasoning_object_proxy": Row(
        "proxy-style endpoints never get OpenAI reasoning-compat payload shaping (reasoning: {...})",
        PROXY,
        {"reasoning": {"effort": "low"}},
        {},
        ["reasoning removed: proxy-style endpoint (no OpenAI reasoning-compat payload shaping)"],
    ),
    "store_proxy": Row(
        "supportsStore false on proxy-style endpoints: store removed",
        PROXY,
        {"store": True},
        {},
        ["store removed: supportsStore: false (proxy-style endpoint)"],
    ),
    "store_proxy_flag_true": Row(
        "supportsStore true set on a proxy-style model: store sent",
        config("compat: {supportsStore: true}"),
        {"store": False},
        {"store": False},
        [],
    ),
    "store_native_flag_false": Row(
        "supportsStore false set on a native model: store removed, and the reason is the flag alone",
        config("compat: {supportsStore: false}", base_url=NATIVE_URL),
        {"store": True},
        {},
        ["store removed: supportsStore: false"],
    ),
    "all_native_fields_proxy_in_body_order": Row(
        "proxy-style: every native-only field goes, other fields stay",
        PROXY,
        {"reasoning": {}, "store": True, "seed": 1, "service_tier": "auto", "prompt_cache_key": "k", "prompt_cache_retention": "x"},
        {"seed": 1},
        [
            "service_tier removed: proxy-style endpoint (service tiers are an OpenAI billing feature)",
            "prompt_cache_key removed: proxy-style endpoint (prompt-cache hints are native OpenAI only)",
            "prompt_cache_retention removed: proxy-style endpoint (prompt-cache hints are native OpenAI only)",
            "reasoning removed: proxy-style endpoint (no OpenAI reasoning-compat payload shaping)",
            "store removed: supportsStore: false (proxy-style endpoint)",
        ],
    ),
    "native_keeps_everything": Row(
        "native endpoints get every native-only field (supportsStore true by default)",
        NATIVE,
        {"service_tier": "flex", "prompt_cache_key": "k", "prompt_cache_retention": "24h", "reasoning": {"effort": "low"}, "store": True},
        {"service_tier": "flex", "prompt_cache_key": "k", "prompt_cache_retention": "24h", "reasoning": {"effort": "low"}, "store": True},
        [],
    ),
    "azure_is_native": Row(
        "*.openai.azure.com is native too",
        config(base_url="https://team.openai.azure.com/openai/v1"),
        {"service_tier": "flex", "store": True},
        {"service_tier": "flex", "store": True},
        [],
    ),
    "proxy_without_native_fields": Row(
        "proxy-style: a body without native-only fields is untouched",
        PROXY,
        {"temperature": 0.5},
        {"temperature": 0.5},
        [],
    ),
}


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
def test_strip_rule(row: Row) -> None:
    ctx = context(row.config, {**BASE, **row.extra})
    after = shaped(strip_native_only, ctx)
    assert after.body == {**BASE, **row.kept}
    assert trace_lines(after, STAGE) == row.trace
    if not row.trace:
        assert after is ctx, "a stage with nothing to do returns its context unchanged"
