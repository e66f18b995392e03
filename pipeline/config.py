"""The JSON5 config: schema, location, loading.

Rules:
- One JSON5 file. ``GENESIS_CONFIG_PATH`` names the file; else
  ``GENESIS_STATE_DIR/genesis.json``; else ``~/.genesis/genesis.json``.
  No file at the default place is a valid, empty config.
- The file is read up to ``MAX_CONFIG_BYTES`` and must be UTF-8. The text
  is hostile until parsed (``jsontext``): duplicate keys and nesting deeper
  than 64 levels are errors, plain JSON takes a fast path.
- ``${VAR}`` is expanded in every string before validation (``envsubst``);
  any other ``${`` form is an error.
- Validation is strict (unknown keys are errors) and reports every issue
  with its dotted path, then the tree is converted into frozen Structs.
  msgspec's ``convert`` is the fast check; the validator walks the tree
  only when something is wrong, to report all of it.
- Header names, header values and keys must be what HTTP can carry
  (``header_rules``). No error quotes a key, a header value, or a value
  taken from the environment.
- Defaults live on the Structs; ``UNSET`` marks "not given" where a later
  stage must tell "absent" from an explicit value (compat flags, maxTokens).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
from msgspec import UNSET, UnsetType

from pipeline.errors import ConfigError, ConfigIssue

_Positive = Annotated[float, msgspec.Meta(gt=0)]
_PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
_Retries = Annotated[int, msgspec.Meta(ge=0, le=10)]

Api = Literal["openai-completions", "openai-responses"]
InputKind = Literal["text", "image"]
MaxTokensField = Literal["max_tokens", "max_completion_tokens"]
ThinkingFormat = Literal["openai", "qwen", "qwen-chat-template"]
# false: text is text; true: a <think> block may open anywhere in the text; "startsInside": the chat
# template opened the block in the prompt, so the answer starts inside it (transforms/think_tags.py).
ExtractThinkTags = bool | Literal["startsInside"]

DEFAULT_MAX_TOKENS = 8192
# Read no further than this: a config is KBs; /dev/zero or a log file given by mistake must not fill memory.
MAX_CONFIG_BYTES = 64 * 1024 * 1024


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename="camel", omit_defaults=True):
    """Config sections: immutable, strict about keys, camelCase in the file."""


class Cost(_Section, frozen=True):
    input: float = 0.0
    output: float = 0.0
    cache_read: float = 0.0
    cache_write: float = 0.0


class CompatConfig(_Section, frozen=True):
    """Explicit compat flags; ``UNSET`` ones are defaulted from the endpoint (pipeline.compat)."""

    requires_string_content: bool | UnsetType = UNSET
    supports_tools: bool | UnsetType = UNSET
    supports_store: bool | UnsetType = UNSET
    supports_developer_role: bool | UnsetType = UNSET
    supports_reasoning_effort: bool | UnsetType = UNSET
    supports_usage_in_streaming: bool | UnsetType = UNSET
    max_tokens_field: MaxTokensField | UnsetType = UNSET
    supports_strict_mode: bool | UnsetType = UNSET
    requires_tool_result_name: bool | UnsetType = UNSET
    requires_assistant_after_tool_result: bool | UnsetType = UNSET
    thinking_format: ThinkingFormat | UnsetType = UNSET
    requires_thinking_as_text: bool | UnsetType = UNSET
    extract_think_tags: ExtractThinkTags | UnsetType = UNSET


class ModelConfig(_Section, frozen=True):
    id: _NonEmpty
    name: str | UnsetType = UNSET
    reasoning: bool = False
    input: tuple[InputKind, ...] = ("text",)
    cost: Cost = Cost()
    context_window: _PositiveInt | UnsetType = UNSET
    max_tokens: _PositiveInt | UnsetType = UNSET
    headers: dict[str, str] = {}
    compat: CompatConfig = CompatConfig()

    def __repr__(self) -> str:
        return _section_repr(self)

    def __rich_repr__(self) -> Any:
        yield _section_repr(self)

    @property
    def display_name(self) -> str:
        return self.name if isinstance(self.name, str) else self.id

    @property
    def max_tokens_limit(self) -> int:
        """The entry's ``maxTokens``; without one, the default (8192) cut to the context window, which an
        answer can never exceed (a discovered 1k-context model is not shown a limit of 8192).

        >>> [ModelConfig(id="m", **limits).max_tokens_limit for limits in ({}, {"context_window": 1024}, {"max_tokens": 300})]
        [8192, 1024, 300]
        """
        if isinstance(self.max_tokens, int):
            return self.max_tokens
        if isinstance(self.context_window, int):
            return min(DEFAULT_MAX_TOKENS, self.context_window)
        return DEFAULT_MAX_TOKENS


class TlsConfig(_Section, frozen=True):
    """TLS for an https baseUrl: a CA bundle to trust, or (said loudly) no verification at all."""

    ca_file: _NonEmpty | UnsetType = UNSET
    verify: bool = True


class ProviderConfig(_Section, frozen=True):
    base_url: _NonEmpty
    api_key: str | UnsetType = UNSET
    api: Api = "openai-completions"
    headers: dict[str, str] = {}
    auth_header: bool = True
    timeout_seconds: _Positive | UnsetType = UNSET
    connect_timeout_seconds: _Positive | UnsetType = UNSET
    read_timeout_seconds: _Positive | UnsetType = UNSET
    total_timeout_seconds: _Positive | UnsetType = UNSET
    max_response_bytes: _PositiveInt | UnsetType = UNSET
    max_retries: _Retries | UnsetType = UNSET
    tls: TlsConfig = TlsConfig()
    models: tuple[ModelConfig, ...] = ()

    def __repr__(self) -> str:
        return _section_repr(self)

    def __rich_repr__(self) -> Any:
        yield _section_repr(self)


class ModelsSection(_Section, frozen=True):
    mode: Literal["merge", "replace"] = "merge"
    providers: dict[str, ProviderConfig] = {}


class ModelChoice(_Section, frozen=True):
    primary: _NonEmpty | UnsetType = UNSET
    fallbacks: tuple[_NonEmpty, ...] = ()


class ModelOptions(_Section, frozen=True):
    alias: _NonEmpty | UnsetType = UNSET
    params: dict[str, Any] = {}


class AgentDefaults(_Section, frozen=True):
    model: _NonEmpty | ModelChoice | UnsetType = UNSET
    models: dict[str, ModelOptions] = {}

    @property
    def model_choice(self) -> ModelChoice:
        if isinstance(self.model, str):
            return ModelChoice(primary=self.model)
        return self.model if isinstance(self.model, ModelChoice) else ModelChoice()


class Agents(_Section, frozen=True):
    defaults: AgentDefaults = AgentDefaults()


class StageSpec(_Section, frozen=True):
    """A custom stage named as ``module:function`` and where it goes (exactly one of before/after/replace).

    Before ``send``: a request-side stage; ``after: "parse_stream"`` (or after another answer-side
    stage): an answer-side one; ``replace: "send"`` or ``"parse_stream"``: a sender or a parser of
    one's own (the pipeline keeps the card's name for it). ``pipeline.runner.load_custom_stages``
    applies them; a stage put where its kind does not belong is a config error naming the entry."""

    use: _NonEmpty
    before: _NonEmpty | UnsetType = UNSET
    after: _NonEmpty | UnsetType = UNSET
    replace: _NonEmpty | UnsetType = UNSET


class PipelineSection(_Section, frozen=True):
    stages: tuple[StageSpec, ...] = ()


class Config(_Section, frozen=True):
    agents: Agents = Agents()
    models: ModelsSection = ModelsSection()
    pipeline: PipelineSection = PipelineSection()


class LoadedConfig(msgspec.Struct, frozen=True):
    """A validated config, where it came from, and which values must never be shown.

    ``folder`` is the absolute folder of the file it was read from (None for a config
    given as text, or none at all): ``use:`` modules not installed are looked for there.
    """

    config: Config
    source: str
    secrets: frozenset[str] = frozenset()
    folder: str | None = None

    def __repr__(self) -> str:
        return _loaded_repr(self)

    def __rich_repr__(self) -> Any:
        yield _loaded_repr(self)


def state_dir(env: Mapping[str, str]) -> Path:
    """Genesis's own folder: the default config and the auth profiles live here.

    >>> str(state_dir({"GENESIS_STATE_DIR": "/srv/g"})), str(state_dir({"HOME": "/home/u"}))
    ('/srv/g', '/home/u/.genesis')
    """
    if env.get("GENESIS_STATE_DIR"):
        return Path(env["GENESIS_STATE_DIR"]).expanduser()
    return Path(env.get("HOME") or os.path.expanduser("~")) / ".genesis"


def default_config_path(env: Mapping[str, str]) -> Path:
    """Where the config lives when no ``--config`` is given.

    >>> str(default_config_path({"GENESIS_CONFIG_PATH": "/etc/g.json5"}))
    '/etc/g.json5'
    >>> str(default_config_path({"GENESIS_STATE_DIR": "/srv/g"}))
    '/srv/g/genesis.json'
    """
    if env.get("GENESIS_CONFIG_PATH"):
        return Path(env["GENESIS_CONFIG_PATH"]).expanduser()
    return state_dir(env) / "genesis.json"


def load_config(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> LoadedConfig:
    """Read and validate the config file; a missing file at the default place is an empty config."""
    explicit = path is not None or bool(env.get("GENESIS_CONFIG_PATH"))
    location = Path(path) if path is not None else default_config_path(env)
    try:
        with location.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(str(location), [ConfigIssue("", f"larger than {MAX_CONFIG_BYTES} bytes; is this the config file?")])
        text = data.decode("utf-8")
    except FileNotFoundError:
        if explicit:
            raise ConfigError(str(location), [ConfigIssue("", "file not found")]) from None
        return LoadedConfig(Config(), source=f"{location} (absent: built-in providers only)")
    except UnicodeDecodeError as exc:
        where = f"byte 0x{exc.object[exc.start]:02x} at offset {exc.start}"
        raise ConfigError(str(location), [ConfigIssue("", f"not valid UTF-8: {where}")]) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(str(location), [ConfigIssue("", f"cannot be read: {reason}")]) from None
    loaded = parse_config(text, env, source=str(location))
    return msgspec.structs.replace(loaded, folder=str(location.resolve().parent))


def parse_config(text: str, env: Mapping[str, str], *, source: str = "<config>") -> LoadedConfig:
    """Parse JSON5 text into a validated config, raising one ConfigError with every issue."""
    from pipeline.envsubst import expand_tree
    from pipeline.jsontext import TextError, parse_json5, shown
    from pipeline.validate import describe_value, validate

    try:
        raw = parse_json5(text) if text.strip() else {}
    except TextError as error:
        raise ConfigError(source, error.issues) from None
    if not isinstance(raw, dict):
        raise ConfigError(source, [ConfigIssue("", f"expected an object at the top level, found {describe_value(raw)}")])

    expanded, issues, from_env = expand_tree(raw, env) if _may_hold_references(text) else (raw, [], {})
    # msgspec's convert is the fast check; the validator walks the tree only to report every issue.
    config, conversion_error = _convert(expanded)
    if issues or config is None:
        issues += validate(expanded, msgspec.inspect.type_info(Config), quiet=frozenset(from_env))
        if not issues and config is None:  # the validator should have caught it; still never a traceback
            issues = [ConfigIssue("", shown(conversion_error))]
        raise ConfigError(source, issues)
    issues = _semantic_issues(config, frozenset(from_env))
    if issues:
        raise ConfigError(source, issues)
    return LoadedConfig(config, source=source, secrets=_secret_values(config, from_env))


def _may_hold_references(text: str) -> bool:
    """Whether any string can hold a ``$``: written as is, or as a ``\\u0024`` / ``\\x24`` escape.

    >>> _may_hold_references('{"a": "b"}'), _may_hold_references('{"a": "\\\\U0024{X}"}')
    (False, True)
    """
    if "$" in text:
        return True
    lowered = text.lower()
    return "\\u0024" in lowered or "\\x24" in lowered


def _convert(tree: dict[str, Any]) -> tuple[Config | None, str]:
    """The Config, or None and why; a non-finite number in a typed field is refused as the validator does."""
    try:
        config = msgspec.convert(tree, Config)
    except (msgspec.ValidationError, ValueError) as exc:  # ValueError: a lone surrogate in a key it reports
        return None, str(exc)
    return (config, "") if _all_finite(config) else (None, "a number is not finite")


def _all_finite(value: object) -> bool:
    """No inf or NaN in a typed float field of the Struct tree (free-form ``params`` are not typed)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, msgspec.Struct):
        return all(_all_finite(getattr(value, name)) for name in _fields_with_floats(type(value)))
    if isinstance(value, tuple):
        return all(_all_finite(item) for item in value)
    if isinstance(value, dict):
        return all(_all_finite(item) for item in value.values() if isinstance(item, msgspec.Struct))
    return True


