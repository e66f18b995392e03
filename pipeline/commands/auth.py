"""``genesis auth set | list | remove``: API keys kept in the state folder (auth profiles).

Rules:
- ``set PROVIDER`` reads the key without echoing it (``getpass``) on a
  terminal, else the whole of stdin (``printf %s KEY | genesis auth set
  vllm``); one trailing line break (LF or CRLF) is dropped. An empty key, or
  one that cannot be sent in a header, is refused and nothing is stored.
- A key may be stored for a built-in provider (``pipeline.providers``) or a
  provider the config defines; any other name is refused with the names
  that look like it. Ids are lower-cased, as in model refs.
- Nothing prints a key, not even a part of it: ``list`` says where each
  provider's key comes from (config apiKey, an environment variable, the
  auth profile file) and which stored keys are not used.
- ``remove PROVIDER`` with no such profile is an error saying which
  profiles exist.
- Key sources, first wins: config ``apiKey``, the provider's environment
  variable, the auth profile (``pipeline.catalog``).
"""

from __future__ import annotations

import difflib
import logging
import os
import sys
from typing import Any

import msgspec

from backends.auth_store import FILE_MODE, auth_file, read_auth_profiles, update_auth_profiles
from pipeline.auth_profiles import MAX_KEY_CHARS, AuthProfiles, key_problem, provider_id_problem
from pipeline.catalog import Catalog, build_catalog
from pipeline.commands.models import render_table
from pipeline.config import LoadedConfig, load_config
from pipeline.errors import GenesisError, RequestError, UnknownModelError
from pipeline.jsontext import shown
from pipeline.providers import BUILTIN_PROVIDERS


class KeyRow(msgspec.Struct, frozen=True, rename="camel"):
    """One provider in ``auth list``: its key source (as the catalog names it) and the sources it shadows."""

    provider: str
    key_source: str
    shadowed: tuple[str, ...]
    active: bool


def describe_key_source(source: str) -> str:
    """A catalog key source as ``auth list`` words it.

    >>> describe_key_source("env VLLM_API_KEY"), describe_key_source("profile /h/.genesis/auth-profiles.json")
    ('environment variable VLLM_API_KEY', 'auth profile /h/.genesis/auth-profiles.json')
    >>> describe_key_source("config models.providers.lan.apiKey"), describe_key_source("none")
    ('config apiKey (models.providers.lan.apiKey)', 'none')
    """
    kind, _, where = source.partition(" ")
    if kind == "config":
        return f"config apiKey ({where})"
    if kind == "env":
        return f"environment variable {where}"
    if kind == "profile":
        return f"auth profile {where}"
    return source


def provider_arg(name: str) -> str:
    provider_id = name.lower()
    problem = provider_id_problem(provider_id)
    if problem is not None:
        raise RequestError(f"PROVIDER {shown(name, 60)!r} {problem}: expected a provider id such as vllm")
    return provider_id


def run_set(args: Any) -> int:
    provider_id = provider_arg(args.provider)
    path = auth_file(os.environ)
    profiles = read_auth_profiles(path)  # a file that cannot be used fails before a key is asked for
    loaded = _known_provider(provider_id, args, profiles)
    key = read_key(provider_id)
    problem = key_problem(key)
    if problem is not None:
        raise RequestError(f"the key for {provider_id} {problem}; nothing was stored")
    updated = update_auth_profiles(path, lambda current: current.with_key(provider_id, key))
    print(f"stored the key for {provider_id} in {path} (mode {FILE_MODE:04o})")
    if loaded is not None:  # the config read once: the catalog again, with the key just stored
        _note_unused(provider_id, build_catalog(loaded, os.environ, profiles=updated))
    return 0


def run_list(args: Any) -> int:
    profiles = read_auth_profiles(auth_file(os.environ))
    catalog = _catalog(args, profiles)
    rows = [KeyRow(provider.id, provider.key_source, provider.shadowed_keys, provider.active) for provider in catalog.providers.values()]
    # A profile whose provider is gone (removed from the config, or models.mode: replace) is listed as unused.
    rows += [
        KeyRow(provider_id, "none", (profiles.key_source,), False) for provider_id in sorted(set(profiles.keys) - set(catalog.providers))
    ]
    if args.json:
        print(msgspec.json.encode(rows).decode())
        return 0
    table = [[row.provider, describe_key_source(row.key_source), _unused_cell(row, catalog)] for row in rows]
    print(render_table(["Provider", "Key from", "Also set, not used"], table))
    return 0


