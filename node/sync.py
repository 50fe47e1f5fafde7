"""`l2/sync/1`: finalized blocks with their commit certificates, by height range.

A request is RLP [first height, count]; the answer is RLP [[block, certificate], ...] for
the heights from ``first`` that the serving node has, at most ``MAX_BLOCKS_PER_ANSWER`` and
``MAX_ANSWER_BYTES`` of them (the asker asks again from where it ends).
A node that was down asks its peers from its head + 1, checks every certificate against
the validator set, and commits block after block (each re-executed, as for a proposal).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import rlp

from node.blocks import decode_block, encode_block
from node.node import Node
from p2p.api import Gossip
from p2p.topics import MAX_RESPONSE, SYNC
from p2p.types import PeerId
from primitives.errors import InvalidInput, RetryLater
from primitives.types import Hash32

log = logging.getLogger("l2node.sync")

MAX_BLOCKS_PER_ANSWER = 64
"""Blocks in one answer: bounds the time a peer spends on it."""
MAX_ANSWER_BYTES = MAX_RESPONSE - 64 * 1024
"""Bytes of blocks and certificates in one answer, beside its lists' headers: within what a
peer takes (``MAX_RESPONSE``). A block of a proposal always fits (``MAX_BLOCK_BYTES``)."""
REQUEST_TIMEOUT = 10.0
"""Seconds to wait for a peer's answer."""

CertificateCheck = Callable[[int, Hash32, bytes], bool]
"""(height, block hash, encoded certificate) -> True when > 2/3 of the weight precommitted it."""


def encode_request(first: int, count: int) -> bytes:
    return bytes(rlp.encode([first, count]))


def decode_request(data: bytes) -> tuple[int, int]:
    """InvalidInput on anything but two non-negative integers."""
    try:
        first, count = rlp.decode(data)
        if not isinstance(first, bytes) or not isinstance(count, bytes):
            raise TypeError("expected two integers")
    except (rlp.exceptions.RLPException, ValueError, TypeError) as exc:
        raise InvalidInput(f"malformed sync request: {exc}") from exc
    return int.from_bytes(first, "big"), int.from_bytes(count, "big")


def serve_blocks(node: Node, data: bytes) -> bytes:
    """Answer a sync request from the finalized chain (RequestHandler body)."""
    first, count = decode_request(data)
    head = node.head().number
    last = min(head, first + min(count, MAX_BLOCKS_PER_ANSWER) - 1)
    items: list[list[bytes]] = []
    size = 0
    for number in range(max(first, 1), last + 1):
        header = node.chain.header(number)
        certificate = node.chain.certificate(number)
        if header is None or certificate is None:
            break  # a single-validator block has no certificate: nothing to prove it with
        raws = list(node.chain.raw_transactions(number))
        block = encode_block(header, raws, node.chain.proofs(number))
        size += len(block) + len(certificate)
        if items and size > MAX_ANSWER_BYTES:
            break
        items.append([block, certificate])
    return bytes(rlp.encode(items))


def decode_answer(data: bytes) -> list[tuple[bytes, bytes]]:
    """InvalidInput on a malformed answer."""
    try:
        items = rlp.decode(data)
        if not isinstance(items, list):
            raise TypeError("expected a list")
        pairs = []
        for item in items:
            value, certificate = item
            if not isinstance(value, bytes) or not isinstance(certificate, bytes):
                raise TypeError("expected [block, certificate] pairs")
            pairs.append((value, certificate))
    except (rlp.exceptions.RLPException, ValueError, TypeError) as exc:
        raise InvalidInput(f"malformed sync answer: {exc}") from exc
    return pairs


def catch_up(node: Node, gossip: Gossip, check: CertificateCheck, target: int | None = None) -> int:
    """Fetch and commit finalized blocks from peers until none has more (or ``target`` is
    reached). Returns how many blocks were committed. A peer that sends a block without a
    valid certificate, or one that does not extend our head, is skipped."""
    committed = 0
    peers = list(gossip.peers())
    while peers and (target is None or node.head().number < target):
        peer = peers[0]
        try:
            got = _fetch_from(node, gossip, peer, check)
        except (RetryLater, InvalidInput) as exc:
            log.info("sync from %s: %s", peer, exc)
            got = 0
        committed += got
        if got == 0:
            peers.pop(0)
    return committed


def _fetch_from(node: Node, gossip: Gossip, peer: PeerId, check: CertificateCheck) -> int:
    first = node.head().number + 1
    answer = gossip.request(peer, SYNC, encode_request(first, MAX_BLOCKS_PER_ANSWER),
                            REQUEST_TIMEOUT)
    committed = 0
    for value, certificate in decode_answer(answer):
        header = decode_block(value).header
        # Rule: only a block proven final (> 2/3 precommits for this hash) is taken from a peer.
        if header.number != node.head().number + 1:
            raise InvalidInput(f"sent block {header.number}, expected {node.head().number + 1}")
        if not check(header.number, header.hash, certificate):
            raise InvalidInput(f"block {header.number} comes without a valid commit certificate")
        node.commit(value, certificate)
        committed += 1
    if committed:
        log.info("synced blocks %d..%d from %s", first, first + committed - 1, peer)
    return committed
