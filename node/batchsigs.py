"""`l2/batchsigs/1`: validators sign L1 batch digests for the designated poster.

The poster asks (a request names the batch commitment and the contract's domain); every
validator that finds the commitment true of its own finalized chain (same blocks, roots
and data hash) signs the batch digest and gossips the signature; the poster's
``signatures`` returns them once they hold more than 2/3 of the weight. A signature only
attests facts of the finalized chain, so answering any request is safe.

Messages are RLP: ``[0, commitment, domain]`` (request) or ``[1, digest, signature]``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import rlp

from l1.codec import (
    batch_data_hash,
    batch_digest,
    encode_batch_data,
    order_signatures,
    recover_batch_signer,
    sign_batch,
)
from l1.types import BatchCommitment, BatchDomain
from node.node import Node
from p2p.api import Gossip
from p2p.topics import BATCHSIGS
from p2p.types import PeerId, Validation
from primitives.errors import InvalidInput
from primitives.types import Address, Hash32

log = logging.getLogger("l2node.batchsigs")

REQUEST, SIGNATURE = 0, 1
MAX_MESSAGE_BYTES = 1024
"""Both kinds of message are a few hundred bytes."""
ASK_AGAIN_AFTER = 2.0
"""Seconds before the poster repeats a request that has no quorum yet (lost messages)."""
KEEP_DIGESTS = 64
"""Batches whose signatures are remembered (the poster works on one at a time)."""


def encode_request(commitment: BatchCommitment, domain: BatchDomain) -> bytes:
    c, d = commitment, domain
    return bytes(rlp.encode([REQUEST, [
        c.batch_number, c.prev_state_root, c.state_root, c.first_block, c.last_block, c.data_hash,
    ], [d.l1_chain_id, d.contract, d.l2_chain_id]]))


def encode_signature(digest: Hash32, signature: bytes) -> bytes:
    return bytes(rlp.encode([SIGNATURE, digest, signature]))


@dataclass(frozen=True)
class SignRequest:
    """The poster asks for signatures over a batch."""

    commitment: BatchCommitment
    """The batch, as the poster built it from its finalized chain."""
    domain: BatchDomain
    """The contract the signatures are for."""


@dataclass(frozen=True)
class BatchSignature:
    """A validator's signature over a batch digest."""

    digest: Hash32
    """l1.codec.batch_digest of the batch."""
    signature: bytes
    """65 bytes, as the contract expects (l1.codec.sign_batch)."""


def decode_message(data: bytes) -> SignRequest | BatchSignature:
    """InvalidInput on anything malformed."""
    try:
        if len(data) > MAX_MESSAGE_BYTES:
            raise ValueError("too large")
        kind, first, second = rlp.decode(data)
        if kind == bytes([SIGNATURE]):
            if len(first) != 32 or len(second) != 65:
                raise ValueError("a signature message holds a 32-byte digest and 65 bytes")
            return BatchSignature(Hash32(first), bytes(second))
        if kind != b"":  # RLP of 0
            raise ValueError(f"unknown message kind {kind!r}")
        number, prev_root, root, first_block, last_block, data_hash = first
        l1_chain_id, contract, l2_chain_id = second
        hashes = (prev_root, root, data_hash)
        if any(not isinstance(h, bytes) or len(h) != 32 for h in hashes) or len(contract) != 20:
            raise ValueError("malformed commitment or domain")
        commitment = BatchCommitment(
            _int(number), Hash32(prev_root), Hash32(root), _int(first_block), _int(last_block),
            Hash32(data_hash),
        )
        return SignRequest(
            commitment, BatchDomain(_int(l1_chain_id), Address(contract), _int(l2_chain_id))
        )
    except (rlp.exceptions.RLPException, ValueError, TypeError) as exc:
        raise InvalidInput(f"malformed batch signature message: {exc}") from exc