def run_remove(args: Any) -> int:
    provider_id = provider_arg(args.provider)
    path = auth_file(os.environ)

    def without(profiles: AuthProfiles) -> AuthProfiles:
        if provider_id not in profiles.keys:
            stored = ", ".join(sorted(profiles.keys)) or "none"
            raise GenesisError(f"no auth profile for {provider_id} in {path}", hint=f"stored profiles: {stored} (genesis auth list)")
        return profiles.without(provider_id)

    without(read_auth_profiles(path))  # nothing to remove: said before the state folder is created or locked
    remaining = update_auth_profiles(path, without)
    left = "" if remaining.keys else f"; no profile is left, so {path.name} was deleted"
    print(f"removed the key for {provider_id} from {path}{left}")
    builtin = BUILTIN_PROVIDERS.get(provider_id)
    if builtin is not None and os.environ.get(builtin.key_env):
        _warn(f"{builtin.key_env} is set: {provider_id} still has a key from the environment")
    return 0


def read_key(provider_id: str) -> str:
    """The key typed at a terminal (not echoed), or all of stdin less one trailing line break."""
    if sys.stdin is None:
        raise RequestError(f"no key for {provider_id}: there is no stdin to read it from")
    if sys.stdin.isatty():
        import getpass

        try:
            return getpass.getpass(f"API key for {provider_id} (not shown): ")
        except EOFError:
            return ""
    buffer = getattr(sys.stdin, "buffer", None)  # a text stream put in place of stdin (an embedding caller) has none
    if buffer is None:
        text = sys.stdin.read(MAX_KEY_CHARS + 3)
    else:
        try:
            text = buffer.read(MAX_KEY_CHARS * 4 + 3).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestError(
                f"the key for {provider_id} on stdin is not valid UTF-8 (byte {exc.start + 1}); nothing was stored"
            ) from None
    for ending in ("\r\n", "\n"):
        if text.endswith(ending):
            return text[: -len(ending)]
    return text


def _known_provider(provider_id: str, args: Any, profiles: AuthProfiles) -> LoadedConfig | None:
    """The config, which must know a name that is not a built-in; for a built-in, only if it loads (for notes)."""
    if provider_id in BUILTIN_PROVIDERS:
        try:
            loaded = load_config(getattr(args, "config", None), os.environ)
            build_catalog(loaded, os.environ, profiles=profiles)
        except GenesisError:  # a built-in needs no config: a broken one only costs the notes
            return None
        return loaded
    loaded = load_config(getattr(args, "config", None), os.environ)
    catalog = build_catalog(loaded, os.environ, profiles=profiles)
    if provider_id not in catalog.providers:
        known = sorted(set(BUILTIN_PROVIDERS) | set(catalog.providers))
        close = difflib.get_close_matches(provider_id, known, n=3, cutoff=0.5)
        guess = f"did you mean {' or '.join(close)}? " if close else ""
        raise UnknownModelError(
            f"no provider {provider_id!r} to store a key for; known: {', '.join(known)}",
            hint=f"{guess}a key can be stored for a built-in provider or one defined under models.providers in the config",
        )
    return loaded


def _catalog(args: Any, profiles: AuthProfiles) -> Catalog:
    loaded = load_config(getattr(args, "config", None), os.environ)
    return build_catalog(loaded, os.environ, profiles=profiles)


def _note_unused(provider_id: str, catalog: Catalog) -> None:
    provider = catalog.providers.get(provider_id)
    if provider is None:
        _warn(f"the config has no provider {provider_id} (models.mode is replace): the stored key is not used")
    elif not provider.key_source.startswith("profile "):
        _warn(
            f"{provider_id} uses the key from the {describe_key_source(provider.key_source)}, which comes first: the stored key is not used"
        )


def _unused_cell(row: KeyRow, catalog: Catalog) -> str:
    if row.provider not in catalog.providers:
        return f"{describe_key_source(row.shadowed[0])} (no such provider in the config)"
    return ", ".join(describe_key_source(source) for source in row.shadowed) or "-"


def _warn(message: str) -> None:
    logging.getLogger("genesis").warning(message)
