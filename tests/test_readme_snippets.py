"""Every fenced code block of README.md runs verbatim, as a reader would run it from a clean clone.

The blocks are read from README.md when the tests are collected; each snippet is one test whose id
is its key: ``section heading :: first line`` (a shell block is cut into its commands, each keyed by
its own first line; a trailing ``# comment`` is left out of a key; keys longer than 120 characters are cut).
What a block is decides how it runs:

- ``bash``/``sh``/``shell``/``console`` (in ``console``, commands start with ``$ ``): each command runs
  in bash, in a fresh copy of the repository, with HOME an empty folder, no GENESIS_* or provider-key
  variables, and this venv's ``bin`` first on PATH (where ``genesis`` is). The block's earlier commands
  run first (one shell session). It must exit 0 and print no traceback.
- ``python``: runs with this interpreter (``python -``) in a fresh copy of the repository, same
  environment, after the earlier Python blocks of its section (a reader's session). Exit 0, no traceback.
- ``json5``/``json``: a config. It must load, its ``use:`` stages included; a ``${VAR}`` it names is
  set for it. A block whose first line is ``// examples/NAME...`` is that file, and must be verbatim.
- ``text``: output or a usage synopsis, never run; a synopsis line (``genesis SUBCOMMAND ...``) may
  name only options that the subcommand's ``--help`` lists.

A snippet that needs a live server says which in ``NEEDS``: it is marked ``vllm``/``llamacpp`` (the
offline suite stays offline), and runs with what the README tells the reader to set (the provider's
key variable, ``test-key``). The suite's server may run on a port other than the built-in provider's
default; then, and only then, a config at the default place (``~/.genesis/genesis.json`` in the empty
HOME) points the built-in provider at it. Earlier snippets run first only if they need no server, or
the same one.

A snippet that cannot run here is in ``NOT_RUN``, with the reason. A block of any other kind fails,
and so does a table entry the README no longer has: a new block cannot slip in untested, and a skip
cannot outlive its block. To add a block to the README: write it so that it runs as written; if it
needs the suite's vLLM or llama.cpp server, add it to ``NEEDS``; if it prints something worth pinning,
to ``EXPECTED_OUTPUT``; only if it cannot run here, to ``NOT_RUN`` with the reason.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pytest

from pipeline.providers import BUILTIN_PROVIDERS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
VENV_BIN = Path(sys.executable).parent
KEY_LENGTH = 120
TIMEOUT_SECONDS = 300  # a live run; scripts/demo may start a vLLM server of its own (up to 2 minutes)

SHELL = {"bash", "sh", "shell", "console"}
PYTHON = {"python", "py"}
CONFIG = {"json5", "json"}
TEXT = {"text"}

# ---- the tables: what runs against a server, what is pinned, what cannot run here (and why) ----

NEEDS: dict[str, str] = {
    "Quick start :: scripts/demo": "vllm",
    "Using it from Python :: import anyio": "vllm",
    'Adding your own stage :: completion = Genesis.from_config_file(pipeline=pipeline).run_sync("vllm/tiny-model", {"messa...': "vllm",
    "Providers and discovery :: VLLM_API_KEY=test-key genesis models list --provider vllm": "vllm",
    "Without an event loop :: from pipeline import Genesis": "vllm",
    "The OpenAI SDK, through Genesis :: import anyio": "vllm",
    "OpenTelemetry :: from opentelemetry.sdk.metrics import MeterProvider": "vllm",
}

EXPECTED_OUTPUT: dict[str, tuple[str, ...]] = {
    "Embeddings :: from pipeline import Genesis": (
        'http://127.0.0.1:8080/v1/embeddings {"model":"tiny-model","input":["first text","second text"]}',
        "compat_shaping: (stage) removed: not run for an embeddings request: it shapes chat requests",
    ),
    "The OpenAI SDK, through Genesis :: import httpx2": ("404 unknown_model",),
    "Without an event loop :: import anyio": ("this thread runs an event loop (asyncio)", "use `async for event in Genesis.stream(...)`"),
    "Adding your own stage :: from returns.result import Success": ('"seed":7', "seed added: reproducible runs"),
    "Adding your own stage :: async def replay(client, wire, hints, record):": ("Call ###-####",),
    'Adding your own stage :: genesis wire --config examples/stages.json5 --prompt "hi" --explain': ('"seed": 7',),
    'Adding your own stage :: genesis infer model run --config examples/stages.json5 --prompt "hi"': ("Call ###-####",),
    'Adding your own stage :: completion = Genesis.from_config_file(pipeline=pipeline).run_sync("vllm/tiny-model", {"messa...': (
        "StageNote(stage='send', note='vllm/tiny-model try 1: HTTP 200",
    ),
    "Providers and discovery :: VLLM_API_KEY=test-key genesis models list --provider vllm": ("vllm/tiny-model",),
    "OpenTelemetry :: from opentelemetry.sdk.metrics import MeterProvider": (
        "chat tiny-model SpanKind.CLIENT",
        "'gen_ai.provider.name': 'vllm'",
        "gen_ai.client.token.usage {token}",
    ),
}

NOT_RUN: dict[str, str] = {
    "Embeddings :: import pipeline": (
        "needs a llama.cpp server started with --embeddings --pooling mean on :8080; the suite's shared one has neither "
        "(tests/test_embeddings.py starts one and runs the same calls)"
    ),
    'Embeddings :: genesis infer embedding create --model llamacpp/tiny-model --text "first text" --text "second text"': (
        "needs a llama.cpp server started with --embeddings --pooling mean on :8080; tests/test_embeddings.py runs this command"
    ),
    "Quick start :: scripts/test": "runs this whole suite, this test included; CI runs it (.ci/run)",
    "Sending, streaming, errors :: {": "an output sample: the shape of --json, with comments; not a config",
    "Providers and discovery :: genesis models probe --config examples/inferrs.json5 inferrs/google/gemma-4-E2B-it": (
        "needs an inferrs server on 127.0.0.1:8080, which the suite does not start"
    ),
}


class Server(NamedTuple):
    fixture: str  # the tests/conftest.py fixture that gives its base URL
    provider: str  # the built-in provider the README's snippets use for it
    model: str
    key: str  # the key the suite's server takes, the one the README tells the reader to set


SERVERS = {
    "vllm": Server("vllm_url", "vllm", "tiny-model", "test-key"),
    "llamacpp": Server("llamacpp_url", "llamacpp", "tiny-model", "test-key"),
}

# ---- reading the README ----


@dataclass(frozen=True)
class Snippet:
    key: str
    section: str
    lang: str
    code: str
    line: int  # where it starts in README.md (1-based)
    block: int  # which fenced block it comes from


FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})\s*([^`\s]*)[^`]*$")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
TRAILING_COMMENT = re.compile(r"\s+#\s.*$")


def fenced_blocks(text: str) -> list[tuple[str, str, str, int]]:
    """(section, lang, code, first code line) of each fenced block (CommonMark fences: ``` or ~~~)."""
    blocks: list[tuple[str, str, str, int]] = []
    section = "(top)"
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        opening = FENCE.match(line)
        heading = HEADING.match(line)
        if heading:
            section = heading.group(1)
        if not opening:
            index += 1
            continue
        indent, fence, lang = len(opening.group(1)), opening.group(2), opening.group(3).lower()
        body: list[str] = []
        index += 1
        while index < len(lines) and not re.match(rf"^ {{0,3}}{fence[0]}{{{len(fence)},}}\s*$", lines[index]):
            body.append(re.sub(rf"^ {{0,{indent}}}", "", lines[index]))
            index += 1
        blocks.append((section, lang, "\n".join(body) + "\n", index - len(body) + 1))
        index += 1
    return blocks


def shell_commands(code: str, lang: str) -> list[tuple[str, int]]:
    """Each command of a shell block with its offset in lines: blank and ``#`` lines (output samples)
    are not commands; a line ending in ``\\`` goes on; in ``console`` only ``$ `` lines are commands."""
    commands: list[tuple[str, int]] = []
    lines = code.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if lang == "console":
            if not line.startswith("$ "):
                index += 1
                continue
            line = line[2:]
        elif not line.strip() or line.lstrip().startswith("#"):
            index += 1
            continue
        start, parts = index, [line]
        while parts[-1].endswith("\\") and index + 1 < len(lines):
            index += 1
            parts.append(lines[index])
        commands.append(("\n".join(parts), start))
        index += 1
    return commands


def key_of(section: str, first_line: str) -> str:
    key = f"{section} :: {first_line.strip()}"
    return key if len(key) <= KEY_LENGTH else key[: KEY_LENGTH - 3] + "..."


def read_snippets(text: str) -> list[Snippet]:
    snippets: list[Snippet] = []
    for number, (section, lang, code, line) in enumerate(fenced_blocks(text)):
        if lang in SHELL:
            for command, offset in shell_commands(code, lang):
                first = TRAILING_COMMENT.sub("", command.splitlines()[0])
                snippets.append(Snippet(key_of(section, first), section, lang, command, line + offset, number))
        else:
            first = TRAILING_COMMENT.sub("", next((candidate for candidate in code.splitlines() if candidate.strip()), ""))
            snippets.append(Snippet(key_of(section, first), section, lang, code, line, number))
    return snippets


README_TEXT = README.read_text()
SNIPPETS = read_snippets(README_TEXT)


def needs(snippet: Snippet) -> str | None:
    return NEEDS.get(snippet.key)


def marks(snippet: Snippet) -> list[pytest.MarkDecorator]:
    server = needs(snippet)
    return [getattr(pytest.mark, server)] if server is not None else []


def prelude(snippet: Snippet) -> list[Snippet]:
    """What a reader ran before it: the block's earlier commands (shell), or the section's earlier
    Python blocks; not those that cannot run here, and none that needs a server this one does not."""
    if snippet.lang in SHELL:
        earlier = [other for other in SNIPPETS if other.block == snippet.block and other.line < snippet.line]
    elif snippet.lang in PYTHON:
        earlier = [other for other in SNIPPETS if other.lang in PYTHON and other.section == snippet.section and other.line < snippet.line]
    else:
        return []
    return [other for other in earlier if other.key not in NOT_RUN and needs(other) in (None, needs(snippet))]


# ---- the environment a snippet runs in ----


def repository_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="session")
def tracked_files() -> list[str]:
    return repository_files()


@pytest.fixture
def clean_copy(tmp_path: Path, tracked_files: list[str]) -> Path:
    """The repository as a clone has it, and this venv as `.venv` (scripts/setup finds it set up).

    The copy's `.venv` is this venv, so a snippet that runs scripts/setup must find it up to date: were
    it older than pyproject.toml, setup would reinstall Genesis from the temporary copy and leave this
    venv pointing at a folder that is about to be deleted. So an outdated venv fails here, with the fix.
    """
    stamp = VENV_BIN.parent / ".genesis-installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    if not stamp.is_file() or stamp.read_text(encoding="utf-8").strip() != wanted:
        pytest.fail(
            f"{VENV_BIN.parent} is not set up for this pyproject.toml: run scripts/setup first (the README's scripts would reinstall it from a temporary copy)"
        )
    copy = tmp_path / "genesis"
    for name in tracked_files:
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    (copy / ".venv").symlink_to(VENV_BIN.parent)
    return copy


CLEARED = {"GENESIS_CONFIG_PATH", "GENESIS_STATE_DIR", "GENESIS_DEBUG", "PYTHONPATH"} | {
    provider.key_env for provider in BUILTIN_PROVIDERS.values()
}


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    """An empty HOME, nothing of ours set, `genesis` on PATH. The server caches stay where they are
    (XDG_CACHE_HOME), so scripts/demo finds the vLLM install instead of making a new one."""
    home = tmp_path / "home"
    home.mkdir()
    env = {name: value for name, value in os.environ.items() if name not in CLEARED}
    env["XDG_CACHE_HOME"] = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    env["HOME"] = str(home)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    return env


def with_server(env: dict[str, str], server: Server, url: str) -> dict[str, str]:
    """What the README tells the reader to set (the key variable); plus, when the suite's server is not
    where the built-in provider looks, a config at the default place that says where it is."""
    builtin = BUILTIN_PROVIDERS[server.provider]
    env = {**env, builtin.key_env: server.key}
    if url.rstrip("/") != builtin.base_url:
        config = Path(env["HOME"]) / ".genesis" / "genesis.json"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(
            f'{{ models: {{ providers: {{ {server.provider}: {{ baseUrl: "{url}", apiKey: "{server.key}",'
            f' models: [{{ id: "{server.model}" }}] }} }} }} }}'
        )
    return env


# ---- running each kind ----

STARTS = "@@ the snippet starts here"


def run_shell(snippet: Snippet, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = "set -e\n" + "".join(f"{earlier.code}\n" for earlier in prelude(snippet)) + f"echo '{STARTS}' >&2\n{snippet.code}\n"
    done = subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
    assert STARTS in done.stderr, f"an earlier command of the block failed first:\n{done.stdout}\n{done.stderr}"
    return done


def run_python(snippet: Snippet, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "".join(f"{earlier.code}\n" for earlier in prelude(snippet)) + snippet.code
    return subprocess.run([sys.executable, "-"], input=code, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)


EXAMPLE_FILE = re.compile(r"^// (examples/[\w./-]+?):?\s")
VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


def check_config(snippet: Snippet, cwd: Path) -> None:
    """A config loads (its stages imported, from its file's folder when it is a file); an examples/
    file it says it is must be it, verbatim. The check runs in its own interpreter: stages imported
    from the copy stay out of this one."""
    named = EXAMPLE_FILE.match(snippet.code)
    if named is not None:
        path = cwd / named.group(1)
        assert path.is_file(), f"the block says it is {named.group(1)}, which does not exist"
        assert path.read_text() == snippet.code, f"{named.group(1)} differs from its README block: make them the same"
        load = f"from pipeline.api import Genesis\nGenesis.from_config_file({str(path)!r}, env=ENV)\n"
    else:
        load = f"from pipeline.api import Genesis\nGenesis.from_config_text({snippet.code!r}, env=ENV)\n"
    env = {name: "set-for-the-check" for name in VARIABLE.findall(snippet.code)}
    done = subprocess.run(
        [sys.executable, "-c", f"ENV = {env!r}\n{load}"], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_SECONDS
    )
    assert done.returncode == 0, f"the config does not load:\n{done.stderr}"


SYNOPSIS = re.compile(r"^genesis((?: [a-z][a-z-]*)+)(.*)$")


def check_synopsis(snippet: Snippet, cwd: Path, env: dict[str, str]) -> int:
    """Each `genesis SUBCOMMAND ...` line names only options its --help lists; how many lines were checked."""
    checked = 0
    for line in snippet.code.splitlines():
        found = SYNOPSIS.match(line.strip())
        if found is None:
            continue
        words = found.group(1).split()
        helped = subprocess.run(["genesis", *words, "--help"], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
        assert helped.returncode == 0, f"`genesis {' '.join(words)} --help` failed:\n{helped.stderr}"
        options = re.findall(r"--[a-z][a-z-]*", TRAILING_COMMENT.sub("", found.group(2)))
        missing = [option for option in options if option not in helped.stdout]
        assert not missing, f"`genesis {' '.join(words)}` has no {', '.join(missing)} (its --help):\n{line}"
        checked += 1
    return checked


# ---- the tests ----


@pytest.mark.parametrize("snippet", [pytest.param(snippet, marks=marks(snippet), id=snippet.key) for snippet in SNIPPETS])
def test_readme_snippet_runs_verbatim(
    snippet: Snippet, clean_copy: Path, clean_env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    if snippet.key in NOT_RUN:
        pytest.skip(f"not run: {NOT_RUN[snippet.key]}")
    env = clean_env
    server_name = needs(snippet)
    if server_name is not None:
        server = SERVERS[server_name]
        env = with_server(env, server, str(request.getfixturevalue(server.fixture)))
    if snippet.lang in CONFIG:
        check_config(snippet, clean_copy)
        return
    if snippet.lang in TEXT:
        if check_synopsis(snippet, clean_copy, env) == 0:
            pytest.skip("not run: an output sample (text)")
        return
    if snippet.lang in SHELL:
        done = run_shell(snippet, clean_copy, env)
    elif snippet.lang in PYTHON:
        done = run_python(snippet, clean_copy, env)
    else:
        pytest.fail(
            f"README.md line {snippet.line}: a ```{snippet.lang or '(no language)'} block is none of the kinds this test runs; "
            "give it one (```text for output), or list it in NOT_RUN with the reason"
        )
    shown = f"README.md line {snippet.line}, exit {done.returncode}\n--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
    assert done.returncode == 0, shown
    assert "Traceback (most recent call last)" not in done.stdout + done.stderr, shown
    for expected in EXPECTED_OUTPUT.get(snippet.key, ()):
        assert expected in done.stdout, f"{expected!r} not in the output; {shown}"


