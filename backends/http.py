"""The send stage: a WireRequest goes out with httpx, the answer's bytes come back (``parse_stream``,
in ``backends.stream``, turns them into events).

Rules:
- The request goes out exactly as built: ``httpx.Request`` from the wire's
  method, URL, headers and body bytes, sent with ``client.send`` (so no
  client default headers are merged in; httpx adds only Host and
  Content-Length, as ``genesis wire`` shows). A header value with CR, LF,
  NUL or a non-ASCII character is refused before anything is sent, naming
  the header, never its value.
- Bounds come from ``wire.policy`` (``pipeline.policy``): ``connect_timeout``
  to connect, ``read_timeout`` between two reads, ``total_timeout`` as a
  deadline for the whole exchange (head and body; a server that trickles a
  byte at a time or never stops streaming is cut off by it), and
  ``max_response_bytes`` for one answer, counted on the wire and again after
  Content-Encoding decoding (a gzip bomb stops at the cap, it never reaches
  memory). Error bodies are read up to ``ERROR_BODY_LIMIT`` only.
- A streamed answer ends at ``data: [DONE]`` (parse_stream sees it): nothing more is read, and the
  connection is reused only if the HTTP body had really ended (see
  ``backends.transport``).
- A streamed request whose server answers plain JSON is parsed as a
  non-streamed answer; the events are the same.
- A redirect (3xx) is a ``protocol`` error naming the Location; the hint
  says which ``baseUrl`` to set. Redirects are never followed: a POST with a
  key is not replayed to another URL.
- An error answer's ``Retry-After`` (seconds or an HTTP date) becomes
  ``ProviderError.retry_after``: seconds, at most ``RETRY_AFTER_CAP``.
- Every failure leaves as a classified ``ProviderError``; ``transport_error``
  is the one place that maps a transport exception to a class. Cancellation
  propagates untouched, and the response is closed (shielded) either way.
- Any ``httpx`` transport works, ``httpx.MockTransport`` included: a body the
  transport already read is taken as it is (bounded by the same caps).
"""

from __future__ import annotations

import email.utils
import http.cookiejar
import logging
import math
import os
import socket
import ssl
import time
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any, Literal, NamedTuple

import anyio
import httpx

from backends.classify import HintContext, hint_for, http_error
from backends.transport import BODY, DEADLINE_ENFORCED, DeadlineExceeded, ProtocolLimitError, RefusedRequestError
from backends.waits import WaitExpired, Waits, running_asyncio_loop
from pipeline.errors import ErrorClass, ProviderError
from pipeline.policy import SendPolicy
from pipeline.types import WireRequest

ERROR_BODY_LIMIT = 64 * 1024
RETRY_AFTER_CAP = 60.0
LOCATION_LIMIT = 300
log = logging.getLogger("genesis")


# ---- the client: one per Genesis, proxies from the environment ----


def make_client(transport: httpx.AsyncBaseTransport | None = None, *, environ: Mapping[str, str] | None = None) -> httpx.AsyncClient:
    """One client per Genesis.

    By default over ``Http11Transport`` (O(1) connection reuse, no cap), with
    the proxies the environment names (``HTTP_PROXY``, ``HTTPS_PROXY``,
    ``ALL_PROXY``, ``NO_PROXY``; httpx's rules, see ``environment_proxies``)
    mounted per origin through httpx's own transport. An injected
    ``transport`` is used for everything, as given: no proxies.
    """
    if transport is not None:
        return httpx.AsyncClient(transport=transport, timeout=None, trust_env=False, cookies=_NoCookies())
    from backends.transport import Http11Transport, ProxyTransport

    mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
    for pattern, proxy in environment_proxies(os.environ if environ is None else environ).items():
        if proxy is None:
            mounts[pattern] = None
            continue
        try:
            mounts[pattern] = ProxyTransport(httpx.Proxy(proxy))
        except (ValueError, TypeError, httpx.InvalidURL):  # never echo the proxy URL: it may carry a password
            log.warning("ignoring the proxy for %s: its URL is not a usable http(s) proxy URL", pattern)
    return httpx.AsyncClient(transport=Http11Transport(), mounts=mounts, timeout=None, trust_env=False, cookies=_NoCookies())


