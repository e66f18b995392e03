"""Building blocks for the rule tables: a catalog from config text, a context, one stage run with its purity checked.

Rule: every row runs its stage on a fresh deep copy of its own request, built for that row alone, and the
stage must leave that copy (and the context's body) exactly as it was. No row can see what another did.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from returns.result import Failure, Result, Success

from pipeline.catalog import Catalog, build_catalog
from pipeline.config import parse_config
from pipeline.errors import GenesisError
from pipeline.refs import resolve
from pipeline.types import Context

StageFn = Callable[[Context], Result[Context, GenesisError]]

PROXY_URL = "http://10.0.0.9:8000/v1"  # not loopback, not native, not a built-in provider's
LOOPBACK_URL = "http://127.0.0.1:8000/v1"
NATIVE_URL = "https://api.openai.com/v1"


def config(model: str = "", *, base_url: str = PROXY_URL, provider: str = "", agents: str = "") -> str:
    """A config with one provider ``p`` serving one model ``m``; ``model``/``provider``/``agents`` add fields to the entries and to agents.defaults."""
    return (
        f'{{models: {{mode: "replace", providers: {{p: {{baseUrl: "{base_url}", {provider} models: [{{id: "m", {model} }}]}}}}}}, '
        f"agents: {{defaults: {{ {agents} }} }} }}"
    )


def catalog_of(text: str, env: Mapping[str, str] | None = None) -> Catalog:
    return build_catalog(parse_config(text, dict(env or {})), dict(env or {}))


def context(
    text: str,
    request: Mapping[str, Any],
    *,
    ref: str | None = "p/m",
    resolved: bool = True,
    headers: tuple[tuple[str, str], ...] = (),
    env: Mapping[str, str] | None = None,
) -> Context:
    """A context as the runner hands it to a stage; ``resolved`` sets the target as resolve_ref would."""
    catalog = catalog_of(text, env)
    target = resolve(catalog, ref) if resolved else None
    body = copy.deepcopy(dict(request))
    return Context(catalog=catalog, request=copy.deepcopy(dict(request)), body=body, ref=ref, caller_headers=headers, target=target)


def run_pure(stage: StageFn, ctx: Context) -> Result[Context, GenesisError]:
    """Run one stage and check it did not touch its input: not the request, not the body, not the trace."""
    request_before = copy.deepcopy(dict(ctx.request))
    body_before = copy.deepcopy(ctx.body)
    trace_before = ctx.trace
    result = stage(ctx)
    assert dict(ctx.request) == request_before, "the stage mutated the caller's request"
    assert ctx.body == body_before, "the stage mutated the body it was given"
    assert ctx.trace == trace_before
    return result


def shaped(stage: StageFn, ctx: Context) -> Context:
    result = run_pure(stage, ctx)
    assert isinstance(result, Success), f"expected Success, got {result!r}"
    shaped_ctx: Context = result.unwrap()
    return shaped_ctx


def failed(stage: StageFn, ctx: Context) -> GenesisError:
    result = run_pure(stage, ctx)
    assert isinstance(result, Failure), f"expected Failure, got {result!r}"
    error: GenesisError = result.failure()
    return error


def trace_lines(ctx: Context, stage: str) -> list[str]:
    return [str(change) for change in ctx.trace if change.stage == stage]
