"""Auth profiles: API keys stored with ``genesis auth set``, as data. Pure: no I/O.

The keys live in one file in the state folder (``pipeline.config.state_dir``),
``auth-profiles.json``; ``backends.auth_store`` reads and writes it, the
catalog receives what it holds as an ``AuthProfiles`` value. Rules:
- The file is JSON, versioned: ``{"version": 1, "profiles": {"<provider>":
  {"apiKey": "<key>"}}}``. Another version, an unknown field, a missing or
  empty key, a key that cannot go into an ``Authorization`` header, or a
  provider id that cannot be one (empty, with a slash or a space) is a
  ``ConfigError`` naming the file and the field; never a traceback.
- Provider ids are lower-cased, as in model refs; two entries that fold to
  the same id are an error.
- A key never appears in a message, a ``repr`` or a ``str``: only the
  provider ids and the file's path do.
- Key sources, first wins (SPEC 10): the config's ``apiKey``, the
  provider's environment variable, the auth profile (``pipeline.catalog``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from pipeline.errors import ConfigError, ConfigIssue
from pipeline.header_rules import value_problem
from pipeline.jsontext import join_key

AUTH_FILE_NAME = "auth-profiles.json"
FORMAT_VERSION = 1
MAX_AUTH_FILE_BYTES = 1024 * 1024  # a handful of keys; anything larger is not this file
MAX_KEY_CHARS = 16 * 1024
REPAIR_HINT = "fix the file, or delete it and store the keys again with `genesis auth set PROVIDER`"
_BAD_ID_CHAR = re.compile(r"[/\s]")


class AuthProfiles(msgspec.Struct, frozen=True):
    """The stored keys by provider id, and the file they came from (``source``, shown as the key source)."""

    source: str
    keys: Mapping[str, str] = msgspec.field(default_factory=dict)

    def __repr__(self) -> str:
        return f"AuthProfiles(source={self.source!r}, providers={sorted(self.keys)!r})"

    __str__ = __repr__

    def __rich_repr__(self) -> Any:
        yield self.__repr__()

    @property
    def key_source(self) -> str:
        """How the catalog names a key from this file: ``profile <path>``."""
        return f"profile {self.source}"

    def with_key(self, provider_id: str, key: str) -> AuthProfiles:
        return AuthProfiles(self.source, {**self.keys, provider_id: key})

    def without(self, provider_id: str) -> AuthProfiles:
        return AuthProfiles(self.source, {pid: key for pid, key in self.keys.items() if pid != provider_id})


class _Profile(msgspec.Struct, frozen=True, rename="camel"):
    api_key: str


class _AuthFile(msgspec.Struct, frozen=True):
    version: int
    profiles: dict[str, _Profile]


_DECODER = msgspec.json.Decoder()
_ENCODER = msgspec.json.Encoder()
_TOP_KEYS = ("version", "profiles")


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot be stored (and sent as ``Authorization: Bearer <key>``), or None; never quotes it.

    >>> key_problem("sk-1") is None, key_problem(""), key_problem("a b") is None, key_problem(" sk")[:25]
    (True, 'is empty', True, 'begins or ends with a spa')
    >>> key_problem("sk\\t\\x01")
    'contains a control character (U+0001) at position 4'
    """
    if not key:
        return "is empty"
    if len(key) > MAX_KEY_CHARS:
        return f"is longer than {MAX_KEY_CHARS} characters; is it a key?"
    if key != key.strip(" \t"):
        return "begins or ends with a space or tab (HTTP drops those, so the server would see another key): strip them"
    problem = value_problem(key)
    return None if problem is None else problem.problem


def provider_id_problem(provider_id: str) -> str | None:
    """Why ``provider_id`` cannot name a provider, or None.

    >>> provider_id_problem("vllm") is None, provider_id_problem("a/b"), provider_id_problem("")
    (True, 'has a slash or a space', 'is empty')
    """
    if not provider_id:
        return "is empty"
    if _BAD_ID_CHAR.search(provider_id) or not provider_id.isprintable():
        return "has a slash or a space"
    return None


