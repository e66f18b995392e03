"""Stage 1: resolve the model ref and put the server's model id in the body.

The catalog is already built (config, built-ins, discovered models); this
stage only looks up. ``"openai-responses"`` providers are rejected with a
clear "not supported yet" rather than sent a chat-completions body.
"""

from __future__ import annotations

from returns.result import Failure, Result, Success

from pipeline.errors import GenesisError, UnsupportedError
from pipeline.refs import resolve
from pipeline.trace import Change, added, changed
from pipeline.types import Context

STAGE = "resolve_ref"


def run(ctx: Context) -> Context | GenesisError:
    try:
        target = resolve(ctx.catalog, ctx.ref)
    except GenesisError as error:  # an unknown or malformed ref: the stage returns it, never raises it
        return error
    provider, model = target.provider, target.model
    if provider.api != "openai-completions":
        return UnsupportedError(
            f'{provider.config_path}.api: "{provider.api}" is not supported yet',
            hint='use api: "openai-completions" (the default), which vLLM, SGLang, inferrs and llama.cpp all serve',
        )
    model_id = model.config.id
    rule = f"resolved {target.ref}" + (" (not listed in its provider's models: synthesized entry)" if model.origin == "synthesized" else "")
    changes: list[Change] = []
    previous = ctx.body.get("model")
    if previous is None:
        changes.append(added(STAGE, "model", rule))
    elif previous != model_id:
        changes.append(changed(STAGE, "model", rule, f"was {previous!r}"))
    # The model goes first; a model the caller set is replaced in that place (a key keeps its first position).
    body = {"model": model_id, **ctx.body}
    body["model"] = model_id
    return ctx.updated(changes, target=target, body=body)


def resolve_ref(ctx: Context) -> Result[Context, GenesisError]:
    """The stage: ``run`` as a Result (the stage contract; the runner calls ``run`` itself)."""
    shaped = run(ctx)
    return Failure(shaped) if isinstance(shaped, GenesisError) else Success(shaped)
