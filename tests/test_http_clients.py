"""Sending through any httpx transport, proxies from the environment, TLS per provider, discovery's errors.

- ``httpx.MockTransport`` answers every kind of response (SSE, JSON, gzip, 3xx, 4xx, 5xx) through
  ``Genesis(..., transport=...)``, with ``run`` and ``stream``.
- Proxies: HTTP_PROXY/HTTPS_PROXY/ALL_PROXY/NO_PROXY by httpx's rules, against a tiny local forward proxy.
- TLS: a CA made in the test (trustme) for a local TLS server: ``tls.caFile``, ``tls.verify: false``
  (a warning on every use), ``SSL_CERT_FILE``.
- Discovery raises only ProviderError, classified by the same mapping as chat requests.
Runs on asyncio and trio.
"""

from __future__ import annotations

import gzip
import json
import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest

from pipeline.api import Genesis
from pipeline.errors import ProviderError
from pipeline.events import TextDelta

pytestmark = pytest.mark.anyio
STREAM = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
NO_STREAM = {**STREAM, "stream": False}
SSE = (
    b'data: {"choices": [{"delta": {"role": "assistant", "content": "Hello"}}]}\n\n'
    b'data: {"choices": [{"delta": {"content": " world"}}]}\n\n'
    b'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\n'
    b"data: [DONE]\n\n"
)
COMPLETION = {"choices": [{"message": {"role": "assistant", "content": "Hello world"}, "finish_reason": "stop"}]}
SSE_HEADERS = {"content-type": "text/event-stream"}


def mock_config(provider: str = "") -> str:
    """One provider; no retries (``maxRetries: 0``): this file pins what one HTTP exchange gives."""
    if "maxRetries" not in provider:
        provider = f"maxRetries: 0, {provider}"
    return f"""{{ models: {{ providers: {{
        mock: {{ baseUrl: "http://mock.invalid/v1", apiKey: "mock-secret", {provider} models: [{{ id: "m" }}] }},
    }} }} }}"""


def mocked(answer: Callable[[httpx.Request], httpx.Response], provider: str = "") -> Genesis:
    return Genesis.from_config_text(mock_config(provider), env={}, transport=httpx.MockTransport(answer))


async def run(g: Genesis, request: dict[str, Any], model: str = "mock/m") -> Any:
    async with g:
        with anyio.fail_after(10):
            return await g.run(model, request)


async def failure(g: Genesis, request: dict[str, Any] = STREAM, model: str = "mock/m") -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await run(g, request, model)
    return caught.value


# ---- httpx.MockTransport: every kind of response ----


async def sse_pieces() -> Any:
    for line in SSE.split(b"\n\n")[:-1]:
        yield line + b"\n\n"


ANSWERS: list[tuple[str, Callable[[httpx.Request], httpx.Response], dict[str, Any]]] = [
    ("SSE as bytes", lambda r: httpx.Response(200, headers=SSE_HEADERS, content=SSE), STREAM),
    ("SSE as an async iterator", lambda r: httpx.Response(200, headers=SSE_HEADERS, content=sse_pieces()), STREAM),
    ("JSON", lambda r: httpx.Response(200, json=COMPLETION), NO_STREAM),
    ("JSON to a streamed request", lambda r: httpx.Response(200, json=COMPLETION), STREAM),
    (
        "gzip JSON",
        lambda r: httpx.Response(
            200,
            headers={"content-encoding": "gzip", "content-type": "application/json"},
            content=gzip.compress(json.dumps(COMPLETION).encode()),
        ),
        NO_STREAM,
    ),
]


@pytest.mark.parametrize(("answer", "request_"), [(a, r) for _, a, r in ANSWERS], ids=[name for name, _, _ in ANSWERS])
async def test_mock_transport_answers(answer: Callable[[httpx.Request], httpx.Response], request_: dict[str, Any]) -> None:
    completion = await run(mocked(answer), request_)
    assert (completion.text, completion.finish_reason) == ("Hello world", "stop")


async def test_mock_transport_stream() -> None:
    async with mocked(lambda r: httpx.Response(200, headers=SSE_HEADERS, content=SSE)) as g:
        texts = [event.text async for event in g.stream("mock/m", STREAM) if isinstance(event, TextDelta)]
    assert texts == ["Hello", " world"]


async def one_piece(data: bytes) -> Any:
    yield data  # a streamed body: the transport has not read (nor decoded) it


