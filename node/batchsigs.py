"""`l2/batchsigs/1`: validators sign L1 batch digests and validator-set updates for the poster.

The poster asks (a request names the batch commitment, or the next validator set, and the
contract's domain); every validator that finds it true of its own finalized chain (the
same blocks, roots and data hash; the same weights for the set's epoch) signs its digest
and gossips the signature; the poster's ``signatures`` / ``validator_signatures`` return
them once they hold more than 2/3 of the weight that the contract counts: the batch's
epoch's (that of its first block), or for an update to epoch e the set of epoch e - 1.
A signature only attests facts of the finalized chain, so answering any request is safe.

Messages are RLP: ``[0, commitment, domain]`` (batch request), ``[1, digest, signature]``,
or ``[2, [epoch, [[address, weight], ...]], domain]`` (validator-set request).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import rlp

from l1.codec import (
    batch_data_hash,
    batch_digest,
    encode_batch_data,
    order_signatures,
    recover_batch_signer,
    sign_batch,
    validator_set_digest,
)
from l1.types import BatchCommitment, BatchDomain, ValidatorSet
from node.node import Node
from p2p.api import Gossip
from p2p.topics import BATCHSIGS
from p2p.types import PeerId, Validation
from primitives.errors import InvalidInput
from primitives.types import Address, Hash32

log = logging.getLogger("l2node.batchsigs")

REQUEST, SIGNATURE, SET_REQUEST = 0, 1, 2
MAX_MESSAGE_BYTES = 64 * 1024
"""A batch request or a signature is a few hundred bytes; a set request about 32 bytes a
member (some 2,000 members)."""
ASK_AGAIN_AFTER = 2.0
"""Seconds before the poster repeats a request that has no quorum yet (lost messages)."""
KEEP_DIGESTS = 64
"""Digests whose signatures are remembered (the poster works on one at a time)."""


def encode_request(commitment: BatchCommitment, domain: BatchDomain) -> bytes:
    c, d = commitment, domain
    return bytes(rlp.encode([REQUEST, [
        c.batch_number, c.prev_state_root, c.state_root, c.first_block, c.last_block, c.data_hash,
    ], [d.l1_chain_id, d.contract, d.l2_chain_id]]))


def encode_set_request(new_set: ValidatorSet, domain: BatchDomain) -> bytes:
    d = domain
    return bytes(rlp.encode([SET_REQUEST, [new_set.epoch, [list(m) for m in new_set.members]],
                             [d.l1_chain_id, d.contract, d.l2_chain_id]]))


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
class SetRequest:
    """The poster asks for signatures over the next validator set."""

    new_set: ValidatorSet
    """The set, as the poster computed it from its finalized chain."""
    domain: BatchDomain
    """The contract the signatures are for."""


@dataclass(frozen=True)
class BatchSignature:
    """A validator's signature over a batch or validator-set digest."""

    digest: Hash32
    """l1.codec.batch_digest of the batch, or validators_digest of the set."""
    signature: bytes
    """65 bytes, as the contract expects (l1.codec.sign_batch)."""


def decode_message(data: bytes) -> SignRequest | SetRequest | BatchSignature:
    """InvalidInput on anything malformed."""
    try:
        if len(data) > MAX_MESSAGE_BYTES:
            raise ValueError("too large")
        kind, first, second = rlp.decode(data)
        if kind == bytes([SIGNATURE]):
            if len(first) != 32 or len(second) != 65:
                raise ValueError("a signature message holds a 32-byte digest and 65 bytes")
            return BatchSignature(Hash32(first), bytes(second))
        l1_chain_id, contract, l2_chain_id = second
        if not isinstance(contract, bytes) or len(contract) != 20:
            raise ValueError("malformed domain")
        domain = BatchDomain(_int(l1_chain_id), Address(contract), _int(l2_chain_id))
        if kind == bytes([SET_REQUEST]):
            epoch, members = first
            pairs = [(Address(a), _int(w)) for a, w in members]
            if any(not isinstance(a, bytes) or len(a) != 20 for a, _ in pairs):
                raise ValueError("malformed validator set")
            return SetRequest(ValidatorSet(_int(epoch), tuple(pairs)), domain)
        if kind != b"":  # RLP of 0
            raise ValueError(f"unknown message kind {kind!r}")
        number, prev_root, root, first_block, last_block, data_hash = first
        hashes = (prev_root, root, data_hash)
        if any(not isinstance(h, bytes) or len(h) != 32 for h in hashes):
            raise ValueError("malformed commitment")
        commitment = BatchCommitment(
            _int(number), Hash32(prev_root), Hash32(root), _int(first_block), _int(last_block),
            Hash32(data_hash),
        )
        return SignRequest(commitment, domain)
    except (rlp.exceptions.RLPException, ValueError, TypeError) as exc:
        raise InvalidInput(f"malformed batch signature message: {exc}") from exc


