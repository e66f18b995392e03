"""``genesis models list | status`` as a newcomer meets them (issue 11, "Why" 7).

- ``models list`` with nothing to list says why and what to set, on stderr (stdout stays the
  table, the ``--json`` list or the ``--plain`` refs).
- ``models status`` counts the models discovery finds, as ``models list`` shows them.
- A model's ``maxTokens`` without an explicit one is the default (8192) cut to its context
  window (tests/rules/test_max_tokens_default.py has the rule rows).

The commands run in-process with the discovery server replaced by ``httpx.MockTransport``
(discovery only asks the built-in providers, at their fixed ports).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from pipeline.api import Genesis
from pipeline.cli import main

LISTING = {"object": "list", "data": [{"id": "tiny-model", "object": "model", "max_model_len": 1024}]}


def serving(listing: dict[str, Any] | None, status: int = 200) -> httpx.MockTransport:
    """A server whose ``/v1/models`` answers ``listing`` (None: 404 everywhere), and ``/health`` 200."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models" and listing is not None:
            return httpx.Response(status, json=listing)
        if request.url.path == "/health":
            return httpx.Response(200)
        return httpx.Response(404, json={"error": {"message": "Not Found"}})

    return httpx.MockTransport(handler)


class Run(NamedTuple):
    code: int
    out: str
    err: str


@pytest.fixture
def genesis_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Callable[..., Run]:
    """``main(args)`` with the config ``text``, the environment ``env`` and ``transport`` for every request."""
    monkeypatch.delenv("NO_COLOR", raising=False)

    def run(*args: str, text: str = "{}", env: dict[str, str] | None = None, transport: httpx.MockTransport | None = None) -> Run:
        def load(_: Any) -> Genesis:
            return Genesis.from_config_text(text, env=env or {}, source=str(tmp_path / "genesis.json"), transport=transport)

        monkeypatch.setattr("pipeline.commands.models.load_genesis", load)
        code = main(list(args))
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


# ---- models list: say why nothing is listed ----------------------------------------------------


class EmptyRow(NamedTuple):
    rule: str
    text: str
    env: dict[str, str]
    transport: httpx.MockTransport | None
    says: list[str]  # each in the one stderr line


EMPTY_ROWS: dict[str, EmptyRow] = {
    "nothing_active": EmptyRow(
        "no config and no key variable: no provider is active; name the built-in key variables and the config's place",
        "{}",
        {},
        None,
        [
            "no models to list: no provider is active",
            "VLLM_API_KEY",
            "built-in vllm provider",
            "OLLAMA_API_KEY",
            "--config FILE",
            "GENESIS_CONFIG_PATH",
            "(config: ",
        ],
    ),
    "replace_without_providers": EmptyRow(
        'models.mode "replace" with no providers: no built-in exists, so only the config can help',
        '{models: {mode: "replace"}}',
        {"VLLM_API_KEY": "k"},
        None,
        ["no models to list: no provider is configured", "models.providers", "--config FILE"],
    ),
    "active_without_models": EmptyRow(
        "a configured provider that lists no models: say it is active and where models are listed",
        '{models: {mode: "replace", providers: {lan: {baseUrl: "http://10.0.0.2:8000/v1"}}}}',
        {},
        None,
        ["no models to list: lan is active but none lists a model", "models.providers.<id>.models"],
    ),
    "discovery_found_none": EmptyRow(
        "a built-in provider whose discovery failed or found nothing: say so, next to discovery's own warning",
        "{}",
        {"VLLM_API_KEY": "k"},
        serving(None),
        ["no models to list: vllm is active but discovery found none on vllm"],
    ),
}


@pytest.mark.parametrize("output", [[], ["--json"], ["--plain"]], ids=["table", "json", "plain"])
@pytest.mark.parametrize("row", EMPTY_ROWS.values(), ids=list(EMPTY_ROWS))
def test_an_empty_list_says_why_and_what_to_set(genesis_cli: Callable[..., Run], row: EmptyRow, output: list[str]) -> None:
    done = genesis_cli("models", "list", *output, text=row.text, env=row.env, transport=row.transport)
    assert done.code == 0
    assert done.out in ("Model  Input  Ctx  Local  Auth  Tags\n", "[]\n", ""), "stdout stays data"
    last = done.err.splitlines()[-1]
    assert last.startswith("genesis: warning: no models to list: "), done.err
    for part in row.says:
        assert part in last, (row.rule, part)


