"""Rules of ``backends.transport`` that the review of the protocol read path found unpinned.

- A request written on a TLS connection is done once the kernel has it: its write never waits for the
  next response (asyncio's TLS transport pauses writing at ``buffered >= high``, so a high mark of 0
  paused it after every even number of TLS reads, and a slow first byte became a ``WriteTimeout``).
- A TLS connection the server closes logs nothing (``eof_received`` returning True is ignored by a TLS
  transport, which warns about it).
- An idle connection is reused only on the event loop it was made on: a transport lent to several
  private loops (``run_sync`` on a ``Genesis(transport=...)``, one loop per call) never hands a later
  call a connection of a stopped loop.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anyio
import anyio.abc
import httpx
import msgspec
import pytest

from backends.transport import Http11Transport
from pipeline.api import Genesis
from tests.test_transport import RESPONSE, answer_once_then_close, read_request, serve
from tests.tls_certs import self_signed


@pytest.fixture(scope="module")
def tls_contexts(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a self-signed certificate for localhost, and a client context that trusts it."""
    folder = tmp_path_factory.mktemp("tls")
    key, cert = self_signed(folder)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))


async def body_in_two_reads_then_slow(stream: anyio.abc.ByteStream, connections: list[int]) -> None:
    """Each response's body comes in two TLS records; every response after the first starts 1 s late."""
    head, _, body = RESPONSE.partition(b"\r\n\r\n")
    answered = 0
    while True:
        await read_request(stream)
        if answered:
            await anyio.sleep(1.0)  # a slow first byte, as a server's prefill is
        answered += 1
        await stream.send(head + b"\r\n\r\n" + body[:1])
        await anyio.sleep(0.05)
        await stream.send(body[1:])


@pytest.mark.anyio
async def test_a_tls_write_does_not_wait_for_the_next_response(tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server, client_context = tls_contexts
    async with anyio.create_task_group() as group:
        port, connections = await serve(body_in_two_reads_then_slow, group, tls=server)
        timeout = httpx.Timeout(10.0, write=0.5)  # the write bound is half the second response's wait
        async with httpx.AsyncClient(transport=Http11Transport(ssl_context=client_context), timeout=timeout) as client:
            for _ in range(3):
                assert (await client.get(f"https://localhost:{port}/")).text == "ok"
        assert len(connections) == 1
        group.cancel_scope.cancel()


@pytest.mark.anyio
async def test_a_tls_connection_the_server_closes_logs_nothing(
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext], caplog: pytest.LogCaptureFixture
) -> None:
    server, client_context = tls_contexts
    caplog.set_level(logging.DEBUG)
    async with anyio.create_task_group() as group:
        port, _connections = await serve(answer_once_then_close, group, tls=server)
        async with httpx.AsyncClient(transport=Http11Transport(ssl_context=client_context)) as client:
            for _ in range(2):
                assert (await client.get(f"https://localhost:{port}/")).text == "ok"
                await anyio.sleep(0.1)  # the server's close arrives while the connection is idle
        group.cancel_scope.cancel()
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []


ANSWER = msgspec.json.encode(
    {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
    }
)


class KeepAlive(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # connections stay open between requests

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def keep_alive_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), KeepAlive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("uvloop", ["0", "1"], ids=["asyncio", "uvloop-if-installed"])
def test_sync_calls_on_a_lent_transport_never_reuse_a_stopped_loops_connection(keep_alive_url: str, uvloop: str) -> None:
    provider = {"baseUrl": keep_alive_url, "apiKey": "k", "maxRetries": 0, "models": [{"id": "m"}]}
    text = msgspec.json.encode({"models": {"providers": {"vllm": provider}}}).decode()
    transport = Http11Transport()
    genesis = Genesis.from_config_text(text, env={"GENESIS_UVLOOP": uvloop}, transport=transport)
    hi = {"messages": [{"role": "user", "content": "hi"}], "stream": False}
    assert [genesis.run_sync("vllm/m", hi).text for _ in range(4)] == ["Hello"] * 4
    anyio.run(transport.aclose)  # the idle connection of the last call's loop is let go, not closed on this one