def test_every_fence_of_the_readme_is_read() -> None:
    """The reader above sees each fenced block (an opening and a closing fence each)."""
    fences = [line for line in README_TEXT.splitlines() if FENCE.match(line)]
    assert len(fences) == 2 * len(fenced_blocks(README_TEXT))
    assert len({snippet.block for snippet in SNIPPETS}) == len(fenced_blocks(README_TEXT)), "a block without a snippet"


def test_snippet_keys_are_unique() -> None:
    keys = [snippet.key for snippet in SNIPPETS]
    assert sorted(key for key in set(keys) if keys.count(key) > 1) == []


@pytest.mark.parametrize("table", ["NEEDS", "EXPECTED_OUTPUT", "NOT_RUN"])
def test_every_table_entry_names_a_snippet_the_readme_still_has(table: str) -> None:
    keys = {snippet.key for snippet in SNIPPETS}
    entries: dict[str, object] = globals()[table]
    assert sorted(set(entries) - keys) == [], f"{table} names snippets the README no longer has"


def test_a_snippet_is_either_run_or_not_run_never_both() -> None:
    assert sorted(set(NOT_RUN) & (set(NEEDS) | set(EXPECTED_OUTPUT))) == []
    assert set(NEEDS.values()) <= set(SERVERS)


READER_ROWS = [
    (
        "a shell block is cut into its commands; comments are output",
        "```bash\na --x  # note\n# out\n\nb \\\n  c\n```\n",
        [("bash", "a --x  # note\n"), ("bash", "b \\\n  c\n")],
    ),
    ("console: only $ lines are commands", "```console\n$ a\nout\n$ b\n```\n", [("console", "a\n"), ("console", "b\n")]),
    ("a tilde fence, indented, holds a ``` line", "  ~~~python\n  x = 1\n  ```\n  ~~~\n", [("python", "x = 1\n```\n")]),
    ("a block without a language is still a snippet", "```\nwhat\n```\n", [("", "what\n")]),
    ("a longer closing fence closes", "````json5\n{}\n`````\n", [("json5", "{}\n")]),
]


