"""The HTTP side of the server, over real sockets: header size and time, idle connections,
and the connection cap."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from rpc.http import server_config
from rpc.server import create_app
from rpc.types import RpcLimits
from tests.nodeproc import free_port
from tests.rpc.twin import build_chain

LIMITS = RpcLimits(header_timeout=0.5, idle_timeout=0.5)
CAP = 4


@pytest.fixture
def port() -> Iterator[int]:
    port = free_port()
    app = create_app(build_chain(), LIMITS)
    server = uvicorn.Server(server_config(
        app, "127.0.0.1", port, LIMITS, CAP, log_level="warning", lifespan="off"
    ))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.01)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def closed_within(sock: socket.socket, seconds: float) -> bytes:
    """What the server wrote before it closed ``sock``; fails if it stays open longer."""
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"still open after {seconds} s")
    return received


def honest(port: int) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}
    assert httpx.post(f"http://127.0.0.1:{port}/", json=body, timeout=5).json()["result"]


def slow(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    return sock


def test_headers_that_never_end_are_cut_off(port: int) -> None:
    start = time.monotonic()
    with slow(port) as sock:
        assert closed_within(sock, 3) == b""
    assert 0.4 < time.monotonic() - start < 2
    with socket.create_connection(("127.0.0.1", port)) as silent:  # not a byte sent
        assert closed_within(silent, 3) == b""
    honest(port)


def test_headers_too_large_are_refused(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(100):
                sock.sendall(b"X-Big: " + b"a" * 4000 + b"\r\n")
        except OSError:  # closed while we were still sending
            pass
        assert closed_within(sock, 3).startswith(b"HTTP/1.1 431")


def test_idle_keep_alive_connections_are_closed(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        body = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}'
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        start = time.monotonic()
        assert b'"result"' in closed_within(sock, 3)
        assert time.monotonic() - start > 0.4


def test_over_the_cap_the_oldest_waiting_connection_makes_room(port: int) -> None:
    waiting = [slow(port) for _ in range(CAP)]
    time.sleep(0.3)  # past the eviction grace, within the header timeout
    honest(port)  # its connection closes the oldest slow one
    assert closed_within(waiting[0], 0.2) == b""
    # Twice the cap of young connections: the next one is refused at once.
    crowd = [slow(port) for _ in range(2 * CAP)]
    with socket.create_connection(("127.0.0.1", port)) as refused:
        assert closed_within(refused, 1).startswith(b"HTTP/1.1 503")
    for sock in waiting + crowd:
        sock.close()
