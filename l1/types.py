"""Values crossing the L1 seam: block data posted to L1 and batch commitments read back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from primitives.types import Address, Hash32


@dataclass(frozen=True)
class L2BlockData:
    """What anyone needs to re-execute one L2 block from its parent's state."""

    number: int
    """Height of the block."""
    timestamp: int
    """Block time in seconds since the Unix epoch."""
    coinbase: Address
    """Receiver of priority fees."""
    gas_limit: int
    """Block gas limit."""
    base_fee_per_gas: int
    """EIP-1559 base fee of the block."""
    transactions: tuple[bytes, ...]
    """Raw signed transactions in block order (as sent to eth_sendRawTransaction)."""
    proofs: tuple[bytes, ...] = ()
    """Encoded GPU weight proofs the block carries (sequencer/weights.py); its header commits to
    them, and the weights of the next epoch follow from them."""


@dataclass(frozen=True)
class BatchCommitment:
    """What the validators sign and the contract checks for one batch."""

    batch_number: int
    """Position in the chain of batches; the first batch is 1."""
    prev_state_root: Hash32
    """State root after the previous batch (the genesis root for batch 1)."""
    state_root: Hash32
    """State root after the batch's last block."""
    first_block: int
    """First L2 block of the batch (previous batch's last block + 1)."""
    last_block: int
    """Last L2 block of the batch (inclusive)."""
    data_hash: Hash32
    """Hash of the batch data over 4 KiB pieces (l1.codec.batch_data_hash), as BatchInbox computes it."""


@dataclass(frozen=True)
class CommittedBatch:
    """A batch commitment as found on L1."""

    batch_number: int
    """Position in the chain of batches; the first batch is 1."""
    prev_state_root: Hash32
    """State root after the previous batch (the genesis root for batch 1)."""
    state_root: Hash32
    """State root after the batch's last block."""
    first_block: int
    """First L2 block of the batch."""
    last_block: int
    """Last L2 block of the batch (inclusive)."""
    data_hash: Hash32
    """Hash of the batch data over 4 KiB pieces (l1.codec.batch_data_hash), as BatchInbox computes it."""
    l1_tx_hash: Hash32
    """Hash of the L1 transaction that committed the batch (its input holds the data)."""
    l1_block_number: int
    """L1 block that includes that transaction."""

    @property
    def commitment(self) -> BatchCommitment:
        """The signed part, without the L1 location."""
        return BatchCommitment(
            batch_number=self.batch_number,
            prev_state_root=self.prev_state_root,
            state_root=self.state_root,
            first_block=self.first_block,
            last_block=self.last_block,
            data_hash=self.data_hash,
        )


@dataclass(frozen=True)
class BatchDomain:
    """Where a batch signature is valid: one contract on one L1 for one L2 chain."""

    l1_chain_id: int
    """Chain id of the L1 the contract lives on."""
    contract: Address
    """Address of the BatchInbox contract."""
    l2_chain_id: int
    """Chain id of the L2 whose batches the contract accepts."""


@dataclass(frozen=True)
class L1Call:
    """One unsigned transaction to the batch contract (a data part or the commit)."""

    data: bytes
    """Calldata."""
    gas: int
    """Gas limit: a bound computed from the calldata, since later parts cannot be estimated
    before the earlier ones are mined."""
    what: str
    """What it does, for logs (e.g. "batch 3 data part 0")."""


@dataclass(frozen=True)
class L1Fees:
    """EIP-1559 fee caps of an L1 transaction, in wei per gas."""

    max_fee_per_gas: int
    """Most the sender pays per gas (base fee + tip)."""
    max_priority_fee_per_gas: int
    """Most of that going to the L1 block producer."""


@dataclass(frozen=True)
class L1Receipt:
    """Outcome of a mined L1 transaction."""

    tx_hash: Hash32
    """The transaction."""
    block_number: int
    """L1 block that includes it."""
    success: bool
    """False when it reverted."""


@dataclass(frozen=True)
class L1Head:
    """The L1 chain's latest block, as far as the poster needs it."""

    number: int
    """Block number."""
    base_fee_per_gas: int
    """Its EIP-1559 base fee in wei."""


@dataclass(frozen=True)
class SignedBatch:
    """A batch ready for L1: what the contract checks, the data, and the quorum's signatures."""

    commitment: BatchCommitment
    """What the validators signed."""
    data: bytes
    """The batch data payload (l1.codec.encode_batch_data)."""
    signatures: tuple[bytes, ...]
    """Signatures over the batch digest, in the contract's order (ascending signer)."""


@dataclass(frozen=True)
class SentTransaction:
    """One L1 transaction of a post attempt, with every fee version sent for its nonce."""

    call: L1Call
    """What it does."""
    nonce: int
    """The poster account nonce it uses."""
    fees: L1Fees
    """Fees of the latest version."""
    tx_hashes: tuple[Hash32, ...]
    """Hashes of every version sent (fee bumps replace the earlier ones), oldest first."""
    sent_at_l1_block: int
    """L1 head number when the latest version was sent."""


@dataclass(frozen=True)
class PostAttempt:
    """The L1 transactions that post one batch (its data parts, then the commit) or one
    validator-set update."""

    batch_number: int
    """The batch they post (for a validator-set update: the batch it is sent before)."""
    transactions: tuple[SentTransaction, ...]
    """In nonce order; the last is commitBatch (or the one updateValidators)."""
    validator_epoch: int = 0
    """0 for a batch; else the validator-set epoch that updateValidators installs."""


@dataclass(frozen=True)
class PosterState:
    """What the poster keeps across restarts (the contract stays the source of truth)."""

    queue: tuple[SignedBatch, ...] = ()
    """Signed batches not yet confirmed on L1, in batch order."""
    attempt: PostAttempt | None = None
    """Transactions in flight for the first unposted batch."""


@dataclass(frozen=True)
class ValidatorSet:
    """The validators the batch contract accepts signatures from."""

    epoch: int
    """Updates applied so far (0: the set the contract was deployed with). The poster installs
    one set per L2 epoch, so this is the L2 epoch whose validators sign the batches."""
    members: tuple[tuple[Address, int], ...]
    """(signer address, weight) in registration order (ascending address for an update)."""

    @classmethod
    def of(cls, epoch: int, weights: Mapping[Address, int]) -> ValidatorSet:
        """The set of ``epoch`` with ``weights``, in ascending address order (the order every
        validator signs, so they all sign one digest)."""
        return cls(epoch, tuple(sorted(weights.items())))

    @property
    def weights(self) -> dict[Address, int]:
        """Signer address -> weight."""
        return dict(self.members)

    @property
    def total_weight(self) -> int:
        """Sum of the weights; a quorum signs more than 2/3 of it."""
        return sum(weight for _, weight in self.members)
