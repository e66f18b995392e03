"""One mapping from a failure below HTTP to a class: ``backends.http.TRANSPORT_RULES``.

A table, one row per rule: an exception (as httpx, our transport, anyio, ssl or the OS raise it) in a
phase (before the answer's head arrived, or mid-answer) -> the rule that matches, the class, words the
message must hold, and words the hint must hold. Every rule of the table has a row here (a new rule
without one fails ``test_every_rule_has_a_row``).

Then the same failure through every door that sends a request: a chat request, discovery
(``GET /models``) and the health probe must class it alike, in both phases; the same ReadError is
never ``protocol`` in one place and ``unreachable`` in another.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from typing import NamedTuple

import anyio
import httpx
import pytest

from backends.classify import HintContext
from backends.http import TRANSPORT_RULES, Exchange, Phase, transport_error, transport_rule
from backends.transport import ProtocolLimitError, RefusedRequestError
from pipeline.api import Genesis
from pipeline.errors import ErrorClass, ProviderError
from pipeline.policy import SendPolicy
from pipeline.secrets import Secrets

pytestmark = pytest.mark.anyio

POLICY = SendPolicy(connect_timeout=2, read_timeout=7, total_timeout=30)
HINTS = HintContext("p", "http://h.invalid/v1", "p/m", "models.providers.p.models", secrets=Secrets({"sk-secret-1234"}))
URL = "http://h.invalid/v1/chat/completions"


def wrapped(outer: type[httpx.HTTPError], cause: BaseException, text: str = "wrapped") -> Callable[[], BaseException]:
    """An httpx error raised from ``cause``, as httpx and our transport raise them."""

    def make() -> BaseException:
        try:
            raise outer(text) from cause
        except outer as error:
            return error

    return make


def untrusted() -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    error.verify_message = "unable to get local issuer certificate"
    return error


class Row(NamedTuple):
    name: str
    make: Callable[[], BaseException]
    phase: Phase
    rule: str
    error_class: ErrorClass
    message: str  # the message holds this
    hint: str | None  # the hint holds this (None: no hint)


BEFORE: Phase = "before_answer"
MID: Phase = "mid_answer"
U, T, P, F = ErrorClass.UNREACHABLE, ErrorClass.TIMEOUT, ErrorClass.PROTOCOL, ErrorClass.FORMAT
NOT_RUNNING = "the server is not running or not on that host/port"
DROPPED = "dropped it without answering: check its log"

ROWS: list[Row] = [
    # a deadline is a timeout, whatever timed out; the message names the key and its value
    Row("connect timeout", lambda: httpx.ConnectTimeout("x"), BEFORE, "connect-timeout", T, "no connection within 2 s (connectTimeoutSeconds)", "models.providers.p.connectTimeoutSeconds"),
    Row("pool timeout (httpx's own pool, proxies)", lambda: httpx.PoolTimeout("x"), BEFORE, "pool-timeout", T, "no free connection within 2 s (connectTimeoutSeconds)", "connectTimeoutSeconds"),
    Row("read timeout before the head", lambda: httpx.ReadTimeout("x"), BEFORE, "read-timeout", T, "no data from the server for 7 s (readTimeoutSeconds)", "models.providers.p.readTimeoutSeconds"),
    Row("read timeout mid-answer", lambda: httpx.ReadTimeout("x"), MID, "read-timeout", T, "no data from the server for 7 s", "readTimeoutSeconds"),
    Row("write timeout", lambda: httpx.WriteTimeout("x"), BEFORE, "read-timeout", T, "no data from the server for 7 s", "readTimeoutSeconds"),
    Row("a custom transport's TimeoutError", lambda: TimeoutError(), MID, "read-timeout", T, "readTimeoutSeconds", "readTimeoutSeconds"),
    # no connection: unreachable, with the OS's, the resolver's or TLS's reason
    Row("proxy failed", lambda: httpx.ProxyError("502 from proxy"), BEFORE, "proxy", U, "the proxy failed: 502 from proxy", "NO_PROXY"),
    Row("certificate not trusted", wrapped(httpx.ConnectError, untrusted()), BEFORE, "certificate-not-trusted", U, "cannot connect: certificate verify failed: unable to get local issuer certificate", "models.providers.p.tls.caFile"),
    Row("a bare untrusted certificate error", untrusted, BEFORE, "certificate-not-trusted", U, "certificate verify failed", "tls.caFile"),
    Row("connection refused", wrapped(httpx.ConnectError, ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")), BEFORE, "cannot-connect", U, "cannot connect: connection refused", NOT_RUNNING),
    Row("a custom transport's ECONNREFUSED", lambda: OSError(errno.ECONNREFUSED, "Connection refused"), BEFORE, "cannot-connect", U, "cannot connect: connection refused", NOT_RUNNING),
    Row("DNS failure", wrapped(httpx.ConnectError, socket.gaierror(socket.EAI_NONAME, "Name or service not known")), BEFORE, "cannot-connect", U, "cannot connect: name or service not known", NOT_RUNNING),
    Row("TLS handshake failure", lambda: ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), BEFORE, "cannot-connect", U, "cannot connect:", NOT_RUNNING),
    # a request that cannot be sent as HTTP: format; only our transport's words are quoted
    Row("our transport refuses a header", lambda: RefusedRequestError("the request header 'X-K' has a value with CR, LF or NUL in it; it was not sent"), BEFORE, "refused-request", F, "the request header 'X-K' has a value with CR", None),
    Row("another transport refuses a header", lambda: httpx.LocalProtocolError("Illegal header value b'sk-secret-1234\\n'"), BEFORE, "invalid-request", F, "the request cannot be sent as HTTP/1.1", None),
    Row("unsupported URL scheme", lambda: httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'ftp://'."), BEFORE, "unsupported-url", F, "cannot send to this URL: Request URL has an unsupported protocol", "models.providers.p.baseUrl must start with http://"),
    # an answer that breaks a bound or is not HTTP: protocol
    Row("a bound of our transport", lambda: ProtocolLimitError("more than 16 informational (1xx) responses"), BEFORE, "protocol-limit", P, "more than 16 informational (1xx) responses", None),
    Row("not HTTP before the head", lambda: httpx.RemoteProtocolError("the server closed the connection without a response"), BEFORE, "not-http", P, "no HTTP answer: the server closed the connection without a response", None),
    # a connection that broke: before the head the server is away (unreachable, retried, as a write
    # failure or a read timeout there); once the answer began it is protocol
    Row("ReadError before the head", lambda: httpx.ReadError("reset"), BEFORE, "closed-before-answer", U, "the connection closed before an answer: reset", DROPPED),
    Row("ReadError mid-answer", lambda: httpx.ReadError("reset"), MID, "broke-mid-answer", P, "the connection broke mid-answer: reset", None),
    Row("WriteError before the head", wrapped(httpx.WriteError, BrokenPipeError(errno.EPIPE, "Broken pipe")), BEFORE, "closed-before-answer", U, "the connection closed before an answer: broken pipe", DROPPED),
    Row("ECONNRESET before the head", lambda: ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), BEFORE, "closed-before-answer", U, "before an answer: connection reset by peer", DROPPED),
    Row("ECONNRESET mid-answer", wrapped(httpx.ReadError, ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")), MID, "broke-mid-answer", P, "the connection broke mid-answer: connection reset by peer", None),
    Row("anyio BrokenResourceError before the head", lambda: anyio.BrokenResourceError(), BEFORE, "closed-before-answer", U, "the connection closed before an answer: BrokenResourceError", DROPPED),
    Row("anyio BrokenResourceError mid-answer", lambda: anyio.BrokenResourceError(), MID, "broke-mid-answer", P, "mid-answer: BrokenResourceError", None),
    Row("anyio ClosedResourceError mid-answer", lambda: anyio.ClosedResourceError(), MID, "broke-mid-answer", P, "mid-answer: ClosedResourceError", None),
    Row("RemoteProtocolError mid-answer", lambda: httpx.RemoteProtocolError("peer closed connection without sending complete message body"), MID, "broke-mid-answer", P, "mid-answer: peer closed connection", None),
    Row("TLS failure mid-answer", lambda: ssl.SSLError(1, "[SSL: DECRYPTION_FAILED_OR_BAD_RECORD_MAC] decryption failed"), MID, "broke-mid-answer", P, "the connection broke mid-answer", None),
    # anything else below HTTP
    Row("another network error", lambda: OSError(errno.EHOSTUNREACH, "No route to host"), BEFORE, "network", U, "network error: no route to host", NOT_RUNNING),
    Row("another httpx network error", lambda: httpx.CloseError("x"), MID, "network", U, "network error: x", NOT_RUNNING),
    Row("another httpx error", lambda: httpx.DecodingError("bad gzip"), MID, "other-httpx", P, "DecodingError: bad gzip", None),
    Row("any other exception: its type only", lambda: RuntimeError("sk-secret-1234 and other words"), BEFORE, "other", P, "the request failed: RuntimeError", None),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
async def test_transport_failure_class_message_hint(row: Row) -> None:
    exc = row.make()
    assert transport_rule(exc, row.phase).rule == row.rule
    exchange = Exchange(URL, "p/m", HINTS, POLICY)
    exchange.status = None if row.phase == BEFORE else 200
    error = transport_error(exc, exchange)
    assert error.error_class is row.error_class, error
    assert row.message in error.server_message, error.server_message
    assert error.status is None  # the answer itself failed, whatever head had come
    assert "sk-secret-1234" not in str(error) + (error.hint or "")
    if row.hint is None:
        assert error.hint is None, error.hint
    else:
        assert row.hint in (error.hint or ""), error.hint


def test_every_rule_has_a_row() -> None:
    assert {rule.rule for rule in TRANSPORT_RULES} == {row.rule for row in ROWS}


def test_rule_names_are_unique() -> None:
    names = [rule.rule for rule in TRANSPORT_RULES]
    assert len(names) == len(set(names))


# ---- the same failure through every door ----


class _Breaks(httpx.AsyncByteStream):
    """A body that sends one piece, then fails with ``exc``."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'data: {"choices": [{"delta": {"content": "Hel'
        raise self.exc


