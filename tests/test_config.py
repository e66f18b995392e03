"""Config rules, one case each: the error names the dotted path and what was expected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import default_config_path, load_config, parse_config
from pipeline.errors import ConfigError

BASE = 'baseUrl: "http://127.0.0.1:8000/v1"'


def issues_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, env or {})
    return [str(issue) for issue in caught.value.issues]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{models: {providers: {vllm: {}}}}", "models.providers.vllm.baseUrl: missing; expected a non-empty string"),
        (
            f"{{models: {{providers: {{vllm: {{{BASE}, apiKye: 'x'}}}}}}}}",
            'models.providers.vllm.apiKye: unknown key (did you mean "apiKey"?)',
        ),
        (
            f"{{models: {{providers: {{vllm: {{{BASE}, timeoutSeconds: 0}}}}}}}}",
            "models.providers.vllm.timeoutSeconds: expected a number greater than 0, found the number 0",
        ),
        (
            f"{{models: {{providers: {{vllm: {{{BASE}, api: 'grpc'}}}}}}}}",
            'models.providers.vllm.api: expected one of "openai-completions", "openai-responses", found the string "grpc"',
        ),
        (f"{{models: {{providers: {{vllm: {{{BASE}, authHeader: 'yes'}}}}}}}}", "models.providers.vllm.authHeader: expected true or false"),
        (
            f"{{models: {{providers: {{vllm: {{{BASE}, headers: {{'X-A': 1}}}}}}}}}}",
            "models.providers.vllm.headers.X-A: expected a string, found the number 1",
        ),
        (
            f"{{models: {{providers: {{vllm: {{{BASE}, connectTimeoutSeconds: 0}}}}}}}}",
            "models.providers.vllm.connectTimeoutSeconds: expected a number greater than 0, found the number 0",
        ),
        (
            f"{{models: {{providers: {{vllm: {{{BASE}, readTimeoutSeconds: -1}}}}}}}}",
            "models.providers.vllm.readTimeoutSeconds: expected a number greater than 0",
        ),
        (
            f"{{models: {{providers: {{vllm: {{{BASE}, totalTimeoutSeconds: '60'}}}}}}}}",
            'models.providers.vllm.totalTimeoutSeconds: expected a number greater than 0, found the string "60"',
        ),
        (
            f"{{models: {{providers: {{vllm: {{{BASE}, totalTimeoutSeconds: Infinity}}}}}}}}",
            "models.providers.vllm.totalTimeoutSeconds: expected a number greater than 0, found the number inf",
        ),
        (
            f"{{models: {{providers: {{vllm: {{{BASE}, maxResponseBytes: 1.5}}}}}}}}",
            "models.providers.vllm.maxResponseBytes: expected a whole number greater than 0",
        ),
        (
            f"{{models: {{providers: {{vllm: {{{BASE}, maxResponseBytes: 0}}}}}}}}",
            "models.providers.vllm.maxResponseBytes: expected a whole number greater than 0",
        ),
        (
            f"{{models: {{providers: {{vllm: {{{BASE}, maxRetries: 11}}}}}}}}",
            "models.providers.vllm.maxRetries: expected a whole number from 0 to 10, found the number 11",
        ),
        (
            f"{{models: {{providers: {{vllm: {{{BASE}, maxRetries: -1}}}}}}}}",
            "models.providers.vllm.maxRetries: expected a whole number from 0 to 10",
        ),
        (
            f"{{models: {{providers: {{vllm: {{{BASE}, maxRetries: true}}}}}}}}",
            "models.providers.vllm.maxRetries: expected a whole number from 0 to 10, found true",
        ),
        (
            f"{{models: {{providers: {{vllm: {{{BASE}, tls: {{caFile: ''}}}}}}}}}}",
            "models.providers.vllm.tls.caFile: expected a non-empty string",
        ),
        (
            f"{{models: {{providers: {{vllm: {{{BASE}, tls: {{verify: 'no'}}}}}}}}}}",
            "models.providers.vllm.tls.verify: expected true or false",
        ),
        (
            f"{{models: {{providers: {{vllm: {{{BASE}, tls: {{cafile: 'ca.pem'}}}}}}}}}}",
            'models.providers.vllm.tls.cafile: unknown key (did you mean "caFile"?)',
        ),
        (f"{{models: {{providers: {{vllm: {{{BASE}, tls: true}}}}}}}}", "models.providers.vllm.tls: expected an object, found true"),
        (
            f"{{models: {{providers: {{vllm: {{{BASE}, models: [{{id: 'a', compat: {{requiresThinkingAsText: 1}}}}]}}}}}}}}",
            "models.providers.vllm.models[0].compat.requiresThinkingAsText: expected true or false",
        ),
        (f"{{models: {{providers: {{vllm: {{{BASE}, models: [{{name: 'n'}}]}}}}}}}}", "models.providers.vllm.models[0].id: missing"),
        (
            f"{{models: {{providers: {{vllm: {{{BASE}, models: [{{id: 'a', input: ['audio']}}]}}}}}}}}",
            'models.providers.vllm.models[0].input[0]: expected one of "image", "text"',
        ),
        (
            f"{{models: {{providers: {{vllm: {{{BASE}, models: [{{id: 'a', maxTokens: 1.5}}]}}}}}}}}",
            "models.providers.vllm.models[0].maxTokens: expected a whole number greater than 0",
        ),
        (
            f"{{models: {{providers: {{vllm: {{{BASE}, models: [{{id: 'a', compat: {{requiresStringContents: true}}}}]}}}}}}}}",
            'models.providers.vllm.models[0].compat.requiresStringContents: unknown key (did you mean "requiresStringContent"?)',
        ),
        (
            f"{{models: {{providers: {{vllm: {{{BASE}, models: [{{id: 'a', compat: {{maxTokensField: 'max'}}}}]}}}}}}}}",
            'models.providers.vllm.models[0].compat.maxTokensField: expected one of "max_completion_tokens", "max_tokens"',
        ),
        (
            f"{{models: {{providers: {{vllm: {{{BASE}, models: [{{id: 'a', cost: {{input: 'free'}}}}]}}}}}}}}",
            "models.providers.vllm.models[0].cost.input: expected a number",
        ),
        (
            f"{{models: {{providers: {{vllm: {{{BASE}, models: [{{id: 'a'}}, {{id: 'a'}}]}}}}}}}}",
            'models.providers.vllm.models[1].id: "a" is listed twice',
        ),
        ("{models: {providers: {vllm: {baseUrl: 'localhost:8000'}}}}", "models.providers.vllm.baseUrl: expected an http(s) URL"),
        (f"{{models: {{providers: {{vllm: {{{BASE}}}, VLLM: {{{BASE}}}}}}}}}", "models.providers.VLLM: provider ids are case-insensitive"),
        ("{models: {mode: 'overlay'}}", 'models.mode: expected one of "merge", "replace"'),
        ("{agents: {defaults: {model: 5}}}", "agents.defaults.model: expected a non-empty string or an object"),
        (
            "{agents: {defaults: {model: {primary: 'a/b', fallback: ['c/d']}}}}",
            'agents.defaults.model.fallback: unknown key (did you mean "fallbacks"?)',
        ),
        ("{agents: {defaults: {model: {fallbacks: 'c/d'}}}}", "agents.defaults.model.fallbacks: expected a list"),
        (
            "{agents: {defaults: {models: {'gemma': {alias: 'g'}}}}}",
            'agents.defaults.models.gemma: expected a key of the form "provider/model"',
        ),
        ("{agents: {defaults: {models: {'a/b': {alias: 3}}}}}", "agents.defaults.models.a/b.alias: expected a non-empty string"),
        ("{pipeline: {stages: [{use: 'mod:fn'}]}}", "pipeline.stages[0]: expected exactly one of before, after, replace"),
        ("{pipeline: {stages: [{use: 'modfn', after: 'x'}]}}", 'pipeline.stages[0].use: expected "module:function"'),
        ("{tools: {}}", "tools: unknown key; expected one of: agents, models, pipeline"),
        ("[1, 2]", "expected an object at the top level, found a list"),
        ("{models: ", "not valid JSON5"),
    ],
)
def test_each_rule_names_its_path(text: str, expected: str) -> None:
    assert any(expected in issue for issue in issues_of(text)), issues_of(text)


def test_many_errors_reported_at_once() -> None:
    text = "{models: {providers: {a: {baseUrl: 1, apiKey: '${A1}'}, b: {bogus: true}}}, agents: {defaults: {model: []}}}"
    found = issues_of(text)
    assert len(found) == 5
    assert [issue.split(":")[0] for issue in found] == [
        "models.providers.a.apiKey",
        "models.providers.a.baseUrl",
        "models.providers.b.bogus",
        "models.providers.b.baseUrl",
        "agents.defaults.model",
    ]


def test_env_var_missing_names_variable_and_path() -> None:
    [issue] = issues_of("{models: {providers: {vllm: {baseUrl: 'http://h/v1', apiKey: '${NOPE}'}}}}")
    assert issue == "models.providers.vllm.apiKey: environment variable NOPE is not set"


def test_env_var_empty_is_an_error_too() -> None:
    [issue] = issues_of("{models: {providers: {vllm: {baseUrl: 'http://h/v1', apiKey: '${EMPTY}'}}}}", {"EMPTY": ""})
    assert "EMPTY is empty" in issue


def test_env_expansion_everywhere_and_escape() -> None:
    loaded = parse_config(
        "{models: {providers: {p: {baseUrl: 'http://${HOST}:8000/v1', apiKey: 'k-${KEY}', headers: {'X-Lit': '$${KEY}'}}}}}",
        {"HOST": "10.1.2.3", "KEY": "abc"},
    )
    provider = loaded.config.models.providers["p"]
    assert provider.base_url == "http://10.1.2.3:8000/v1"
    assert provider.api_key == "k-abc"
    assert provider.headers == {"X-Lit": "${KEY}"}
    assert "k-abc" in loaded.secrets


def test_error_messages_never_show_secrets() -> None:
    text = "{models: {providers: {p: {baseUrl: 'http://h/v1', apiKey: '${KEY}', headers: {'A': '${KEY}'}, timeoutSeconds: 'x'}}}}"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, {"KEY": "super-secret-value"})
    assert "super-secret-value" not in str(caught.value)


def test_defaults_are_filled() -> None:
    loaded = parse_config(f"{{models: {{providers: {{vllm: {{{BASE}, models: [{{id: 'm'}}]}}}}}}}}", {})
    model = loaded.config.models.providers["vllm"].models[0]
    assert (model.reasoning, model.input, model.cost.input, model.max_tokens_limit) == (False, ("text",), 0.0, 8192)
    assert loaded.config.models.mode == "merge"


def test_locations(tmp_path: Path) -> None:
    assert default_config_path({"HOME": "/home/u"}) == Path("/home/u/.genesis/genesis.json")
    assert load_config(None, {"HOME": str(tmp_path)}).config.models.providers == {}
    with pytest.raises(ConfigError, match="file not found"):
        load_config(None, {"GENESIS_CONFIG_PATH": str(tmp_path / "missing.json5")})
    (tmp_path / "genesis.json").write_text("{models: {mode: 'replace'}}")
    assert load_config(None, {"GENESIS_STATE_DIR": str(tmp_path)}).config.models.mode == "replace"


def test_seed_configs_load() -> None:
    root = Path(__file__).resolve().parent.parent / "examples"
    inferrs = load_config(root / "inferrs.json5", {}).config
    assert inferrs.models.providers["inferrs"].models[0].compat.requires_string_content is True
    vllm = load_config(root / "vllm.json5", {"VLLM_API_KEY": "x"}).config
    assert vllm.models.providers["vllm"].api_key == "x"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=30,
)
config_like = st.fixed_dictionaries(
    {},
    optional={
        "models": st.fixed_dictionaries(
            {}, optional={"mode": json_values, "providers": st.dictionaries(st.text(max_size=8), json_values, max_size=3)}
        ),
        "agents": json_values,
        "pipeline": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_is_a_config_error_or_valid(text: str) -> None:
    try:
        parse_config(text, {})
    except ConfigError:
        pass


@settings(max_examples=300, deadline=None)
@given(json_values | config_like)
def test_arbitrary_json_is_a_config_error_or_valid(value: object) -> None:
    try:
        parse_config(json.dumps(value), {})
    except ConfigError:
        pass


def test_send_policy_fields_load() -> None:
    text = (
        "{models: {providers: {vllm: {baseUrl: 'https://h/v1', connectTimeoutSeconds: 2, readTimeoutSeconds: 30.5,"
        " totalTimeoutSeconds: 120, maxResponseBytes: 1048576, maxRetries: 0, tls: {caFile: '/etc/ca.pem', verify: false}}}}}"
    )
    provider = parse_config(text, {}).config.models.providers["vllm"]
    assert (provider.connect_timeout_seconds, provider.read_timeout_seconds, provider.total_timeout_seconds) == (2, 30.5, 120)
    assert (provider.max_response_bytes, provider.max_retries) == (1048576, 0)
    assert (provider.tls.ca_file, provider.tls.verify) == ("/etc/ca.pem", False)


plausible = (
    st.integers(-2, 20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | st.none()
    | st.text(max_size=3)
    | st.sampled_from(["max_tokens", "qwen", "text", "merge"])
)
model_like = st.fixed_dictionaries(
    {"id": plausible},
    optional={name: plausible | st.lists(plausible, max_size=2) for name in ("name", "reasoning", "input", "contextWindow", "maxTokens")}
    | {
        "cost": st.dictionaries(st.sampled_from(["input", "output", "cacheRead", "cacheWrite"]), plausible, max_size=4),
        "compat": st.dictionaries(
            st.sampled_from(["supportsTools", "maxTokensField", "thinkingFormat", "requiresThinkingAsText"]), plausible, max_size=3
        ),
        "headers": st.dictionaries(st.text(max_size=3), plausible, max_size=2),
    },
)
provider_like = st.fixed_dictionaries(
    {"baseUrl": plausible | st.just("http://h/v1")},
    optional={
        name: plausible
        for name in (
            "apiKey",
            "api",
            "authHeader",
            "timeoutSeconds",
            "connectTimeoutSeconds",
            "readTimeoutSeconds",
            "totalTimeoutSeconds",
            "maxResponseBytes",
            "maxRetries",
        )
    }
    | {"tls": st.dictionaries(st.sampled_from(["caFile", "verify"]), plausible, max_size=2), "models": st.lists(model_like, max_size=2)},
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=3), provider_like, max_size=2))
def test_msgspec_convert_and_the_validator_agree(providers: dict[str, object]) -> None:
    """parse_config trusts msgspec's convert (plus the finite-number rule) and runs the validator only on failure."""
    import msgspec

    from pipeline.config import Config, _convert
    from pipeline.validate import validate

    tree = {"models": {"providers": providers}}
    config, _ = _convert(tree)
    assert (config is not None) == (validate(tree, msgspec.inspect.type_info(Config)) == [])
