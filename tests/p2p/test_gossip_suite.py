"""One suite over both Gossip implementations: the in-process twin and real libp2p hosts.

Negative checks ("a REJECTed message is not delivered") publish the bad message and then
a good one from the same node, and wait for the good one: one publisher's messages to
one peer travel in order, so the bad one would have arrived first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from p2p.api import Gossip
from p2p.topics import MAX_MESSAGE, MAX_RESPONSE
from p2p.types import PeerId, Validation
from primitives.errors import InvalidInput, RetryLater
from tests.p2p.networks import NAMES, Libp2pNetwork, MemoryNetwork, Network

TOPIC = "test/1"


@pytest.fixture(params=NAMES)
def net(request: pytest.FixtureRequest) -> Iterator[Network]:
    network: Network = MemoryNetwork() if request.param == "memory" else Libp2pNetwork()
    yield network
    network.close()


@dataclass
class Inbox:
    """A subscriber that ACCEPTs messages starting with b"ok", REJECTs b"bad", IGNOREs the rest."""

    received: list[tuple[PeerId, bytes]] = field(default_factory=list)
    checked: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def gate(self, _peer: PeerId, data: bytes) -> Validation:
        with self.lock:
            self.checked.append(data)
        if data.startswith(b"ok"):
            return Validation.ACCEPT
        return Validation.REJECT if data.startswith(b"bad") else Validation.IGNORE

    def handle(self, peer: PeerId, data: bytes) -> None:
        with self.lock:
            self.received.append((peer, data))

    def data(self) -> list[bytes]:
        with self.lock:
            return [data for _, data in self.received]

    def join(self, node: Gossip) -> Inbox:
        node.subscribe(TOPIC, self.gate, self.handle)
        return self


def pair(net: Network) -> tuple[Gossip, Gossip, Inbox, Inbox]:
    a = net.node()
    b = net.node([a])
    inbox_a, inbox_b = Inbox().join(a), Inbox().join(b)
    net.ready(TOPIC, [a, b])
    return a, b, inbox_a, inbox_b


def test_publish_reaches_subscriber_with_publisher_id_and_not_self(net: Network) -> None:
    a, b, inbox_a, inbox_b = pair(net)
    a.publish(TOPIC, b"ok hello")
    net.wait_for(lambda: len(inbox_b.received) == 1, "b receives")
    assert inbox_b.received == [(a.peer_id, b"ok hello")]
    b.publish(TOPIC, b"ok back")
    net.wait_for(lambda: len(inbox_a.received) == 1, "a receives")
    assert inbox_a.data() == [b"ok back"]
    assert inbox_b.data() == [b"ok hello"]  # no self-delivery


def test_gate_reject_and_ignore_are_not_delivered(net: Network) -> None:
    a, _, _, inbox_b = pair(net)
    for data in (b"bad one", b"meh", b"ok sentinel"):
        a.publish(TOPIC, data)
    net.wait_for(lambda: b"ok sentinel" in inbox_b.data(), "the sentinel arrives")
    assert inbox_b.data() == [b"ok sentinel"]
    assert inbox_b.checked == [b"bad one", b"meh", b"ok sentinel"]


def test_peers_lists_connected_nodes(net: Network) -> None:
    a = net.node()
    b = net.node([a])
    net.wait_for(lambda: a.peers() == (b.peer_id,) and b.peers() == (a.peer_id,), "peers")
    assert a.peer_id != b.peer_id


def test_request_response(net: Network) -> None:
    a = net.node()
    b = net.node([a])
    net.wait_for(lambda: b.peer_id in a.peers(), "connected")
    asked: list[PeerId] = []

    def reverse(peer: PeerId, data: bytes) -> bytes:
        asked.append(peer)
        if data == b"refuse":
            raise InvalidInput("refused on purpose")
        return data[::-1]

    b.serve("test/rev/1", reverse)
    b.serve("test/huge/1", lambda _peer, _data: b"x" * (MAX_RESPONSE + 1))
    assert a.request(b.peer_id, "test/rev/1", b"abc", timeout=10) == b"cba"
    assert asked == [a.peer_id]
    assert a.request(b.peer_id, "test/rev/1", b"", timeout=10) == b""
    with pytest.raises(RetryLater, match="refused on purpose"):
        a.request(b.peer_id, "test/rev/1", b"refuse", timeout=10)
    with pytest.raises(RetryLater):
        a.request(b.peer_id, "test/unknown/1", b"abc", timeout=10)
    with pytest.raises(RetryLater):
        a.request(b.peer_id, "test/huge/1", b"abc", timeout=10)
    assert a.request(b.peer_id, "test/rev/1", b"still fine", timeout=10) == b"enif llits"


def test_oversized_publication_is_refused(net: Network) -> None:
    a = net.node()
    with pytest.raises(InvalidInput):
        a.publish(TOPIC, b"x" * (MAX_MESSAGE + 1))


def test_burst_of_2000_messages_all_arrive(net: Network, capsys: pytest.CaptureFixture[str]) -> None:
    a, _, _, inbox_b = pair(net)
    count = 2000
    started = time.perf_counter()
    for i in range(count):
        a.publish(TOPIC, b"ok %d" % i)
    net.wait_for(lambda: len(inbox_b.received) == count, f"{count} messages arrive", timeout=90)
    elapsed = time.perf_counter() - started
    assert inbox_b.data() == [b"ok %d" % i for i in range(count)]
    with capsys.disabled():
        print(f"\nburst over {type(net).__name__}: {count} messages in {elapsed:.2f} s "
              f"({count / elapsed:.0f} msg/s)")
