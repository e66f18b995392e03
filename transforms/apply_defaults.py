"""Stage 2: fill what the caller left out from the config.

Rules:
- ``agents.defaults.models["provider/model"].params`` (temperature, top_p,
  ...) are added when the request does not set them; the request wins.
- A token limit is added only when the model entry sets ``maxTokens``
  explicitly, under the field the endpoint expects. A discovered or bare
  entry sends none and leaves the limit to the server: the 8192 default is a
  catalog figure, and vLLM rejects a limit above its context length.
"""

from __future__ import annotations

from returns.result import Failure, Result, Success

from pipeline.errors import GenesisError
from pipeline.trace import Change, added
from pipeline.types import Context, missing_target

STAGE = "apply_defaults"
_TOKEN_FIELDS = ("max_tokens", "max_completion_tokens")
_NO_PARAMS: dict[str, object] = {}  # shared, never written: a model without params makes no dict per build


def run(ctx: Context) -> Context | GenesisError:
    target = ctx.target
    if target is None:  # stages return their errors, never raise them
        return missing_target(STAGE)
    additions: dict[str, object] = {}
    changes: list[Change] = []
    params = ctx.catalog.params.get(target.ref, _NO_PARAMS)
    for key, value in params.items():
        if key not in ctx.body:
            additions[key] = value
            changes.append(added(STAGE, key, f'agents.defaults.models["{target.ref}"].params'))
    limit = target.model.config.max_tokens
    if isinstance(limit, int) and not any(field in ctx.body or field in additions for field in _TOKEN_FIELDS):
        field = target.model.compat.max_tokens_field
        additions[field] = limit
        changes.append(added(STAGE, field, f"maxTokens of model {target.ref}"))
    if not additions:
        return ctx
    return ctx.updated(changes, body={**ctx.body, **additions})


def apply_defaults(ctx: Context) -> Result[Context, GenesisError]:
    """The stage: ``run`` as a Result (the stage contract; the runner calls ``run`` itself)."""
    shaped = run(ctx)
    return Failure(shaped) if isinstance(shaped, GenesisError) else Success(shaped)
