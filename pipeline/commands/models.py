"""``genesis models list | status | probe``: what Genesis knows, and what the servers say."""

from __future__ import annotations

import sys
from typing import Any

import msgspec

from pipeline.catalog import Catalog, ModelEntry, ProviderEntry
from pipeline.commands.common import load_genesis
from pipeline.errors import StageError, UnknownModelError
from pipeline.providers import activation_hint
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


def _warn_to_stderr(message: str) -> None:
    print(f"genesis: warning: {message}", file=sys.stderr)


def run_list(args: Any) -> int:
    import anyio

    genesis = load_genesis(args)
    genesis.warn = _warn_to_stderr

    async def discover() -> None:
        async with genesis:
            await genesis.discover()

    anyio.run(discover)
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
        _warn_to_stderr(f"provider {inactive[0]} is not active: {activation_hint(inactive[0])}")
    return 0


def run_status(args: Any) -> int:
    import anyio

    genesis = load_genesis(args)
    catalog = genesis.catalog
    providers = _selected(catalog, args.provider)
    probes: dict[str, Any] = {}
    if args.probe:
        from backends.probe import probe_provider

        async def probe_all() -> None:
            async with genesis, anyio.create_task_group() as group:
                for provider in providers:
                    group.start_soon(one, provider)

        async def one(provider: ProviderEntry) -> None:
            probes[provider.id] = await probe_provider(genesis.client(), provider, catalog.secrets)

        anyio.run(probe_all)
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
        auth = record["auth"] + "".join(f" (over {source})" for source in record["authShadowed"])
        row = [record["provider"], record["baseUrl"], auth, f"{state} ({record['origin']}, {record['models']} models)"]
        if args.probe:
            row += [_probe_cell(record["probe"]["models"]), _probe_cell(record["probe"]["health"])]
        rows.append(row)
    print(render_table(headers, rows))
    return 0


def _probe_cell(result: dict[str, Any]) -> str:
    latency = f" {result['latency_ms']:.0f}ms" if result.get("latency_ms") is not None else ""
    return f"{result['state']}{latency}"


def run_probe(args: Any) -> int:
    import anyio

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

    failure, results = anyio.run(probe)
    if failure is not None:
        raise failure
    if args.json:
        print(msgspec.json.encode({"ref": target.ref, "url": wire.url, "results": results}).decode())
        return 0
    print(f"// genesis models probe {target.ref}: {len(results) + 1} requests to {wire.url}")
    print(f"// paste into the model entry of {target.provider.config_path}.models")
    print(compat_block(results))
    skipped = [result for result in results if result.outcome == "inconclusive"]
    for result in skipped:
        print(f"genesis: warning: {result.name}: inconclusive ({result.detail})", file=sys.stderr)
    return 0
