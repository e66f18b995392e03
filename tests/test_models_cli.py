"""`genesis models list | status | probe`, built-in providers, discovery."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.api import Genesis
from pipeline.providers import BUILTIN_PROVIDERS
from tests.conftest import VLLM_KEY

ROOT = Path(__file__).resolve().parent.parent
EMPTY = str(ROOT / "examples" / "empty.json5")


def genesis_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, vllm_at: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``vllm_at``: the built-in vllm provider's base URL moved there (the tests' server runs on a free port)."""
    command = ["-m", "tests.servers.cli_with_vllm_at", vllm_at] if vllm_at else ["-m", "pipeline.cli"]
    return subprocess.run(
        [sys.executable, *command, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", **(env or {})},
        timeout=timeout,
    )


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "genesis.json5"
    path.write_text(text)
    return str(path)


def test_builtin_providers_are_data() -> None:
    assert {p.id: p.base_url for p in BUILTIN_PROVIDERS.values()} == {
        "vllm": "http://127.0.0.1:8000/v1",
        "sglang": "http://127.0.0.1:30000/v1",
        "llamacpp": "http://127.0.0.1:8080/v1",
        "lmstudio": "http://127.0.0.1:1234/v1",
        "ollama": "http://127.0.0.1:11434/v1",
    }
    catalog = Genesis.from_config_text("{}", env={"SGLANG_API_KEY": "s"}).catalog
    assert catalog.providers["sglang"].active and not catalog.providers["vllm"].active
    assert catalog.providers["sglang"].discovery
    assert Genesis.from_config_text("{models: {mode: 'replace'}}", env={"SGLANG_API_KEY": "s"}).catalog.providers == {}


@pytest.mark.vllm
def test_discovery_lists_the_tiny_model_with_no_config(vllm_url: str) -> None:
    done = genesis_cli(
        "models",
        "list",
        "--provider",
        "vllm",
        env={"VLLM_API_KEY": VLLM_KEY, "GENESIS_CONFIG_PATH": "/nonexistent/none.json5"},
        vllm_at=vllm_url,
    )
    assert done.returncode == 2  # an explicit config path that does not exist is an error...
    done = genesis_cli(
        "models", "list", "--provider", "vllm", env={"VLLM_API_KEY": VLLM_KEY}, vllm_at=vllm_url
    )  # ...no file at the default place is fine
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.strip().splitlines()
    assert header.split() == ["Model", "Input", "Ctx", "Local", "Auth", "Tags"]
    assert row.split() == ["vllm/tiny-model", "text", "1k", "yes", "yes", "discovered"]


@pytest.mark.vllm
def test_explicit_provider_turns_discovery_off(vllm_url: str, tmp_path: Path) -> None:
    config = write(
        tmp_path, f'{{models: {{providers: {{vllm: {{baseUrl: "{vllm_url}", models: [{{id: "pinned", contextWindow: 4096}}]}}}}}}}}'
    )
    done = genesis_cli("models", "list", "--provider", "vllm", "--json", "--config", config, env={"VLLM_API_KEY": VLLM_KEY})
    [row] = json.loads(done.stdout)
    assert (row["ref"], row["contextWindow"], row["tags"]) == ("vllm/pinned", 4096, ["configured"])


@pytest.mark.vllm
def test_wrong_key_is_one_warning_and_an_empty_list(vllm_url: str) -> None:
    done = genesis_cli("models", "list", "--provider", "vllm", "--json", env={"VLLM_API_KEY": "wrong-key"}, vllm_at=vllm_url)
    assert done.returncode == 0 and json.loads(done.stdout) == []
    # the discovery failure, then why the list is empty (it points back at that warning)
    warning, empty = done.stderr.strip().splitlines()
    assert warning.startswith("genesis: warning: discovery of vllm models failed") and "auth" in warning
    assert "no models to list" in empty and "discovery found none on vllm" in empty
    assert "wrong-key" not in done.stderr


@pytest.mark.vllm
def test_status_probe_ok_and_auth(vllm_url: str, tmp_path: Path) -> None:
    config = write(
        tmp_path, f'{{models: {{mode: "replace", providers: {{vllm: {{baseUrl: "{vllm_url}", apiKey: "${{VLLM_API_KEY}}"}}}}}}}}'
    )
    good = json.loads(genesis_cli("models", "status", "--probe", "--json", "--config", config, env={"VLLM_API_KEY": VLLM_KEY}).stdout)
    assert good[0]["probe"]["models"]["state"] == "ok" and good[0]["probe"]["health"]["state"] == "ok"
    assert good[0]["auth"] == "config models.providers.vllm.apiKey"
    bad = genesis_cli("models", "status", "--probe", "--json", "--config", config, env={"VLLM_API_KEY": "wrong"})
    assert json.loads(bad.stdout)[0]["probe"]["models"]["state"] == "auth"
    assert "wrong" not in bad.stdout.replace('"wrong', "")  # the key itself is never printed


def test_status_probe_with_nothing_listening_is_fast(tmp_path: Path) -> None:
    providers = ", ".join(f'p{port}: {{baseUrl: "http://127.0.0.1:{port}/v1"}}' for port in (9, 19, 39, 49, 59))
    config = write(tmp_path, f"{{models: {{mode: 'replace', providers: {{{providers}}}}}}}")
    started = time.perf_counter()
    done = genesis_cli("models", "status", "--probe", "--config", config)
    elapsed = time.perf_counter() - started
    lines = done.stdout.strip().splitlines()[1:]
    assert done.returncode == 0 and len(lines) == 5
    assert all(line.split()[-4] == "unreachable" and line.split()[-2] == "unreachable" for line in lines), done.stdout
    assert elapsed < 10  # the bound for the whole command, not a benchmark


def test_status_without_probe_shows_key_sources(tmp_path: Path) -> None:
    done = genesis_cli("models", "status", "--json", "--config", EMPTY, env={"VLLM_API_KEY": "sekrit-value"})
    records = {record["provider"]: record for record in json.loads(done.stdout)}
    assert records["vllm"]["auth"] == "env VLLM_API_KEY" and records["sglang"]["auth"] == "none"
    assert "sekrit-value" not in done.stdout


def test_list_tags_and_columns(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        """{
      agents: { defaults: { model: { primary: "lan/big", fallbacks: ["local/small"] }, models: { "lan/big": { alias: "Big" } } } },
      models: { mode: "replace", providers: {
        lan: { baseUrl: "http://192.168.1.50:9000/v1", apiKey: "k", models: [{ id: "big", input: ["text", "image"], contextWindow: 128000 }] },
        local: { baseUrl: "http://localhost:8080/v1", models: [{ id: "small" }] },
      } },
    }""",
    )
    done = genesis_cli("models", "list", "--config", config)
    rows = [line.split() for line in done.stdout.strip().splitlines()[1:]]
    assert rows == [
        ["lan/big", "text+image", "125k", "no", "yes", "default,alias:big,configured"],
        ["local/small", "text", "-", "yes", "no", "fallback#1,configured"],
    ]
    assert genesis_cli("models", "list", "--plain", "--config", config).stdout.split() == ["lan/big", "local/small"]


def test_list_unknown_provider(tmp_path: Path) -> None:
    done = genesis_cli("models", "list", "--provider", "nope", "--config", EMPTY)
    assert done.returncode == 2 and "no provider 'nope'" in done.stderr


@pytest.mark.vllm
def test_probe_suggests_a_block_that_then_works(vllm_url: str, tmp_path: Path) -> None:
    config = write(
        tmp_path, f'{{models: {{providers: {{vllm: {{baseUrl: "{vllm_url}", apiKey: "{VLLM_KEY}", models: [{{id: "tiny-model"}}]}}}}}}}}'
    )
    done = genesis_cli("models", "probe", "vllm/tiny-model", "--config", config)
    assert done.returncode == 0, done.stderr
    block = done.stdout[done.stdout.index("compat: {") :]
    assert "requiresStringContent: false" in block and "supportsDeveloperRole: true" in block and "supportsTools: true" in block
    with_block = write(
        tmp_path,
        f'{{models: {{providers: {{vllm: {{baseUrl: "{vllm_url}", apiKey: "{VLLM_KEY}", models: [{{id: "tiny-model", {block} }}]}}}}}}}}',
    )
    run = genesis_cli(
        "infer",
        "model",
        "run",
        "--config",
        with_block,
        "--model",
        "vllm/tiny-model",
        "--max-tokens",
        "4",
        "--json",
        "--request",
        str(ROOT / "examples" / "request-inferrs.json"),
    )
    assert run.returncode == 0 and json.loads(run.stdout)["ok"] is True


def test_probe_finds_a_strict_inferrs_server(fault_server: Any, tmp_path: Path) -> None:
    config = write(tmp_path, f'{{models: {{providers: {{inferrs: {{baseUrl: "{fault_server.base_url}"}}}}}}}}')
    done = genesis_cli("models", "probe", "inferrs/strict-inferrs", "--json", "--config", config)
    results = {r["flag"]: (r["outcome"], r.get("value")) for r in json.loads(done.stdout)["results"]}
    assert results["requiresStringContent"] == ("rejected", True)
    assert results["supportsDeveloperRole"] == ("rejected", False)
    assert results["supportsTools"] == ("rejected", False)
    assert results["supportsUsageInStreaming"] == ("rejected", False)  # accepted, but inferrs sends no usage
    text = genesis_cli("models", "probe", "inferrs/strict-inferrs", "--config", config).stdout
    assert "requiresStringContent: true," in text and "supportsDeveloperRole: false," in text


def test_probe_of_a_dead_server_is_one_line(tmp_path: Path) -> None:
    config = write(tmp_path, '{models: {providers: {x: {baseUrl: "http://127.0.0.1:9/v1"}}}}')
    done = genesis_cli("models", "probe", "x/m", "--config", config)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1 and "unreachable" in done.stderr


def test_probe_counts_a_500_to_the_feature_alone_as_not_accepted(fault_server: Any, tmp_path: Path) -> None:
    """llama-cpp-python answers 500, not 4xx, to content arrays and the developer role; the baseline still works."""
    config = write(tmp_path, f'{{models: {{providers: {{lcp: {{baseUrl: "{fault_server.base_url}"}}}}}}}}')
    done = genesis_cli("models", "probe", "lcp/llama-cpp-python", "--json", "--config", config)
    results = {r["flag"]: (r["outcome"], r.get("value")) for r in json.loads(done.stdout)["results"]}
    assert results["requiresStringContent"] == ("rejected", True)
    assert results["supportsDeveloperRole"] == ("rejected", False)
    assert results["supportsTools"] == ("accepted", True)
    text = genesis_cli("models", "probe", "lcp/llama-cpp-python", "--config", config).stdout
    assert "requiresStringContent: true," in text and "supportsDeveloperRole: false," in text


def test_probe_calls_a_500_inconclusive_when_the_baseline_fails_too(tmp_path: Path) -> None:
    """A server that falls over answers 500 to everything after the first request: no flag is blamed on a feature."""
    from tests.servers.fault_server import FaultServer

    with FaultServer() as server:
        config = write(tmp_path, f'{{models: {{providers: {{lcp: {{baseUrl: "{server.base_url}"}}}}}}}}')
        done = genesis_cli("models", "probe", "lcp/breaks-after-first", "--json", "--config", config)
    outcomes = {r["flag"]: r["outcome"] for r in json.loads(done.stdout)["results"]}
    assert set(outcomes.values()) == {"inconclusive"}, outcomes
