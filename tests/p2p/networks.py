"""The two Gossip implementations the shared suite runs over, behind one small driver.

A driver makes nodes, waits until they can hear each other on a topic, and drives
delivery until a condition holds: the twin by moving its manual clock, libp2p by
polling with a deadline (never a fixed sleep).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair

from p2p.api import Gossip
from p2p.host import HostConfig, Libp2pGossip
from p2p.memory import InProcessNetwork
from primitives.clock import Clock, ManualClock

NAMES = ["memory", "libp2p"]

WAIT = 30.0
"""Seconds a libp2p condition may take on a loaded 2-core machine before the test fails."""


class Network:
    """Makes members of one network and drives it."""

    def node(self, bootstrap: Sequence[Gossip] = ()) -> Gossip:
        """A new member that connects to ``bootstrap`` (the twin connects everyone)."""
        raise NotImplementedError

    def ready(self, topic: str, nodes: Sequence[Gossip]) -> None:
        """Wait until every node hears its connected peers on ``topic``."""

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        """Deliver until ``condition()`` holds; fail with ``what`` if it never does."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop every member."""


class MemoryNetwork(Network):
    def __init__(self) -> None:
        self.clock = ManualClock()
        self.network = InProcessNetwork(self.clock, lambda _s, _r, _t: 0.01)
        self._count = 0

    def node(self, bootstrap: Sequence[Gossip] = ()) -> Gossip:
        self._count += 1
        return self.network.join(f"n{self._count}")

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        while not condition():
            due = self.network.next_due()
            assert due is not None, f"nothing left in flight, and still not: {what}"
            self.clock.set(due)
            self.network.deliver_due()


class Libp2pNetwork(Network):
    def __init__(self) -> None:
        self.hosts: list[Libp2pGossip] = []

    def node(self, bootstrap: Sequence[Gossip] = (), identity: KeyPair | None = None,
             listen: str = "/ip4/127.0.0.1/tcp/0", clock: Clock | None = None) -> Libp2pGossip:
        addrs = tuple(addr for peer in bootstrap for addr in _host(peer).addrs)
        config = HostConfig(listen=(listen,), bootstrap=addrs, reconnect_interval=0.2)
        host = Libp2pGossip(identity or create_new_key_pair(), config, clock)
        self.hosts.append(host)
        host.start()
        return host

    def ready(self, topic: str, nodes: Sequence[Gossip]) -> None:
        def meshed() -> bool:
            return all(
                set(_host(node).peers()) <= set(_host(node).mesh_peers(topic)) and node.peers()
                for node in nodes
            )

        self.wait_for(meshed, f"a gossipsub mesh on {topic}")

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
            time.sleep(0.02)

    def close(self) -> None:
        for host in self.hosts:
            host.stop()


def _host(node: Gossip) -> Libp2pGossip:
    assert isinstance(node, Libp2pGossip)
    return node
