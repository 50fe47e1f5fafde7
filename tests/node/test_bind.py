"""A port that is taken is retried with backoff for a bounded time, then one clear error."""

from __future__ import annotations

import socket

import pytest

from node.run import bind_rpc_socket, retry_bind
from primitives.errors import RetryLater
from tests.nodeproc import free_port


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


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
            return bind_rpc_socket("127.0.0.1", port)

        with retry_bind("JSON-RPC", bind, sleep=fake.sleep, clock=lambda: fake.now) as bound:
            assert bound.getsockname() == ("127.0.0.1", port)
    assert fake.pauses == [0.1, 0.2, 0.5]


def test_a_port_taken_for_good_ends_with_one_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeTime()
    port = free_port()
    with socket.create_server(("127.0.0.1", port)), pytest.raises(RetryLater) as raised:
        retry_bind("JSON-RPC", lambda: bind_rpc_socket("127.0.0.1", port),
                   give_up_after=30, sleep=fake.sleep, clock=lambda: fake.now)
    assert str(raised.value) == (
        f"JSON-RPC: cannot listen on 127.0.0.1:{port}: Address already in use; "
        "still so after 30 s"
    )
    assert 28 <= fake.now <= 30
    assert fake.pauses[:5] == [0.1, 0.2, 0.5, 1.0, 2.0] and set(fake.pauses[5:]) == {2.0}
    assert len([r for r in caplog.records if "retrying" in r.getMessage()]) == 1


def test_a_bad_address_is_not_retried() -> None:
    with pytest.raises(Exception, match="cannot listen on 203.0.113.1"):
        retry_bind("JSON-RPC", lambda: bind_rpc_socket("203.0.113.1", free_port()))