@functools.cache
def _fields_with_floats(cls: type[msgspec.Struct]) -> tuple[str, ...]:
    """The fields of a Struct type that can hold a float, directly or inside Structs, lists and dicts.

    >>> _fields_with_floats(ModelConfig), _fields_with_floats(CompatConfig)
    (('cost',), ())
    """
    import msgspec.inspect as mi

    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return tuple(field.name for field in info.fields if _holds_float(field.type))


def _holds_float(t: msgspec.inspect.Type) -> bool:
    import msgspec.inspect as mi

    if isinstance(t, mi.FloatType):
        return True
    if isinstance(t, mi.UnionType):
        return any(_holds_float(member) for member in t.types)
    if isinstance(t, mi.StructType):
        return bool(_fields_with_floats(t.cls))
    if isinstance(t, (mi.ListType, mi.VarTupleType)):
        return _holds_float(t.item_type)
    if isinstance(t, mi.DictType):
        return isinstance(t.value_type, mi.StructType) and _holds_float(t.value_type)
    return False


def _semantic_issues(config: Config, quiet: frozenset[str]) -> list[ConfigIssue]:
    """Rules the type schema cannot express; a value at a ``quiet`` path (taken from the environment) is never quoted."""
    from pipeline.header_rules import value_problem
    from pipeline.jsontext import join_key, shown

    issues: list[ConfigIssue] = []
    seen: dict[str, str] = {}
    for key, provider in config.models.providers.items():
        at = join_key("models.providers", key)
        if key.lower() in seen:
            issues.append(ConfigIssue(at, f'provider ids are case-insensitive; this repeats "{shown(seen[key.lower()])}"'))
        seen[key.lower()] = key
        if "/" in key:
            issues.append(ConfigIssue(at, "a provider id cannot contain '/'"))
        if not _is_http_url(provider.base_url):
            issues.append(
                ConfigIssue(
                    f"{at}.baseUrl",
                    f'expected an http(s) URL such as "http://127.0.0.1:8000/v1", found {_quoted(provider.base_url, f"{at}.baseUrl", quiet)}',
                )
            )
        elif _has_userinfo(provider.base_url):
            issues.append(ConfigIssue(f"{at}.baseUrl", USERINFO_PROBLEM))
        if isinstance(provider.api_key, str):
            bad_key = value_problem(provider.api_key)
            if bad_key is not None:
                issues.append(ConfigIssue(f"{at}.apiKey", f"the key {bad_key}"))
        issues += _header_issues(at, provider.headers)
        ids: set[str] = set()
        for index, model in enumerate(provider.models):
            if model.id in ids:
                issues.append(
                    ConfigIssue(f"{at}.models[{index}].id", f"{_quoted(model.id, f'{at}.models[{index}].id', quiet)} is listed twice")
                )
            ids.add(model.id)
            issues += _header_issues(f"{at}.models[{index}]", model.headers)
    for ref in config.agents.defaults.models:
        if "/" not in ref:
            issues.append(ConfigIssue(join_key("agents.defaults.models", ref), 'expected a key of the form "provider/model"'))
    for index, spec in enumerate(config.pipeline.stages):
        at = f"pipeline.stages[{index}]"
        positions = [name for name in ("before", "after", "replace") if isinstance(getattr(spec, name), str)]
        if len(positions) != 1:
            issues.append(ConfigIssue(at, "expected exactly one of before, after, replace"))
        if ":" not in spec.use:
            issues.append(ConfigIssue(f"{at}.use", f'expected "module:function", found {_quoted(spec.use, f"{at}.use", quiet)}'))
    return issues


