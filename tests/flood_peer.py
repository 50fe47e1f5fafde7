"""An outside libp2p peer that floods ``l2/txs/1`` with batches of junk-signature transactions.

Used by the gossip flood test (tests/e2e/test_gossip_flood.py). The peer joins the
validators with a fresh identity, publishes well-formed batches (4,096 EIP-1559 transfers
each, about 470 KB, every signature junk: random, or recovering random unfunded accounts)
at a bounded rate, and
when every validator has dropped it for a few seconds it comes back under a new identity,
until its time is up: the network is under flood for the whole window even though each
identity is banned.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import rlp
from coincurve import PublicKey
from libp2p.crypto.ed25519 import create_new_key_pair

from p2p.host import HostConfig, Libp2pGossip
from p2p.topics import TXS
from p2p.txbatch import MAX_BATCH_TXS
from p2p.types import PeerId, Validation

CHAIN_ID = 7331

def _splice_points() -> tuple[bytes, bytes]:
    """A type-2 transfer's encoding cut where the nonce and the signature go (all fixed width:
    a 2-byte nonce of at least 0x100, r and s of 32 bytes with a non-zero first byte)."""
    nonce, r, s = b"\xee\xee", b"\xaa" * 32, b"\xbb" * 32
    fields = [CHAIN_ID, nonce, 10**9, 10**11, 21_000, b"\x11" * 20, 1, b"", [], 1, r, s]
    encoded = b"\x02" + rlp.encode(fields)
    head, rest = encoded.split(nonce)
    middle = rest.split(b"\xa0" + r)[0]
    return head, middle


_HEAD, _MIDDLE = _splice_points()


def junk_batch(count: int = MAX_BATCH_TXS, recoverable: bool = False) -> bytes:
    """One ``l2/txs/1`` message of ``count`` well-formed type-2 transfers whose signatures
    (r, s) are random bytes: half of them out of range (high s), or, ``recoverable``, all of
    them "signed" by random unfunded accounts (r a curve point's x, s low)."""
    assert count <= 0xFF00
    noise = bytearray(os.urandom(64 * count))
    noise[0::32] = bytes(b | 1 for b in noise[0::32])  # no leading zero: fixed width
    if recoverable:
        noise[32::64] = bytes(b & 0x3F for b in noise[32::64])  # s < n / 2
        for i in range(count):
            noise[64 * i : 64 * i + 32] = _curve_x()
    batch: bytes = rlp.encode([
        _HEAD + (0x100 + i).to_bytes(2, "big") + _MIDDLE
        + b"\xa0" + noise[64 * i : 64 * i + 32] + b"\xa0" + noise[64 * i + 32 : 64 * i + 64]
        for i in range(count)
    ])
    return batch


def _curve_x() -> bytes:
    """The x coordinate of a random curve point, 32 bytes without a leading zero."""
    while True:
        x = PublicKey.from_secret(os.urandom(32)).format(compressed=True)[1:]
        if x[0]:
            return x


@dataclass
class Identity:
    """What one identity of the flooding peer did."""

    peer_id: PeerId
    published: int = 0
    """Messages it published."""
    connected_to: set[PeerId] = field(default_factory=set)
    """Validators it was connected to at some point."""
    dropped_after: float | None = None
    """Seconds from its first publication until no validator kept it connected (None: never)."""


class Flooder(threading.Thread):
    """Floods ``bootstrap`` peers at ``rate`` messages per second for ``seconds``."""

    def __init__(self, bootstrap: Sequence[str], rate: float, seconds: float,
                 batch_txs: int = MAX_BATCH_TXS, dropped_grace: float = 3.0,
                 join_timeout: float = 10.0) -> None:
        super().__init__(name="flooder", daemon=True)
        self.bootstrap = tuple(bootstrap)
        self.rate = rate
        self.seconds = seconds
        self.batch_txs = batch_txs
        self.dropped_grace = dropped_grace
        self.join_timeout = join_timeout
        self.identities: list[Identity] = []
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            deadline = time.monotonic() + self.seconds
            while time.monotonic() < deadline:
                self._one_identity(deadline)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.failure = exc

    def _one_identity(self, deadline: float) -> None:
        # Dials each validator once: a validator that drops it stays dropped (a validator
        # refusing redials of a banned peer is tests/p2p/test_libp2p_host.py's).
        host = Libp2pGossip(create_new_key_pair(), HostConfig(
            bootstrap=self.bootstrap, reconnect_interval=3600.0,
        ))
        # Subscribed, so the validators graft it into their mesh like any member.
        host.subscribe(TXS, lambda _peer, _data: Validation.IGNORE, lambda _peer, _data: None)
        host.start()
        identity = Identity(host.peer_id)
        self.identities.append(identity)
        try:
            # In a validator's mesh first: like any member, not racing the subscriptions.
            joined_by = min(time.monotonic() + self.join_timeout, deadline)
            while not host.mesh_peers(TXS) and time.monotonic() < joined_by:
                time.sleep(0.05)
            if not host.mesh_peers(TXS):
                return  # nobody let it in: the next identity tries
            first: float | None = None
            alone_since: float | None = None
            next_send = time.monotonic()
            while time.monotonic() < deadline:
                peers = host.peers()
                identity.connected_to.update(peers)
                now = time.monotonic()
                if peers:
                    alone_since = None
                else:
                    alone_since = alone_since or now
                    if first is not None and now - alone_since >= self.dropped_grace:
                        identity.dropped_after = alone_since - first
                        return
                if now >= next_send:
                    if peers:
                        # Alternately cheap to refuse and dear (recovery, state reads).
                        recoverable = bool(identity.published % 2)
                        host.publish(TXS, junk_batch(self.batch_txs, recoverable))
                        identity.published += 1
                        first = first or now
                    next_send += 1.0 / self.rate
                time.sleep(min(0.05, max(next_send - time.monotonic(), 0.0)))
        finally:
            host.stop()
