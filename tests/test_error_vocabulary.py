"""One error vocabulary: ``pipeline.errors.ErrorClass`` and the rules beside it.

- Each class's treatment (retried, failed over, exit code) is a row here; the sets the session
  uses are derived from the same data, and the README's error table lists exactly the members,
  with the same retried and fallback columns.
- A StrEnum: comparisons with the old strings, ``str()``, f-strings, ``json`` and msgspec output
  (so ``--json`` and ``--audit``) are byte-identical to what plain strings gave.
- ``ProviderError`` refuses a class that does not exist, at run time and under mypy.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import msgspec
import pytest

from backends.audit import AuditRecord
from pipeline.cli import exit_code
from pipeline.commands.infer import attempt_json
from pipeline.errors import (
    CLASS_RULES,
    EXIT_ABORTED,
    EXIT_FAILED,
    EXIT_USAGE,
    FAILOVER_CLASSES,
    RETRY_CLASSES,
    ConfigError,
    ErrorClass,
    GenesisError,
    ProviderError,
    RequestError,
    StageError,
    UnknownModelError,
    UnsupportedError,
    UserErrorKind,
)
from pipeline.events import Attempt

ROOT = Path(__file__).resolve().parent.parent


class Treatment(NamedTuple):
    error_class: ErrorClass
    retried: bool
    fails_over: bool
    exit_code: int
    why: str


TREATMENTS: list[Treatment] = [
    Treatment(ErrorClass.UNREACHABLE, True, True, EXIT_FAILED, "the server is away: it may be back, another may answer"),
    Treatment(ErrorClass.TIMEOUT, True, True, EXIT_FAILED, "slow now, maybe not on the next try"),
    Treatment(ErrorClass.AUTH, False, True, EXIT_FAILED, "the same key fails again; another provider has its own"),
    Treatment(ErrorClass.RATE_LIMIT, True, True, EXIT_FAILED, "busy: wait (Retry-After) and try again"),
    Treatment(ErrorClass.OVERLOADED, True, True, EXIT_FAILED, "5xx, 503 while loading: try again"),
    Treatment(ErrorClass.MODEL_NOT_FOUND, False, True, EXIT_FAILED, "this server lacks the model; a fallback may have it"),
    Treatment(ErrorClass.FORMAT, False, False, EXIT_FAILED, "the request is wrong: any model refuses it alike"),
    Treatment(ErrorClass.CONTEXT_OVERFLOW, False, False, EXIT_FAILED, "the prompt is the fix, not the model"),
    Treatment(ErrorClass.SERVER_ERROR, False, True, EXIT_FAILED, "a 200 whose answer is an error: another model may answer"),
    Treatment(ErrorClass.PROTOCOL, False, True, EXIT_FAILED, "garbage from this server; another may be sane"),
    Treatment(ErrorClass.ABORTED, False, False, EXIT_ABORTED, "the caller stopped: nothing more is sent"),
    Treatment(ErrorClass.COOLDOWN, False, True, EXIT_FAILED, "skipped, nothing sent: the next candidate is tried"),
]


@pytest.mark.parametrize("row", TREATMENTS, ids=[row.error_class.value for row in TREATMENTS])
def test_each_class_is_treated_as_documented(row: Treatment) -> None:
    member = row.error_class
    assert (member.retried, member.fails_over, member.exit_code) == (row.retried, row.fails_over, row.exit_code), row.why
    assert (member in RETRY_CLASSES, member in FAILOVER_CLASSES) == (row.retried, row.fails_over)
    assert member.meaning  # every member says what it means


def test_every_member_has_a_rule_and_a_row() -> None:
    assert list(CLASS_RULES) == list(ErrorClass)
    assert [row.error_class for row in TREATMENTS] == list(ErrorClass)


def test_the_session_uses_the_sets_defined_beside_the_enum() -> None:
    import backends.classify
    import backends.retry
    import backends.session

    assert backends.classify.FAILOVER_CLASSES is FAILOVER_CLASSES
    assert backends.retry.RETRY_CLASSES is RETRY_CLASSES
    assert vars(backends.session)["FAILOVER_CLASSES"] is FAILOVER_CLASSES
    assert vars(backends.session)["RETRY_CLASSES"] is RETRY_CLASSES


# ---- the README's table is the enum's ----


def readme_error_table() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    header = "| class | when | retried | a fallback is tried |"
    assert text.count(header) == 1, "the README's error class table (its header changed?)"
    block = text[text.index(header) :].split("\n\n", 1)[0].splitlines()
    return [[cell.strip() for cell in line.strip().strip("|").split(" | ")] for line in block[2:]]


def test_readme_table_lists_exactly_the_classes_with_their_treatment() -> None:
    rows = readme_error_table()
    assert [row[0] for row in rows] == [member.value for member in ErrorClass]
    yes_no = {"yes": True, "no": False}
    for name, _when, retried, fallback in rows:
        member = ErrorClass(name)
        assert (yes_no[retried], yes_no[fallback]) == (member.retried, member.fails_over), name


# ---- a StrEnum: what users and --json consumers see has not changed ----


@pytest.mark.parametrize("member", list(ErrorClass), ids=[member.value for member in ErrorClass])
def test_a_member_is_its_string_everywhere(member: ErrorClass) -> None:
    plain = member.value
    assert member == plain and hash(member) == hash(plain) and plain in {member}
    assert (str(member), f"{member}", f"{member:>1}", "".join([member])) == (plain, plain, plain, plain)
    assert json.dumps({"class": member}) == json.dumps({"class": plain})
    assert msgspec.json.encode({"class": member}) == msgspec.json.encode({"class": plain})


@pytest.mark.parametrize("member", list(ErrorClass), ids=[member.value for member in ErrorClass])
def test_json_and_audit_output_are_byte_identical(member: ErrorClass) -> None:
    typed = Attempt("vllm", "m", ok=False, error_class=member, message="x", status=503)
    plain = Attempt("vllm", "m", ok=False, error_class=member.value, message="x", status=503)
    assert msgspec.json.encode(attempt_json(typed)) == msgspec.json.encode(attempt_json(plain))
    assert msgspec.json.encode(typed) == msgspec.json.encode(plain)
    typed_record = AuditRecord(1.0, "vllm/m", "vllm", "m", ok=False, error_class=member)
    plain_record = AuditRecord(1.0, "vllm/m", "vllm", "m", ok=False, error_class=member.value)
    assert msgspec.json.encode(typed_record) == msgspec.json.encode(plain_record)


def test_provider_error_str_and_fields_read_as_before() -> None:
    error = ProviderError(ErrorClass.RATE_LIMIT, "slow down", url="http://h/v1", status=429, ref="p/m")
    assert str(error) == "p/m: rate_limit: slow down (HTTP 429 from http://h/v1)"
    assert error.error_class == "rate_limit" and error.kind == "rate_limit" and error.error_class is ErrorClass.RATE_LIMIT


# ---- a class that does not exist is refused ----


def test_provider_error_takes_a_class_string_and_returns_the_member() -> None:
    error = ProviderError("timeout", "slow", url="u")  # type: ignore[arg-type]  # an untyped caller's string
    assert error.error_class is ErrorClass.TIMEOUT


@pytest.mark.parametrize("typo", ["timout", "Timeout", "rate-limit", "", "error", 408])
def test_provider_error_refuses_an_unknown_class(typo: object) -> None:
    with pytest.raises(ValueError, match=r"is not an error class; the classes are: unreachable, timeout, auth, "):
        ProviderError(typo, "slow", url="u")  # type: ignore[arg-type]


def test_mypy_refuses_a_string_class(tmp_path: Path) -> None:
    """The parameter is typed ErrorClass: a string (a typo or not) is a type error, the member is not.

    (The ``type: ignore[arg-type]`` comments above say the same under the suite's strict mypy run, which
    flags an unneeded ignore.) Checked on a copy of ``pipeline/errors.py`` alone, so it takes a second.
    """
    (tmp_path / "vocabulary.py").write_text((ROOT / "pipeline" / "errors.py").read_text())
    (tmp_path / "caller.py").write_text(
        "from vocabulary import ErrorClass, ProviderError\n"
        'ProviderError(ErrorClass.TIMEOUT, "slow", url="u")\n'
        'ProviderError("timeout", "slow", url="u")\n'
    )
    command = [sys.executable, "-m", "mypy", "--config-file=", "--strict", "--ignore-missing-imports", "--no-error-summary"]
    checked = subprocess.run([*command, "caller.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert re.findall(r"caller.py:(\d+): error: .*\[arg-type\]", checked.stdout) == ["3"], checked.stdout + checked.stderr


# ---- exit codes ----


class Exit(NamedTuple):
    name: str
    error: GenesisError
    code: int


class _CallersOwn(GenesisError):
    kind = "mine"  # type: ignore[assignment]  # a subclass outside the vocabulary: a user error


EXITS: list[Exit] = [
    Exit("a server failed", ProviderError(ErrorClass.OVERLOADED, "busy", url="u"), EXIT_FAILED),
    Exit("a server failed (format)", ProviderError(ErrorClass.FORMAT, "bad", url="u"), EXIT_FAILED),
    Exit("aborted", ProviderError(ErrorClass.ABORTED, "cancelled", url="u"), EXIT_ABORTED),
    Exit("config", ConfigError("f.json5", []), EXIT_USAGE),
    Exit("request", RequestError("no messages"), EXIT_USAGE),
    Exit("unknown model", UnknownModelError("no such model"), EXIT_USAGE),
    Exit("unsupported", UnsupportedError("not yet"), EXIT_USAGE),
    Exit("stage", StageError("s", "broke"), EXIT_USAGE),
    Exit("plain GenesisError", GenesisError("x"), EXIT_USAGE),
    Exit("a kind outside the vocabulary", _CallersOwn("x"), EXIT_USAGE),
]


@pytest.mark.parametrize("row", EXITS, ids=[row.name for row in EXITS])
def test_exit_code_per_class_and_kind(row: Exit) -> None:
    assert exit_code(row.error) == row.code


def test_user_error_kinds_are_their_strings() -> None:
    kinds = {cls.kind for cls in (GenesisError, ConfigError, RequestError, UnknownModelError, UnsupportedError, StageError)}
    assert kinds == set(UserErrorKind)
    assert {str(kind) for kind in kinds} == {"error", "config", "request", "unknown_model", "unsupported", "stage"}
    assert not set(UserErrorKind.__members__.values()) & set(ErrorClass.__members__.values())  # no name means two things


def test_the_cli_exits_with_the_class_code(monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.cli as cli

    def fail(args: object) -> int:
        raise ProviderError(ErrorClass.AUTH, "no", url="u")

    def cancel(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_dispatch", fail)
    assert cli.main(["models", "list"]) == EXIT_FAILED
    monkeypatch.setattr(cli, "_dispatch", cancel)
    assert cli.main(["models", "list"]) == EXIT_ABORTED