class _NoCookies(http.cookiejar.CookieJar):
    """A jar that keeps nothing: a request goes out exactly as built, so a cookie a server sets is never sent
    back, and storing it (httpx parses every response's headers for them) is work for nothing."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


class LentTransport(httpx.AsyncBaseTransport):
    """A transport the caller owns, lent to a client Genesis makes for a while (a sync call's private loop, the
    OpenAI SDK transport's loop): requests pass through; closing that client leaves the caller's transport open."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.transport.handle_async_request(request)

    async def aclose(self) -> None:
        """Nothing: the transport is the caller's to close."""


def _environment_proxy_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """``urllib.request.getproxies_environment`` over any mapping: lower-case names win, an empty one unsets."""
    proxies: dict[str, str] = {}
    for name, value in environ.items():
        lowered = name.lower()
        if value and lowered.endswith("_proxy"):
            proxies[lowered[:-6]] = value
    if "REQUEST_METHOD" in environ:  # CGI: HTTP_PROXY may come from a request header
        proxies.pop("http", None)
    for name, value in environ.items():
        if name.endswith("_proxy"):
            if value:
                proxies[name.lower()[:-6]] = value
            else:
                proxies.pop(name.lower()[:-6], None)
    return proxies


def environment_proxies(environ: Mapping[str, str]) -> dict[str, str | None]:
    """httpx's mount patterns for the proxy variables (``httpx._utils.get_environment_proxies``, any mapping).

    >>> environment_proxies({"HTTP_PROXY": "proxy:3128", "NO_PROXY": "localhost,.internal"})
    {'http://': 'http://proxy:3128', 'all://localhost': None, 'all://*.internal': None}
    >>> environment_proxies({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*"})
    {}
    """
    import ipaddress

    info = _environment_proxy_variables(environ)
    mounts: dict[str, str | None] = {}
    for scheme in ("http", "https", "all"):
        if info.get(scheme):
            host = info[scheme]
            mounts[f"{scheme}://"] = host if "://" in host else f"http://{host}"
    for host in (entry.strip() for entry in info.get("no", "").split(",")):
        if host == "*":
            return {}
        if not host:
            continue
        address = host.split("/")[0]
        if "://" in host:
            mounts[host] = None
        elif _is_ip(ipaddress.IPv4Address, address):
            mounts[f"all://{host}"] = None
        elif _is_ip(ipaddress.IPv6Address, address):
            mounts[f"all://[{host}]"] = None
        elif host.lower() == "localhost":
            mounts[f"all://{host}"] = None
        else:
            mounts[f"all://*{host}"] = None
    return mounts


def _is_ip(kind: Any, text: str) -> bool:
    try:
        kind(text)
    except ValueError:
        return False
    return True


# ---- TLS per provider ----

_TLS_CONTEXTS: dict[tuple[bool, str | None, str | None, str | None], ssl.SSLContext] = {}


def tls_context(policy: SendPolicy, where: HintContext, url: str, environ: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """The TLS context a provider's policy asks for (built once per setting).

    The system's CAs, plus ``SSL_CERT_FILE``/``SSL_CERT_DIR`` if set, plus the
    provider's ``tls.caFile``; ``tls.verify: false`` turns verification off.
    """
    env = os.environ if environ is None else environ
    cert_file, cert_dir = env.get("SSL_CERT_FILE") or None, env.get("SSL_CERT_DIR") or None
    key = (policy.tls_verify, policy.tls_ca_file, cert_file, cert_dir)
    context = _TLS_CONTEXTS.get(key)
    if context is not None:
        return context
    context = ssl.create_default_context()
    for source, path, folder in (
        ("SSL_CERT_FILE/SSL_CERT_DIR", cert_file, cert_dir),
        (f"models.providers.{where.provider}.tls.caFile", policy.tls_ca_file, None),
    ):
        if path is None and folder is None:
            continue
        try:
            context.load_verify_locations(cafile=path, capath=folder)
        except (OSError, ssl.SSLError) as exc:
            reason = os_reason(exc)
            message = f"cannot load the CA bundle {path or folder!r} ({source}): {reason}"
            raise ProviderError(
                ErrorClass.UNREACHABLE, message, url=url, ref=where.ref, hint=f"point {source} to a readable PEM file of CA certificates"
            ) from None
    if not policy.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    _TLS_CONTEXTS[key] = context
    return context


# ---- one exchange ----


class Timing:
    """The send stage's record (``pipeline.answer.SendRecord``): when the request went out, when the first body
    bytes came, when it ended (perf_counter seconds), the status and the content type."""

    __slots__ = ("content_type", "end", "first_byte", "start", "status")

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first_byte: float | None = None
        self.end: float | None = None
        self.status: int | None = None
        self.content_type = ""  # the response's, once its head came: parse_stream picks its parser by it

    def as_ms(self) -> dict[str, float | None]:
        def since(mark: float | None) -> float | None:
            return None if mark is None else round((mark - self.start) * 1000, 2)

        return {"first_byte_ms": since(self.first_byte), "total_ms": since(self.end)}


class Exchange:
    """What errors of one exchange need: where it went, its bounds, and the deadline (anyio clock)."""

    __slots__ = ("deadline", "hints", "policy", "ref", "status", "url")

    def __init__(self, url: str, ref: str, hints: HintContext, policy: SendPolicy) -> None:
        self.url, self.ref, self.hints, self.policy = url, ref, hints, policy
        self.deadline = anyio.current_time() + policy.total_timeout
        self.status: int | None = None

    def total_timeout_error(self) -> ProviderError:
        seconds = self.policy.total_timeout
        return ProviderError(
            ErrorClass.TIMEOUT,
            f"no complete answer within the total deadline of {seconds:g} s (totalTimeoutSeconds)",
            url=self.url,
            status=self.status,
            ref=self.ref,
            hint=f"raise models.providers.{self.hints.provider}.totalTimeoutSeconds if the server is just slow",
        )

    def too_large_error(self, what: str) -> ProviderError:
        cap = self.policy.max_response_bytes
        return ProviderError(
            ErrorClass.PROTOCOL,
            f"the answer is larger than maxResponseBytes ({cap} bytes{what})",
            url=self.url,
            status=self.status,
            ref=self.ref,
            hint=f"raise models.providers.{self.hints.provider}.maxResponseBytes if answers this large are expected",
        )


def prepare(method: str, url: str, headers: Any, body: bytes, exchange: Exchange) -> httpx.Request:
    """The httpx request with the policy's timeouts and TLS; refuses headers that cannot go out safely."""
    where = exchange.hints
    for name, value in headers:
        bad = _bad_header_value(value)
        if bad is None:
            continue
        shown = "".join(ch for ch in name if ch.isprintable())[:60]
        message = f"the {shown} header's value has {bad} in it; the request was not sent"
        if name.lower() == "authorization":  # the configured key: its source is what to fix
            hint = f"the key (from {where.key_source}) has {bad} in it: remove it" + (f" from {where.key_env}" if where.key_env else "")
            raise ProviderError(ErrorClass.AUTH, message, url=url, ref=exchange.ref, hint=hint)
        raise ProviderError(ErrorClass.FORMAT, message, url=url, ref=exchange.ref, hint="header values must be printable ASCII on one line")
    policy = exchange.policy
    timeouts = {
        "connect": policy.connect_timeout,
        "read": policy.read_timeout,
        "write": policy.read_timeout,
        "pool": policy.connect_timeout,
    }
    # The total deadline goes along: Genesis's transport enforces it in each read's one scope (backends.transport).
    extensions: dict[str, Any] = {"timeout": timeouts, "deadline": exchange.deadline}
    if url.startswith("https:"):
        extensions["ssl_context"] = tls_context(policy, where, url)
        if not policy.tls_verify:
            log.warning(
                "TLS certificate verification is OFF for %s (models.providers.%s.tls.verify: false): "
                "anyone on the path can read and change this request and its key",
                url,
                where.provider,
            )
    try:
        return httpx.Request(method, _parsed_url(url), headers=list(headers), content=body, extensions=extensions)
    except httpx.InvalidURL as exc:
        raise ProviderError(
            ErrorClass.FORMAT,
            f"not a usable URL: {exc}",
            url=url,
            ref=exchange.ref,
            hint=f"check models.providers.{where.provider}.baseUrl",
        ) from None


_PARSED_URLS: dict[str, httpx.URL] = {}
_PARSED_URLS_KEPT = 256


def _parsed_url(url: str) -> httpx.URL:
    """``httpx.URL(url)``, parsed once per URL (a run sends to a handful; the parse was a third of building the request).
    At most ``_PARSED_URLS_KEPT`` are kept: past it the oldest goes. An invalid URL raises ``httpx.InvalidURL`` each time."""
    parsed = _PARSED_URLS.get(url)
    if parsed is None:
        parsed = httpx.URL(url)
        if len(_PARSED_URLS) >= _PARSED_URLS_KEPT:  # the oldest goes; pop, not del: sync calls' threads share the dict
            _PARSED_URLS.pop(next(iter(_PARSED_URLS), ""), None)
        _PARSED_URLS[url] = parsed
    return parsed


def _bad_header_value(value: str) -> str | None:
    """What makes a header value unsendable, in words (never the value itself).

    >>> [_bad_header_value(v) for v in ("Bearer k", "Bearer k\\n", "a\\x00b", "clé")]
    [None, 'a line break (CR/LF)', 'a NUL character', 'a non-ASCII character']
    """
    if "\r" in value or "\n" in value:
        return "a line break (CR/LF)"
    if "\x00" in value:
        return "a NUL character"
    if not value.isascii():
        return "a non-ASCII character"
    return None


async def open_response(client: httpx.AsyncClient, request: httpx.Request, exchange: Exchange) -> httpx.Response:
    """Send, within the deadline; a 3xx is a redirect error, and the response is closed if anything fails here."""
    try:
        with anyio.CancelScope(deadline=exchange.deadline) as scope:
            response = await client.send(request, stream=True)
    except Exception as exc:  # any transport's failure, httpx's or its own (cancellation is no Exception)
        raise transport_error(exc, exchange) from None
    if scope.cancelled_caught:
        raise exchange.total_timeout_error()
    exchange.status = response.status_code
    if 300 <= response.status_code < 400:
        with anyio.CancelScope(shield=True):
            await response.aclose()
        raise redirect_error(response, exchange)
    return response


async def send(client: httpx.AsyncClient, wire: WireRequest, hints: HintContext, timing: Timing) -> AsyncGenerator[bytes, None]:
    """The ``send`` stage: send ``wire`` and yield the answer's body bytes, one piece per network read.

    An error status is read (bounded) and raised as a classified ProviderError, like every other
    failure; a streamed answer's end (``data: [DONE]``) is parse_stream's to see: the run stops
    reading there and closes this iterator, which closes the response.
    """
    exchange = Exchange(wire.url, wire.ref, hints, wire.policy)
    request = prepare(wire.method, wire.url, wire.headers, wire.body, exchange)
    try:
        response = await open_response(client, request, exchange)
    finally:
        timing.status = exchange.status
    body = BoundedBody(response, exchange)  # reads nothing yet
    timing.content_type = body.content_type
    try:
        if response.status_code >= 400:
            raise await error_from(response, body, exchange)
        if not timing.content_type.startswith("text/event-stream"):
            data = await body.read_all()
            timing.first_byte = time.perf_counter()
            yield data
            return
        plain = body.plain()
        if plain is not None:  # the common case, inline (one read per event): raw pieces, counted against the cap
            raw, waits = plain
            limit, received, deadline = exchange.policy.max_response_bytes, 0, exchange.deadline
            while True:
                try:
                    # The transport's own body keeps the deadline itself; another one's waits are bounded here.
                    piece = await (raw.__anext__() if waits is None else waits.wait(raw.__anext__(), None, deadline))
                except StopAsyncIteration:
                    break
                except WaitExpired:
                    raise exchange.total_timeout_error() from None
                except ProviderError:
                    raise
                except Exception as exc:  # the transport's failure (cancellation is no Exception)
                    raise transport_error(exc, exchange) from None
                received += len(piece)
                if received > limit:
                    raise exchange.too_large_error(" on the wire")
                if timing.first_byte is None:
                    timing.first_byte = time.perf_counter()
                yield piece
        while True:
            decoded = await body.next()
            if decoded is None:
                break
            if timing.first_byte is None:
                timing.first_byte = time.perf_counter()
            yield decoded
    finally:
        timing.end = time.perf_counter()
        with anyio.CancelScope(shield=True):
            await body.aclose()
            await response.aclose()


async def fetch_body(client: httpx.AsyncClient, method: str, url: str, headers: Any, exchange: Exchange) -> bytes:
    """A whole (non-streamed) answer within the exchange's bounds; an HTTP error status is a ProviderError."""
    request = prepare(method, url, headers, b"", exchange)
    response = await open_response(client, request, exchange)
    body = BoundedBody(response, exchange)
    try:
        if response.status_code >= 400:
            raise await error_from(response, body, exchange)
        return await body.read_all()
    finally:
        with anyio.CancelScope(shield=True):
            await body.aclose()
            await response.aclose()


async def error_from(response: httpx.Response, body: BoundedBody, exchange: Exchange) -> ProviderError:
    """The classified error for a 4xx/5xx answer: its body read up to ERROR_BODY_LIMIT, never more."""
    try:
        text = await body.read_all(truncate_at=ERROR_BODY_LIMIT)
    except ProviderError:  # the status says what went wrong; a broken or late body only loses its words
        text = body.received
    error = http_error(response.status_code, text, url=exchange.url, ref=exchange.ref, context=exchange.hints)
    error.retry_after = retry_after_seconds(response.headers.get("retry-after"))
    return error


def redirect_error(response: httpx.Response, exchange: Exchange) -> ProviderError:
    """A 3xx: the API is not at this URL. The hint names the baseUrl the Location points to."""
    status, location = response.status_code, response.headers.get("location")
    if not location:
        return ProviderError(
            ErrorClass.PROTOCOL,
            f"the server answered {status} (a redirect) without a Location",
            url=exchange.url,
            status=status,
            ref=exchange.ref,
        )
    shown = "".join(ch for ch in location if ch.isprintable())[:LOCATION_LIMIT]
    try:
        target = str(httpx.URL(exchange.url).join(shown))
    except (httpx.InvalidURL, ValueError):
        target = shown
    base_url = exchange.hints.base_url.rstrip("/")
    suffix = exchange.url[len(base_url) :] if base_url and exchange.url.startswith(base_url) else ""
    base = target[: -len(suffix)] if suffix and target.endswith(suffix) else target
    return ProviderError(
        ErrorClass.PROTOCOL,
        f"the server redirected ({status}) to {target}; Genesis does not follow redirects",
        url=exchange.url,
        status=status,
        ref=exchange.ref,
        hint=f"set models.providers.{exchange.hints.provider}.baseUrl to {base}",
    )


# ---- reading a body within the bounds ----


class BoundedBody:
    """A response body read within an exchange's bounds: the deadline, and maxResponseBytes on the wire and decoded.

    A body the transport already read (``httpx.MockTransport`` and other
    in-memory transports hand over read, decoded responses) is taken as one
    piece; a streamed one is read raw and decoded here, with bounded output.
    """

    def __init__(self, response: httpx.Response, exchange: Exchange) -> None:
        self._exchange = exchange
        self._limit = exchange.policy.max_response_bytes
        self._wire_bytes = 0
        self._body_bytes = 0
        self._ended = False
        self.received = b""  # what read_all had gathered when it stopped
        self._raw: AsyncIterator[bytes] | None = None
        self._ready: bytes | None = None
        self._decoder = _Decoder("identity", exchange)
        self._declared: int | None = None
        self._problem: ProviderError | None = None
        self._direct = False  # the transport's own body iterator, which keeps the deadline itself
        self._waits: Waits | None = None
        content_type, content_encoding, content_length = head_fields(response)
        self.content_type = content_type
        if response.is_stream_consumed:
            self._ready = response.content
            return
        extensions = response.extensions
        direct = extensions.get(BODY) if extensions.get(DEADLINE_ENFORCED) else None
        if direct is not None:  # no httpx layers between the socket and here, and no second cancel scope per read
            self._raw, self._direct = direct, True
        else:
            self._raw = response.aiter_raw()
            loop = running_asyncio_loop()
            if loop is not None:
                self._waits = Waits(loop)
        self._declared = int(content_length) if content_length.isdigit() else None
        header = content_encoding
        codings = [coding.strip().lower() for coding in header.split(",") if coding.strip().lower() not in ("", "identity")]
        if len(codings) == 1 and codings[0] in _WBITS:
            self._decoder = _Decoder(codings[0], exchange)
        elif codings:
            shown = "".join(ch for ch in header if ch.isprintable())[:60]
            self._problem = ProviderError(
                ErrorClass.PROTOCOL,
                f"unsupported Content-Encoding {shown!r} (Genesis reads identity, gzip and deflate, and asks for none)",
                url=exchange.url,
                status=exchange.status,
                ref=exchange.ref,
            )

    def plain(self) -> tuple[AsyncIterator[bytes], Waits | None] | None:
        """The raw body iterator and the waits that bound it (None: the transport's own, which keeps the deadline
        itself), when nothing is left to do but count its bytes against maxResponseBytes: the body is not encoded,
        not read already, and its Content-Length (if any) is within the cap; None otherwise (``next`` reads it).
        Taken once: the body is then read through it, never through ``next``."""
        raw = self._raw
        if raw is None or self._decoder.decoding or self._problem is not None or self._ended:
            return None
        if not self._direct and self._waits is None:  # trio over another transport: next() keeps the deadline
            return None
        if self._declared is not None and self._declared > self._limit:
            return None  # next() says so
        self._ended = True
        return raw, self._waits

    async def next(self, limit: int | None = None, *, truncate: bool = False) -> bytes | None:
        """The next decoded piece, or None at the end; past ``limit`` (default maxResponseBytes) an error, or the end if ``truncate``."""
        cap = self._limit if limit is None else limit
        if self._ended:
            return None
        if self._problem is not None:
            raise self._problem
        if self._ready is not None:
            piece, self._ready, self._ended = self._ready, None, True
            return self._count(piece, cap, truncate)
        if self._raw is None:
            return None
        if not truncate and self._declared is not None and self._declared > self._limit:
            raise self._exchange.too_large_error(f"; its Content-Length is {self._declared}")
        while True:
            raw = await self._next_raw()
            if raw is None:
                self._ended = True
                return None
            self._wire_bytes += len(raw)
            if self._wire_bytes > self._limit:
                if truncate:
                    self._ended = True
                    return None
                raise self._exchange.too_large_error(" on the wire")
            decoder = self._decoder
            piece = decoder.decode(raw, cap - self._body_bytes + 1) if decoder.decoding else raw
            if piece:
                if self._body_bytes + len(piece) <= cap:  # the common case of _count, inline: one read per event
                    self._body_bytes += len(piece)
                    return piece
                return self._count(piece, cap, truncate)

    async def _next_raw(self) -> bytes | None:
        assert self._raw is not None
        exchange = self._exchange
        if self._direct:  # the transport waits within the deadline and raises DeadlineExceeded past it
            try:
                return await self._raw.__anext__()
            except StopAsyncIteration:
                return None
            except Exception as exc:  # cancellation is no Exception
                raise transport_error(exc, exchange) from None
        waits = self._waits
        raw: bytes | None = None
        try:
            if waits is not None:  # asyncio: one timer for the body's waits (anyio's clock is the loop's)
                try:
                    return await waits.wait(self._raw.__anext__(), None, exchange.deadline)
                except WaitExpired:
                    raise exchange.total_timeout_error() from None
            if anyio.current_time() >= exchange.deadline:
                raise exchange.total_timeout_error()
            with anyio.CancelScope(deadline=exchange.deadline) as scope:
                raw = await self._raw.__anext__()
        except StopAsyncIteration:
            return None
        except Exception as exc:  # any transport's failure, httpx's or its own (cancellation is no Exception)
            if isinstance(exc, ProviderError):
                raise
            raise transport_error(exc, exchange) from None
        if scope.cancelled_caught:
            raise exchange.total_timeout_error()
        return raw

    def _count(self, piece: bytes, cap: int, truncate: bool) -> bytes:
        if self._body_bytes + len(piece) > cap:
            if not truncate:
                raise self._exchange.too_large_error(" after decoding" if self._decoder.decoding else "")
            piece, self._ended = piece[: cap - self._body_bytes], True
        self._body_bytes += len(piece)
        return piece

    async def read_all(self, *, truncate_at: int | None = None) -> bytes:
        """The whole body; past ``truncate_at`` it is cut (error bodies), past maxResponseBytes it is an error."""
        data = bytearray()
        try:
            while (piece := await self.next(truncate_at, truncate=truncate_at is not None)) is not None:
                data += piece
        finally:
            self.received = bytes(data)
        return self.received

    async def aclose(self) -> None:
        if self._waits is not None:
            self._waits.close()
        raw, self._raw = self._raw, None
        aclose = getattr(raw, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except httpx.HTTPError:
                pass


_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class _Decoder:
    """Content-Encoding decoding whose output per call is bounded (zlib's ``max_length``): a bomb stops at the cap."""

    def __init__(self, encoding: str, exchange: Exchange) -> None:
        self.decoding = encoding in _WBITS
        self._encoding = encoding
        self._exchange = exchange
        self._first = True
        self._zlib = zlib.decompressobj(_WBITS[encoding]) if self.decoding else None

    def decode(self, data: bytes, limit: int) -> bytes:
        """At most ``limit`` bytes (``limit`` > 0; zlib reads 0 as no limit): more than the caller's cap means over it."""
        if self._zlib is None:
            return data
        first, self._first = self._first, False
        try:
            return self._zlib.decompress(data, limit)
        except zlib.error as exc:
            if first and self._encoding == "deflate":  # some servers send raw deflate, without the zlib header
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                return self.decode(data, limit)
            exchange = self._exchange
            raise ProviderError(
                ErrorClass.PROTOCOL,
                f"the {self._encoding} body cannot be decoded: {exc}",
                url=exchange.url,
                status=exchange.status,
                ref=exchange.ref,
            ) from None


_HEAD_FIELDS = (b"content-type", b"content-encoding", b"content-length")


def head_fields(response: httpx.Response) -> tuple[str, str, str]:
    """The response's Content-Type, Content-Encoding and Content-Length ("" when absent), as ``headers.get`` gives them
    (a repeated field's values joined with ", "), in one pass over the raw fields: httpx's ``get`` scans and decodes
    every field for each name asked.

    >>> head_fields(httpx.Response(200, headers=[("Content-Type", "text/event-stream"), ("content-encoding", "gzip"), ("Content-Encoding", "br")]))
    ('text/event-stream', 'gzip, br', '')
    """
    found: dict[bytes, list[bytes]] = {}
    for name, value in response.headers.raw:
        lowered = name.lower()
        if lowered in _HEAD_FIELDS:
            found.setdefault(lowered, []).append(value)
    content_type, content_encoding, content_length = (
        b", ".join(found[name]).decode("utf-8", "replace") if name in found else "" for name in _HEAD_FIELDS
    )
    return content_type, content_encoding, content_length


# ---- Retry-After ----


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or an HTTP date), at most RETRY_AFTER_CAP.

    Negative, non-finite or unparsable values are ignored (None); a date in the past means now (0.0).

    >>> [retry_after_seconds(v, now=0.0) for v in ("7", " 2.5 ", "0", "600", "-3", "soon", "", None, "nan")]
    [7.0, 2.5, 0.0, 60.0, None, None, None, None, None]
    >>> retry_after_seconds("Thu, 01 Jan 1970 00:00:30 GMT", now=0.0), retry_after_seconds("Thu, 01 Jan 1970 00:00:30 GMT", now=100.0)
    (30.0, 0.0)
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        until = _seconds_until(text, time.time() if now is None else now)
        if until is None:
            return None
        seconds = max(until, 0.0)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, RETRY_AFTER_CAP)


def _seconds_until(date: str, now: float) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by RFC 5322
        import datetime

        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp() - now


# ---- the one mapping from transport exceptions to error classes ----


def os_reason(exc: BaseException) -> str:
    """The operating system's words for a network failure (``connection refused``), else the exception's.

    httpx and anyio wrap the OSError that says what happened; the innermost one with an errno wins.
    A TLS failure is said in TLS words (``certificate verify failed: ...``), a DNS failure in the
    resolver's (its codes are not errno values: -2 is not "unknown error -2").

    >>> os_reason(httpx.ConnectError("x")), os_reason(ConnectionRefusedError(111, "Connection refused"))
    ('x', 'connection refused')
    >>> os_reason(socket.gaierror(-2, "Name or service not known"))
    'name or service not known'
    """
    found, seen = None, 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if isinstance(current, ssl.SSLError):
            if isinstance(current, ssl.SSLCertVerificationError) and current.verify_message:
                return f"certificate verify failed: {current.verify_message}"
            reason = getattr(current, "reason", None)  # set by the ssl module, absent on one made by hand
            return reason.replace("_", " ").lower() if isinstance(reason, str) and reason else str(current)
        if isinstance(current, OSError) and current.errno is not None:
            found = current
        current, seen = current.__cause__ or current.__context__, seen + 1
    if found is not None:
        if isinstance(found, socket.gaierror) and found.strerror:  # resolver codes are not errno values
            return found.strerror.lower()
        return os.strerror(found.errno).lower() if found.errno else str(found)
    return str(exc) or type(exc).__name__


Phase = Literal["before_answer", "mid_answer"]  # before the answer's head arrived, or after


class TransportRule(NamedTuple):
    """One row of the mapping: an exception of ``kinds`` in ``phase`` (None: either) is ``error_class``.

    ``message`` and ``hint`` are ``str.format`` templates: ``{detail}`` (the OS's
    or TLS's reason for a network failure, else the exception's text),
    ``{type}`` (the exception's type name), ``{connect}`` and ``{read}`` (the
    policy's timeouts), ``{keys}`` (``models.providers.<id>``). ``when``, if
    set, must also hold for the exception. With no ``hint``, the class's
    general hint (``backends.classify.hint_for``) applies.
    """

    rule: str
    kinds: tuple[type[BaseException], ...]
    phase: Phase | None
    error_class: ErrorClass
    message: str
    hint: str | None = None
    when: Callable[[BaseException], bool] | None = None


def _certificate_rejected(exc: BaseException) -> bool:
    """The server's certificate was not trusted (the exception or one it wraps says so)."""
    current: BaseException | None = exc
    for _ in range(10):
        if current is None:
            return False
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        current = current.__cause__ or current.__context__
    return False


_CONNECT_HINT = "raise {keys}.connectTimeoutSeconds (or timeoutSeconds, which sets connect and read) if the server is just slow to accept"
# A connection that broke, as httpx, our transport, anyio or the OS say it.
_BROKEN = (httpx.ReadError, httpx.WriteError, ConnectionError, anyio.BrokenResourceError, anyio.ClosedResourceError)

# The one mapping from a failure below HTTP to a class, first matching row wins.
# Rules: a deadline is a timeout, whatever timed out; no connection, or one that
# broke before the answer's head, is unreachable (the server is away: retried,
# as a write failure or a read timeout there are); a connection that breaks once
# the answer began, or an answer that is not HTTP, is protocol; a request that
# cannot be sent as HTTP is format; only our transport's words are quoted for a
# refused request (another transport's may quote a header value, a key).
TRANSPORT_RULES: tuple[TransportRule, ...] = (
    TransportRule(
        "connect-timeout",
        (httpx.ConnectTimeout,),
        None,
        ErrorClass.TIMEOUT,
        "no connection within {connect:g} s (connectTimeoutSeconds)",
        _CONNECT_HINT,
    ),
    TransportRule(
        "pool-timeout",
        (httpx.PoolTimeout,),
        None,
        ErrorClass.TIMEOUT,
        "no free connection within {connect:g} s (connectTimeoutSeconds)",
        _CONNECT_HINT,
    ),
    TransportRule(
        "read-timeout",
        (httpx.TimeoutException, TimeoutError),
        None,
        ErrorClass.TIMEOUT,
        "no data from the server for {read:g} s (readTimeoutSeconds)",
        "raise {keys}.readTimeoutSeconds (or timeoutSeconds, which sets connect and read) if the server is just slow",
    ),
    TransportRule(
        "proxy",
        (httpx.ProxyError,),
        None,
        ErrorClass.UNREACHABLE,
        "the proxy failed: {detail}",
        "check HTTP_PROXY/HTTPS_PROXY/ALL_PROXY, or add the server's host to NO_PROXY",
    ),
    TransportRule(
        "certificate-not-trusted",
        (httpx.ConnectError, ssl.SSLError),
        "before_answer",
        ErrorClass.UNREACHABLE,
        "cannot connect: {detail}",
        "trust the server's CA with {keys}.tls.caFile (or SSL_CERT_FILE)",
        when=_certificate_rejected,
    ),
    TransportRule(
        "cannot-connect",
        (httpx.ConnectError, ConnectionRefusedError, socket.gaierror, ssl.SSLError),
        "before_answer",
        ErrorClass.UNREACHABLE,
        "cannot connect: {detail}",
    ),
    TransportRule("refused-request", (RefusedRequestError,), None, ErrorClass.FORMAT, "{detail}"),
    TransportRule(
        "invalid-request",
        (httpx.LocalProtocolError,),
        None,
        ErrorClass.FORMAT,
        "the request cannot be sent as HTTP/1.1 (a header name or value is not valid)",
    ),
    TransportRule("protocol-limit", (ProtocolLimitError,), None, ErrorClass.PROTOCOL, "{detail}"),
    TransportRule("not-http", (httpx.RemoteProtocolError,), "before_answer", ErrorClass.PROTOCOL, "no HTTP answer: {detail}"),
    TransportRule(
        "closed-before-answer",
        _BROKEN,
        "before_answer",
        ErrorClass.UNREACHABLE,
        "the connection closed before an answer: {detail}",
        "the server took the connection and dropped it without answering: check its log (a crash, a restart) or a proxy on the way",
    ),
    TransportRule(
        "broke-mid-answer",
        (httpx.RemoteProtocolError, ssl.SSLError, *_BROKEN),
        "mid_answer",
        ErrorClass.PROTOCOL,
        "the connection broke mid-answer: {detail}",
    ),
    TransportRule(
        "unsupported-url",
        (httpx.UnsupportedProtocol,),
        None,
        ErrorClass.FORMAT,
        "cannot send to this URL: {detail}",
        "{keys}.baseUrl must start with http:// or https://",
    ),
    TransportRule("network", (httpx.NetworkError, OSError), None, ErrorClass.UNREACHABLE, "network error: {detail}"),
    TransportRule("other-httpx", (httpx.HTTPError,), None, ErrorClass.PROTOCOL, "{type}: {detail}"),
    # Any other exception (a custom transport's own): its type only, its text may hold anything.
    TransportRule("other", (Exception,), None, ErrorClass.PROTOCOL, "the request failed: {type}"),
)

_NETWORK_FAILURES = (httpx.NetworkError, httpx.ProxyError, OSError, anyio.BrokenResourceError, anyio.ClosedResourceError)


def transport_rule(exc: BaseException, phase: Phase) -> TransportRule:
    """The first row of ``TRANSPORT_RULES`` that ``exc`` in ``phase`` matches (the last row matches any Exception).

    >>> transport_rule(httpx.ReadError("reset"), "before_answer").rule, transport_rule(httpx.ReadError("reset"), "mid_answer").rule
    ('closed-before-answer', 'broke-mid-answer')
    """
    for rule in TRANSPORT_RULES:
        if isinstance(exc, rule.kinds) and rule.phase in (None, phase) and (rule.when is None or rule.when(exc)):
            return rule
    return TRANSPORT_RULES[-1]


def transport_error(exc: BaseException, exchange: Exchange) -> ProviderError:
    """A failure below HTTP, classified by ``TRANSPORT_RULES``: for chat requests, discovery and probes alike.

    The phase is ``mid_answer`` once the answer's head arrived (``exchange.status``
    is set). The error carries no status even then: the answer itself is what failed.
    """
    if isinstance(exc, DeadlineExceeded):  # the transport kept the exchange's own deadline: it is the total timeout
        return exchange.total_timeout_error()
    phase: Phase = "before_answer" if exchange.status is None else "mid_answer"
    rule = transport_rule(exc, phase)
    policy, where = exchange.policy, exchange.hints
    detail = os_reason(exc) if isinstance(exc, _NETWORK_FAILURES) else (str(exc) or type(exc).__name__)
    fields = {
        "detail": detail,
        "type": type(exc).__name__,
        "connect": policy.connect_timeout,
        "read": policy.read_timeout,
        "keys": f"models.providers.{where.provider}",
    }
    message = rule.message.format(**fields)
    hint = rule.hint.format(**fields) if rule.hint is not None else hint_for(rule.error_class, message, where)
    return ProviderError(rule.error_class, message, url=exchange.url, ref=exchange.ref, hint=hint, secrets=where.secrets)
