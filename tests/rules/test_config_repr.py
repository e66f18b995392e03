"""Rule table for how a config shows itself (pipeline/config.py, the reprs): what a user sees in a debugger,
a log line or ``rich.inspect``.

Rules:
- A ``ProviderConfig`` / ``ModelConfig`` shows its required fields, then only the fields that differ from
  their defaults, in declaration order, as ``Name(field=value, ...)`` with snake_case field names.
- ``apiKey`` is always ``'***'``; every header value is ``'***'`` (a ``${VAR}`` value may be a secret
  under any name); the names stay.
- What is shown is scrubbed once more with the keys it knows: a provider's key echoed in another field
  (a query string, a model id) is ``***`` too; a ``LoadedConfig`` scrubs with all its ``secrets`` (every
  key, and header values taken from the environment) and shows only how many there are.
- ``__rich_repr__`` yields the same text as ``repr``.

Each row names its rule and pins the whole text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import pytest

from pipeline.config import LoadedConfig, parse_config


class Row(NamedTuple):
    rule: str
    text: str
    env: tuple[tuple[str, str], ...]
    pick: Callable[[LoadedConfig], Any]
    expected: str


def provider(loaded: LoadedConfig) -> Any:
    return loaded.config.models.providers["p"]


def model(index: int) -> Callable[[LoadedConfig], Any]:
    return lambda loaded: loaded.config.models.providers["p"].models[index]


def whole(loaded: LoadedConfig) -> Any:
    return loaded


ALL_PROVIDER_FIELDS = (
    '{models: {providers: {p: {baseUrl: "https://h.example/v1", apiKey: "sk-live-4242", api: "openai-responses", '
    'headers: {"X-Team": "ml", "X-Api-Key": "hdr-9876"}, authHeader: false, timeoutSeconds: 30, connectTimeoutSeconds: 2.5, '
    "readTimeoutSeconds: 20, totalTimeoutSeconds: 90, maxResponseBytes: 1000, maxRetries: 0, "
    'tls: {caFile: "/etc/ca.pem", verify: false}}}}}'
)
ALL_MODEL_FIELDS = (
    '{models: {providers: {p: {baseUrl: "http://h/v1", models: [{id: "m", name: "Model M", reasoning: true, '
    'input: ["text", "image"], cost: {input: 1.5, cacheRead: 0.25}, contextWindow: 32768, maxTokens: 1024, '
    'headers: {"X-Org": "o-1"}, compat: {supportsTools: false, maxTokensField: "max_tokens"}}]}}}}'
)

ROWS: dict[str, Row] = {
    "provider_required_only": Row(
        "a provider with only its required field shows only that field",
        '{models: {providers: {p: {baseUrl: "http://h/v1"}}}}',
        (),
        provider,
        "ProviderConfig(base_url='http://h/v1')",
    ),
    "provider_defaults_given_are_not_shown": Row(
        "a field given with its default value is not shown",
        '{models: {providers: {p: {baseUrl: "http://h/v1", api: "openai-completions", authHeader: true, headers: {}, '
        "tls: {verify: true}, models: []}}}}",
        (),
        provider,
        "ProviderConfig(base_url='http://h/v1')",
    ),
    "provider_every_field": Row(
        "every field that differs from its default is shown, in declaration order; the key and header values are ***",
        ALL_PROVIDER_FIELDS,
        (),
        provider,
        "ProviderConfig(base_url='https://h.example/v1', api_key='***', api='openai-responses', "
        "headers={'X-Team': '***', 'X-Api-Key': '***'}, auth_header=False, timeout_seconds=30.0, connect_timeout_seconds=2.5, "
        "read_timeout_seconds=20.0, total_timeout_seconds=90.0, max_response_bytes=1000, max_retries=0, "
        "tls=TlsConfig(ca_file='/etc/ca.pem', verify=False))",
    ),
    "provider_empty_key_is_shown_redacted": Row(
        "an apiKey given, even empty, is shown only as ***",
        '{models: {providers: {p: {baseUrl: "http://h/v1", apiKey: ""}}}}',
        (),
        provider,
        "ProviderConfig(base_url='http://h/v1', api_key='***')",
    ),
    "provider_key_echoed_elsewhere": Row(
        "the provider's key is scrubbed wherever else it appears (a query string, a model id)",
        '{models: {providers: {p: {baseUrl: "http://h/v1?key=sk-echo-1234", apiKey: "sk-echo-1234", models: [{id: "sk-echo-1234"}]}}}}',
        (),
        provider,
        "ProviderConfig(base_url='http://h/v1?key=***', api_key='***', models=(ModelConfig(id='***'),))",
    ),
    "provider_with_models": Row(
        "a provider's models are shown with their own repr",
        '{models: {providers: {p: {baseUrl: "http://h/v1", models: [{id: "a"}, {id: "b", maxTokens: 7}]}}}}',
        (),
        provider,
        "ProviderConfig(base_url='http://h/v1', models=(ModelConfig(id='a'), ModelConfig(id='b', max_tokens=7)))",
    ),
    "model_required_only": Row(
        "a model with only its id shows only its id",
        '{models: {providers: {p: {baseUrl: "http://h/v1", models: [{id: "m"}]}}}}',
        (),
        model(0),
        "ModelConfig(id='m')",
    ),
    "model_defaults_given_are_not_shown": Row(
        "model fields given with their default values are not shown",
        '{models: {providers: {p: {baseUrl: "http://h/v1", models: [{id: "m", reasoning: false, input: ["text"], '
        "cost: {input: 0}, headers: {}, compat: {}}]}}}}",
        (),
        model(0),
        "ModelConfig(id='m')",
    ),
    "model_every_field": Row(
        "every model field that differs from its default is shown, header values as ***",
        ALL_MODEL_FIELDS,
        (),
        model(0),
        "ModelConfig(id='m', name='Model M', reasoning=True, input=('text', 'image'), "
        "cost=Cost(input=1.5, output=0.0, cache_read=0.25, cache_write=0.0), context_window=32768, max_tokens=1024, "
        "headers={'X-Org': '***'}, compat=CompatConfig(requires_string_content=UNSET, supports_tools=False, supports_store=UNSET, "
        "supports_developer_role=UNSET, supports_reasoning_effort=UNSET, supports_usage_in_streaming=UNSET, max_tokens_field='max_tokens', "
        "supports_strict_mode=UNSET, requires_tool_result_name=UNSET, requires_assistant_after_tool_result=UNSET, thinking_format=UNSET, "
        "requires_thinking_as_text=UNSET, extract_think_tags=UNSET))",
    ),
    "loaded_minimal": Row(
        "a LoadedConfig shows its source, the config, and how many secrets it hides",
        '{models: {mode: "replace", providers: {p: {baseUrl: "http://h/v1", models: [{id: "m"}]}}}}',
        (),
        whole,
        "LoadedConfig(source='<config>', config=Config(agents=Agents(defaults=AgentDefaults(model=UNSET, models={})), "
        "models=ModelsSection(mode='replace', providers={'p': ProviderConfig(base_url='http://h/v1', models=(ModelConfig(id='m'),))}), "
        "pipeline=PipelineSection(stages=())), secrets='<0 hidden>')",
    ),
    "loaded_scrubs_env_header_values": Row(
        "a LoadedConfig scrubs every secret it knows: a header value from the environment echoed in a URL is ***",
        '{models: {mode: "replace", providers: {p: {baseUrl: "http://h/v1?t=tok-env-999", apiKey: "sk-lit-777", '
        'headers: {"X-T": "${T}"}}}}}',
        (("T", "tok-env-999"),),
        whole,
        "LoadedConfig(source='<config>', config=Config(agents=Agents(defaults=AgentDefaults(model=UNSET, models={})), "
        "models=ModelsSection(mode='replace', providers={'p': ProviderConfig(base_url='http://h/v1?t=***', api_key='***', "
        "headers={'X-T': '***'})}), pipeline=PipelineSection(stages=())), secrets='<2 hidden>')",
    ),
}


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
def test_config_repr(row: Row) -> None:
    shown = row.pick(parse_config(row.text, dict(row.env)))
    assert repr(shown) == row.expected
    assert list(shown.__rich_repr__()) == [row.expected], "rich shows what repr shows"


SECRETS = ("sk-live-4242", "hdr-9876", "sk-echo-1234", "tok-env-999", "sk-lit-777")


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
def test_config_repr_never_shows_a_secret(row: Row) -> None:
    loaded = parse_config(row.text, dict(row.env))
    for shown in (repr(loaded), str(loaded), repr(row.pick(loaded))):
        assert not [secret for secret in SECRETS if secret in shown]
