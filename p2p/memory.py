"""The in-process twin of the p2p seam: many nodes in one process, driven by a manual clock.

Messages are queued with a delivery time (now + latency) and delivered only when the
test calls ``InProcessNetwork.deliver_due``, in (time, send order) order, so a test
decides delay, reordering, loss, crashes and partitions, and replays exactly.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from p2p.api import GateValidator, MessageHandler, RequestHandler
from p2p.topics import MAX_MESSAGE, MAX_REQUEST, MAX_RESPONSE
from p2p.types import PeerId, Validation
from primitives.clock import Clock
from primitives.errors import InvalidInput, RetryLater

Latency = Callable[[PeerId, PeerId, str], float | None]
"""Seconds from ``sender`` to ``receiver`` for a message on ``topic``; None drops the message."""


def no_delay(_sender: PeerId, _receiver: PeerId, _topic: str) -> float | None:
    return 0.0


@dataclass(order=True)
class _InFlight:
    due: float
    seq: int
    receiver: PeerId = field(compare=False)
    sender: PeerId = field(compare=False)
    topic: str = field(compare=False)
    data: bytes = field(compare=False)


class InProcessNetwork:
    """A full mesh of in-process peers with programmable latency, loss and partitions."""

    def __init__(self, clock: Clock, latency: Latency = no_delay) -> None:
        self.clock = clock
        self.latency = latency
        self._members: dict[PeerId, InProcessGossip] = {}
        self._down: set[PeerId] = set()
        self._groups: list[frozenset[PeerId]] | None = None
        self._queue: list[_InFlight] = []
        self._seq = itertools.count()
        self.rejected: list[tuple[PeerId, PeerId, str]] = []
        """(receiver, sender, topic) of every message a gate REJECTed: tests assert on it."""

    def join(self, peer_id: str) -> InProcessGossip:
        """A new member named ``peer_id``."""
        member = InProcessGossip(self, PeerId(peer_id))
        self._members[member.peer_id] = member
        return member

    # -- faults ---------------------------------------------------------------------------

    def crash(self, peer: PeerId) -> None:
        """``peer`` stops sending and receiving; what was in flight to it is lost."""
        self._down.add(peer)
        self._queue = [m for m in self._queue if m.receiver != peer]
        heapq.heapify(self._queue)

    def restart(self, peer: PeerId) -> None:
        """``peer`` is reachable again (its node decides what state it kept)."""
        self._down.discard(peer)

    def partition(self, *groups: Iterable[str]) -> None:
        """Only peers in the same group reach each other until ``heal``; unlisted peers are alone."""
        self._groups = [frozenset(PeerId(p) for p in group) for group in groups]

    def heal(self) -> None:
        self._groups = None

    def reachable(self, sender: PeerId, receiver: PeerId) -> bool:
        if sender in self._down or receiver in self._down:
            return False
        if self._groups is None:
            return True
        return any(sender in group and receiver in group for group in self._groups)

    # -- delivery -------------------------------------------------------------------------

    def _send(self, sender: PeerId, topic: str, data: bytes) -> None:
        for receiver, member in self._members.items():
            if receiver == sender or topic not in member._topics:
                continue
            if not self.reachable(sender, receiver):
                continue
            delay = self.latency(sender, receiver, topic)
            if delay is None:
                continue
            heapq.heappush(
                self._queue,
                _InFlight(self.clock.now() + delay, next(self._seq), receiver, sender, topic, data),
            )

    def next_due(self) -> float | None:
        """When the next queued message arrives, or None when nothing is in flight."""
        return self._queue[0].due if self._queue else None

    def deliver_due(self) -> int:
        """Deliver every message due by now (including ones sent by handlers meanwhile)."""
        delivered = 0
        while self._queue and self._queue[0].due <= self.clock.now():
            message = heapq.heappop(self._queue)
            if not self.reachable(message.sender, message.receiver):
                continue  # the partition or crash happened while it was in flight
            if self._members[message.receiver]._receive(message.sender, message.topic, message.data):
                delivered += 1
        return delivered

    def _request(self, sender: PeerId, peer: PeerId, protocol: str, data: bytes) -> bytes:
        member = self._members.get(peer)
        if member is None or not self.reachable(sender, peer):
            raise RetryLater(f"peer {peer} is unreachable")
        handler = member._services.get(protocol)
        if handler is None:
            raise RetryLater(f"peer {peer} does not serve {protocol}")
        try:
            answer = handler(sender, data)
        except InvalidInput as exc:
            raise RetryLater(f"peer {peer} refused the request: {exc}") from exc
        if len(answer) > MAX_RESPONSE:
            raise RetryLater(f"peer {peer} answered {len(answer)} bytes, over {MAX_RESPONSE}")
        return answer


class InProcessGossip:
    """One member of an ``InProcessNetwork``; implements p2p.api.Gossip.

    It waits for a gate's future verdict in place, and bans nobody: REJECTs are recorded
    in ``InProcessNetwork.rejected`` for tests to assert on.
    """

    def __init__(self, network: InProcessNetwork, peer_id: PeerId) -> None:
        self._network = network
        self._peer_id = peer_id
        self._topics: dict[str, tuple[GateValidator, MessageHandler]] = {}
        self._services: dict[str, RequestHandler] = {}

    @property
    def peer_id(self) -> PeerId:
        return self._peer_id

    def subscribe(self, topic: str, validator: GateValidator, handler: MessageHandler) -> None:
        self._topics[topic] = (validator, handler)

    def publish(self, topic: str, data: bytes) -> None:
        if len(data) > MAX_MESSAGE:
            raise InvalidInput(f"gossip message of {len(data)} bytes exceeds {MAX_MESSAGE}")
        if self._peer_id not in self._network._down:
            self._network._send(self._peer_id, topic, data)

    def peers(self) -> tuple[PeerId, ...]:
        return tuple(
            peer for peer in self._network._members
            if peer != self._peer_id and self._network.reachable(self._peer_id, peer)
        )

    def serve(self, protocol: str, handler: RequestHandler) -> None:
        self._services[protocol] = handler

    def request(self, peer: PeerId, protocol: str, data: bytes, timeout: float) -> bytes:
        if len(data) > MAX_REQUEST:
            raise InvalidInput(f"request of {len(data)} bytes exceeds {MAX_REQUEST}")
        return self._network._request(self._peer_id, peer, protocol, data)

    def _receive(self, sender: PeerId, topic: str, data: bytes) -> bool:
        validator, handler = self._topics[topic]
        checked = validator(sender, data)
        verdict = checked if isinstance(checked, Validation) else checked.result()
        if verdict is Validation.REJECT:
            self._network.rejected.append((self._peer_id, sender, topic))
        if verdict is not Validation.ACCEPT:
            return False
        handler(sender, data)
        return True