ERRORS = [
    # (answer, class, status, in the message, in the hint)
    (lambda r: httpx.Response(401, json={"error": "Unauthorized"}), "auth", 401, "Unauthorized", "apiKey"),
    (lambda r: httpx.Response(404, json={"error": {"message": "no such model"}}), "model_not_found", 404, "no such model", None),
    (
        lambda r: httpx.Response(422, text="invalid type: sequence, expected a string"),
        "format",
        422,
        "invalid type",
        "requiresStringContent",
    ),
    (lambda r: httpx.Response(503, text="Service Unavailable"), "overloaded", 503, "Service Unavailable", None),
    (
        lambda r: httpx.Response(
            500, headers={"content-encoding": "gzip"}, content=gzip.compress(b'{"error": {"message": "engine died"}}')
        ),
        "overloaded",
        500,
        "engine died",
        None,
    ),
    (
        lambda r: httpx.Response(307, headers={"location": "/api/v1/chat/completions"}),
        "protocol",
        307,
        "redirected (307) to http://mock.invalid/api/v1/chat/completions",
        "baseUrl to http://mock.invalid/api/v1",
    ),
    (
        lambda r: httpx.Response(301, headers={"location": "https://mock.invalid/v1/chat/completions"}),
        "protocol",
        301,
        "redirected (301) to https://mock.invalid/v1/chat/completions",
        "baseUrl to https://mock.invalid/v1",
    ),
    (lambda r: httpx.Response(302), "protocol", 302, "answered 302 (a redirect) without a Location", None),
    (
        lambda r: httpx.Response(200, headers={"content-encoding": "br"}, content=one_piece(b"\x00")),
        "protocol",
        None,
        "unsupported Content-Encoding 'br'",
        None,
    ),
    (
        lambda r: httpx.Response(200, headers={"content-encoding": "gzip"}, content=one_piece(b"not gzip")),
        "protocol",
        None,
        "the gzip body cannot be decoded",
        None,
    ),
]


@pytest.mark.parametrize(("answer", "error_class", "status", "message", "hint"), ERRORS)
@pytest.mark.parametrize("request_", [STREAM, NO_STREAM], ids=["stream", "no-stream"])
async def test_mock_transport_errors(
    answer: Callable[[httpx.Request], httpx.Response],
    error_class: str,
    status: int | None,
    message: str,
    hint: str | None,
    request_: dict[str, Any],
) -> None:
    error = await failure(mocked(answer), request_)
    assert error.error_class == error_class and message in str(error)
    assert status is None or error.status == status
    assert hint is None or (error.hint is not None and hint in error.hint)
    assert "mock-secret" not in str(error) + (error.hint or "")


async def test_the_size_cap_holds_for_bodies_a_transport_already_read() -> None:
    error = await failure(mocked(lambda r: httpx.Response(200, json=COMPLETION), "maxResponseBytes: 50,"), NO_STREAM)
    assert error.error_class == "protocol" and "maxResponseBytes (50 bytes)" in str(error)


RETRY_AFTER = [
    # (Retry-After, retry_after)
    ("7", 7.0),
    ("0", 0.0),
    ("1.5", 1.5),
    ("3600", 60.0),  # capped
    ("-5", None),  # negative: ignored
    ("soon", None),  # garbage: ignored
    ("", None),
    ("Fri, 31 Dec 9999 23:59:59 GMT", 60.0),  # a date far ahead: capped
    ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),  # a date past: now
    (None, None),  # no header
]


@pytest.mark.parametrize(("value", "seconds"), RETRY_AFTER)
@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after(value: str | None, seconds: float | None, status: int) -> None:
    headers = {} if value is None else {"retry-after": value}
    error = await failure(mocked(lambda r: httpx.Response(status, headers=headers, text="slow down")))
    assert error.retry_after == seconds


# ---- one mapping for chat and discovery ----

FAILURES: list[tuple[type[Exception], str]] = [
    (httpx.ConnectError, "unreachable"),
    (httpx.ConnectTimeout, "timeout"),
    (httpx.ReadTimeout, "timeout"),
    (httpx.ReadError, "unreachable"),  # before the answer began (the mock raises at once); mid-answer it is protocol
    (httpx.RemoteProtocolError, "protocol"),
    (httpx.WriteError, "unreachable"),
    (httpx.ProxyError, "unreachable"),
    (httpx.UnsupportedProtocol, "format"),
    (httpx.LocalProtocolError, "format"),
]


def raising(kind: type[Exception]) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        raise kind("mock-secret in a message")

    return answer


