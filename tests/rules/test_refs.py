"""Rule table for model refs (pipeline/refs.py, SPEC 2): a ref in, the resolved provider/model or the error out.

Each row names its rule. Errors are checked on their message and their hint (the "did you mean").
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec
import pytest

from pipeline.errors import UnknownModelError
from pipeline.refs import close_matches, resolve
from tests.rules.support import catalog_of

CONFIG = """{
  models: { providers: {
    inferrs: { baseUrl: "http://127.0.0.1:8080/v1",
               models: [{ id: "google/gemma-4-E2B-it", maxTokens: 100, contextWindow: 2000 }, { id: "Shared" }, { id: "solo" }] },
    lan: { baseUrl: "http://10.0.0.9/v1", models: [{ id: "mistral" }, { id: "shared" }, { id: "twin" }] },
    lan2: { baseUrl: "http://10.0.0.8/v1", models: [{ id: "twin" }] },
    llamacpp: { baseUrl: "http://127.0.0.1:8081/v1", models: [{ id: "/models/qwen.gguf" }] },
    empty: { baseUrl: "http://10.0.0.7/v1" },
  } },
  agents: { defaults: {
    model: { primary: "lan/mistral", fallbacks: ["inferrs/solo"] },
    models: { "inferrs/google/gemma-4-E2B-it": { alias: "Gemma" }, "lan/mistral": { alias: "chat" } },
  } },
}"""
NO_PRIMARY = '{models: {providers: {p: {baseUrl: "http://10.0.0.9/v1", models: [{id: "m"}]}}}}'


class Resolved(NamedTuple):
    rule: str
    ref: str | None
    provider: str
    model_id: str
    origin: str = "configured"
    env: tuple[tuple[str, str], ...] = ()


RESOLVED: dict[str, Resolved] = {
    "first_slash_only": Resolved(
        "provider/model-id splits on the FIRST slash only", "inferrs/google/gemma-4-E2B-it", "inferrs", "google/gemma-4-E2B-it"
    ),
    "provider_lower_cased": Resolved("provider ids are lower-cased", "INFERRS/solo", "inferrs", "solo"),
    "spaces_around_ref_dropped": Resolved("spaces around the ref are dropped", "  lan/mistral  ", "lan", "mistral"),
    "alias": Resolved("a ref with no slash is an alias", "chat", "lan", "mistral"),
    "alias_case_insensitive": Resolved("aliases are case-insensitive", "gEMMA", "inferrs", "google/gemma-4-E2B-it"),
    "unique_bare_id": Resolved("a bare id unique among the active providers", "mistral", "lan", "mistral"),
    "exact_id_before_case_fold": Resolved("an exact id wins over case-insensitive matches", "Shared", "inferrs", "Shared"),
    "case_folded_unique_id": Resolved("a bare id that matches one id case-insensitively", "SOLO", "inferrs", "solo"),
    "no_ref_is_primary": Resolved("no ref means agents.defaults.model.primary", None, "lan", "mistral"),
    "blank_ref_is_primary": Resolved("a blank ref means the primary too", "  ", "lan", "mistral"),
    "path_id_bare": Resolved(
        "a ref starting with / is a model id (llama-server's -m path)", "/models/qwen.gguf", "llamacpp", "/models/qwen.gguf"
    ),
    "path_id_with_provider": Resolved(
        "llamacpp//models/qwen.gguf names the provider explicitly", "llamacpp//models/qwen.gguf", "llamacpp", "/models/qwen.gguf"
    ),
    "unlisted_id_synthesized": Resolved(
        "an id a configured provider does not list still resolves", "lan/new-model", "lan", "new-model", "synthesized"
    ),
    "builtin_active_with_key": Resolved(
        "a built-in provider is active when its key variable is set", "vllm/tiny", "vllm", "tiny", "synthesized", (("VLLM_API_KEY", "x"),)
    ),
}


@pytest.mark.parametrize("row", list(RESOLVED.values()), ids=list(RESOLVED))
def test_resolves(row: Resolved) -> None:
    target = resolve(catalog_of(CONFIG, dict(row.env)), row.ref)
    assert (target.provider.id, target.model.config.id, target.model.origin) == (row.provider, row.model_id, row.origin)
    assert target.ref == f"{row.provider}/{row.model_id}"


def test_synthesized_entry_takes_the_first_models_limits() -> None:
    catalog = catalog_of(CONFIG)
    entry = resolve(catalog, "inferrs/other").model.config
    assert (entry.max_tokens, entry.context_window) == (100, 2000)
    bare = resolve(catalog, "empty/x").model.config
    assert (bare.max_tokens, bare.context_window) == (resolve(catalog, "lan/mistral").model.config.max_tokens, bare.context_window)


class Refused(NamedTuple):
    rule: str
    ref: str | None
    message: str
    hint: str | None
    config: str = CONFIG


REFUSED: dict[str, Refused] = {
    "typo_did_you_mean": Refused(
        "a typo in the provider gets the close matches (did you mean) and how to add the provider",
        "lna/mistral",
        "Unknown model: lna/mistral",
        "did you mean: lan/mistral; add models.providers.lna (baseUrl and models) to the config",
    ),
    "bare_typo_did_you_mean": Refused(
        "a bare id with no match lists the close matches",
        "mistrl",
        "Unknown model: mistrl",
        "did you mean: lan/mistral",
    ),
    "several_close": Refused(
        "several close matches, best first, separated by commas",
        "tw",
        "Unknown model: tw",
        "did you mean: lan/twin, lan2/twin",
    ),
    "nothing_close": Refused(
        "nothing close: say how to write a ref",
        "zzzzqqq",
        "Unknown model: zzzzqqq",
        "use provider/model, e.g. vllm/your-model-id; `genesis models list` shows what is known",
    ),
    "unknown_provider": Refused(
        "unknown provider: Unknown model: <provider>/<id> plus a hint",
        "nowhere/x",
        "Unknown model: nowhere/x",
        "add models.providers.nowhere (baseUrl and models) to the config",
    ),
    "inactive_builtin_provider": Refused(
        "an inactive built-in provider: the hint names its key variable and the auth profile",
        "vllm/xyzzy",
        "Unknown model: vllm/xyzzy",
        "set VLLM_API_KEY (any value works) or add models.providers.vllm to the config, or store a key: genesis auth set vllm",
    ),
    "no_model_after_slash": Refused("no model id after the slash", "lan/", "Unknown model: lan/ (no model id after the slash)", None),
    "ambiguous_bare_id": Refused(
        "a bare id served by several providers is an error",
        "twin",
        'model id "twin" is served by several providers: lan/twin, lan2/twin',
        "use provider/model",
    ),
    "ambiguous_case_folded_id": Refused(
        "a case-insensitive id matching several is an error",
        "SHARED",
        'model id "SHARED" is served by several providers: inferrs/Shared, lan/shared',
        "use provider/model",
    ),
    "unknown_path_id": Refused(
        "an unknown id starting with / gets the path hint",
        "/models/zzzz.bin",
        "Unknown model: /models/zzzz.bin",
        "an id starting with / is a file path, as llama-server names a model after its -m path: name the provider too "
        "(llamacpp//models/zzzz.bin), or start the server with --alias NAME and use llamacpp/NAME",
    ),
    "no_ref_no_primary": Refused(
        "no ref and no primary",
        None,
        "no model given and no default model configured",
        "pass --model provider/model, or set agents.defaults.model.primary in the config",
        NO_PRIMARY,
    ),
}


@pytest.mark.parametrize("row", list(REFUSED.values()), ids=list(REFUSED))
def test_refused(row: Refused) -> None:
    with pytest.raises(UnknownModelError) as caught:
        resolve(catalog_of(row.config), row.ref)
    assert (caught.value.message, caught.value.hint) == (row.message, row.hint)


# close_matches: the "did you mean" list, best first, at most ``limit``.
CLOSE: dict[str, tuple[str, list[str]]] = {
    "spelling_best_first": ("lan/mistrl", ["lan/mistral", "lan/shared", "lan/twin", "lan2/twin"]),
    "alias_spelling": ("gema", ["gemma"]),
    "case_insensitive": ("MISTRL", ["lan/mistral"]),
    "model_name_inside_query": ("foo/solo-v2", ["inferrs/solo"]),
    "model_name_inside_long_query": ("another-server-name/solo-2024-final-q4", ["inferrs/solo"]),  # too far for difflib
    "query_inside_ref": ("qwen", ["llamacpp//models/qwen.gguf"]),
    "nothing": ("zzzzqqq", []),
}


@pytest.mark.parametrize(("query", "expected"), list(CLOSE.values()), ids=list(CLOSE))
def test_close_matches(query: str, expected: list[str]) -> None:
    assert close_matches(catalog_of(CONFIG), query) == expected


def test_close_matches_limit() -> None:
    catalog = catalog_of(CONFIG)
    assert len(close_matches(catalog, "a", limit=2)) == 2
    assert len(close_matches(catalog, "a")) == 5, "five at most by default"
    assert close_matches(catalog, "") == [], "an empty query matches nothing"


def test_alias_to_something_not_a_ref() -> None:
    """The loader only accepts provider/model keys; a catalog built another way still gets a clear error."""
    catalog = msgspec.structs.replace(catalog_of(CONFIG), aliases={"odd": "noslash"})
    with pytest.raises(UnknownModelError) as caught:
        resolve(catalog, "ODD")
    assert caught.value.message == 'alias "ODD" points to "noslash", which is not a provider/model ref'


def test_target_repr_shows_the_ref_never_the_key() -> None:
    text = '{models: {providers: {lan: {baseUrl: "http://10.0.0.9/v1", apiKey: "sk-lan-secret-1", models: [{id: "m"}]}}}}'
    target = resolve(catalog_of(text), "lan/m")
    assert repr(target) == f"Target(ref='lan/m', provider={target.provider!r}, model={target.model!r})"
    assert "sk-lan-secret-1" not in repr(target) and "api_key='***'" in repr(target)


def test_keyless_target_repr() -> None:
    target = resolve(catalog_of(CONFIG), "lan/mistral")
    assert target.provider.api_key is None
    assert repr(target) == f"Target(ref='lan/mistral', provider={target.provider!r}, model={target.model!r})"


def test_target_repr_scrubs_the_key_wherever_it_appears() -> None:
    """A key that is also part of the model id (a careless config) is still never shown."""
    text = '{models: {providers: {lan: {baseUrl: "http://10.0.0.9/v1", apiKey: "sk-lan-secret-1", models: [{id: "sk-lan-secret-1"}]}}}}'
    target = resolve(catalog_of(text), "lan/sk-lan-secret-1")
    assert "sk-lan-secret-1" not in repr(target)
    assert repr(target).startswith("Target(ref='lan/***', provider=")
