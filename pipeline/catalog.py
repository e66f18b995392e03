"""The catalog: every provider and model a request can target, resolved once.

Built from the validated config, the built-in providers and the models that
discovery found (discovery itself is I/O and lives in ``backends``; it hands
its result in). Rules:
- ``models.mode: "merge"``: configured providers are laid over the built-in
  ones; a configured provider replaces the built-in of the same id, and its
  explicit entry turns that provider's discovery off.
- ``models.mode: "replace"``: exactly the configured providers.
- A provider's key, first wins (``_key_choice``): its ``apiKey``; else, for a
  built-in id, its key variable (empty counts as unset); else its auth
  profile (``pipeline.auth_profiles``). A built-in provider with a key from
  either of the last two is active and its models are discovered. Sources
  that hold a key but lose are kept (``shadowed_keys``), so ``models status``
  can say what is not used; every profile key is a secret, used or not.
Everything a request needs per model (compat flags, native/loopback) is
computed here, once, not per request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec

from pipeline.auth_profiles import AuthProfiles
from pipeline.compat import Compat, is_loopback, is_native_openai, resolve_compat
from pipeline.config import (
    Api,
    CompatConfig,
    Config,
    LoadedConfig,
    ModelConfig,
    ProviderConfig,
)
from pipeline.policy import DEFAULT_POLICY, SendPolicy, policy_for
from pipeline.providers import BUILTIN_PROVIDERS
from pipeline.ref_syntax import normalize_ref

ModelOrigin = Literal["configured", "discovered", "synthesized"]
ProviderOrigin = Literal["configured", "builtin"]


class ModelEntry(msgspec.Struct, frozen=True):
    provider: str
    config: ModelConfig
    compat: Compat
    origin: ModelOrigin

    @property
    def ref(self) -> str:
        return f"{self.provider}/{self.config.id}"


class ProviderEntry(msgspec.Struct, frozen=True):
    id: str
    base_url: str
    api: Api
    api_key: str | None
    key_source: str
    headers: dict[str, str]
    auth_header: bool
    models: tuple[ModelEntry, ...]
    origin: ProviderOrigin
    active: bool
    native: bool
    loopback: bool
    builtin_compat: CompatConfig = CompatConfig()
    key_env: str | None = None
    discovery: bool = False
    policy: SendPolicy = DEFAULT_POLICY
    shadowed_keys: tuple[str, ...] = ()  # key sources that hold a key but lose to ``key_source``

    def __repr__(self) -> str:
        return _provider_repr(self)

    def __rich_repr__(self) -> Any:
        yield _provider_repr(self)

    @property
    def config_path(self) -> str:
        return f"models.providers.{self.id}"

    def find(self, model_id: str) -> ModelEntry | None:
        for entry in self.models:
            if entry.config.id == model_id:
                return entry
        return None

    def synthesize(self, model_id: str) -> ModelEntry:
        """An entry for an id the provider does not list: the first model's limits, else defaults."""
        first = self.models[0].config if self.models else None
        config = ModelConfig(
            id=model_id,
            context_window=first.context_window if first else msgspec.UNSET,
            max_tokens=first.max_tokens if first else msgspec.UNSET,
        )
        return self.entry_for(config, "synthesized")

    def entry_for(self, config: ModelConfig, origin: ModelOrigin) -> ModelEntry:
        compat = resolve_compat(config, native=self.native, loopback=self.loopback, provider_compat=self.builtin_compat)
        return ModelEntry(self.id, config, compat, origin)


class Catalog(msgspec.Struct, frozen=True):
    providers: dict[str, ProviderEntry]
    aliases: dict[str, str]
    primary: str | None
    fallbacks: tuple[str, ...]
    params: dict[str, dict[str, Any]]
    secrets: frozenset[str]
    source: str

    def __repr__(self) -> str:
        return _catalog_repr(self)

    def __rich_repr__(self) -> Any:
        yield _catalog_repr(self)

    def active_models(self) -> list[ModelEntry]:
        return [model for provider in self.providers.values() if provider.active for model in provider.models]


def build_catalog(
    loaded: LoadedConfig,
    env: Mapping[str, str],
    discovered: Mapping[str, Sequence[ModelConfig]] | None = None,
    profiles: AuthProfiles | None = None,
) -> Catalog:
    config = loaded.config
    providers: dict[str, ProviderEntry] = {}
    profiles = profiles if profiles is not None else AuthProfiles("")
    secrets = set(loaded.secrets) | set(profiles.keys.values())
    if config.models.mode == "merge":
        for builtin_id in BUILTIN_PROVIDERS:
            entry = _builtin_entry(builtin_id, env, (discovered or {}).get(builtin_id, ()), profiles)
            providers[builtin_id] = entry
            if entry.api_key:
                secrets.add(entry.api_key)
    for key, provider in config.models.providers.items():
        entry = _configured_entry(key.lower(), provider, env, profiles)
        providers[entry.id] = entry
        if entry.api_key:
            secrets.add(entry.api_key)
    return Catalog(
        providers=providers,
        aliases=_aliases(config),
        primary=_primary(config),
        fallbacks=config.agents.defaults.model_choice.fallbacks,
        params={normalize_ref(ref): dict(options.params) for ref, options in config.agents.defaults.models.items()},
        secrets=frozenset(secrets),
        source=loaded.source,
    )


