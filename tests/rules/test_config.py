"""Rule table for config rules (pipeline/config.py, pipeline/validate.py; README "Config reference" and
"Config rules", SPEC 1): config text in, every issue (dotted path and problem) out, or the config it means.

Each refused row checks the whole list of issues: what is wrong, where, what was expected and what was
found, and that a value from the environment or a secret-looking path is never quoted.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from pipeline.catalog import build_catalog
from pipeline.config import USERINFO_PROBLEM, parse_config
from pipeline.errors import ConfigError

ENV = {"HOSTISH": "localhost:1"}


class Refused(NamedTuple):
    rule: str
    text: str
    issues: list[str]


REFUSED: dict[str, Refused] = {
    "unknown_key_did_you_mean": Refused(
        "unknown keys are errors, with the close key (did you mean) and the keys expected",
        "{models: {providerz: {}}}",
        ['models.providerz: unknown key (did you mean "providers"?); expected one of: mode, providers'],
    ),
    "unknown_key_no_match": Refused(
        "an unknown key with nothing close lists the keys expected",
        "{zzz: 1}",
        ["zzz: unknown key; expected one of: agents, models, pipeline"],
    ),
    "missing_base_url": Refused(
        "baseUrl is required",
        "{models: {providers: {p: {models: []}}}}",
        ["models.providers.p.baseUrl: missing; expected a non-empty string"],
    ),
    "empty_base_url": Refused(
        "baseUrl may not be empty",
        '{models: {providers: {p: {baseUrl: ""}}}}',
        ['models.providers.p.baseUrl: expected a non-empty string, found the string ""'],
    ),
    "base_url_not_http": Refused(
        "baseUrl is an http(s) URL",
        '{models: {providers: {p: {baseUrl: "localhost:8000"}}}}',
        ['models.providers.p.baseUrl: expected an http(s) URL such as "http://127.0.0.1:8000/v1", found "localhost:8000"'],
    ),
    "base_url_other_scheme": Refused(
        "baseUrl's scheme is http or https, whatever its host",
        '{models: {providers: {p: {baseUrl: "ftp://h/v1"}}}}',
        ['models.providers.p.baseUrl: expected an http(s) URL such as "http://127.0.0.1:8000/v1", found "ftp://h/v1"'],
    ),
    "base_url_no_host": Refused(
        "baseUrl has a host, whatever its scheme",
        '{models: {providers: {p: {baseUrl: "http:///v1"}}}}',
        ['models.providers.p.baseUrl: expected an http(s) URL such as "http://127.0.0.1:8000/v1", found "http:///v1"'],
    ),
    "base_url_control_character": Refused(
        "baseUrl is printable: a control character anywhere refuses it (shown escaped)",
        '{models: {providers: {p: {baseUrl: "http://h/v1\\u0007x"}}}}',
        ['models.providers.p.baseUrl: expected an http(s) URL such as "http://127.0.0.1:8000/v1", found "http://h/v1\\u0007x"'],
    ),
    "base_url_bad_port": Refused(
        "baseUrl's port is a number in range",
        '{models: {providers: {p: {baseUrl: "http://h:99999/v1"}}}}',
        ['models.providers.p.baseUrl: expected an http(s) URL such as "http://127.0.0.1:8000/v1", found "http://h:99999/v1"'],
    ),
    "base_url_password": Refused(
        "baseUrl carries no user name or password, and the refusal never quotes it",
        '{models: {providers: {p: {baseUrl: "http://bob:hunter2pass@h:8000/v1"}}}}',
        [f"models.providers.p.baseUrl: {USERINFO_PROBLEM}"],
    ),
    "base_url_user_only": Refused(
        "a user name alone is userinfo too: refused the same way",
        '{models: {providers: {p: {baseUrl: "https://bob@h/v1"}}}}',
        [f"models.providers.p.baseUrl: {USERINFO_PROBLEM}"],
    ),
    "provider_slash": Refused(
        "a provider id cannot contain a slash (refs split on the first one)",
        '{models: {providers: {"a/b": {baseUrl: "http://h/v1"}}}}',
        ["models.providers.a/b: a provider id cannot contain '/'"],
    ),
    "provider_case_dup": Refused(
        "provider ids are case-insensitive: two spellings of one id are an error",
        '{models: {providers: {vllm: {baseUrl: "http://h/v1"}, VLLM: {baseUrl: "http://h/v1"}}}}',
        ['models.providers.VLLM: provider ids are case-insensitive; this repeats "vllm"'],
    ),
    "model_listed_twice": Refused(
        "a model id listed twice under one provider is an error",
        '{models: {providers: {p: {baseUrl: "http://10.0.0.9/v1",  models: [{id: "m"}, {id: "m"}]}}}}',
        ['models.providers.p.models[1].id: "m" is listed twice'],
    ),
    "mode_literal": Refused(
        'models.mode is "merge" or "replace"',
        '{models: {mode: "mix"}}',
        ['models.mode: expected one of "merge", "replace", found the string "mix"'],
    ),
    "api_literal": Refused(
        'api is "openai-completions" or "openai-responses"',
        '{models: {providers: {p: {baseUrl: "http://h/v1", api: "x"}}}}',
        ['models.providers.p.api: expected one of "openai-completions", "openai-responses", found the string "x"'],
    ),
    "bool_expected": Refused(
        "authHeader is true or false",
        '{models: {providers: {p: {baseUrl: "http://10.0.0.9/v1", authHeader: "no", models: [{id: "m", }]}}}}',
        ['models.providers.p.authHeader: expected true or false, found the string "no"'],
    ),
    "timeout_positive": Refused(
        "timeouts are numbers greater than 0",
        '{models: {providers: {p: {baseUrl: "http://10.0.0.9/v1", timeoutSeconds: 0, models: [{id: "m", }]}}}}',
        ["models.providers.p.timeoutSeconds: expected a number greater than 0, found the number 0"],
    ),
    "retries_range": Refused(
        "maxRetries is a whole number from 0 to 10",
        '{models: {providers: {p: {baseUrl: "http://10.0.0.9/v1", maxRetries: 11, models: [{id: "m", }]}}}}',
        ["models.providers.p.maxRetries: expected a whole number from 0 to 10, found the number 11"],
    ),
    "retries_bool": Refused(
        "true is not a number",
        '{models: {providers: {p: {baseUrl: "http://10.0.0.9/v1", maxRetries: true, models: [{id: "m", }]}}}}',
        ["models.providers.p.maxRetries: expected a whole number from 0 to 10, found true"],
    ),
    "max_response_int": Refused(
        "maxResponseBytes is a whole number",
        '{models: {providers: {p: {baseUrl: "http://10.0.0.9/v1", maxResponseBytes: 1.5, models: [{id: "m", }]}}}}',
        ["models.providers.p.maxResponseBytes: expected a whole number greater than 0, found the number 1.5"],
    ),
    "nan_timeout": Refused(
        "NaN is not a number in range",
        '{models: {providers: {p: {baseUrl: "http://10.0.0.9/v1", readTimeoutSeconds: NaN, models: [{id: "m", }]}}}}',
        ["models.providers.p.readTimeoutSeconds: expected a number greater than 0, found the number nan"],
    ),
    "inf_cost": Refused(
        "a cost is a finite number",
        '{models: {providers: {p: {baseUrl: "http://10.0.0.9/v1",  models: [{id: "m", cost: {input: Infinity}}]}}}}',
        ["models.providers.p.models[0].cost.input: expected a number, found the number inf"],
    ),
    "input_literal": Refused(
        'input holds "text" and "image" only',
        '{models: {providers: {p: {baseUrl: "http://10.0.0.9/v1",  models: [{id: "m", input: ["audio"]}]}}}}',
        ['models.providers.p.models[0].input[0]: expected one of "image", "text", found the string "audio"'],
    ),
    "extract_think_tags_choice": Refused(
        'extractThinkTags is true, false or "startsInside"',
        '{models: {providers: {p: {baseUrl: "http://10.0.0.9/v1",  models: [{id: "m", compat: {extractThinkTags: "yes"}}]}}}}',
        ['models.providers.p.models[0].compat.extractThinkTags: expected true, false or "startsInside", found the string "yes"'],
    ),
    "compat_unknown_flag": Refused(
        "compat keys are strict, with the close flag (did you mean)",
        '{models: {providers: {p: {baseUrl: "http://10.0.0.9/v1",  models: [{id: "m", compat: {supportsTool: true}}]}}}}',
        [
            'models.providers.p.models[0].compat.supportsTool: unknown key (did you mean "supportsTools"?); expected one of: requiresStringContent, supportsTools, supportsStore, supportsDeveloperRole, supportsReasoningEffort, supportsUsageInStreaming, maxTokensField, supportsStrictMode, requiresToolResultName, requiresAssistantAfterToolResult, thinkingFormat, requiresThinkingAsText, extractThinkTags'
        ],
    ),
    "compat_bad_value": Refused(
        "maxTokensField is one of its two names (a string at a path naming a token is described, not quoted)",
        '{models: {providers: {p: {baseUrl: "http://10.0.0.9/v1",  models: [{id: "m", compat: {maxTokensField: "tokens"}}]}}}}',
        ['models.providers.p.models[0].compat.maxTokensField: expected one of "max_completion_tokens", "max_tokens", found a string'],
    ),
    "context_window_int": Refused(
        "contextWindow is a whole number greater than 0",
        '{models: {providers: {p: {baseUrl: "http://10.0.0.9/v1",  models: [{id: "m", contextWindow: 0}]}}}}',
        ["models.providers.p.models[0].contextWindow: expected a whole number greater than 0, found the number 0"],
    ),
    "id_empty": Refused(
        "a model id may not be empty",
        '{models: {providers: {p: {baseUrl: "http://10.0.0.9/v1",  models: [{id: "", }]}}}}',
        ['models.providers.p.models[0].id: expected a non-empty string, found the string ""'],
    ),
    "api_key_number": Refused(
        "apiKey is a string",
        '{models: {providers: {p: {baseUrl: "http://10.0.0.9/v1", apiKey: 5, models: [{id: "m", }]}}}}',
        ["models.providers.p.apiKey: expected a string, found the number 5"],
    ),
    "api_key_newline": Refused(
        "an apiKey is a valid header value: the error gives the position and a hint, never the key",
        '{models: {providers: {p: {baseUrl: "http://10.0.0.9/v1", apiKey: "abc\\n", models: [{id: "m", }]}}}}',
        [
            "models.providers.p.apiKey: the key contains a line break (U+000A) at position 4; strip the trailing line break (a key saved by echo or an editor often ends with one)"
        ],
    ),
    "header_bad_name": Refused(
        "a header name is an RFC 9110 token",
        '{models: {providers: {p: {baseUrl: "http://10.0.0.9/v1", headers: {"X Y": "v"}, models: [{id: "m", }]}}}}',
        [
            "models.providers.p.headers.X Y: the header name is not a valid header name: the character U+0020 at position 2 is not allowed (a name is letters, digits and !#$%&'*+-.^_`|~)"
        ],
    ),
    "header_bad_value": Refused(
        "a header value holds no NUL; the value is never quoted",
        '{models: {providers: {p: {baseUrl: "http://10.0.0.9/v1",  models: [{id: "m", headers: {"X": "a\\u0000b"}}]}}}}',
        ["models.providers.p.models[0].headers.X: the value contains a NUL (U+0000) at position 2"],
    ),
    "header_value_number": Refused(
        "header values are strings",
        '{models: {providers: {p: {baseUrl: "http://10.0.0.9/v1", headers: {"X": 5}, models: [{id: "m", }]}}}}',
        ["models.providers.p.headers.X: expected a string, found the number 5"],
    ),
    "defaults_models_key": Refused(
        'agents.defaults.models keys are "provider/model"',
        '{agents: {defaults: {models: {gemma: {alias: "g"}}}}}',
        ['agents.defaults.models.gemma: expected a key of the form "provider/model"'],
    ),
    "defaults_model_empty": Refused(
        "agents.defaults.model is a non-empty string or an object",
        '{agents: {defaults: {model: ""}}}',
        ['agents.defaults.model: expected a non-empty string or an object, found the string ""'],
    ),
    "defaults_model_obj_bad": Refused(
        "agents.defaults.model as an object: its own fields, every problem",
        '{agents: {defaults: {model: {primary: 5, fallbacks: "x"}}}}',
        [
            "agents.defaults.model.primary: expected a non-empty string, found the number 5",
            'agents.defaults.model.fallbacks: expected a list, found the string "x"',
        ],
    ),
    "stage_positions": Refused(
        "a custom stage has exactly one of before, after, replace, and use is module:function",
        '{pipeline: {stages: [{use: "m:f"}, {use: "mf", before: "a", after: "b"}]}}',
        [
            "pipeline.stages[0]: expected exactly one of before, after, replace",
            "pipeline.stages[1]: expected exactly one of before, after, replace",
            'pipeline.stages[1].use: expected "module:function", found "mf"',
        ],
    ),
    "top_level_list": Refused("the top level is an object", "[1]", ["expected an object at the top level, found a list"]),
    "dup_key": Refused(
        "duplicate keys in one object are an error; the last value never wins silently",
        '{models: {mode: "merge", mode: "replace"}}',
        ['models: key "mode" appears twice'],
    ),
    "many_at_once": Refused(
        "every problem is reported at once, each with its dotted path",
        "{models: {mode: 1, providers: {p: {baseUrl: 2, foo: 3}}}, agents: 4}",
        [
            'models.mode: expected one of "merge", "replace", found the number 1',
            "models.providers.p.baseUrl: expected a non-empty string, found the number 2",
            "models.providers.p.foo: unknown key; expected one of: baseUrl, apiKey, api, headers, authHeader, timeoutSeconds, connectTimeoutSeconds, readTimeoutSeconds, totalTimeoutSeconds, maxResponseBytes, maxRetries, tls, models",
            "agents: expected an object, found the number 4",
        ],
    ),
    "env_missing": Refused(
        "a missing variable is an error naming it and the path",
        '{models: {providers: {p: {baseUrl: "http://10.0.0.9/v1", apiKey: "${NOPE}", models: [{id: "m", }]}}}}',
        ["models.providers.p.apiKey: environment variable NOPE is not set"],
    ),
    "env_base_url_bad": Refused(
        "a value from the environment is never quoted in an error",
        '{models: {providers: {p: {baseUrl: "${HOSTISH}"}}}}',
        ['models.providers.p.baseUrl: expected an http(s) URL such as "http://127.0.0.1:8000/v1", found the value from the environment'],
    ),
    "env_value_not_quoted_in_type_error": Refused(
        "a value from the environment is not quoted in a type error either",
        '{models: {providers: {p: {baseUrl: "http://h/v1", timeoutSeconds: "${HOSTISH}"}}}}',
        ["models.providers.p.timeoutSeconds: expected a number greater than 0, found a string"],
    ),
    "string_where_number_quoted": Refused(
        "a plain config string is quoted in a type error",
        '{models: {providers: {p: {baseUrl: "http://h/v1", timeoutSeconds: "ten"}}}}',
        ['models.providers.p.timeoutSeconds: expected a number greater than 0, found the string "ten"'],
    ),
    "secret_path_not_quoted": Refused(
        "a string where headers go (may be a key) is described, never quoted",
        '{models: {providers: {p: {baseUrl: "http://h/v1", headers: "sk-123"}}}}',
        ["models.providers.p.headers: expected an object, found a string"],
    ),
    "tls_bad": Refused(
        "tls.verify is true or false, tls.caFile a non-empty string",
        '{models: {providers: {p: {baseUrl: "http://h/v1", tls: {verify: "no", caFile: ""}}}}}',
        [
            'models.providers.p.tls.verify: expected true or false, found the string "no"',
            'models.providers.p.tls.caFile: expected a non-empty string, found the string ""',
        ],
    ),
    "fallbacks_empty": Refused(
        "fallbacks are non-empty strings",
        '{agents: {defaults: {model: {fallbacks: [""]}}}}',
        ['agents.defaults.model.fallbacks[0]: expected a non-empty string, found the string ""'],
    ),
}


@pytest.mark.parametrize("row", list(REFUSED.values()), ids=list(REFUSED))
def test_config_refused(row: Refused) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(row.text, ENV)
    assert [str(issue) for issue in caught.value.issues] == row.issues
    assert "localhost:1" not in str(caught.value), "a value from the environment is never shown"


class Accepted(NamedTuple):
    rule: str
    text: str
    env: tuple[tuple[str, str], ...]
    providers: list[str]  # the active providers of the catalog, in order


ACCEPTED: dict[str, Accepted] = {
    "empty_text": Accepted("no file (empty text) is a valid, empty config; the built-ins exist but need their key", "", (), []),
    "builtin_active_with_key": Accepted(
        "a built-in provider is active when its key variable is set", "{}", (("VLLM_API_KEY", "x"),), ["vllm"]
    ),
    "merge_keeps_builtins": Accepted(
        "models.mode merge: configured providers over the built-in ones",
        '{models: {providers: {lan: {baseUrl: "http://10.0.0.9/v1"}}}}',
        (("SGLANG_API_KEY", "x"),),
        ["sglang", "lan"],
    ),
    "replace_drops_builtins": Accepted(
        "models.mode replace: only the configured providers",
        '{models: {mode: "replace", providers: {lan: {baseUrl: "http://10.0.0.9/v1"}}}}',
        (("SGLANG_API_KEY", "x"),),
        ["lan"],
    ),
    "params_are_free_form": Accepted(
        "params are free-form request defaults",
        '{agents: {defaults: {models: {"p/m": {params: {anything: [1, {a: null}]}}}}}}',
        (),
        [],
    ),
    "at_sign_outside_userinfo": Accepted(
        "an @ in baseUrl's path or query is not userinfo: accepted",
        '{models: {providers: {lan: {baseUrl: "http://10.0.0.9/v1/@team?as=a@b"}}}}',
        (),
        ["lan"],
    ),
    "escape_is_literal": Accepted(
        "$${VAR} is a literal ${VAR} (never expanded, never an error)",
        '{models: {providers: {lan: {baseUrl: "http://10.0.0.9/v1", headers: {"X-T": "$${NOPE}"}}}}}',
        (),
        ["lan"],
    ),
}


@pytest.mark.parametrize("row", list(ACCEPTED.values()), ids=list(ACCEPTED))
def test_config_accepted(row: Accepted) -> None:
    loaded = parse_config(row.text, dict(row.env))
    catalog = build_catalog(loaded, dict(row.env))
    assert [pid for pid, provider in catalog.providers.items() if provider.active] == row.providers


def test_configured_builtin_id_overrides_the_builtin() -> None:
    text = '{models: {providers: {vllm: {baseUrl: "http://10.0.0.9:8000/v1", models: [{id: "m"}]}}}}'
    provider = build_catalog(parse_config(text, {}), {}).providers["vllm"]
    assert (provider.base_url, provider.active, [m.config.id for m in provider.models]) == ("http://10.0.0.9:8000/v1", True, ["m"])


def test_secrets_are_keys_and_env_header_values() -> None:
    text = '{models: {providers: {a: {baseUrl: "http://h/v1", apiKey: "lit", headers: {"X-T": "${T}", "X-P": "plain"}}}}}'
    loaded = parse_config(text, {"T": "from-env"})
    assert loaded.secrets == frozenset({"lit", "from-env"})
    assert loaded.config.models.providers["a"].headers == {"X-T": "from-env", "X-P": "plain"}