def _answer(exc_type: type[Exception], phase: Phase) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        if phase == BEFORE:
            raise exc_type("connection reset by peer")
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=_Breaks(exc_type("connection reset by peer")))

    return answer


CONFIG = """{ models: { providers: {
    mock: { baseUrl: "http://mock.invalid/v1", maxRetries: 0, models: [{ id: "m" }] },
} } }"""

DOORS: list[tuple[type[Exception], Phase, ErrorClass]] = [
    (httpx.ReadError, BEFORE, ErrorClass.UNREACHABLE),
    (httpx.ReadError, MID, ErrorClass.PROTOCOL),
    (httpx.RemoteProtocolError, BEFORE, ErrorClass.PROTOCOL),
    (httpx.RemoteProtocolError, MID, ErrorClass.PROTOCOL),
    (httpx.WriteError, BEFORE, ErrorClass.UNREACHABLE),
    (httpx.ConnectError, BEFORE, ErrorClass.UNREACHABLE),
    (httpx.ReadTimeout, MID, ErrorClass.TIMEOUT),
    # a custom transport's own exceptions: classed as well, never a traceback (chat let them escape)
    (ConnectionResetError, BEFORE, ErrorClass.UNREACHABLE),
    (ConnectionResetError, MID, ErrorClass.PROTOCOL),
    (anyio.BrokenResourceError, MID, ErrorClass.PROTOCOL),
    (RuntimeError, BEFORE, ErrorClass.PROTOCOL),
    (RuntimeError, MID, ErrorClass.PROTOCOL),
]


