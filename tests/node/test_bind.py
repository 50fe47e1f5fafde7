"""A port that is taken is retried with backoff for a bounded time, then one clear error."""

from __future__ import annotations

import socket

import pytest

from node.run import RPC_BACKLOG
from node.startup import PortInUse, bind_tcp, retry_bind
from primitives.errors import InvalidInput, RetryLater
from tests.nodeproc import free_port


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def in_use(port: int) -> str:
    return (f"JSON-RPC port {port} on 127.0.0.1 is in use (another l2node or program holds "
            "it): stop it or choose another port")


def test_a_taken_port_is_retried_until_it_is_free() -> None:
    fake = FakeTime()
    port = free_port()
    with socket.create_server(("127.0.0.1", port)) as holder:
        attempts = 0

        def bind() -> socket.socket:
            nonlocal attempts
            attempts += 1
            if attempts == 4:
                holder.close()  # released by its owner meanwhile
            return bind_tcp("JSON-RPC", "127.0.0.1", port, RPC_BACKLOG)

        with retry_bind("JSON-RPC", bind, 30, sleep=fake.sleep, clock=lambda: fake.now) as bound:
            assert bound.getsockname() == ("127.0.0.1", port)
    assert fake.pauses == [0.1, 0.2, 0.5]


def test_a_port_taken_for_good_ends_with_one_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeTime()
    port = free_port()
    with socket.create_server(("127.0.0.1", port)), pytest.raises(InvalidInput) as raised:
        retry_bind("JSON-RPC", lambda: bind_tcp("JSON-RPC", "127.0.0.1", port),
                   30, sleep=fake.sleep, clock=lambda: fake.now)
    # The operator's line, as when nothing is retried: the CLI exits 2 with it.
    assert str(raised.value) == in_use(port)
    assert not isinstance(raised.value, PortInUse)
    assert 28 <= fake.now <= 30
    assert fake.pauses[:5] == [0.1, 0.2, 0.5, 1.0, 2.0] and set(fake.pauses[5:]) == {2.0}
    warnings = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert warnings == [f"{in_use(port)}; retrying for up to 30 s"]


def test_no_retry_time_fails_at_once() -> None:
    fake = FakeTime()
    port = free_port()
    with socket.create_server(("127.0.0.1", port)), pytest.raises(InvalidInput, match="in use"):
        retry_bind("JSON-RPC", lambda: bind_tcp("JSON-RPC", "127.0.0.1", port),
                   0, sleep=fake.sleep, clock=lambda: fake.now)
    assert fake.pauses == []


def test_a_host_that_cannot_start_yet_is_retried_and_named() -> None:
    fake = FakeTime()

    def start() -> None:
        raise RetryLater("could not listen on every one of ('/ip4/127.0.0.1/tcp/1',)")

    with pytest.raises(InvalidInput) as raised:
        retry_bind("libp2p", start, 1, sleep=fake.sleep, clock=lambda: fake.now)
    assert str(raised.value) == (
        "libp2p: could not listen on every one of ('/ip4/127.0.0.1/tcp/1',)"
    )
    assert fake.pauses == [0.1, 0.2, 0.5]


def test_a_bad_address_is_not_retried() -> None:
    fake = FakeTime()
    with pytest.raises(InvalidInput, match="cannot listen on 203.0.113.1"):
        retry_bind("JSON-RPC", lambda: bind_tcp("JSON-RPC", "203.0.113.1", free_port()), 30,
                   sleep=fake.sleep, clock=lambda: fake.now)
    assert fake.pauses == []


def test_connections_to_a_bound_port_send_without_delay() -> None:
    """asyncio (under uvicorn) turns Nagle off on the connections it accepts on our socket:
    else an answer written in two parts on a keep-alive connection waits out the caller's
    delayed ACK, 40 ms a request."""
    import asyncio

    async def accepted_nodelay() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Accepting(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        listening = bind_tcp("JSON-RPC", "127.0.0.1", free_port())
        server = await asyncio.get_running_loop().create_server(Accepting, sock=listening)
        async with server:
            _, writer = await asyncio.open_connection(*listening.getsockname())
            try:
                return await asyncio.wait_for(seen, 10)
            finally:
                writer.close()

    assert asyncio.run(accepted_nodelay()) != 0
