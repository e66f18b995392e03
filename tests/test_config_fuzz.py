"""Whatever a config holds, the answer is a ConfigError (exit 2) or a config, never another exception.

Arbitrary text, and config-shaped trees with the hostile parts that broke
before (deep nesting, control characters and surrogates in header names and
values, weird ``${...}`` forms, duplicate keys), go through ``parse_config``
and through ``genesis wire`` in-process. The CLI must exit 0 or 2 (never 70)
and no configured key may appear in what it prints on stderr.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.cli import main
from pipeline.config import parse_config
from pipeline.errors import ConfigError

KEY_CORE = "Zq81kLp0Vt5rWx"  # part of every configured key; must never reach stderr
ENV_KEY = "GENESIS_FUZZ_KEY"
ENV_KEY_CORE = "Hh47NnBv2Cx9Mm"  # the value behind ${GENESIS_FUZZ_KEY}, with a trailing newline

any_char = st.characters(blacklist_categories=())  # surrogates and controls included
hostile_bits = st.sampled_from(
    [
        "${lower}",
        "${}",
        "${X",
        "${A-B}",
        "$${X}",
        "$${lower}",
        "cost $5",
        "$",
        "$$",
        f"${{{ENV_KEY}}}",
        "${HOME}",
        "\n",
        "\r\n",
        "\r",
        "\x00",
        "\x07",
        "\x7f",
        "\x85",
        "\t",
        "\ud800",
        "\udfff",
        "\u20ac",
        "\u00e9",
        " ",
        ":",
        "\\",
    ]
)
hostile_text = st.lists(hostile_bits | st.text(any_char, max_size=6), max_size=4).map("".join)


class Pairs(list[tuple[str, Any]]):
    """An object as written, so that a key can appear twice."""


class Raw(str):
    """JSON text put in as it is (a deep nest is built as text, not as a tree)."""


def dump(value: Any) -> str:
    """JSON text for a tree where objects are ``Pairs`` (duplicates kept); strings \\u-escaped."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, Pairs):
        return "{" + ", ".join(f"{json.dumps(key)}: {dump(item)}" for key, item in value) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(dump(item) for item in value) + "]"
    return json.dumps(value)


def nested(depth: int) -> Raw:
    """Objects and lists alternating, ``depth`` levels deep."""
    opening = "".join("[" if level % 2 else '{"n": ' for level in range(depth))
    closing = "".join("]" if level % 2 else "}" for level in reversed(range(depth)))
    return Raw(opening + "1" + closing)


scalars = st.none() | st.booleans() | st.integers() | st.floats() | hostile_text
trees = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.lists(st.tuples(hostile_text, children), max_size=3).map(Pairs),
    max_leaves=12,
)
header_maps = st.lists(st.tuples(hostile_text | st.sampled_from(["X-Trace", "Authorization", "X-Trace"]), hostile_text), max_size=3).map(
    Pairs
)
api_keys = st.sampled_from(
    [f"sk-{KEY_CORE}", f"sk-{KEY_CORE}\n", f"{KEY_CORE}\x00", f"${{{ENV_KEY}}}", f"{KEY_CORE}${{oops}}", f"{KEY_CORE}${{"]
)
base_urls = (
    st.sampled_from(["http://127.0.0.1:8000/v1", "http://[::1/v1", "http://h:99999/v1", "localhost:8000", "http://h/\n"]) | hostile_text
)
depths = st.sampled_from([1, 10, 63, 64, 65, 300, 5000])


@st.composite
def configs(draw: st.DrawFn) -> str:
    model = Pairs([("id", draw(st.sampled_from(["m", "m", "${lower}"]) | hostile_text)), ("headers", draw(header_maps))])
    provider = Pairs([("baseUrl", draw(base_urls)), ("apiKey", draw(api_keys)), ("headers", draw(header_maps)), ("models", [model])])
    provider.extend(draw(st.lists(st.tuples(st.sampled_from(["baseUrl", "apiKey", "tls", "maxRetries"]), trees), max_size=2)))
    params = Pairs([("deep", nested(draw(depths))), ("free", draw(trees))])
    root = Pairs(
        [
            ("models", Pairs([("providers", Pairs([("p", provider)]))])),
            ("agents", Pairs([("defaults", Pairs([("models", Pairs([("p/m", Pairs([("params", params)]))]))]))])),
        ]
    )
    root.extend(draw(st.lists(st.tuples(st.sampled_from(["models", "agents", "pipeline"]), trees), max_size=1)))
    return dump(root)


def secrets_in(text: str) -> list[str]:
    return [core for core in (KEY_CORE, ENV_KEY_CORE) if core in text]


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("GENESIS_CONFIG_PATH", "GENESIS_STATE_DIR", "VLLM_API_KEY", "GENESIS_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(ENV_KEY, f"sk-{ENV_KEY_CORE}\n")
    return tmp_path


def check_text(text: str, config_file: Path) -> None:
    try:
        parse_config(text, {ENV_KEY: f"sk-{ENV_KEY_CORE}\n"})
    except ConfigError as error:
        assert not secrets_in(str(error)), str(error)
    config_file.write_text(text, encoding="utf-8", errors="surrogatepass")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["wire", "--config", str(config_file), "--model", "p/m", "--prompt", "hi"])
    assert code in (0, 2), err.getvalue()
    assert not secrets_in(err.getvalue()), err.getvalue()


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(any_char, max_size=300) | st.lists(hostile_bits | st.sampled_from(list("{}[]:,'\"/*")), max_size=40).map("".join))
def test_arbitrary_text(text: str, environment: Path) -> None:
    check_text(text, environment / "config.json5")


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=configs())
def test_hostile_config_trees(text: str, environment: Path) -> None:
    check_text(text, environment / "config.json5")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=configs())
def test_hostile_config_trees_as_json5(text: str, environment: Path) -> None:
    """The same trees with a comment in front: the json5 parser's path, not the fast one."""
    check_text("// hostile\n" + text, environment / "config.json5")
