"""Rule tables for auth profiles: the file format (pipeline/auth_profiles.py), where a provider's key comes
from (pipeline/catalog.py: config apiKey, then the variable, then the profile), and what an auth error's
hint names when the key came from a profile (backends/classify.py, pipeline/header_rules.py).

Each row names its rule; no row can pass while its rule is broken.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import pytest

from backends.classify import HintContext, auth_hint
from pipeline.auth_profiles import (
    MAX_AUTH_FILE_BYTES,
    AuthProfiles,
    encode_auth_profiles,
    key_problem,
    parse_auth_profiles,
)
from pipeline.catalog import Catalog, build_catalog
from pipeline.config import parse_config
from pipeline.errors import ConfigError
from pipeline.header_rules import key_error
from pipeline.secrets import scrub

SECRET = "sk-prof-9c1d7e"  # a key that must never appear in any message
FILE = "/home/u/.genesis/auth-profiles.json"


# ---- the file: what parses, and every way it cannot ----------------------------------------------


class Good(NamedTuple):
    rule: str
    data: bytes
    keys: dict[str, str]


GOOD: dict[str, Good] = {
    "one_profile": Good("version 1 with one profile", b'{"version": 1, "profiles": {"vllm": {"apiKey": "sk-1"}}}', {"vllm": "sk-1"}),
    "ids_lower_cased": Good(
        "provider ids are lower-cased, as in model refs", b'{"version": 1, "profiles": {"VLLM": {"apiKey": "sk-1"}}}', {"vllm": "sk-1"}
    ),
    "no_profiles": Good("an empty profiles object is valid", b'{"version": 1, "profiles": {}}', {}),
    "several": Good(
        "several providers, a key with inner spaces and symbols",
        b'{"version":1,"profiles":{"a":{"apiKey":"k 1/+="},"lan":{"apiKey":"k2"}}}',
        {"a": "k 1/+=", "lan": "k2"},
    ),
}


@pytest.mark.parametrize("row", list(GOOD.values()), ids=list(GOOD))
def test_a_valid_file_parses(row: Good) -> None:
    profiles = parse_auth_profiles(row.data, FILE)
    assert (dict(profiles.keys), profiles.source, profiles.key_source) == (row.keys, FILE, f"profile {FILE}")


class Bad(NamedTuple):
    rule: str
    data: bytes
    issues: list[str]  # each issue as ``path: problem``, in order


BAD: dict[str, Bad] = {
    "empty_file": Bad("an empty file", b"  \n", ["the file is empty; expected a JSON object {version, profiles}"]),
    "not_json": Bad("text that is not JSON", b"{version: 1", ["not valid JSON: object keys must be strings (byte 1)"]),
    "truncated": Bad("a file cut short", b'{"version": 1, "profiles": {', ["not valid JSON: input data was truncated"]),
    "not_an_object": Bad("a list", b"[1]", ["expected a JSON object {version, profiles}, found a list"]),
    "no_version": Bad("version missing", b'{"profiles": {}}', ["version: missing; expected 1"]),
    "version_string": Bad("version not a number", b'{"version": "1", "profiles": {}}', ["version: expected the number 1, found a string"]),
    "version_bool": Bad("version true", b'{"version": true, "profiles": {}}', ["version: expected the number 1, found true"]),
    "newer_version": Bad(
        "a newer version is refused, not guessed at",
        b'{"version": 2, "profiles": {}}',
        ["version: this Genesis reads version 1, found 2 (written by a newer Genesis?)"],
    ),
    "older_version": Bad("version 0", b'{"version": 0, "profiles": {}}', ["version: this Genesis reads version 1, found 0"]),
    "unknown_top_key": Bad(
        "unknown keys are errors",
        b'{"version": 1, "profiles": {}, "x": 1}',
        ["x: unknown key; expected version, profiles"],
    ),
    "no_profiles": Bad("profiles missing", b'{"version": 1}', ["profiles: missing; expected an object of provider id to {apiKey}"]),
    "profiles_list": Bad(
        "profiles not an object",
        b'{"version": 1, "profiles": []}',
        ["profiles: expected an object of provider id to {apiKey}, found a list"],
    ),
    "profile_string": Bad(
        "a profile that is a bare string",
        b'{"version": 1, "profiles": {"vllm": "sk-1"}}',
        ["profiles.vllm: expected an object {apiKey}, found a string"],
    ),
    "key_missing": Bad(
        "apiKey missing", b'{"version": 1, "profiles": {"vllm": {}}}', ["profiles.vllm.apiKey: missing; expected the key (a string)"]
    ),
    "key_number": Bad(
        "a key that is a number is not shown",
        b'{"version": 1, "profiles": {"vllm": {"apiKey": 918273645}}}',
        ["profiles.vllm.apiKey: expected a string, found a number"],
    ),
    "key_empty": Bad("an empty key", b'{"version": 1, "profiles": {"vllm": {"apiKey": ""}}}', ["profiles.vllm.apiKey: the key is empty"]),
    "key_line_break": Bad(
        "a key with a line break cannot be a header value",
        b'{"version": 1, "profiles": {"vllm": {"apiKey": "sk-prof-9c1d7e\\n"}}}',
        ["profiles.vllm.apiKey: the key contains a line break (U+000A) at position 15"],
    ),
    "key_padded": Bad(
        "a key with a space around it (HTTP would drop it)",
        b'{"version": 1, "profiles": {"vllm": {"apiKey": " sk-prof-9c1d7e"}}}',
        [
            "profiles.vllm.apiKey: the key begins or ends with a space or tab (HTTP drops those, so the server would see another key): strip them"
        ],
    ),
    "key_not_ascii": Bad(
        "a key outside ASCII",
        '{"version": 1, "profiles": {"vllm": {"apiKey": "sk-prof-9c1d7e\u00e9"}}}'.encode(),
        ["profiles.vllm.apiKey: the key contains a character outside ASCII (U+00E9) at position 15"],
    ),
    "unknown_profile_key": Bad(
        "unknown keys in a profile are errors",
        b'{"version": 1, "profiles": {"vllm": {"apiKey": "k", "baseUrl": "x"}}}',
        ["profiles.vllm.baseUrl: unknown key; expected apiKey"],
    ),
    "bad_id": Bad(
        "a provider id with a slash",
        b'{"version": 1, "profiles": {"a/b": {"apiKey": "k"}}}',
        ["profiles.a/b: not a provider id: has a slash or a space"],
    ),
    "id_twice": Bad(
        "two ids that fold to one",
        b'{"version": 1, "profiles": {"lan": {"apiKey": "k1"}, "LAN": {"apiKey": "k2"}}}',
        ["profiles.LAN: a second profile for provider lan (ids are not case-sensitive)"],
    ),
    "every_issue": Bad(
        "every issue at once, not only the first",
        b'{"version": 1, "profiles": {"a": {"apiKey": ""}, "b": {}}, "z": 0}',
        [
            "z: unknown key; expected version, profiles",
            "profiles.a.apiKey: the key is empty",
            "profiles.b.apiKey: missing; expected the key (a string)",
        ],
    ),
    "too_large": Bad(
        "a file over the size limit",
        b" " * (MAX_AUTH_FILE_BYTES + 1),
        [f"larger than {MAX_AUTH_FILE_BYTES} bytes; is this the auth profiles file?"],
    ),
}


@pytest.mark.parametrize("row", list(BAD.values()), ids=list(BAD))
def test_a_bad_file_is_a_config_error_naming_the_file_and_field(row: Bad) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_auth_profiles(row.data, FILE)
    error = caught.value
    assert (error.source, [str(issue) for issue in error.issues]) == (FILE, row.issues)
    assert error.hint and "genesis auth set" in error.hint
    for text in (str(error), repr(error), error.hint):
        assert SECRET not in text and "918273645" not in text


def test_the_written_form_reads_back_and_is_versioned() -> None:
    profiles = AuthProfiles(FILE, {"vllm": SECRET, "lan": "k 2"})
    data = encode_auth_profiles(profiles)
    assert data.startswith(b'{"version":1,"profiles":{"lan":') and data.endswith(b"}\n")
    assert parse_auth_profiles(data, FILE) == profiles


KEY_PROBLEMS = [
    ("", "is empty"),
    ("sk\x00x", "contains a NUL (U+0000) at position 3"),
    ("sk\t", "begins or ends with a space or tab (HTTP drops those, so the server would see another key): strip them"),
    ("x" * 16385, "is longer than 16384 characters; is it a key?"),
    ("sk-ok inner space", None),
]


@pytest.mark.parametrize(("key", "problem"), KEY_PROBLEMS, ids=["empty", "nul", "trailing tab", "too long", "inner space ok"])
def test_what_key_set_refuses(key: str, problem: str | None) -> None:
    assert key_problem(key) == problem


def test_no_repr_shows_a_key() -> None:
    profiles = AuthProfiles(FILE, {"vllm": PROFILE_KEY})
    catalog = catalog_with(profile=True)
    assert catalog.providers["vllm"].api_key == PROFILE_KEY
    for text in (repr(profiles), str(profiles), repr(catalog), repr(catalog.providers["vllm"])):
        assert PROFILE_KEY not in text
    assert repr(profiles) == f"AuthProfiles(source='{FILE}', providers=['vllm'])"


# ---- precedence: config apiKey, then the variable, then the profile --------------------------------

CONFIG_KEY, ENV_KEY, PROFILE_KEY = "cfg-key-1", "env-key-2", "prof-key-3"
CONFIG_SOURCE, ENV_SOURCE, PROFILE_SOURCE = "config models.providers.vllm.apiKey", "env VLLM_API_KEY", f"profile {FILE}"


def catalog_with(
    *, config_key: bool = False, env: bool = False, profile: bool = False, configured: bool = True, text: str | None = None
) -> Catalog:
    api_key = f'apiKey: "{CONFIG_KEY}",' if config_key else ""
    if text is None:
        text = (
            f'{{models: {{providers: {{vllm: {{baseUrl: "http://10.0.0.9/v1", {api_key} models: [{{id: "m"}}]}}}}}}}}'
            if configured
            else "{}"
        )
    environment = {"VLLM_API_KEY": ENV_KEY} if env else {}
    profiles = AuthProfiles(FILE, {"vllm": PROFILE_KEY}) if profile else AuthProfiles(FILE)
    return build_catalog(parse_config(text, environment), environment, profiles=profiles)


class Precedence(NamedTuple):
    config_key: bool
    env: bool
    profile: bool
    key: str | None
    source: str
    shadowed: tuple[str, ...]


def _expected(config_key: bool, env: bool, profile: bool) -> Precedence:
    present = [
        (key, source)
        for on, key, source in ((config_key, CONFIG_KEY, CONFIG_SOURCE), (env, ENV_KEY, ENV_SOURCE), (profile, PROFILE_KEY, PROFILE_SOURCE))
        if on
    ]
    if not present:
        return Precedence(config_key, env, profile, None, "none", ())
    return Precedence(config_key, env, profile, present[0][0], present[0][1], tuple(source for _, source in present[1:]))


# All eight combinations of the three sources, for a configured built-in id (all three apply to it).
PRECEDENCE = [_expected(*flags) for flags in itertools.product((False, True), repeat=3)]


def _precedence_id(row: Precedence) -> str:
    names = [name for on, name in ((row.config_key, "config"), (row.env, "env"), (row.profile, "profile")) if on]
    return "+".join(names) or "nothing"


@pytest.mark.parametrize("row", PRECEDENCE, ids=[_precedence_id(row) for row in PRECEDENCE])
def test_first_key_source_wins_config_then_env_then_profile(row: Precedence) -> None:
    provider = catalog_with(config_key=row.config_key, env=row.env, profile=row.profile).providers["vllm"]
    assert (provider.api_key, provider.key_source, provider.shadowed_keys) == (row.key, row.source, row.shadowed)


def test_a_builtin_left_out_of_the_config_records_the_key_it_shadows() -> None:
    """A built-in activated by its variable (not configured) keeps the same record as a configured
    one: the profile key the variable wins over is listed (``models status`` shows it)."""
    provider = catalog_with(env=True, profile=True, configured=False).providers["vllm"]
    assert (provider.api_key, provider.key_source, provider.shadowed_keys) == (ENV_KEY, ENV_SOURCE, (PROFILE_SOURCE,))


class Activation(NamedTuple):
    rule: str
    env: bool
    profile: bool
    active: bool
    discovery: bool
    source: str


ACTIVATION: dict[str, Activation] = {
    "nothing": Activation("a built-in with no key is inactive, no discovery", False, False, False, False, "none"),
    "profile_only": Activation("a profile alone activates a built-in and its discovery", False, True, True, True, PROFILE_SOURCE),
    "env_only": Activation("the variable alone activates it, as before", True, False, True, True, ENV_SOURCE),
    "both": Activation("both: active, the variable's key", True, True, True, True, ENV_SOURCE),
}


@pytest.mark.parametrize("row", list(ACTIVATION.values()), ids=list(ACTIVATION))
def test_a_profile_activates_a_builtin_like_its_variable(row: Activation) -> None:
    provider = catalog_with(env=row.env, profile=row.profile, configured=False).providers["vllm"]
    assert (provider.active, provider.discovery, provider.key_source, provider.origin) == (row.active, row.discovery, row.source, "builtin")


def test_an_empty_variable_counts_as_unset_and_the_profile_is_used() -> None:
    text = "{}"
    environment = {"VLLM_API_KEY": ""}
    catalog = build_catalog(parse_config(text, environment), environment, profiles=AuthProfiles(FILE, {"vllm": PROFILE_KEY}))
    assert (catalog.providers["vllm"].api_key, catalog.providers["vllm"].key_source) == (PROFILE_KEY, PROFILE_SOURCE)


class Custom(NamedTuple):
    rule: str
    text: str
    provider: str
    key: str | None
    source: str


CUSTOM: dict[str, Custom] = {
    "config_defined_gets_profile": Custom(
        "a provider defined only in the config takes its key from a profile when it has no apiKey",
        '{models: {providers: {lan: {baseUrl: "http://10.0.0.9/v1", models: [{id: "m"}]}}}}',
        "lan",
        PROFILE_KEY,
        PROFILE_SOURCE,
    ),
    "config_defined_apikey_wins": Custom(
        "its apiKey wins over the profile",
        f'{{models: {{providers: {{lan: {{baseUrl: "http://10.0.0.9/v1", apiKey: "{CONFIG_KEY}", models: [{{id: "m"}}]}}}}}}}}',
        "lan",
        CONFIG_KEY,
        "config models.providers.lan.apiKey",
    ),
    "config_id_case_folded": Custom(
        "a provider id configured in capitals matches the lower-cased profile",
        '{models: {providers: {LAN: {baseUrl: "http://10.0.0.9/v1", models: [{id: "m"}]}}}}',
        "lan",
        PROFILE_KEY,
        PROFILE_SOURCE,
    ),
}


@pytest.mark.parametrize("row", list(CUSTOM.values()), ids=list(CUSTOM))
def test_a_config_defined_provider_can_use_a_profile(row: Custom) -> None:
    profiles = AuthProfiles(FILE, {"lan": PROFILE_KEY})
    provider = build_catalog(parse_config(row.text, {}), {}, profiles=profiles).providers[row.provider]
    assert (provider.api_key, provider.key_source) == (row.key, row.source)


def test_replace_mode_ignores_a_builtin_profile() -> None:
    catalog = build_catalog(parse_config('{models: {mode: "replace"}}', {}), {}, profiles=AuthProfiles(FILE, {"vllm": PROFILE_KEY}))
    assert catalog.providers == {}


@pytest.mark.parametrize("used", [True, False], ids=["used profile key", "shadowed profile key"])
def test_every_profile_key_is_a_secret_used_or_not(used: bool) -> None:
    catalog = catalog_with(env=not used, profile=True, configured=False)
    assert PROFILE_KEY in catalog.secrets
    assert scrub(f"server says: bad key {PROFILE_KEY}", catalog.secrets) == "server says: bad key ***"


# ---- what an auth error says when the key came from a profile --------------------------------------

HINTS = [
    (
        "a built-in: the profile, its file, how to replace it, and what comes first",
        "VLLM_API_KEY",
        "the server refused the key from the auth profile for vllm (/home/u/.genesis/auth-profiles.json): store the server's key"
        " (its --api-key) with `genesis auth set vllm`, or set VLLM_API_KEY or models.providers.vllm.apiKey (a key there comes first)",
    ),
    (
        "a config-defined provider: no variable to name",
        None,
        "the server refused the key from the auth profile for vllm (/home/u/.genesis/auth-profiles.json): store the server's key"
        " (its --api-key) with `genesis auth set vllm`, or set models.providers.vllm.apiKey (a key there comes first)",
    ),
]


@pytest.mark.parametrize(("rule", "key_env", "hint"), HINTS, ids=["builtin", "config-defined"])
def test_the_auth_hint_names_the_profile(rule: str, key_env: str | None, hint: str) -> None:
    ctx = HintContext("vllm", "http://h/v1", "vllm/m", "path", PROFILE_SOURCE, key_env)
    assert auth_hint(ctx) == hint


def test_a_bad_profile_key_given_to_the_library_names_the_file() -> None:
    error = key_error("sk-1\n", PROFILE_SOURCE, "genesis.json")
    assert error is not None and (error.source, str(error.issues[0])) == (FILE, "the key contains a line break (U+000A) at position 5")
