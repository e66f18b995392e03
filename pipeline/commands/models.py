"""``genesis models list | status | probe``: what Genesis knows, and what the servers say."""

from __future__ import annotations

from typing import Any

import msgspec

from pipeline.catalog import Catalog, ModelEntry, ProviderEntry
from pipeline.commands.common import load_genesis
from pipeline.commands.output import program, warn
from pipeline.errors import StageError, UnknownModelError
from pipeline.providers import BUILTIN_PROVIDERS, activation_hint
from pipeline.refs import normalize_ref


def format_context(tokens: int | None) -> str:
    """Context windows in units of 1024 tokens.

    >>> [format_context(n) for n in (1024, 128000, 131072, 2097152, 500, None)]
    ['1k', '125k', '128k', '2M', '500', '-']
    """
    if tokens is None:
        return "-"
    if tokens >= 1024 * 1024 and tokens % (1024 * 1024) == 0:
        return f"{tokens // (1024 * 1024)}M"
    if tokens >= 1024:
        return f"{round(tokens / 1024)}k"
    return str(tokens)


def model_tags(catalog: Catalog, model: ModelEntry) -> list[str]:
    ref = model.ref
    tags: list[str] = []
    if catalog.primary and normalize_ref(catalog.primary) == ref:
        tags.append("default")
    tags += [f"fallback#{n}" for n, fallback in enumerate(catalog.fallbacks, start=1) if normalize_ref(fallback) == ref]
    tags += [f"alias:{alias}" for alias, target in catalog.aliases.items() if target == ref]
    tags.append(model.origin)
    return tags


def model_row(catalog: Catalog, provider: ProviderEntry, model: ModelEntry) -> dict[str, Any]:
    window = model.config.context_window if isinstance(model.config.context_window, int) else None
    return {
        "ref": model.ref,
        "provider": provider.id,
        "id": model.config.id,
        "name": model.config.display_name,
        "input": "+".join(model.config.input),
        "contextWindow": window,
        "maxTokens": model.config.max_tokens_limit,
        "local": provider.loopback,
        "auth": bool(provider.api_key and provider.auth_header),
        "tags": model_tags(catalog, model),
    }


def render_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(headers[i]), *(len(row[i]) for row in rows)) if rows else len(headers[i]) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def _selected(catalog: Catalog, provider_id: str | None) -> list[ProviderEntry]:
    if provider_id is None:
        return list(catalog.providers.values())
    provider = catalog.providers.get(provider_id.lower())
    if provider is None:
        known = ", ".join(catalog.providers)
        raise UnknownModelError(f"no provider {provider_id!r}; known: {known}", hint=activation_hint(provider_id.lower()))
    return [provider]


def nothing_listed(catalog: Catalog, providers: list[ProviderEntry]) -> str:
    """Why ``models list`` found no models, and what to set: the line it prints on stderr then.

    >>> from pipeline.api import Genesis
    >>> nothing_listed(catalog := Genesis.from_config_text("{}", env={}, source="g.json").catalog, list(catalog.providers.values()))
    'no models to list: no provider is active (config: g.json) (hint: set VLLM_API_KEY for the built-in vllm provider at http://127.0.0.1:8000/v1 (any value works for a server without auth; SGLANG_API_KEY, LLAMACPP_API_KEY, LMSTUDIO_API_KEY, OLLAMA_API_KEY for the other built-in providers), or store a key with `genesis auth set vllm`, or add a provider under models.providers in a config file: --config FILE or GENESIS_CONFIG_PATH)'
    """
    active = [provider.id for provider in providers if provider.active]
    configure = "add a provider under models.providers in a config file: --config FILE or GENESIS_CONFIG_PATH"
    if not active:
        builtins = [BUILTIN_PROVIDERS[provider.id] for provider in providers if provider.origin == "builtin"]
        if not builtins:
            return f"no models to list: no provider is configured (config: {catalog.source}) (hint: {configure})"
        first, *others = builtins
        also = f"; {', '.join(other.key_env for other in others)} for the other built-in providers" if others else ""
        return (
            f"no models to list: no provider is active (config: {catalog.source}) "
            f"(hint: set {first.key_env} for the built-in {first.id} provider at {first.base_url} "
            f"(any value works for a server without auth{also}), or store a key with `{program()} auth set {first.id}`, or {configure})"
        )
    discovering = [provider.id for provider in providers if provider.active and provider.discovery]
    why = (
        f"discovery found none on {', '.join(discovering)} (a warning above says why, if it failed)"
        if discovering
        else "none lists a model"
    )
    return (
        f"no models to list: {', '.join(active)} {'is' if len(active) == 1 else 'are'} active but {why} "
        f"(hint: list a provider's models under models.providers.<id>.models in the config)"
    )