def test_a_list_with_models_says_nothing_more(genesis_cli: Callable[..., Run]) -> None:
    done = genesis_cli("models", "list", env={"VLLM_API_KEY": "k"}, transport=serving(LISTING))
    assert (done.code, done.err) == (0, "")
    assert done.out.splitlines()[1].split() == ["vllm/tiny-model", "text", "1k", "yes", "yes", "discovered"]


def test_an_inactive_provider_asked_for_by_name_keeps_its_own_hint(genesis_cli: Callable[..., Run]) -> None:
    done = genesis_cli("models", "list", "--provider", "sglang")
    assert (
        done.err
        == "genesis: warning: provider sglang is not active: set SGLANG_API_KEY (any value works) or add models.providers.sglang to the config, or store a key: genesis auth set sglang\n"
    )


# ---- models status: counts what discovery finds --------------------------------------------------


class StatusRow(NamedTuple):
    rule: str
    env: dict[str, str]
    transport: httpx.MockTransport
    vllm_models: int
    cell: str


STATUS_ROWS: dict[str, StatusRow] = {
    "discovered_counted": StatusRow(
        "a built-in provider opted in by its key variable counts the models its server lists",
        {"VLLM_API_KEY": "k"},
        serving(LISTING),
        1,
        "active (builtin, 1 model)",
    ),
    "several_discovered": StatusRow(
        "every listed model counts",
        {"VLLM_API_KEY": "k"},
        serving({"data": [{"id": "a"}, {"id": "b"}]}),
        2,
        "active (builtin, 2 models)",
    ),
    "discovery_failed": StatusRow(
        "a discovery that fails counts none, and its warning says why",
        {"VLLM_API_KEY": "k"},
        serving(None),
        0,
        "active (builtin, 0 models)",
    ),
    "not_opted_in": StatusRow(
        "without the key variable nothing is asked",
        {},
        serving(LISTING),
        0,
        "inactive (builtin, 0 models)",
    ),
}


@pytest.mark.parametrize("row", STATUS_ROWS.values(), ids=list(STATUS_ROWS))
def test_status_counts_discovered_models(genesis_cli: Callable[..., Run], row: StatusRow) -> None:
    table = genesis_cli("models", "status", env=row.env, transport=row.transport)
    [vllm] = [line for line in table.out.splitlines() if line.startswith("vllm ")]
    assert vllm.endswith(row.cell), row.rule
    document = genesis_cli("models", "status", "--json", env=row.env, transport=row.transport)
    records = {record["provider"]: record for record in json.loads(document.out)}
    assert records["vllm"]["models"] == row.vllm_models, row.rule
    assert ("discovery of vllm models failed" in table.err) == (row.rule.startswith("a discovery that fails"))


def test_status_probe_counts_and_probes(genesis_cli: Callable[..., Run]) -> None:
    done = genesis_cli("models", "status", "--probe", "--json", "--provider", "vllm", env={"VLLM_API_KEY": "k"}, transport=serving(LISTING))
    [record] = json.loads(done.out)
    assert record["models"] == 1 and record["probe"]["models"]["state"] == "ok" and record["probe"]["health"]["state"] == "ok"


def test_status_of_an_unknown_provider_sends_nothing(genesis_cli: Callable[..., Run]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"sent {request.url}")

    done = genesis_cli("models", "status", "--provider", "nope", env={"VLLM_API_KEY": "k"}, transport=httpx.MockTransport(refuse))
    assert done.code == 2 and done.err.startswith("genesis: no provider 'nope'")


# ---- maxTokens as models list shows it -----------------------------------------------------------


def test_a_discovered_model_shows_max_tokens_within_its_context_window(genesis_cli: Callable[..., Run]) -> None:
    done = genesis_cli("models", "list", "--json", env={"VLLM_API_KEY": "k"}, transport=serving(LISTING))
    [row] = json.loads(done.out)
    assert (row["contextWindow"], row["maxTokens"]) == (1024, 1024)


def test_status_of_a_provider_that_does_not_discover_asks_no_other_server(genesis_cli: Callable[..., Run]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"sent {request.url}")

    done = genesis_cli("models", "status", "--provider", "sglang", env={"VLLM_API_KEY": "k"}, transport=httpx.MockTransport(refuse))
    assert done.code == 0 and done.err == "" and "inactive (builtin, 0 models)" in done.out