def _key_choice(
    provider_id: str, config_key: str | None, key_env: str | None, env: Mapping[str, str], profiles: AuthProfiles
) -> tuple[str | None, str, tuple[str, ...]]:
    """The key in use, its source (``config <path>``, ``env <VAR>``, ``profile <file>`` or ``none``), and the sources it shadows.

    >>> _key_choice("vllm", None, "VLLM_API_KEY", {"VLLM_API_KEY": "e"}, AuthProfiles("a.json", {"vllm": "p"}))
    ('e', 'env VLLM_API_KEY', ('profile a.json',))
    """
    found = [
        (source, key)
        for source, key in (
            (f"config models.providers.{provider_id}.apiKey", config_key),
            (f"env {key_env}", env.get(key_env) if key_env else None),
            (profiles.key_source, profiles.keys.get(provider_id)),
        )
        if key
    ]
    if not found:
        return None, "none", ()
    (source, key), *shadowed = found
    return key, source, tuple(name for name, _ in shadowed)


def _builtin_entry(provider_id: str, env: Mapping[str, str], models: Sequence[ModelConfig], profiles: AuthProfiles) -> ProviderEntry:
    builtin = BUILTIN_PROVIDERS[provider_id]
    key, key_source, shadowed = _key_choice(provider_id, None, builtin.key_env, env, profiles)
    entry = ProviderEntry(
        id=provider_id,
        base_url=builtin.base_url,
        api="openai-completions",
        api_key=key,
        key_source=key_source,
        shadowed_keys=shadowed,
        headers={},
        auth_header=True,
        models=(),
        origin="builtin",
        active=key is not None,
        native=False,
        loopback=is_loopback(builtin.base_url),
        builtin_compat=builtin.compat,
        key_env=builtin.key_env,
        discovery=key is not None,
    )
    return msgspec.structs.replace(entry, models=tuple(entry.entry_for(m, "discovered") for m in models))


def _configured_entry(provider_id: str, provider: ProviderConfig, env: Mapping[str, str], profiles: AuthProfiles) -> ProviderEntry:
    builtin = BUILTIN_PROVIDERS.get(provider_id)
    config_key = provider.api_key if isinstance(provider.api_key, str) else None
    key, key_source, shadowed = _key_choice(provider_id, config_key, builtin.key_env if builtin else None, env, profiles)
    entry = ProviderEntry(
        id=provider_id,
        base_url=provider.base_url,
        api=provider.api,
        api_key=key,
        key_source=key_source,
        shadowed_keys=shadowed,
        headers=dict(provider.headers),
        auth_header=provider.auth_header,
        models=(),
        origin="configured",
        active=True,
        native=is_native_openai(provider.base_url),
        loopback=is_loopback(provider.base_url),
        builtin_compat=builtin.compat if builtin else CompatConfig(),
        key_env=builtin.key_env if builtin else None,
        policy=policy_for(provider),
    )
    return msgspec.structs.replace(entry, models=tuple(entry.entry_for(m, "configured") for m in provider.models))


# Reprs. Rule: the key, secret-named header values and the secrets set are
# never shown; what is shown is scrubbed once more with the secrets known here.


def _provider_repr(provider: ProviderEntry) -> str:
    from pipeline.secrets import REDACTED, hidden_header_values, struct_repr

    shown = [
        ("id", provider.id),
        ("base_url", provider.base_url),
        ("api", provider.api),
        ("api_key", None if provider.api_key is None else REDACTED),
        ("key_source", provider.key_source),
        ("headers", hidden_header_values(provider.headers)),
        ("origin", provider.origin),
        ("active", provider.active),
        ("models", tuple(model.config.id for model in provider.models)),
    ]
    return struct_repr(provider, shown, {provider.api_key} if provider.api_key else ())


def _catalog_repr(catalog: Catalog) -> str:
    from pipeline.secrets import struct_repr

    shown = [
        ("source", catalog.source),
        ("providers", catalog.providers),
        ("aliases", catalog.aliases),
        ("primary", catalog.primary),
        ("fallbacks", catalog.fallbacks),
        ("params", catalog.params),
        ("secrets", f"<{len(catalog.secrets)} hidden>"),
    ]
    return struct_repr(catalog, shown, catalog.secrets)


def _aliases(config: Config) -> dict[str, str]:
    aliases: dict[str, str] = {}
    for ref, options in config.agents.defaults.models.items():
        if isinstance(options.alias, str):
            aliases[options.alias.lower()] = normalize_ref(ref)
    return aliases


def _primary(config: Config) -> str | None:
    primary = config.agents.defaults.model_choice.primary
    return primary if isinstance(primary, str) else None
