"""Rule table for how the catalog shows itself (pipeline/catalog.py, the reprs): what a user sees in a
debugger, a log line or ``rich.inspect``.

Rules:
- A ``ProviderEntry`` shows, in this order: id, base_url, api, api_key, key_source, headers, origin,
  active, and its models as a tuple of ids. ``api_key`` is ``None`` when there is no key, else ``'***'``;
  header values are ``'***'``, the names stay. Its text is scrubbed once more with its key: the key echoed
  in its URL or a model id is ``***`` too.
- A ``Catalog`` shows, in this order: source, providers, aliases, primary, fallbacks, params, and how many
  secrets it hides; its text is scrubbed with every secret it knows (keys, header values from the
  environment), wherever one appears.
- ``__rich_repr__`` yields the same text as ``repr``.

Each row names its rule and pins the whole text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import pytest

from pipeline.catalog import Catalog
from tests.rules.support import catalog_of


class Row(NamedTuple):
    rule: str
    text: str
    env: tuple[tuple[str, str], ...]
    pick: Callable[[Catalog], Any]
    expected: str


def entry(provider_id: str) -> Callable[[Catalog], Any]:
    return lambda catalog: catalog.providers[provider_id]


def whole(catalog: Catalog) -> Any:
    return catalog


MERGED = (
    '{models: {providers: {vllm: {baseUrl: "http://10.0.0.5:8000/v1", headers: {"X-T": "${T}"}, models: [{id: "q"}]}, '
    'lan: {baseUrl: "http://10.0.0.9/v1?t=tok-env-999", apiKey: "lan-key-123", api: "openai-responses", models: [{id: "m"}, {id: "n"}]}}}, '
    'agents: {defaults: {model: {primary: "lan/m", fallbacks: ["vllm/q"]}, models: {"lan/m": {alias: "Fast", params: {temperature: 0.2}}}}}}'
)
MERGED_ENV = (("VLLM_API_KEY", "vk-env-5555"), ("T", "tok-env-999"))


def builtin_inactive(provider_id: str, base_url: str) -> str:
    return (
        f"ProviderEntry(id='{provider_id}', base_url='{base_url}', api='openai-completions', api_key=None, key_source='none', "
        "headers={}, origin='builtin', active=False, models=())"
    )


ROWS: dict[str, Row] = {
    "builtin_without_key": Row(
        "a built-in provider without its key shows api_key None, key_source none, inactive, no models",
        "{}",
        (),
        entry("sglang"),
        builtin_inactive("sglang", "http://127.0.0.1:30000/v1"),
    ),
    "builtin_key_from_env": Row(
        "a built-in provider's key from its variable is *** and the variable is named as its source",
        "{}",
        (("SGLANG_API_KEY", "sg-env-3131"),),
        entry("sglang"),
        "ProviderEntry(id='sglang', base_url='http://127.0.0.1:30000/v1', api='openai-completions', api_key='***', "
        "key_source='env SGLANG_API_KEY', headers={}, origin='builtin', active=True, models=())",
    ),
    "configured_with_key_and_headers": Row(
        "a configured provider: its key is ***, header values are ***, models are their ids",
        '{models: {providers: {lan: {baseUrl: "http://10.0.0.9/v1", apiKey: "lan-key-123", api: "openai-responses", '
        'headers: {"X-Team": "ml", "X-Api-Key": "hdr-secret"}, models: [{id: "m"}, {id: "n"}]}}}}',
        (),
        entry("lan"),
        "ProviderEntry(id='lan', base_url='http://10.0.0.9/v1', api='openai-responses', api_key='***', "
        "key_source='config models.providers.lan.apiKey', headers={'X-Team': '***', 'X-Api-Key': '***'}, origin='configured', "
        "active=True, models=('m', 'n'))",
    ),
    "configured_key_echoed_elsewhere": Row(
        "a provider's key is scrubbed wherever else its repr shows it: the URL, a model id",
        '{models: {providers: {lan: {baseUrl: "http://10.0.0.9/v1?key=sk-echo-1234", apiKey: "sk-echo-1234", models: [{id: "sk-echo-1234"}]}}}}',
        (),
        entry("lan"),
        "ProviderEntry(id='lan', base_url='http://10.0.0.9/v1?key=***', api='openai-completions', api_key='***', "
        "key_source='config models.providers.lan.apiKey', headers={}, origin='configured', active=True, models=('***',))",
    ),
    "configured_builtin_id_keyless": Row(
        "a configured built-in id without a key anywhere shows api_key None and key_source none",
        '{models: {providers: {vllm: {baseUrl: "http://10.0.0.5:8000/v1"}}}}',
        (),
        entry("vllm"),
        "ProviderEntry(id='vllm', base_url='http://10.0.0.5:8000/v1', api='openai-completions', api_key=None, key_source='none', "
        "headers={}, origin='configured', active=True, models=())",
    ),
    "catalog_replace": Row(
        "a catalog shows its source, providers, aliases, primary, fallbacks, params and how many secrets it hides",
        '{models: {mode: "replace", providers: {p: {baseUrl: "http://h/v1", apiKey: "sk-p-2468", models: [{id: "m"}]}}}}',
        (),
        whole,
        "Catalog(source='<config>', providers={'p': ProviderEntry(id='p', base_url='http://h/v1', api='openai-completions', "
        "api_key='***', key_source='config models.providers.p.apiKey', headers={}, origin='configured', active=True, "
        "models=('m',))}, aliases={}, primary=None, fallbacks=(), params={}, secrets='<1 hidden>')",
    ),
    "catalog_merge_scrubs_every_secret": Row(
        "a merged catalog: the built-ins, the configured ones, aliases, primary, fallbacks, params; a header value "
        "from the environment is scrubbed wherever it appears, even in another provider's URL",
        MERGED,
        MERGED_ENV,
        whole,
        "Catalog(source='<config>', providers={'vllm': ProviderEntry(id='vllm', base_url='http://10.0.0.5:8000/v1', "
        "api='openai-completions', api_key='***', key_source='env VLLM_API_KEY', headers={'X-T': '***'}, origin='configured', "
        f"active=True, models=('q',)), 'sglang': {builtin_inactive('sglang', 'http://127.0.0.1:30000/v1')}, "
        f"'llamacpp': {builtin_inactive('llamacpp', 'http://127.0.0.1:8080/v1')}, "
        f"'lmstudio': {builtin_inactive('lmstudio', 'http://127.0.0.1:1234/v1')}, "
        f"'ollama': {builtin_inactive('ollama', 'http://127.0.0.1:11434/v1')}, "
        "'lan': ProviderEntry(id='lan', base_url='http://10.0.0.9/v1?t=***', api='openai-responses', api_key='***', "
        "key_source='config models.providers.lan.apiKey', headers={}, origin='configured', active=True, models=('m', 'n'))}, "
        "aliases={'fast': 'lan/m'}, primary='lan/m', fallbacks=('vllm/q',), params={'lan/m': {'temperature': 0.2}}, "
        "secrets='<3 hidden>')",
    ),
}


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
def test_catalog_repr(row: Row) -> None:
    shown = row.pick(catalog_of(row.text, dict(row.env)))
    assert repr(shown) == row.expected
    assert list(shown.__rich_repr__()) == [row.expected], "rich shows what repr shows"


SECRETS = ("sg-env-3131", "lan-key-123", "hdr-secret", "sk-echo-1234", "sk-p-2468", "vk-env-5555", "tok-env-999")


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
def test_catalog_repr_never_shows_a_secret(row: Row) -> None:
    catalog = catalog_of(row.text, dict(row.env))
    for shown in (repr(catalog), str(catalog), repr(row.pick(catalog))):
        assert not [secret for secret in SECRETS if secret in shown]
