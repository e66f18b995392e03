"""Stage 4: remove fields only native OpenAI endpoints understand.

Proxy-style endpoints (vLLM, inferrs, SGLang, llama.cpp, any non-OpenAI
host) never get these; each removal is recorded with its rule. ``store`` is
governed by ``compat.supportsStore`` (true on native, false elsewhere).
"""

from __future__ import annotations

from returns.result import Failure, Result, Success

from pipeline.errors import GenesisError
from pipeline.trace import Change, removed
from pipeline.types import Context, missing_target

STAGE = "strip_native_only"

# field -> why a proxy-style endpoint must not get it
NATIVE_ONLY_FIELDS: dict[str, str] = {
    "service_tier": "proxy-style endpoint (service tiers are an OpenAI billing feature)",
    "prompt_cache_key": "proxy-style endpoint (prompt-cache hints are native OpenAI only)",
    "prompt_cache_retention": "proxy-style endpoint (prompt-cache hints are native OpenAI only)",
    "reasoning": "proxy-style endpoint (no OpenAI reasoning-compat payload shaping)",
}


def run(ctx: Context) -> Context | GenesisError:
    target = ctx.target
    if target is None:  # stages return their errors, never raise them
        return missing_target(STAGE)
    drop: dict[str, str] = {}
    if not target.provider.native:
        for field, why in NATIVE_ONLY_FIELDS.items():
            if field in ctx.body:
                drop[field] = why
    if "store" in ctx.body and not target.model.compat.supports_store:
        drop["store"] = "supportsStore: false" + ("" if target.provider.native else " (proxy-style endpoint)")
    if not drop:
        return ctx
    changes: list[Change] = [removed(STAGE, field, why) for field, why in drop.items()]
    body = {key: value for key, value in ctx.body.items() if key not in drop}
    return ctx.updated(changes, body=body)


def strip_native_only(ctx: Context) -> Result[Context, GenesisError]:
    """The stage: ``run`` as a Result (the stage contract; the runner calls ``run`` itself)."""
    shaped = run(ctx)
    return Failure(shaped) if isinstance(shaped, GenesisError) else Success(shaped)