def _quoted(value: str, path: str, quiet: frozenset[str]) -> str:
    """A config value as an error message shows it; one taken from the environment is not shown.

    >>> _quoted("x\\ny", "a", frozenset()), _quoted("s3cret", "a", frozenset({"a"}))
    ('"x\\\\ny"', 'the value from the environment')
    """
    from pipeline.jsontext import shown

    return "the value from the environment" if path in quiet else f'"{shown(value)}"'


# A user name or password in baseUrl (http://user:pass@host/v1) would be shown wherever the URL
# is (errors, hints, traces, the wire view's Host line), and httpx would turn it into an
# Authorization: Basic header that replaces the apiKey's Bearer one, so the wire would not be what
# the config says. Refused, never echoed (the message does not quote the URL), with where it goes.
USERINFO_PROBLEM = (
    "a user name or password in the URL (user:password@host) is refused: it would be printed with the URL"
    " and sent as Basic auth in place of apiKey; remove it, and put the credential in apiKey (sent as"
    ' Bearer) or in headers: {"Authorization": "Basic ${BASIC_AUTH}"}'
)


def _has_userinfo(url: str) -> bool:
    """Whether an http(s) URL that ``_is_http_url`` accepted carries a user name or password.

    >>> _has_userinfo("http://bob:pw@10.0.0.5:8000/v1"), _has_userinfo("http://bob@h/v1"), _has_userinfo("http://h/v1?a=b@c")
    (True, True, False)
    """
    return "@" in urlsplit(url).netloc


