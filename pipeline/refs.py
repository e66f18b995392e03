"""Model refs: ``provider/model-id`` strings, aliases, and their resolution.

Rules (SPEC 2):
- A ref splits on the FIRST slash only; the provider id is lower-cased:
  ``inferrs/google/gemma-4-E2B-it`` is provider ``inferrs``, model
  ``google/gemma-4-E2B-it``.
- A ref with no slash is an alias (case-insensitive), else a model id unique
  among the active providers, else an error listing the close matches.
- No ref at all means ``agents.defaults.model.primary``.
- A ref that starts with ``/`` is a model id, not a provider: llama-server
  serves its ``-m`` path as the id (``/models/qwen.gguf``). It resolves like
  a bare id (unique among the active providers, discovered ones included);
  ``llamacpp//models/qwen.gguf`` names the provider explicitly.
- An id that an active provider does not list still resolves, to a
  synthesized entry; an inactive or unknown provider is an error with a hint.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

import msgspec

from pipeline.errors import UnknownModelError
from pipeline.providers import activation_hint
from pipeline.ref_syntax import normalize_ref as normalize_ref  # re-exported: callers import them from here
from pipeline.ref_syntax import split_ref as split_ref

if TYPE_CHECKING:
    from pipeline.catalog import Catalog, ModelEntry, ProviderEntry


class Target(msgspec.Struct, frozen=True):
    """What a ref resolved to."""

    ref: str
    provider: ProviderEntry
    model: ModelEntry

    def __repr__(self) -> str:
        return _target_repr(self)

    def __rich_repr__(self) -> Any:
        yield _target_repr(self)


def _target_repr(target: Target) -> str:
    """The ref, and the provider and model by their own redacted reprs (no key, no header value)."""
    from pipeline.secrets import struct_repr

    key = target.provider.api_key
    return struct_repr(target, [("ref", target.ref), ("provider", target.provider), ("model", target.model)], [key] if key else ())


def resolve(catalog: Catalog, ref: str | None) -> Target:
    """Resolve a ref (or the configured primary) to a provider and model entry."""
    if ref is None or not ref.strip():
        if catalog.primary is None:
            raise UnknownModelError(
                "no model given and no default model configured",
                hint="pass --model provider/model, or set agents.defaults.model.primary in the config",
            )
        ref = catalog.primary
    ref = ref.strip()
    parts = None if ref.startswith("/") else split_ref(ref)
    if parts is None:
        return _resolve_bare(catalog, ref)
    provider_id, model_id = parts
    if not model_id:
        raise UnknownModelError(f"Unknown model: {ref} (no model id after the slash)")
    provider = catalog.providers.get(provider_id)
    if provider is None or not provider.active:
        raise UnknownModelError(f"Unknown model: {provider_id}/{model_id}", hint=_unknown_hint(catalog, ref, provider_id))
    model = provider.find(model_id) or provider.synthesize(model_id)
    return Target(f"{provider_id}/{model_id}", provider, model)


def _resolve_bare(catalog: Catalog, name: str) -> Target:
    aliased = catalog.aliases.get(name.lower())
    if aliased is not None:
        if split_ref(aliased) is None:
            raise UnknownModelError(f'alias "{name}" points to "{aliased}", which is not a provider/model ref')
        return resolve(catalog, aliased)
    matches = [model for model in catalog.active_models() if model.config.id == name]
    if not matches:
        matches = [model for model in catalog.active_models() if model.config.id.lower() == name.lower()]
    if len(matches) == 1:
        provider = catalog.providers[matches[0].provider]
        return Target(matches[0].ref, provider, matches[0])
    if len(matches) > 1:
        listed = ", ".join(model.ref for model in matches)
        raise UnknownModelError(f'model id "{name}" is served by several providers: {listed}', hint="use provider/model")
    raise UnknownModelError(f"Unknown model: {name}", hint=_unknown_hint(catalog, name, None))


PATH_ID_HINT = (
    "an id starting with / is a file path, as llama-server names a model after its -m path: "
    "name the provider too (llamacpp/{id}), or start the server with --alias NAME and use llamacpp/NAME"
)


def close_matches(catalog: Catalog, query: str, limit: int = 5) -> list[str]:
    """Known refs and aliases that look like ``query``, best first."""
    aliases = {alias: ref for alias, ref in catalog.aliases.items()}
    candidates = [model.ref for model in catalog.active_models()] + list(aliases)
    lowered = {candidate.lower(): candidate for candidate in candidates}
    needle = query.lower()
    found = difflib.get_close_matches(needle, list(lowered), n=limit, cutoff=0.5)
    found += [key for key in lowered if needle and (needle in key or key.split("/")[-1] in needle) and key not in found]
    return [lowered[key] for key in found[:limit]]


def _unknown_hint(catalog: Catalog, ref: str, provider_id: str | None) -> str:
    parts: list[str] = []
    matches = close_matches(catalog, ref)
    if matches:
        parts.append("did you mean: " + ", ".join(matches))
    if provider_id is not None:
        parts.append(activation_hint(provider_id))
    elif ref.startswith("/"):
        parts.append(PATH_ID_HINT.format(id=ref))
    elif not matches:
        parts.append("use provider/model, e.g. vllm/your-model-id; `genesis models list` shows what is known")
    return "; ".join(parts)
