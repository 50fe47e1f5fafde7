"""Values of the sequencer's pure logic: pool limits, a sender's account, block bodies."""

from __future__ import annotations

from dataclasses import dataclass

from executor_gpu.types import BatchResult
from primitives.transactions import Transaction
from primitives.types import Address, Hash32


@dataclass(frozen=True)
class PoolConfig:
    """Limits and pricing rules of the mempool."""

    max_per_sender: int = 64
    """Most pooled transactions per sender: nonces from the state nonce up to this many above."""
    max_total: int = 10_000
    """Most pooled transactions; beyond it the cheapest evictable one makes room, or none enters."""
    price_bump_percent: int = 10
    """A replacement (same sender and nonce) must raise fee cap and tip by at least this much."""
    min_tip: int = 0
    """Least max priority fee per gas accepted into the pool."""


@dataclass(frozen=True)
class AccountState:
    """What the pool needs to know of a sender's account in the latest state."""

    nonce: int
    """Nonce of the account in the latest state: the next nonce a block can include."""
    balance: int
    """Wei held in the latest state."""


@dataclass(frozen=True)
class BlockBody:
    """An executed block before its state root is known: execution result and derived roots."""

    result: BatchResult
    """What the executor returned for the selected transactions."""
    transactions_root: Hash32
    """Ordered-trie root of the included transactions' encodings."""
    receipts_root: Hash32
    """Ordered-trie root of the included transactions' receipt encodings."""
    logs_bloom: bytes
    """Union of the receipts' blooms (256 bytes)."""
    gas_used: int
    """Gas used by the included transactions."""

    @property
    def transactions(self) -> tuple[Transaction, ...]:
        """Included transactions, in block order."""
        return tuple(executed.tx for executed in self.result.executed)


# -- GPU weights (sequencer/weights.py) ----------------------------------------------------


@dataclass(frozen=True)
class ProofOpening:
    """One opened leaf of a weight proof's commitment: a group of consecutive products."""

    group: int
    """Leaf index: the group of products ``group * GROUP .. group * GROUP + GROUP - 1``."""
    fingerprints: bytes
    """The group's product fingerprints, 8 bytes big-endian each (fewer in the last group)."""
    path: tuple[Hash32, ...]
    """Sibling hashes from the leaf up to the root."""


@dataclass(frozen=True)
class WeightProof:
    """A validator's signed claim of GPU work for an epoch's challenge, checkable by sampling.

    The prover computed ``products`` matrix products of its challenge key (derived from
    ``seed``, ``validator`` and the chain), committed to their fingerprints in a Merkle tree
    (``root``), and opened the leaves that Fiat-Shamir samples of (key, root, products)
    select. A verifier recomputes only the sampled products.
    """

    epoch: int
    """Epoch whose challenge this answers."""
    seed: Hash32
    """The epoch's seed (from the last finalized block before the epoch)."""
    validator: Address
    """Address of the signing key: whose weight this is."""
    products: int
    """Products claimed: the work units the weight counts."""
    root: Hash32
    """Merkle root over the groups of product fingerprints."""
    openings: tuple[ProofOpening, ...]
    """The sampled groups, ordered by group index, each once."""
    signature: bytes
    """65 bytes r || s || y_parity by ``validator`` over ``weights.proof_digest``."""