def _is_http_url(text: str) -> bool:
    """An http(s) URL with a host that ``urlsplit`` reads without raising (``http://[::1`` raises).

    >>> _is_http_url("http://127.0.0.1:8000/v1"), _is_http_url("localhost:8000"), _is_http_url("http://[::1/v1")
    (True, False, False)
    """
    if not text.isprintable():
        return False
    try:
        url = urlsplit(text)
        _ = url.port  # raises on a port that is not a number in range
        return url.scheme in ("http", "https") and bool(url.hostname)
    except ValueError:
        return False


def _secret_values(config: Config, from_env: Mapping[str, str]) -> frozenset[str]:
    """Values never to print: every apiKey, and header values that came from the environment."""
    from pipeline.envsubst import is_secret_path

    secrets = {p.api_key for p in config.models.providers.values() if isinstance(p.api_key, str) and p.api_key}
    secrets.update(value for path, value in from_env.items() if value and is_secret_path(path))
    return frozenset(secrets)


# Reprs. Rule: a config never shows a key: ``apiKey`` is ``***`` and header
# values are ``***`` (a value from ``${VAR}`` may be a secret under any name);
# a LoadedConfig's text is also scrubbed with its ``secrets``. Only the fields
# that differ from their defaults are shown, besides the required ones.


