"""The p2p seam: topic gossip with gate validation, and request/response between peers.

Implementations: the libp2p host (production) and the in-process twin in
p2p/memory.py (deterministic multi-node tests). One test suite runs over both.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Protocol

from p2p.types import PeerId, Validation

GateValidator = Callable[[PeerId, bytes], Validation | Future[Validation]]
"""Checks a message at the gate, before delivery and forwarding; ``PeerId`` is the peer that
delivered it (whom a REJECT penalizes). Must not block: a gate with heavy work returns a
future of its verdict (p2p/checks.py), and the message waits for it, not delivered or
forwarded before."""

MessageHandler = Callable[[PeerId, bytes], None]
"""Receives an accepted message; ``PeerId`` is the peer that published it."""

RequestHandler = Callable[[PeerId, bytes], bytes]
"""Answers one request; raising primitives.errors.InvalidInput answers with an error."""


class Gossip(Protocol):
    """This node's membership in the validator network.

    Handlers and gate validators may be called from a network thread: they must be
    thread-safe and quick (hand heavy work to the node's own loop).
    """

    @property
    def peer_id(self) -> PeerId:
        """This node's identity on the network."""
        ...

    def subscribe(self, topic: str, validator: GateValidator, handler: MessageHandler) -> None:
        """Receive ``topic``: each message passes ``validator``; ACCEPTed ones reach ``handler``
        and are forwarded. A peer whose messages are REJECTed again and again is banned.

        A node does not receive its own publications.
        """
        ...

    def publish(self, topic: str, data: bytes) -> None:
        """Send ``data`` to every subscriber of ``topic``; returns without waiting for delivery."""
        ...

    def peers(self) -> tuple[PeerId, ...]:
        """Peers connected now."""
        ...

    def serve(self, protocol: str, handler: RequestHandler) -> None:
        """Answer requests for ``protocol`` with ``handler``."""
        ...

    def request(self, peer: PeerId, protocol: str, data: bytes, timeout: float) -> bytes:
        """Ask ``peer`` and wait for its answer (blocking; never call it from a handler).

        Raises primitives.errors.RetryLater when the peer is unreachable, does not answer
        within ``timeout`` seconds, or answers with an error.
        """
        ...