def parse_auth_profiles(data: bytes, source: str) -> AuthProfiles:
    """The profiles in an auth file's bytes, or a ConfigError naming ``source`` and every problem found.

    >>> parse_auth_profiles(b'{"version": 1, "profiles": {"VLLM": {"apiKey": "sk-1"}}}', "a.json")
    AuthProfiles(source='a.json', providers=['vllm'])
    >>> parse_auth_profiles(b'{"version": 2, "profiles": {}}', "a.json")
    Traceback (most recent call last):
    ...
    pipeline.errors.ConfigError: config error in a.json: version: this Genesis reads version 1, found 2 (written by a newer Genesis?)
    """
    if len(data) > MAX_AUTH_FILE_BYTES:
        _fail(source, "", f"larger than {MAX_AUTH_FILE_BYTES} bytes; is this the auth profiles file?")
    if not data.strip():
        _fail(source, "", "the file is empty; expected a JSON object {version, profiles}")
    try:
        document = _DECODER.decode(data)
    except msgspec.DecodeError as exc:  # msgspec names the byte offset, never the text
        _fail(source, "", "not valid JSON: " + _first_lower(str(exc).removeprefix("JSON is malformed: ")))
    if not isinstance(document, dict):
        _fail(source, "", f"expected a JSON object {{version, profiles}}, found {_kind(document)}")
    _check_version(document.get("version", msgspec.UNSET), source)
    issues = [ConfigIssue(join_key("", name), "unknown key; expected version, profiles") for name in document if name not in _TOP_KEYS]
    profiles = document.get("profiles", msgspec.UNSET)
    if profiles is msgspec.UNSET:
        issues.append(ConfigIssue("profiles", "missing; expected an object of provider id to {apiKey}"))
        profiles = {}
    elif not isinstance(profiles, dict):
        issues.append(ConfigIssue("profiles", f"expected an object of provider id to {{apiKey}}, found {_kind(profiles)}"))
        profiles = {}
    keys: dict[str, str] = {}
    for raw_id, profile in profiles.items():
        where = join_key("profiles", raw_id)
        key = _profile_key(profile, where, issues)
        provider_id = raw_id.lower()
        id_problem = provider_id_problem(provider_id)
        if id_problem is not None:
            issues.append(ConfigIssue(where, f"not a provider id: {id_problem}"))
        elif provider_id in keys:
            issues.append(ConfigIssue(where, f"a second profile for provider {provider_id} (ids are not case-sensitive)"))
        elif key is not None:
            keys[provider_id] = key
    if issues:
        raise ConfigError(source, issues, hint=REPAIR_HINT)
    return AuthProfiles(source, keys)


def _check_version(version: Any, source: str) -> None:
    if version is msgspec.UNSET:
        _fail(source, "version", f"missing; expected {FORMAT_VERSION}")
    if type(version) is not int:
        _fail(source, "version", f"expected the number {FORMAT_VERSION}, found {_kind(version)}")
    if version != FORMAT_VERSION:
        newer = " (written by a newer Genesis?)" if version > FORMAT_VERSION else ""
        _fail(source, "version", f"this Genesis reads version {FORMAT_VERSION}, found {version}{newer}")


def _profile_key(profile: Any, where: str, issues: list[ConfigIssue]) -> str | None:
    """The profile's key, or None with its problems added to ``issues``; the key is never quoted."""
    if not isinstance(profile, dict):
        issues.append(ConfigIssue(where, f"expected an object {{apiKey}}, found {_kind(profile)}"))
        return None
    issues += [ConfigIssue(join_key(where, name), "unknown key; expected apiKey") for name in profile if name != "apiKey"]
    key = profile.get("apiKey", msgspec.UNSET)
    if key is msgspec.UNSET:
        issues.append(ConfigIssue(f"{where}.apiKey", "missing; expected the key (a string)"))
        return None
    if not isinstance(key, str):
        issues.append(ConfigIssue(f"{where}.apiKey", f"expected a string, found {_kind(key)}"))
        return None
    problem = key_problem(key)
    if problem is not None:
        issues.append(ConfigIssue(f"{where}.apiKey", f"the key {problem}"))
        return None
    return key


def encode_auth_profiles(profiles: AuthProfiles) -> bytes:
    """The file's bytes for ``profiles``: the current version, providers sorted, one trailing newline.

    >>> encode_auth_profiles(AuthProfiles("a.json", {"vllm": "sk-1"}))
    b'{"version":1,"profiles":{"vllm":{"apiKey":"sk-1"}}}\\n'
    """
    document = _AuthFile(FORMAT_VERSION, {pid: _Profile(profiles.keys[pid]) for pid in sorted(profiles.keys)})
    return _ENCODER.encode(document) + b"\n"


def _fail(source: str, path: str, problem: str) -> Any:
    raise ConfigError(source, [ConfigIssue(path, problem)], hint=REPAIR_HINT)


def _kind(value: Any) -> str:
    """What a found value is, never what it holds (it may be a key)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def _first_lower(text: str) -> str:
    return text[:1].lower() + text[1:]