async def _chat(g: Genesis) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        with anyio.fail_after(10):
            await g.run("mock/m", {"messages": [{"role": "user", "content": "hi"}], "stream": True})
    return caught.value


async def _discovery(g: Genesis) -> ProviderError:
    from backends.discovery import fetch_models

    with pytest.raises(ProviderError) as caught:
        await fetch_models(g.client(), g.catalog.providers["mock"])
    return caught.value


@pytest.mark.parametrize(("exc_type", "phase", "error_class"), DOORS, ids=[f"{e.__name__}-{p}" for e, p, _ in DOORS])
async def test_chat_discovery_and_probe_class_a_failure_alike(exc_type: type[Exception], phase: Phase, error_class: ErrorClass) -> None:
    from backends.probe import check_health, check_models

    g = Genesis.from_config_text(CONFIG, env={}, transport=httpx.MockTransport(_answer(exc_type, phase)))
    async with g:
        chat = await _chat(g)
        discovery = await _discovery(g)
        provider = g.catalog.providers["mock"]
        models, health = await check_models(g.client(), provider), await check_health(g.client(), provider)
    assert (chat.error_class, discovery.error_class, models.state, health.state) == (error_class,) * 4


async def test_a_dns_failure_names_the_resolvers_reason() -> None:
    """Fails on the old code: the resolver's -2 was read as an errno ("unknown error -2")."""
    exchange = Exchange(URL, "p/m", HINTS, POLICY)
    cause = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    error = transport_error(wrapped(httpx.ConnectError, cause)(), exchange)
    assert "unknown error" not in error.server_message and "name or service not known" in error.server_message