def _int(item: object) -> int:
    if not isinstance(item, bytes) or len(item) > 32:
        raise TypeError("expected an integer")
    return int.from_bytes(item, "big")


class GossipBatchSignatures:
    """l1.api.BatchSignatures over gossip; every validator runs one, the poster asks it.

    The weights that count are the node's epoch weights (node/epochs.py); who may sign at
    all (the gossip gate) is the genesis set, the validators proofs can give weight to.
    """

    def __init__(self, node: Node, gossip: Gossip, now: Callable[[], float]) -> None:
        self.node = node
        self.gossip = gossip
        self.members = frozenset(node.epochs.genesis_weights)
        self.now = now
        self._lock = threading.Lock()
        self._signed: dict[Hash32, dict[Address, bytes]] = {}
        self._asked: dict[Hash32, float] = {}
        gossip.subscribe(BATCHSIGS, self._gate, self._receive)

    def signatures(self, commitment: BatchCommitment, domain: BatchDomain) -> Sequence[bytes] | None:
        """Signatures of more than 2/3 of the weight of the batch's epoch over the batch
        digest, in the contract's order; None while they are being collected."""
        return self._collect(
            batch_digest(domain, commitment), self.node.epoch_of(commitment.first_block),
            encode_request(commitment, domain), lambda: self._true_batch(commitment),
        )

    def validator_signatures(self, new_set: ValidatorSet, domain: BatchDomain) -> Sequence[bytes] | None:
        """Signatures of more than 2/3 of epoch ``new_set.epoch - 1``'s weight over the set's
        digest, in the contract's order; None while they are being collected."""
        return self._collect(
            validator_set_digest(domain, new_set), new_set.epoch - 1, encode_set_request(new_set, domain),
            lambda: self._true_set(new_set),
        )

    def _collect(
        self, digest: Hash32, epoch: int, request: bytes, true_here: Callable[[], bool]
    ) -> Sequence[bytes] | None:
        """Ask for signatures over ``digest`` (again after ASK_AGAIN_AFTER), sign it here
        if ``true_here``; those of ``epoch``'s validators once they are a quorum of it."""
        weights = self.node.validators(epoch)
        if weights is None:
            return None
        now = self.now()
        with self._lock:
            asked = self._asked.get(digest)
            ask = asked is None or now - asked >= ASK_AGAIN_AFTER
            if ask:
                self._asked[digest] = now
        if ask:
            self.gossip.publish(BATCHSIGS, request)
            self._sign(digest, true_here)
        with self._lock:
            # Only the set's members: the contract refuses a signature of anyone else.
            signed = {a: s for a, s in self._signed.get(digest, {}).items() if a in weights}
        if 3 * sum(weights[a] for a in signed) <= 2 * sum(weights.values()):
            return None
        return order_signatures(digest, list(signed.values()))

    def _sign(self, digest: Hash32, true_here: Callable[[], bool]) -> None:
        """Sign ``digest`` if what it stands for is true of our finalized chain; keep and
        gossip the signature."""
        me = self.node.coinbase
        if me not in self.members or not true_here():
            return
        signature = sign_batch(digest, self.node.validator_key)
        self._keep(digest, me, signature)
        self.gossip.publish(BATCHSIGS, encode_signature(digest, signature))

    def _true_batch(self, commitment: BatchCommitment) -> bool:
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

    def _true_set(self, new_set: ValidatorSet) -> bool:
        """The set is the weights of its epoch on our chain, in ascending address order."""
        if new_set.epoch < 1:
            return False  # epoch 0 is the deployment's set: nothing to sign
        weights = self.node.validators(new_set.epoch)
        return weights is not None and ValidatorSet.of(new_set.epoch, weights) == new_set

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
                and recover_batch_signer(message.digest, message.signature) not in self.members
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
            c = message.commitment
            self._sign(batch_digest(message.domain, c), lambda: self._true_batch(c))
        elif isinstance(message, SetRequest):
            s = message.new_set
            self._sign(validator_set_digest(message.domain, s), lambda: self._true_set(s))
        else:
            signer = recover_batch_signer(message.digest, message.signature)
            self._keep(message.digest, signer, message.signature)