@pytest.mark.parametrize(("kind", "error_class"), FAILURES)
async def test_chat_and_discovery_classify_a_failure_alike(kind: type[Exception], error_class: str) -> None:
    from backends.discovery import fetch_models

    chat = await failure(mocked(raising(kind)))
    g = mocked(raising(kind))
    with pytest.raises(ProviderError) as caught:
        await fetch_models(g.client(), g.catalog.providers["mock"])
    await g.aclose()
    assert chat.error_class == caught.value.error_class == error_class
    if kind is httpx.LocalProtocolError:  # another transport's words may quote a header value
        assert "mock-secret" not in str(chat) + str(caught.value)


@pytest.mark.parametrize(
    ("answer", "error_class", "message"),
    [
        (raising(RuntimeError), "protocol", "the request failed: RuntimeError"),
        (raising(ValueError), "protocol", "the request failed: ValueError"),
        (
            lambda r: httpx.Response(308, headers={"location": "https://elsewhere.invalid/v1/models"}),
            "protocol",
            "redirected (308) to https://elsewhere.invalid/v1/models",
        ),
        (lambda r: httpx.Response(200, text="<html>"), "format", "not a model list"),
        (lambda r: httpx.Response(503, headers={"retry-after": "3"}, text="busy"), "overloaded", "busy"),
    ],
)
async def test_discovery_raises_only_provider_errors(
    answer: Callable[[httpx.Request], httpx.Response], error_class: str, message: str
) -> None:
    from backends.discovery import fetch_models

    g = mocked(answer)
    with pytest.raises(ProviderError) as caught:
        await fetch_models(g.client(), g.catalog.providers["mock"])
    await g.aclose()
    assert caught.value.error_class == error_class and message in str(caught.value)
    assert "mock-secret" not in str(caught.value)


async def test_a_failing_discovery_is_a_warning_not_an_exception_group() -> None:
    g = Genesis.from_config_text("{}", env={"VLLM_API_KEY": "k"}, transport=httpx.MockTransport(raising(RuntimeError)))
    warnings: list[str] = []
    g.warn = warnings.append
    async with g:
        await g.discover()
    [warning] = warnings
    assert "discovery of vllm models failed" in warning and "RuntimeError" in warning


# ---- proxies from the environment ----

PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "REQUEST_METHOD",
)


@pytest.fixture
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    "env",
    [
        {"HTTP_PROXY": "http://p:1"},
        {"HTTPS_PROXY": "p:2", "NO_PROXY": "localhost,127.0.0.1,::1,.internal,example.com"},
        {"ALL_PROXY": "http://p:3", "NO_PROXY": "*"},
        {"http_proxy": "http://lower:1", "HTTP_PROXY": "http://upper:1"},
        {"http_proxy": "", "HTTP_PROXY": "http://upper:1"},
        {"HTTP_PROXY": "http://p:1", "REQUEST_METHOD": "GET"},
        {"NO_PROXY": "http://only.this, 10.0.0.0/8"},
    ],
)
def test_proxy_rules_are_httpx_rules(env: dict[str, str], clean_proxy_env: pytest.MonkeyPatch) -> None:
    from httpx._utils import get_environment_proxies

    from backends.http import environment_proxies

    for name, value in env.items():
        clean_proxy_env.setenv(name, value)
    assert environment_proxies(env) == get_environment_proxies()


