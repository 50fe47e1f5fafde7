"""Values of the sequencer's pure logic: pool limits, a sender's account, block bodies."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated

from annotated_types import Ge, Gt

from executor_gpu.types import BatchResult
from primitives.transactions import Transaction
from primitives.types import Address, Hash32


@dataclass(frozen=True)
class PoolConfig:
    """Limits and pricing rules of the mempool."""

    max_per_sender: int = 64
    """Most pooled transactions per sender: nonces from the state nonce up to this many above."""
    max_total: int = 10_000
    """Most pooled transactions, pending and queued; beyond it a queued one, else the cheapest
    pending tail, makes room for a better one, or none enters."""
    max_queued_per_sender: int = 16
    """Most queued (nonce-gapped, not yet executable) transactions per sender."""
    max_queued: int = 1_024
    """Most queued transactions overall; beyond it the cheapest queued one makes room."""
    queued_lifetime: float = 3 * 3600.0
    """Seconds a queued transaction may wait for its gap to be filled before it is dropped."""
    price_bump_percent: int = 10
    """A replacement (same sender and nonce) must raise fee cap and tip by at least this much."""
    min_tip: int = 0
    """Least max priority fee per gas accepted into the pool."""


@dataclass(frozen=True, slots=True)
class AccountState:
    """What the pool needs to know of a sender's account in the latest state (slots: admission
    keeps up to a million and builds one per sender of every block)."""

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


# -- consensus (Tendermint, "The latest gossip on BFT consensus", arXiv 1807.04938) ------------

NIL_ROUND = -1
"""The paper's -1: no round (no proof-of-lock round, nothing locked, no valid value yet)."""


class VoteKind(IntEnum):
    """The two voting steps of a round."""

    PREVOTE = 1
    """First vote: this value is acceptable (valid, and compatible with my lock)."""
    PRECOMMIT = 2
    """Second vote, after > 2/3 prevotes: commit this value if > 2/3 agree."""


class Step(IntEnum):
    """Where a validator is within a round (ordered: propose < prevote < precommit)."""

    PROPOSE = 1
    """Waiting for the round's proposal."""
    PREVOTE = 2
    """Prevoted; waiting for > 2/3 prevotes."""
    PRECOMMIT = 3
    """Precommitted; waiting for > 2/3 precommits."""
    DECIDED = 4
    """This height is decided; waiting for the node to start the next one."""


@dataclass(frozen=True)
class Validator:
    """A member of the validator set of a height."""

    address: Address
    """Address of the validator's signing key."""
    weight: int
    """Voting weight (positive): its share of proposals and of quorums."""


@dataclass(frozen=True)
class ValidatorSet:
    """The validators of a height, sorted by address, with the quorum arithmetic.

    Quorums use integers only: ``3 * w > 2 * total`` (more than 2/3) and ``3 * w > total``
    (more than 1/3, enough to contain one honest validator).
    """

    validators: tuple[Validator, ...]
    """Members, sorted by address, addresses unique, weights positive."""

    def __post_init__(self) -> None:
        if not self.validators:
            raise ValueError("a validator set needs at least one validator")
        addresses = [v.address for v in self.validators]
        if addresses != sorted(addresses) or len(set(addresses)) != len(addresses):
            raise ValueError("validators must be sorted by address, without duplicates")
        if any(v.weight <= 0 for v in self.validators):
            raise ValueError("validator weights must be positive")

    @classmethod
    def of(cls, weights: Mapping[Address, int]) -> ValidatorSet:
        """The set of the validators with positive weight in ``weights``."""
        return cls(tuple(Validator(a, w) for a, w in sorted(weights.items()) if w > 0))

    @property
    def total_weight(self) -> int:
        """Sum of all weights."""
        return sum(v.weight for v in self.validators)

    def weight_of(self, address: Address) -> int:
        """Weight of ``address``; 0 when it is not a member."""
        for validator in self.validators:
            if validator.address == address:
                return validator.weight
        return 0

    def __contains__(self, address: object) -> bool:
        return any(v.address == address for v in self.validators)

    def weight_of_all(self, addresses: Iterable[Address]) -> int:
        """Total weight of the distinct members among ``addresses``."""
        return sum(self.weight_of(a) for a in set(addresses))

    def is_quorum(self, weight: int) -> bool:
        """More than 2/3 of the total weight: enough to decide."""
        return 3 * weight > 2 * self.total_weight

    def exceeds_one_third(self, weight: int) -> bool:
        """More than 1/3 of the total weight: at least one honest validator among them."""
        return 3 * weight > self.total_weight


@dataclass(frozen=True)
class Proposal:
    """The proposer's value for a height and round, signed (wire.py defines the digest)."""

    height: int
    """Block number being decided."""
    round: int
    """Round within the height, from 0."""
    value: bytes
    """The proposed value (an encoded block); opaque to consensus."""
    value_id: Hash32
    """Identity of the value (the block hash); votes name values by it."""
    pol_round: int
    """Proof-of-lock round: the round whose > 2/3 prevotes made this value valid, or NIL_ROUND."""
    proposer: Address
    """The signer, which must be the leader schedule's proposer of (height, round)."""
    signature: bytes
    """65 bytes r || s || y_parity over wire.proposal_digest."""


