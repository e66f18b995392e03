"""Model ref rules (SPEC 2)."""

from __future__ import annotations

import pytest

from pipeline.catalog import build_catalog
from pipeline.config import parse_config
from pipeline.errors import UnknownModelError
from pipeline.refs import resolve
from tests.cases import INFERRS

CONFIG = """{
  agents: { defaults: { model: { primary: "inferrs/google/gemma-4-E2B-it", fallbacks: ["lan/qwen"] },
                        models: { "Inferrs/google/gemma-4-E2B-it": { alias: "Gemma 4 (inferrs)" } } } },
  models: { providers: {
    Inferrs: { baseUrl: "http://127.0.0.1:8080/v1", models: [{ id: "google/gemma-4-E2B-it", contextWindow: 131072, maxTokens: 4096 }] },
    lan: { baseUrl: "http://10.0.0.9:8000/v1", models: [{ id: "qwen" }, { id: "shared" }] },
    other: { baseUrl: "http://10.0.0.10:8000/v1", models: [{ id: "shared" }] },
  } },
}"""


def catalog(text: str = CONFIG, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return build_catalog(parse_config(text, env or {}), env or {})


def test_split_on_first_slash_and_lowercase_provider() -> None:
    target = resolve(catalog(), "INFERRS/google/gemma-4-E2B-it")
    assert (target.provider.id, target.model.config.id, target.model.origin) == ("inferrs", "google/gemma-4-E2B-it", "configured")


def test_alias_is_case_insensitive() -> None:
    assert resolve(catalog(), "gemma 4 (INFERRS)").ref == "inferrs/google/gemma-4-E2B-it"


def test_bare_unique_id() -> None:
    assert resolve(catalog(), "qwen").ref == "lan/qwen"


def test_bare_ambiguous_id_lists_candidates() -> None:
    with pytest.raises(UnknownModelError, match="served by several providers: lan/shared, other/shared"):
        resolve(catalog(), "shared")


def test_no_ref_uses_primary() -> None:
    assert resolve(catalog(), None).ref == "inferrs/google/gemma-4-E2B-it"


def test_no_ref_and_no_primary() -> None:
    with pytest.raises(UnknownModelError, match="no model given") as caught:
        resolve(catalog("{}"), None)
    assert caught.value.hint and "--model" in caught.value.hint


def test_unlisted_id_is_synthesized_from_first_model_limits() -> None:
    target = resolve(catalog(), "inferrs/google/gemma-4-E4B-it")
    assert target.model.origin == "synthesized"
    assert (target.model.config.context_window, target.model.config.max_tokens) == (131072, 4096)


def test_unlisted_id_without_models_gets_defaults() -> None:
    target = resolve(catalog(env={"VLLM_API_KEY": "x"}), "vllm/anything")
    assert target.model.config.max_tokens_limit == 8192 and target.provider.base_url == "http://127.0.0.1:8000/v1"


def test_unknown_vllm_hint_names_the_key_variable() -> None:
    with pytest.raises(UnknownModelError, match=r"^Unknown model: vllm/tiny-model$") as caught:
        resolve(catalog(), "vllm/tiny-model")
    assert caught.value.hint and "set VLLM_API_KEY (any value works) or add models.providers.vllm" in caught.value.hint


def test_unknown_provider_hint() -> None:
    with pytest.raises(UnknownModelError) as caught:
        resolve(catalog(), "nowhere/model")
    assert caught.value.hint and "add models.providers.nowhere" in caught.value.hint


def test_unknown_bare_lists_close_matches() -> None:
    with pytest.raises(UnknownModelError, match="Unknown model: gemma-4-E2B") as caught:
        resolve(catalog(), "gemma-4-E2B")
    assert caught.value.hint and "inferrs/google/gemma-4-E2B-it" in caught.value.hint


def test_replace_mode_has_no_builtins() -> None:
    with pytest.raises(UnknownModelError):
        resolve(catalog("{models: {mode: 'replace'}}", {"VLLM_API_KEY": "x"}), "vllm/m")


def test_seed_config_primary() -> None:
    assert resolve(catalog(INFERRS), None).model.compat.requires_string_content is True


# ---- ids that start with "/" (llama-server's default id is its -m path) ----

PATH_CONFIG = '{models: {providers: {llamacpp: {baseUrl: "http://127.0.0.1:8080/v1", models: [{id: "/models/tiny.gguf"}]}}}}'


def test_a_path_id_resolves_as_a_bare_id_of_the_provider_that_lists_it() -> None:
    from tests.conftest import genesis_from

    target = genesis_from(PATH_CONFIG).shape("/models/tiny.gguf", {"messages": [{"role": "user", "content": "hi"}]}).unwrap().target
    assert target is not None
    assert (target.provider.id, target.model.config.id, target.model.origin) == ("llamacpp", "/models/tiny.gguf", "configured")


def test_a_path_id_with_its_provider_keeps_the_leading_slash() -> None:
    from tests.conftest import genesis_from

    body = genesis_from(PATH_CONFIG).build("llamacpp//models/tiny.gguf", {"messages": [{"role": "user", "content": "hi"}]}).body
    assert body.startswith(b'{"model":"/models/tiny.gguf"')


def test_an_unknown_path_id_gets_a_hint_about_paths_not_an_empty_provider() -> None:
    from pipeline.errors import UnknownModelError
    from tests.conftest import genesis_from

    with pytest.raises(UnknownModelError) as caught:
        genesis_from(PATH_CONFIG).build("/other/model.gguf", {"messages": [{"role": "user", "content": "hi"}]})
    assert str(caught.value) == "Unknown model: /other/model.gguf"
    hint = caught.value.hint or ""
    assert "models.providers. " not in hint and "providers.." not in hint
    assert "llamacpp//other/model.gguf" in hint and "--alias" in hint
