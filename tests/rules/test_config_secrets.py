"""Rule table: which config values a LoadedConfig knows as secrets (pipeline/config.py ``_secret_values``), and
that a value from the environment is never quoted in a config error (``_quoted``).

Rules:
- Every non-empty ``apiKey`` is a secret; an empty one is no key, so nothing to hide.
- A value taken from the environment is a secret where its path says secret (a header value, a key);
  elsewhere (a baseUrl, a model id) it is not.
- An error about a value taken from the environment says "the value from the environment" instead of
  quoting it: a baseUrl, a model id listed twice, a stage's ``use``.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from pipeline.config import parse_config
from pipeline.errors import ConfigError


class Known(NamedTuple):
    rule: str
    text: str
    env: tuple[tuple[str, str], ...]
    secrets: frozenset[str]


P = '"http://10.0.0.9/v1"'

KNOWN: dict[str, Known] = {
    "api_key": Known(
        "a non-empty apiKey is a secret",
        f'{{models: {{providers: {{p: {{baseUrl: {P}, apiKey: "sk-1234"}}}}}}}}',
        (),
        frozenset({"sk-1234"}),
    ),
    "empty_api_key": Known(
        "an empty apiKey is no key: nothing to hide", f'{{models: {{providers: {{p: {{baseUrl: {P}, apiKey: ""}}}}}}}}', (), frozenset()
    ),
    "env_header_value": Known(
        "a header value from the environment is a secret",
        f'{{models: {{providers: {{p: {{baseUrl: {P}, headers: {{"X-Org": "${{ORG}}"}}}}}}}}}}',
        (("ORG", "org-5678"),),
        frozenset({"org-5678"}),
    ),
    "env_base_url": Known(
        "a baseUrl from the environment is not a secret",
        '{models: {providers: {p: {baseUrl: "${URL}"}}}}',
        (("URL", "http://10.0.0.7/v1"),),
        frozenset(),
    ),
    "env_model_id": Known(
        "a model id from the environment is not a secret",
        f'{{models: {{providers: {{p: {{baseUrl: {P}, models: [{{id: "${{MODEL}}"}}]}}}}}}}}',
        (("MODEL", "qwen-7b"),),
        frozenset(),
    ),
}


@pytest.mark.parametrize("row", list(KNOWN.values()), ids=list(KNOWN))
def test_known_secrets(row: Known) -> None:
    assert parse_config(row.text, dict(row.env)).secrets == row.secrets


class Quiet(NamedTuple):
    rule: str
    text: str
    env: tuple[tuple[str, str], ...]
    issues: list[str]


QUIET: dict[str, Quiet] = {
    "base_url": Quiet(
        "a bad baseUrl from the environment is not quoted",
        '{models: {providers: {p: {baseUrl: "${URL}"}}}}',
        (("URL", "localhost:8000"),),
        ['models.providers.p.baseUrl: expected an http(s) URL such as "http://127.0.0.1:8000/v1", found the value from the environment'],
    ),
    "model_listed_twice": Quiet(
        "a model id from the environment listed twice is not quoted",
        f'{{models: {{providers: {{p: {{baseUrl: {P}, models: [{{id: "m"}}, {{id: "${{MODEL}}"}}]}}}}}}}}',
        (("MODEL", "m"),),
        ["models.providers.p.models[1].id: the value from the environment is listed twice"],
    ),
    "stage_use": Quiet(
        "a stage's use from the environment is not quoted",
        '{pipeline: {stages: [{use: "${STAGE}", before: "send"}]}}',
        (("STAGE", "nocolon"),),
        ['pipeline.stages[0].use: expected "module:function", found the value from the environment'],
    ),
    "stage_use_written": Quiet(
        "a stage's use written in the file is quoted",
        '{pipeline: {stages: [{use: "nocolon", before: "send"}]}}',
        (),
        ['pipeline.stages[0].use: expected "module:function", found "nocolon"'],
    ),
}


@pytest.mark.parametrize("row", list(QUIET.values()), ids=list(QUIET))
def test_environment_values_are_not_quoted(row: Quiet) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(row.text, dict(row.env))
    assert [str(issue) for issue in caught.value.issues] == row.issues