def _section_repr(section: ModelConfig | ProviderConfig) -> str:
    from pipeline.secrets import REDACTED, hidden_header_values, struct_repr

    shown: list[tuple[str, Any]] = []
    for field in msgspec.structs.fields(section):
        value = getattr(section, field.name)
        if not field.required and value == _default(field):
            continue
        if field.name == "api_key":
            value = REDACTED
        elif field.name == "headers":
            value = hidden_header_values(value)
        shown.append((field.name, value))
    key = getattr(section, "api_key", None)
    return struct_repr(section, shown, [key] if isinstance(key, str) else ())


def _default(field: msgspec.structs.FieldInfo) -> Any:
    """The default of a field that is not required: it has a default value or a default factory."""
    return field.default if field.default is not msgspec.NODEFAULT else field.default_factory()


def _loaded_repr(loaded: LoadedConfig) -> str:
    from pipeline.secrets import struct_repr

    shown = [("source", loaded.source), ("config", loaded.config), ("secrets", f"<{len(loaded.secrets)} hidden>")]
    return struct_repr(loaded, shown, loaded.secrets)


def _header_issues(at: str, headers: Mapping[str, str]) -> list[ConfigIssue]:
    """Header names and values that HTTP cannot carry; the value is never quoted (it may be a key)."""
    from pipeline.header_rules import name_problem, value_problem
    from pipeline.jsontext import join_key

    issues: list[ConfigIssue] = []
    for name, value in headers.items():
        path = join_key(f"{at}.headers", name)
        bad_name = name_problem(name)
        if bad_name is not None:
            issues.append(ConfigIssue(path, f"the header name {bad_name}"))
        bad_value = value_problem(value)
        if bad_value is not None:
            issues.append(ConfigIssue(path, f"the value {bad_value}"))
    return issues
