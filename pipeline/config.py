"""The JSON5 config: schema, location, loading.

Rules:
- One JSON5 file. ``GENESIS_CONFIG_PATH`` names the file; else
  ``GENESIS_STATE_DIR/genesis.json``; else ``~/.genesis/genesis.json``.
  No file at the default place is a valid, empty config.
- ``${VAR}`` is expanded in every string before validation (``envsubst``).
- Validation is strict (unknown keys are errors) and reports every issue
  with its dotted path, then the tree is converted into frozen Structs.
- Defaults live on the Structs; ``UNSET`` marks "not given" where a later
  stage must tell "absent" from an explicit value (compat flags, maxTokens).
"""

from __future__ import annotations

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

DEFAULT_MAX_TOKENS = 8192


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
        return self.max_tokens if isinstance(self.max_tokens, int) else DEFAULT_MAX_TOKENS


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
    """A custom stage named as ``module:function`` and where it goes (exactly one of before/after/replace)."""

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
    """A validated config, where it came from, and which values must never be shown."""

    config: Config
    source: str
    secrets: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        return _loaded_repr(self)

    def __rich_repr__(self) -> Any:
        yield _loaded_repr(self)


def default_config_path(env: Mapping[str, str]) -> Path:
    """Where the config lives when no ``--config`` is given.

    >>> str(default_config_path({"GENESIS_CONFIG_PATH": "/etc/g.json5"}))
    '/etc/g.json5'
    >>> str(default_config_path({"GENESIS_STATE_DIR": "/srv/g"}))
    '/srv/g/genesis.json'
    """
    if env.get("GENESIS_CONFIG_PATH"):
        return Path(env["GENESIS_CONFIG_PATH"]).expanduser()
    if env.get("GENESIS_STATE_DIR"):
        return Path(env["GENESIS_STATE_DIR"]).expanduser() / "genesis.json"
    return Path(env.get("HOME") or os.path.expanduser("~")) / ".genesis" / "genesis.json"


def load_config(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> LoadedConfig:
    """Read and validate the config file; a missing file at the default place is an empty config."""
    explicit = path is not None or bool(env.get("GENESIS_CONFIG_PATH"))
    location = Path(path) if path is not None else default_config_path(env)
    try:
        text = location.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise ConfigError(str(location), [ConfigIssue("", "file not found")]) from None
        return LoadedConfig(Config(), source=f"{location} (absent: built-in providers only)")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(str(location), [ConfigIssue("", f"cannot be read: {reason}")]) from None
    return parse_config(text, env, source=str(location))


def parse_config(text: str, env: Mapping[str, str], *, source: str = "<config>") -> LoadedConfig:
    """Parse JSON5 text into a validated config, raising one ConfigError with every issue."""
    import json5  # config loading is off the request path; keep it out of import time

    from pipeline.envsubst import expand_tree
    from pipeline.validate import validate

    try:
        raw = json5.loads(text) if text.strip() else {}
    except (ValueError, RecursionError, OverflowError) as exc:
        raise ConfigError(source, [ConfigIssue("", f"not valid JSON5: {_first_line(exc)}")]) from None
    if not isinstance(raw, dict):
        found = "a list" if isinstance(raw, list) else f"{type(raw).__name__}"
        raise ConfigError(source, [ConfigIssue("", f"expected an object at the top level, found {found}")])

    expanded, issues, expanded_paths = expand_tree(raw, env)
    issues += validate(expanded, msgspec.inspect.type_info(Config))
    if issues:
        raise ConfigError(source, issues)
    try:
        config = msgspec.convert(expanded, Config)
    except msgspec.ValidationError as exc:  # the validator should have caught it; still never a traceback
        raise ConfigError(source, [ConfigIssue("", str(exc))]) from None
    issues = _semantic_issues(config)
    if issues:
        raise ConfigError(source, issues)
    return LoadedConfig(config, source=source, secrets=_secret_values(config, expanded, expanded_paths))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def _semantic_issues(config: Config) -> list[ConfigIssue]:
    """Rules the type schema cannot express."""
    issues: list[ConfigIssue] = []
    seen: dict[str, str] = {}
    for key, provider in config.models.providers.items():
        at = f"models.providers.{key}"
        if key.lower() in seen:
            issues.append(ConfigIssue(at, f"provider ids are case-insensitive; this repeats {seen[key.lower()]!r}"))
        seen[key.lower()] = key
        if "/" in key:
            issues.append(ConfigIssue(at, "a provider id cannot contain '/'"))
        url = urlsplit(provider.base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            issues.append(
                ConfigIssue(f"{at}.baseUrl", f'expected an http(s) URL such as "http://127.0.0.1:8000/v1", found "{provider.base_url}"')
            )
        ids: set[str] = set()
        for index, model in enumerate(provider.models):
            if model.id in ids:
                issues.append(ConfigIssue(f"{at}.models[{index}].id", f'"{model.id}" is listed twice'))
            ids.add(model.id)
    for ref in config.agents.defaults.models:
        if "/" not in ref:
            issues.append(ConfigIssue(f"agents.defaults.models.{ref}", 'expected a key of the form "provider/model"'))
    for index, spec in enumerate(config.pipeline.stages):
        at = f"pipeline.stages[{index}]"
        positions = [name for name in ("before", "after", "replace") if isinstance(getattr(spec, name), str)]
        if len(positions) != 1:
            issues.append(ConfigIssue(at, "expected exactly one of before, after, replace"))
        if ":" not in spec.use:
            issues.append(ConfigIssue(f"{at}.use", f'expected "module:function", found "{spec.use}"'))
    return issues


def _secret_values(config: Config, tree: dict[str, Any], expanded_paths: set[str]) -> frozenset[str]:
    """Values never to print: every apiKey, and header values that came from the environment."""
    secrets = {p.api_key for p in config.models.providers.values() if isinstance(p.api_key, str) and p.api_key}
    for path in expanded_paths:
        if ".headers." in path or path.endswith(".apiKey"):
            value: Any = tree
            for part in _split_path(path):
                value = value[part]
            if isinstance(value, str) and value:
                secrets.add(value)
    return frozenset(secrets)


def _split_path(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for piece in path.split("."):
        name, _, rest = piece.partition("[")
        if name:
            parts.append(name)
        while rest:
            index, _, rest = rest.partition("]")
            parts.append(int(index))
            rest = rest.lstrip("[")
    return parts


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
    if field.default is not msgspec.NODEFAULT:
        return field.default
    return field.default_factory() if field.default_factory is not msgspec.NODEFAULT else msgspec.NODEFAULT


def _loaded_repr(loaded: LoadedConfig) -> str:
    from pipeline.secrets import struct_repr

    shown = [("source", loaded.source), ("config", loaded.config), ("secrets", f"<{len(loaded.secrets)} hidden>")]
    return struct_repr(loaded, shown, loaded.secrets)