@dataclass(frozen=True)
class Vote:
    """A prevote or precommit for a value id, or for nil, signed."""

    kind: VoteKind
    """Prevote or precommit."""
    height: int
    """Block number being decided."""
    round: int
    """Round the vote belongs to."""
    value_id: Hash32 | None
    """The value voted for, or None for nil."""
    validator: Address
    """The signer."""
    signature: bytes
    """65 bytes r || s || y_parity over wire.vote_digest."""


ConsensusMessage = Proposal | Vote
"""What travels on the consensus topic."""


@dataclass(frozen=True)
class CommitCertificate:
    """Proof that a value was decided: precommits for it from more than 2/3 of the weight."""

    height: int
    """The decided height."""
    round: int
    """The round in which the precommits were cast."""
    value_id: Hash32
    """The decided value's id (block hash)."""
    votes: tuple[Vote, ...]
    """Precommits for (height, round, value_id), one per validator, sorted by validator."""


@dataclass(frozen=True)
class Evidence:
    """Equivocation: one validator signed two different messages for one height, round and step."""

    first: ConsensusMessage
    """The message seen first."""
    second: ConsensusMessage
    """A conflicting message with the same signer, height, round and kind."""

    @property
    def offender(self) -> Address:
        """The validator that double-signed."""
        return self.first.proposer if isinstance(self.first, Proposal) else self.first.validator


@dataclass(frozen=True)
class ConsensusConfig:
    """Timeouts of the state machine, in seconds; round r waits ``base + r * delta``
    ([consensus] in the config)."""

    propose: Annotated[float, Gt(0)] = 1.0
    """How long to wait for a round's proposal before prevoting nil. A proposer builds for
    half of it at most (its pace permitting): under a backlog, larger blocks need more."""
    propose_delta: Annotated[float, Ge(0)] = 0.5
    """Added to ``propose`` per round, so that slow proposers eventually get through."""
    prevote: Annotated[float, Gt(0)] = 0.5
    """After > 2/3 prevotes of any kind, how long to wait for a quorum on one value."""
    prevote_delta: Annotated[float, Ge(0)] = 0.25
    """Added to ``prevote`` per round."""
    precommit: Annotated[float, Gt(0)] = 0.5
    """After > 2/3 precommits of any kind, how long to wait for a decision before the next round."""
    precommit_delta: Annotated[float, Ge(0)] = 0.25
    """Added to ``precommit`` per round."""
    rebroadcast: Annotated[float, Gt(0)] = 2.0
    """When a step makes no progress this long, resend this round's own messages (lost ones)."""
    max_rounds_ahead: Annotated[int, Ge(0)] = 16
    """Messages for rounds beyond the current one plus this many are dropped (memory bound)."""

    def timeout(self, step: Step, round: int) -> float:
        """The timeout of ``step`` in ``round``."""
        base, delta = {
            Step.PROPOSE: (self.propose, self.propose_delta),
            Step.PREVOTE: (self.prevote, self.prevote_delta),
            Step.PRECOMMIT: (self.precommit, self.precommit_delta),
        }[step]
        return base + round * delta


# -- what the consensus state machine asks its node to do ------------------------------------


@dataclass(frozen=True)
class Broadcast:
    """Publish this signed message on the consensus topic (the machine already counted it)."""

    message: ConsensusMessage
    """The message to encode (wire.encode_message) and gossip."""


@dataclass(frozen=True)
class Decide:
    """A value is final at a height: commit it with its certificate, then start the next height."""

    height: int
    """The decided height."""
    value: bytes
    """The decided value."""
    certificate: CommitCertificate
    """The > 2/3 precommits that make it final."""


@dataclass(frozen=True)
class Behind:
    """Validators with more than 1/3 of the weight are at a later height: sync finalized blocks."""

    height: int
    """The highest height those validators are at (blocks before it are final somewhere)."""


@dataclass(frozen=True)
class Disagree:
    """Validators with more than 2/3 of the weight precommitted a value this node's
    ``validate`` rejects: its execution or state differs from the network's. Consensus
    cannot go on here; the node must halt for an operator to look."""

    height: int
    """Height of the value."""
    round: int
    """Round in which it gathered the precommits."""
    value_id: Hash32
    """Id (block hash) of the value."""


Action = Broadcast | Decide | Behind | Disagree
"""Everything the state machine returns."""

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
    """The epoch's seed (sequencer.election: mixed from the validators' reveals)."""
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
    reveal: bytes = b""
    """32-byte secret whose keccak this validator's proof of the epoch before committed to
    (sequencer.election.reveal); mixed into the next epoch's seed."""
    commit: bytes = b""
    """keccak of the secret this validator reveals in its next epoch's proof (32 bytes)."""
