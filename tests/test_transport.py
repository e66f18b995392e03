"""The HTTP/1.1 transport: connection reuse, stale keep-alive connections, TLS, errors.

Each test runs its own tiny server on 127.0.0.1 inside the test's event loop
(anyio listeners), on asyncio and on trio.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest

from backends.transport import Http11Transport
from tests.tls_certs import self_signed

pytestmark = pytest.mark.anyio

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


async def read_request(stream: anyio.abc.ByteStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive()
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)
    while len(rest) < length:
        rest += await stream.receive()
    return head


Handler = Callable[[anyio.abc.ByteStream, list[int]], Awaitable[None]]


async def serve(handler: Handler, task_group: anyio.abc.TaskGroup, *, tls: ssl.SSLContext | None = None) -> tuple[int, list[int]]:
    listener: Any = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    if tls is not None:
        from anyio.streams.tls import TLSListener

        listener = TLSListener(listener, tls, standard_compatible=False)
    connections: list[int] = []

    async def accept(stream: anyio.abc.ByteStream) -> None:
        connections.append(1)
        async with stream:
            try:
                await handler(stream, connections)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass

    task_group.start_soon(listener.serve, accept)
    return port, connections


async def keep_alive(stream: anyio.abc.ByteStream, connections: list[int]) -> None:
    while True:
        await read_request(stream)
        await stream.send(RESPONSE)


async def answer_once_then_close(stream: anyio.abc.ByteStream, connections: list[int]) -> None:
    await read_request(stream)
    await stream.send(RESPONSE)  # keep-alive implied, but the server closes right after


async def test_connections_are_reused() -> None:
    async with anyio.create_task_group() as group:
        port, connections = await serve(keep_alive, group)
        transport = Http11Transport()
        async with httpx.AsyncClient(transport=transport) as client:
            for _ in range(5):
                assert (await client.get(f"http://127.0.0.1:{port}/")).text == "ok"
        assert len(connections) == 1
        group.cancel_scope.cancel()


async def test_concurrent_requests_open_separate_connections_then_reuse_them() -> None:
    async with anyio.create_task_group() as group:
        port, connections = await serve(keep_alive, group)
        async with httpx.AsyncClient(transport=Http11Transport()) as client:
            for _ in range(2):
                async with anyio.create_task_group() as requests:
                    for _ in range(20):
                        requests.start_soon(client.get, f"http://127.0.0.1:{port}/")
        assert len(connections) == 20
        group.cancel_scope.cancel()


async def test_a_connection_the_server_closed_is_not_reused() -> None:
    async with anyio.create_task_group() as group:
        port, connections = await serve(answer_once_then_close, group)
        async with httpx.AsyncClient(transport=Http11Transport()) as client:
            assert (await client.get(f"http://127.0.0.1:{port}/")).text == "ok"
            await anyio.sleep(0.05)
            assert (await client.get(f"http://127.0.0.1:{port}/")).text == "ok"
        assert len(connections) == 2
        group.cancel_scope.cancel()


async def test_closed_between_check_and_send_is_retried_once() -> None:
    async def close_after_first(stream: anyio.abc.ByteStream, connections: list[int]) -> None:
        await read_request(stream)
        await stream.send(RESPONSE)
        if len(connections) == 1:
            await read_request(stream)  # take the second request, then hang up without answering

    async with anyio.create_task_group() as group:
        port, connections = await serve(close_after_first, group)
        async with httpx.AsyncClient(transport=Http11Transport()) as client:
            assert (await client.get(f"http://127.0.0.1:{port}/")).text == "ok"
            assert (await client.get(f"http://127.0.0.1:{port}/")).text == "ok"
        assert len(connections) == 2
        group.cancel_scope.cancel()


async def test_refused_connection_is_a_connect_error_with_the_os_reason() -> None:
    async with httpx.AsyncClient(transport=Http11Transport()) as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.get("http://127.0.0.1:9/")
    from backends.http import os_reason

    assert os_reason(caught.value) == "connection refused"


async def test_read_timeout() -> None:
    async def silent(stream: anyio.abc.ByteStream, connections: list[int]) -> None:
        await read_request(stream)
        await anyio.sleep(10)

    async with anyio.create_task_group() as group:
        port, _ = await serve(silent, group)
        async with httpx.AsyncClient(transport=Http11Transport(), timeout=0.2) as client:
            with anyio.fail_after(5), pytest.raises(httpx.ReadTimeout):
                await client.get(f"http://127.0.0.1:{port}/")
        group.cancel_scope.cancel()


async def test_tls(tmp_path: Path) -> None:
    key, cert = self_signed(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    async with anyio.create_task_group() as group:
        port, connections = await serve(keep_alive, group, tls=server_context)
        async with httpx.AsyncClient(transport=Http11Transport(ssl_context=client_context)) as client:
            assert (await client.get(f"https://localhost:{port}/")).text == "ok"
            assert (await client.get(f"https://localhost:{port}/")).text == "ok"
        assert len(connections) == 1
        group.cancel_scope.cancel()


# ---- reuse after an early stop, fd numbers past 1024, informational floods, refused headers ----


def chunked(*pieces: bytes, end: bool = True) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body + (b"0\r\n\r\n" if end else b"")


EARLY_STOP = [
    # (what the server sends for each request, reused after the client stops reading at the first piece)
    (chunked(b"first"), True),  # the rest, up to the 0-chunk, is already buffered: the body really ended
    (chunked(b"first", b"second"), False),  # unread body bytes
    (chunked(b"first", end=False), False),  # the end has not come
]


@pytest.mark.parametrize(("answer", "reused"), EARLY_STOP)
async def test_a_connection_is_reused_after_an_early_stop_only_if_its_body_had_ended(answer: bytes, reused: bool) -> None:
    async def serve_answer(stream: anyio.abc.ByteStream, connections: list[int]) -> None:
        while True:
            await read_request(stream)
            await stream.send(answer)

    async with anyio.create_task_group() as group:
        port, connections = await serve(serve_answer, group)
        async with httpx.AsyncClient(transport=Http11Transport()) as client:
            for _ in range(2):
                async with client.stream("GET", f"http://127.0.0.1:{port}/") as response:
                    async for piece in response.aiter_raw():
                        assert piece == b"first"
                        break
                await anyio.sleep(0.05)
        assert len(connections) == (1 if reused else 2)
        group.cancel_scope.cancel()


async def test_reuse_works_for_socket_numbers_past_1024() -> None:
    """A connection whose socket number is past select()'s 1024 is reused like any other.

    The socket numbers below 1025 are taken by open files first. An earlier test's socket that the
    garbage collector closes meanwhile frees a low number that the next socket takes; such a round
    shows nothing about numbers past 1024, so the gaps are filled again and the round is run again
    (each round still checks the reuse).
    """
    import gc
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1300:
        pytest.skip(f"the hard limit on open files ({hard}) is below 1300")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1300) if hard == resource.RLIM_INFINITY else min(max(soft, 1300), hard), hard))
    fillers: list[int] = []

    def fill_below(limit: int) -> None:
        """Open files until the lowest free socket number is past ``limit``."""
        while True:
            fd = os.open(os.devnull, os.O_RDONLY)
            if fd > limit:
                os.close(fd)
                return
            fillers.append(fd)

    gc.collect()
    try:
        numbers: list[int] = []
        for _ in range(5):
            fill_below(1100)
            async with anyio.create_task_group() as group:
                port, connections = await serve(keep_alive, group)
                transport = Http11Transport()
                async with httpx.AsyncClient(transport=transport) as client:
                    for _ in range(3):
                        assert (await client.get(f"http://127.0.0.1:{port}/")).text == "ok"
                    [[connection]] = transport._idle.values()
                    numbers.append(connection.stream.extra(anyio.abc.SocketAttribute.raw_socket).fileno())
                assert len(connections) == 1
                group.cancel_scope.cancel()
            if numbers[-1] > 1024:
                break
        assert numbers[-1] > 1024, f"the client's socket never got a number past 1024: {numbers}"
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_informational_responses_are_capped() -> None:
    from backends.transport import ProtocolLimitError
    from pipeline.policy import MAX_INFORMATIONAL_RESPONSES

    async def flood(stream: anyio.abc.ByteStream, connections: list[int]) -> None:
        await read_request(stream)
        for _ in range(10 * MAX_INFORMATIONAL_RESPONSES):
            await stream.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        await anyio.sleep(10)

    async def under_the_cap(stream: anyio.abc.ByteStream, connections: list[int]) -> None:
        await read_request(stream)
        await stream.send(b"HTTP/1.1 100 Continue\r\n\r\n" * MAX_INFORMATIONAL_RESPONSES + RESPONSE)

    async with anyio.create_task_group() as group:
        flooding, _ = await serve(flood, group)
        fine, _ = await serve(under_the_cap, group)
        async with httpx.AsyncClient(transport=Http11Transport()) as client:
            with anyio.fail_after(5), pytest.raises(ProtocolLimitError, match=f"more than {MAX_INFORMATIONAL_RESPONSES} informational"):
                await client.get(f"http://127.0.0.1:{flooding}/")
            assert (await client.get(f"http://127.0.0.1:{fine}/")).text == "ok"
        group.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("Authorization", "Bearer sk-secret\n", "'Authorization' has a value with CR, LF or NUL"),
        ("Authorization", "Bearer sk-secret\r\nX-Evil: 1", "'Authorization' has a value with CR, LF or NUL"),
        ("X-Key", "sk-secret\x00", "'X-Key' has a value with CR, LF or NUL"),
        ("X Bad Name", "sk-secret", "a header name or value is not valid"),  # h11's own refusal, its message not echoed
    ],
)
async def test_refused_headers_never_echo_the_value(name: str, value: str, said: str) -> None:
    from backends.transport import RefusedRequestError

    async with anyio.create_task_group() as group:
        port, connections = await serve(keep_alive, group)
        async with httpx.AsyncClient(transport=Http11Transport()) as client:
            with pytest.raises(RefusedRequestError) as caught:
                await client.get(f"http://127.0.0.1:{port}/", headers={name: value})
        error = caught.value
        assert said in str(error) and "sk-secret" not in str(error)
        assert error.__context__ is None and error.__cause__ is None  # h11's message, which quotes the value, is not chained
        assert connections == []  # nothing was sent
        group.cancel_scope.cancel()


async def test_a_reset_after_part_of_the_head_never_sends_the_request_twice() -> None:
    """Rule: once any byte of the response has come, the request is never sent again, even on a
    reused connection (the server may have acted on it: a second POST would run the prompt twice)."""
    import socket
    import struct

    async def reset_inside_the_second_head(stream: anyio.abc.ByteStream, connections: list[int]) -> None:
        await read_request(stream)
        await stream.send(RESPONSE)
        if len(connections) == 1:
            await read_request(stream)
            await stream.send(b"HTTP/1.1 200 OK\r\nContent-")
            await anyio.sleep(0.2)  # the client reads these bytes before the reset comes
            raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset

    async with anyio.create_task_group() as group:
        port, connections = await serve(reset_inside_the_second_head, group)
        async with httpx.AsyncClient(transport=Http11Transport()) as client:
            assert (await client.post(f"http://127.0.0.1:{port}/", content=b"{}")).text == "ok"
            with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
                await client.post(f"http://127.0.0.1:{port}/", content=b"{}")
        assert len(connections) == 1
        group.cancel_scope.cancel()


async def test_a_second_response_in_the_same_read_leaves_the_first_ones_head_alone() -> None:
    """Rule: what comes after the complete response (a second response to one request) never
    changes that response's status line or headers, and the connection is not reused."""
    second = b"HTTP/1.1 404 Not Found\r\nContent-Type: application/x-other\r\nContent-Length: 0\r\n\r\n"

    async def two_answers_at_once(stream: anyio.abc.ByteStream, connections: list[int]) -> None:
        while True:
            await read_request(stream)
            await stream.send(RESPONSE + second)

    async with anyio.create_task_group() as group:
        port, connections = await serve(two_answers_at_once, group)
        async with httpx.AsyncClient(transport=Http11Transport()) as client:
            for _ in range(2):
                answer = await client.get(f"http://127.0.0.1:{port}/")
                assert (answer.status_code, answer.headers["content-type"], answer.text) == (200, "text/plain", "ok")
        assert len(connections) == 2
        group.cancel_scope.cancel()