def run_list(args: Any) -> int:
    from backends import eventloop

    genesis = load_genesis(args)
    genesis.warn = warn

    async def discover() -> None:
        async with genesis:
            await genesis.discover()

    eventloop.run(discover)
    catalog = genesis.catalog
    providers = _selected(catalog, args.provider)
    rows = [model_row(catalog, provider, model) for provider in providers if provider.active for model in provider.models]
    if args.json:
        print(msgspec.json.encode(rows).decode())
    elif args.plain:
        for row in rows:
            print(row["ref"])
    else:
        table = [
            [
                row["ref"],
                row["input"],
                format_context(row["contextWindow"]),
                "yes" if row["local"] else "no",
                "yes" if row["auth"] else "no",
                ",".join(row["tags"]),
            ]
            for row in rows
        ]
        print(render_table(["Model", "Input", "Ctx", "Local", "Auth", "Tags"], table))
    inactive = [provider.id for provider in providers if not provider.active]
    if args.provider and inactive:
        warn(f"provider {inactive[0]} is not active: {activation_hint(inactive[0])}")
    elif not rows:
        warn(nothing_listed(catalog, providers))
    return 0


def run_status(args: Any) -> int:
    import anyio

    from backends import eventloop

    genesis = load_genesis(args)
    genesis.warn = warn
    selected = _selected(genesis.catalog, args.provider)  # an unknown --provider fails before anything is sent
    probes: dict[str, Any] = {}

    # The model counts include what discovery finds (as ``models list`` shows it): discovery first,
    # when a provider shown discovers.
    async def discover_and_probe() -> None:
        async with genesis:
            if any(provider.discovery for provider in selected):
                await genesis.discover()
            if args.probe:
                from backends.probe import probe_provider

                async def one(provider: ProviderEntry) -> None:
                    probes[provider.id] = await probe_provider(genesis.client(), provider, genesis.catalog.secrets)

                async with anyio.create_task_group() as group:
                    for provider in _selected(genesis.catalog, args.provider):
                        group.start_soon(one, provider)

    eventloop.run(discover_and_probe)
    catalog = genesis.catalog
    providers = _selected(catalog, args.provider)
    records = []
    for provider in providers:
        record: dict[str, Any] = {
            "provider": provider.id,
            "baseUrl": provider.base_url,
            "auth": provider.key_source,
            "authShadowed": list(provider.shadowed_keys),  # sources that hold a key too but come later (config, env, profile)
            "origin": provider.origin,
            "active": provider.active,
            "models": len(provider.models),
        }
        if provider.id in probes:
            models, health = probes[provider.id]
            record["probe"] = {"models": msgspec.to_builtins(models), "health": msgspec.to_builtins(health)}
        records.append(record)
    if args.json:
        print(msgspec.json.encode(records).decode())
        return 0
    headers = ["Provider", "Base URL", "Auth", "State"] + (["/models", "/health"] if args.probe else [])
    rows = []
    for record in records:
        state = "active" if record["active"] else "inactive"
        count = record["models"]
        row = [
            record["provider"],
            record["baseUrl"],
            record["auth"] + "".join(f" (over {source})" for source in record["authShadowed"]),
            f"{state} ({record['origin']}, {count} model{'' if count == 1 else 's'})",
        ]
        if args.probe:
            row += [_probe_cell(record["probe"]["models"]), _probe_cell(record["probe"]["health"])]
        rows.append(row)
    print(render_table(headers, rows))
    return 0


def _probe_cell(result: dict[str, Any]) -> str:
    latency = f" {result['latency_ms']:.0f}ms" if result.get("latency_ms") is not None else ""
    return f"{result['state']}{latency}"


def run_probe(args: Any) -> int:
    from backends import eventloop
    from backends.probe import compat_block, probe_compat
    from backends.session import hints_for
    from pipeline.request import prompt_request
    from pipeline.secrets import Secrets, secrets_in_headers

    genesis = load_genesis(args)
    wire = genesis.build(args.ref, prompt_request("Say hi", stream=False))
    target = wire.target
    if target is None:  # a build always resolves its model: a failure to resolve was raised above
        raise StageError("resolve_ref", "the probe's request has no resolved model")

    async def probe() -> Any:
        async with genesis:
            secrets = Secrets(genesis.catalog.secrets) | secrets_in_headers(wire.headers, wire.secret_headers)
            return await probe_compat(genesis.client(), wire, hints_for(target, secrets))

    failure, results = eventloop.run(probe)
    if failure is not None:
        raise failure
    if args.json:
        print(msgspec.json.encode({"ref": target.ref, "url": wire.url, "results": results}).decode())
        return 0
    print(f"// {program()} models probe {target.ref}: {len(results) + 1} requests to {wire.url}")
    print(f"// paste into the model entry of {target.provider.config_path}.models")
    print(compat_block(results))
    skipped = [result for result in results if result.outcome == "inconclusive"]
    for result in skipped:
        warn(f"{result.name}: inconclusive ({result.detail})")
    return 0