async def forward_proxy(group: anyio.abc.TaskGroup, seen: list[bytes]) -> int:
    """A plain HTTP forward proxy that answers for the origin itself and records each request line."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")

    async def handle(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive()
            seen.append(data.split(b"\r\n", 1)[0])
            body = json.dumps({"choices": [{"message": {"content": "via proxy"}, "finish_reason": "stop"}]}).encode()
            await stream.send(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )

    group.start_soon(listener.serve, handle)
    return int(listener.extra(anyio.abc.SocketAttribute.local_port))


@pytest.mark.parametrize(
    ("env", "proxied"),
    [
        ({"HTTP_PROXY": "{proxy}"}, True),
        ({"ALL_PROXY": "{proxy}"}, True),
        ({"http_proxy": "{proxy}"}, True),
        ({"HTTP_PROXY": "{proxy}", "NO_PROXY": "localhost"}, False),
        ({"ALL_PROXY": "{proxy}", "NO_PROXY": "127.0.0.1,localhost"}, False),
        ({"HTTPS_PROXY": "{proxy}"}, False),  # an http:// server is not reached through the https proxy
        ({}, False),
    ],
)
async def test_proxies_from_the_environment(
    fault_server: Any, clean_proxy_env: pytest.MonkeyPatch, env: dict[str, str], proxied: bool
) -> None:
    seen: list[bytes] = []
    async with anyio.create_task_group() as group:
        port = await forward_proxy(group, seen)
        for name, value in env.items():
            clean_proxy_env.setenv(name, value.format(proxy=f"http://127.0.0.1:{port}"))
        base = fault_server.base_url.replace("127.0.0.1", "localhost")
        g = Genesis.from_config_text(
            f'{{ models: {{ providers: {{ fault: {{ baseUrl: "{base}", models: [{{ id: "ok" }}] }} }} }} }}'
        )  # env: os.environ, proxies included
        completion = await run(g, NO_STREAM, "fault/ok")
        group.cancel_scope.cancel()
    assert completion.text == ("via proxy" if proxied else "Hello world")
    assert seen == ([f"POST {base}/chat/completions HTTP/1.1".encode()] if proxied else [])


def test_an_unusable_proxy_url_is_skipped_without_echoing_it(clean_proxy_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from backends.http import make_client

    with caplog.at_level(logging.WARNING, logger="genesis"):
        make_client(environ={"HTTP_PROXY": "ftp://user:pw-secret@p:1"})
    assert "ignoring the proxy for http://" in caplog.text and "pw-secret" not in caplog.text


# ---- TLS per provider ----


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    folder = tmp_path_factory.mktemp("tls")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    return ca, folder / "ca.pem"


async def tls_server(group: anyio.abc.TaskGroup, ca: Any) -> tuple[int, list[int]]:
    from anyio.streams.tls import TLSListener

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = int(listener.extra(anyio.abc.SocketAttribute.local_port))
    connections: list[int] = []

    async def handle(stream: anyio.abc.ByteStream) -> None:
        connections.append(1)
        async with stream:
            try:
                while True:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        data += await stream.receive()
                    head, _, rest = data.partition(b"\r\n\r\n")
                    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
                    while len(rest) < length:
                        rest += await stream.receive()
                    body = json.dumps(COMPLETION).encode()
                    await stream.send(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
                    )
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, ssl.SSLError, OSError):
                pass

    group.start_soon(TLSListener(listener, context, standard_compatible=False).serve, handle)
    return port, connections


def tls_config(port: int, **providers: str) -> str:
    blocks = ", ".join(
        f'{name}: {{ baseUrl: "https://localhost:{port}/v1", {tls} models: [{{ id: "m" }}] }}' for name, tls in providers.items()
    )
    return f"{{ models: {{ providers: {{ {blocks} }} }} }}"


async def test_tls_ca_file_verify_off_and_ssl_cert_file(
    certificates: tuple[Any, Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ca, ca_file = certificates
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    async with anyio.create_task_group() as group:
        port, _ = await tls_server(group, ca)
        config = tls_config(
            port,
            trusted=f'tls: {{ caFile: "{ca_file}" }},',
            open="tls: { verify: false },",
            strict="",
            missing='tls: { caFile: "/nonexistent/ca.pem" },',
        )
        async with Genesis.from_config_text(config, env={}) as g:
            with anyio.fail_after(10):
                assert (await g.run("trusted/m", NO_STREAM)).text == "Hello world"
                with caplog.at_level(logging.WARNING, logger="genesis"):
                    for _ in range(2):
                        assert (await g.run("open/m", NO_STREAM)).text == "Hello world"
                # the open provider's pooled connection is never lent to one that verifies
                with pytest.raises(ProviderError) as untrusted:
                    await g.run("strict/m", NO_STREAM)
                with pytest.raises(ProviderError) as missing:
                    await g.run("missing/m", NO_STREAM)
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
        async with Genesis.from_config_text(config, env={}) as g:
            with anyio.fail_after(10):
                assert (await g.run("strict/m", NO_STREAM)).text == "Hello world"
        group.cancel_scope.cancel()
    warnings = [record.getMessage() for record in caplog.records if "verification is OFF" in record.getMessage()]
    assert len(warnings) == 2 and all("models.providers.open.tls.verify: false" in w for w in warnings)
    assert untrusted.value.error_class == "unreachable" and "certificate verify failed" in str(untrusted.value)
    assert untrusted.value.hint is not None and "models.providers.strict.tls.caFile" in untrusted.value.hint
    assert missing.value.error_class == "unreachable" and "/nonexistent/ca.pem" in str(missing.value)
    assert missing.value.hint is not None and "models.providers.missing.tls.caFile" in missing.value.hint
