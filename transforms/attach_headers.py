"""Stage 5: the request headers, merged in a fixed order, with auth last.

Rules:
- Order, later wins (names compare case-insensitively): ``Content-Type``,
  attribution headers (native OpenAI only), the provider's ``headers``, the
  model's ``headers``, the caller's headers; then auth.
- Auth is ``Authorization: Bearer <apiKey>``. A provider with no key sends
  none, so keyless local servers work; ``authHeader: false`` turns it off.
- Attribution (``originator: genesis``, ``version``, ``User-Agent:
  genesis/<version>``) goes to native OpenAI endpoints only; custom base
  URLs get none and their User-Agent is never ``genesis/...``.
- A header is secret, and redacted whenever shown, when its name says so
  (authorization, api key, token, secret, cookie) or its value holds a
  configured secret.
- Every name and value is checked (``pipeline.header_rules``) whatever its
  source: the config (checked at load too), the caller's headers, a key from
  an environment variable. A bad one is a Failure naming the source and the
  position, never the value.
"""

from __future__ import annotations

from returns.result import Failure, Result, Success

from pipeline.errors import ConfigError, ConfigIssue, GenesisError
from pipeline.header_rules import caller_header_error, key_error, name_problem, value_problem
from pipeline.jsontext import join_key
from pipeline.secrets import is_secret_name
from pipeline.trace import Change, added, changed
from pipeline.types import Context, missing_target
from pipeline.version import __version__

STAGE = "attach_headers"

# Every request's first header, and its trace entry (one frozen Change, shared by every build).
_CONTENT_TYPE_ADDED = added(STAGE, "header Content-Type", "JSON body")
ATTRIBUTION_HEADERS = (("originator", "genesis"), ("version", __version__), ("User-Agent", f"genesis/{__version__}"))


def is_secret_header(name: str, value: str, secrets: frozenset[str]) -> bool:
    """Whether a header's value must be redacted when shown.

    >>> is_secret_header("X-Api-Key", "abc", frozenset()), is_secret_header("X-Trace", "abc", frozenset())
    (True, False)
    >>> is_secret_header("X-Org", "org-s3cret", frozenset({"s3cret"}))
    True
    """
    if is_secret_name(name):
        return True
    for secret in secrets:  # noqa: SIM110 (a loop, not any() over a generator: every build asks this of each header)
        if secret in value:
            return True
    return False


def run(ctx: Context) -> Context | GenesisError:
    target = ctx.target
    if target is None:  # stages return their errors, never raise them
        return missing_target(STAGE)
    provider, model = target.provider, target.model
    merged: dict[str, tuple[str, str]] = {"content-type": ("Content-Type", "application/json")}
    changes: list[Change] = [_CONTENT_TYPE_ADDED]

    if provider.native:
        for name, value in ATTRIBUTION_HEADERS:
            _put(merged, changes, name, value, "attribution (native OpenAI endpoint)")
    # The configured headers' paths are spelled out only when there are some (most providers have none).
    if provider.headers:
        bad_config = _put_configured(ctx, f"{provider.config_path}.headers", provider.headers, merged, changes)
        if bad_config is not None:
            return bad_config
    if model.config.headers:
        bad_config = _put_configured(ctx, f"headers of model {target.ref}", model.config.headers, merged, changes)
        if bad_config is not None:
            return bad_config
    for name, value in ctx.caller_headers:
        bad_request = caller_header_error(name, value, "the caller's headers")
        if bad_request is not None:
            return bad_request
        _put(merged, changes, name, value, "caller's headers")
    if provider.api_key and provider.auth_header:
        bad_key = key_error(provider.api_key, provider.key_source, ctx.catalog.source)
        if bad_key is not None:
            return bad_key
        _put(merged, changes, "Authorization", f"Bearer {provider.api_key}", f"apiKey ({provider.key_source})")

    secrets = ctx.catalog.secrets
    secret_headers = frozenset([lowered for lowered, (name, value) in merged.items() if is_secret_header(name, value, secrets)])
    return ctx.updated(changes, headers=tuple(merged.values()), secret_headers=secret_headers)


def attach_headers(ctx: Context) -> Result[Context, GenesisError]:
    """The stage: ``run`` as a Result (the stage contract; the runner calls ``run`` itself)."""
    shaped = run(ctx)
    return Failure(shaped) if isinstance(shaped, GenesisError) else Success(shaped)


def _put(merged: dict[str, tuple[str, str]], changes: list[Change], name: str, value: str, rule: str) -> None:
    """Merge one header (a later one wins over an earlier one of the same name, in any case) and record it."""
    lowered = name.lower()
    action = changed if lowered in merged else added
    merged[lowered] = (name, value)
    changes.append(action(STAGE, f"header {name}", rule))


def _put_configured(
    ctx: Context, where: str, configured: dict[str, str], merged: dict[str, tuple[str, str]], changes: list[Change]
) -> ConfigError | None:
    """Each configured header, checked, then merged; the first bad one is the error."""
    for name, value in configured.items():
        bad_config = _configured_header_error(ctx.catalog.source, join_key(where, name), name, value)
        if bad_config is not None:
            return bad_config
        _put(merged, changes, name, value, where)
    return None


def _configured_header_error(config_source: str, path: str, name: str, value: str) -> ConfigError | None:
    bad_name = name_problem(name)
    if bad_name is not None:
        return ConfigError(config_source, [ConfigIssue(path, f"the header name {bad_name.problem}")])
    bad_value = value_problem(value)
    if bad_value is not None:
        return ConfigError(config_source, [ConfigIssue(path, f"the value {bad_value.problem}")], hint=bad_value.hint)
    return None