def _int(item: object) -> int:
    if not isinstance(item, bytes) or len(item) > 32:
        raise TypeError("expected an integer")
    return int.from_bytes(item, "big")


class GossipBatchSignatures:
    """l1.api.BatchSignatures over gossip; every validator runs one, the poster asks it."""

    def __init__(
        self, node: Node, gossip: Gossip, weights: Mapping[Address, int],
        now: Callable[[], float],
    ) -> None:
        self.node = node
        self.gossip = gossip
        self.weights = dict(weights)
        self.now = now
        self._lock = threading.Lock()
        self._signed: dict[Hash32, dict[Address, bytes]] = {}
        self._asked: dict[Hash32, float] = {}
        gossip.subscribe(BATCHSIGS, self._gate, self._receive)

    def signatures(self, commitment: BatchCommitment, domain: BatchDomain) -> Sequence[bytes] | None:
        """Signatures of more than 2/3 of the weight over the batch digest, in the contract's
        order; None while they are being collected (ask again later)."""
        digest = batch_digest(domain, commitment)
        now = self.now()
        with self._lock:
            asked = self._asked.get(digest)
            if asked is None or now - asked >= ASK_AGAIN_AFTER:
                self._asked[digest] = now
                ask = True
            else:
                ask = False
        if ask:
            self.gossip.publish(BATCHSIGS, encode_request(commitment, domain))
            self._sign(commitment, domain)
        with self._lock:
            signed = dict(self._signed.get(digest, {}))
        total = sum(self.weights.values())
        if 3 * sum(self.weights[a] for a in signed) <= 2 * total:
            return None
        return order_signatures(digest, list(signed.values()))

    def _sign(self, commitment: BatchCommitment, domain: BatchDomain) -> None:
        """Sign ``commitment`` if it is true of our finalized chain, keep and gossip it."""
        me = self.node.coinbase
        if me not in self.weights or not self._true_here(commitment):
            return
        digest = batch_digest(domain, commitment)
        signature = sign_batch(digest, self.node.validator_key)
        self._keep(digest, me, signature)
        self.gossip.publish(BATCHSIGS, encode_signature(digest, signature))

    def _true_here(self, commitment: BatchCommitment) -> bool:
        c = commitment
        head = self.node.chain.head_number() or 0
        if not 1 <= c.first_block <= c.last_block <= head:
            return False
        before = self.node.chain.header(c.first_block - 1)
        last = self.node.chain.header(c.last_block)
        if before is None or last is None:
            return False
        if (before.state_root, last.state_root) != (c.prev_state_root, c.state_root):
            return False
        blocks = [self.node.block_data(n) for n in range(c.first_block, c.last_block + 1)]
        return batch_data_hash(encode_batch_data(blocks)) == c.data_hash

    def _keep(self, digest: Hash32, signer: Address, signature: bytes) -> None:
        with self._lock:
            self._signed.setdefault(digest, {})[signer] = signature
            while len(self._signed) > KEEP_DIGESTS:
                oldest = next(iter(self._signed))
                del self._signed[oldest]
                self._asked.pop(oldest, None)

    def _gate(self, _peer: PeerId, data: bytes) -> Validation:
        # REJECT: malformed, or a signature that is not a validator's.
        try:
            message = decode_message(data)
            if (
                isinstance(message, BatchSignature)
                and recover_batch_signer(message.digest, message.signature) not in self.weights
            ):
                return Validation.REJECT
        except InvalidInput:
            return Validation.REJECT
        # ACCEPT: a request (checked against the chain when answered) or a validator's signature.
        return Validation.ACCEPT

    def _receive(self, _peer: PeerId, data: bytes) -> None:
        message = decode_message(data)
        if isinstance(message, SignRequest):
            # Reads a batch of blocks from the chain: quick next to the gossip round trip.
            self._sign(message.commitment, message.domain)
        else:
            signer = recover_batch_signer(message.digest, message.signature)
            self._keep(message.digest, signer, message.signature)