@pytest.mark.parametrize(
    ("text", "expected"), [(text, expected) for _, text, expected in READER_ROWS], ids=[rule for rule, _, _ in READER_ROWS]
)
def test_the_reader_finds_every_block(text: str, expected: list[tuple[str, str]]) -> None:
    found = [
        (snippet.lang, snippet.code if snippet.lang not in SHELL else snippet.code + "\n") for snippet in read_snippets("# S\n" + text)
    ]
    assert found == expected


def test_keys_are_section_and_first_line_without_its_comment() -> None:
    snippets = read_snippets("## Install it\n```bash\ngenesis wire --json   # a comment that may change\n```\n")
    assert [snippet.key for snippet in snippets] == ["Install it :: genesis wire --json"]


SERVER_ROWS = [
    ("on the built-in port: the key variable alone, as the README says", "vllm", "http://127.0.0.1:8000/v1", "127.0.0.1:8000", False),
    ("elsewhere: a config at the default place points the provider there", "vllm", "http://127.0.0.1:9/v1", "127.0.0.1:9", True),
    ("llama.cpp's, on a free port", "llamacpp", "http://127.0.0.1:9/v1", "127.0.0.1:9", True),
]


@pytest.mark.parametrize(("name", "url", "host", "config"), [row[1:] for row in SERVER_ROWS], ids=[row[0] for row in SERVER_ROWS])
def test_a_snippet_that_needs_a_server_reaches_the_suites(
    name: str, url: str, host: str, config: bool, clean_env: dict[str, str], tmp_path: Path
) -> None:
    server = SERVERS[name]
    env = with_server(clean_env, server, url)
    assert (Path(env["HOME"]) / ".genesis" / "genesis.json").exists() is config
    wire = subprocess.run(
        ["genesis", "wire", "--model", f"{server.provider}/{server.model}", "--prompt", "hi"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wire.returncode == 0, wire.stderr
    assert f"Host: {host}\n" in wire.stdout and "Authorization: Bearer ***" in wire.stdout


def iter_keys() -> Iterator[str]:  # for `python tests/test_readme_snippets.py`: the keys, to fill the tables
    for snippet in SNIPPETS:
        yield f"{snippet.line:4} {snippet.lang:7} {snippet.key}"


if __name__ == "__main__":
    print("\n".join(iter_keys()))
