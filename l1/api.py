"""The L1 seams: the batch contract as the node sees it, and what the poster reads from the node."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from l1.types import (
    BatchCommitment,
    BatchDomain,
    CommittedBatch,
    L1Call,
    L1Fees,
    L1Head,
    L1Receipt,
    L2BlockData,
    PosterState,
    ValidatorSet,
)
from primitives.errors import Halt
from primitives.types import Address, Hash32


class L1Rejected(Halt):
    """The L1 contract reverted a call: this node's batch disagrees with what L1 holds.

    The message names the contract's custom error and its arguments,
    e.g. ``PrevStateRootMismatch(expected=0x.., got=0x..)``.
    """


class L1Client(Protocol):
    """The batch contract on L1: read commitments, send new ones.

    Connection trouble raises primitives.errors.RetryLater; a commitment the
    contract refuses raises L1Rejected with the contract's reason.
    """

    def domain(self) -> BatchDomain:
        """L1 chain id, contract address and L2 chain id: what batch signatures commit to."""
        ...

    def genesis_state_root(self) -> Hash32:
        """The L2 genesis state root the contract was deployed with (batch 1 starts from it)."""
        ...

    def latest_batch(self) -> CommittedBatch | None:
        """The last committed batch, or None when none is committed yet."""
        ...

    def batch(self, number: int) -> CommittedBatch | None:
        """Committed batch ``number`` (1-based), or None when it is not committed."""
        ...

    def batch_data(self, batch: CommittedBatch) -> bytes:
        """The whole payload posted for ``batch`` (all parts joined), checked against its data_hash.

        Decode it with l1.codec.decode_batch_data. Raises RetryLater when L1 does not
        (or no longer) hold data matching the commitment (e.g. it was reorged out).
        """
        ...

    def validator_set(self) -> ValidatorSet:
        """The validator set the contract checks signatures against now."""
        ...

    def validators_at(self, batch: CommittedBatch) -> ValidatorSet:
        """The set the contract checked ``batch``'s signatures against: the last
        ValidatorsUpdated before its commit on L1 (epoch 0: the deployment's)."""
        ...

    def batch_signatures(self, batch: CommittedBatch) -> tuple[bytes, ...]:
        """The signatures ``batch`` was committed with, read from its commit transaction.

        Raises InvalidInput when that transaction is not a direct commitBatch call to the
        contract (another contract relayed it: its input does not hold them).
        """
        ...

    def commit_batch(
        self, commitment: BatchCommitment, data: bytes, signatures: Sequence[bytes]
    ) -> Hash32:
        """Send the batch (data parts, then commitBatch), each once the one before is mined.

        Returns the commitBatch transaction hash. For tools and tests; the poster
        uses the calls below, which do not wait.
        """
        ...

    # The poster's path: unsigned calls, sent with its own nonce and fee management.

    def batch_calls(
        self, commitment: BatchCommitment, data: bytes, signatures: Sequence[bytes]
    ) -> tuple[L1Call, ...]:
        """The transactions that post a batch: data parts, then the commit."""
        ...

    def validators_call(self, new_set: ValidatorSet, signatures: Sequence[bytes]) -> L1Call:
        """The transaction that installs ``new_set`` (updateValidators), signed by the
        current set over l1.codec.validators_digest."""
        ...

    def head(self) -> L1Head:
        """The latest L1 block."""
        ...

    def poster_nonce(self) -> int:
        """Mined transaction count of the poster account (pending ones not counted)."""
        ...

    def suggested_fees(self) -> L1Fees:
        """Fees for a transaction sent now."""
        ...

    def simulate(self, call: L1Call) -> None:
        """Run ``call`` from the poster account against the latest L1 state, sending nothing.

        Raises L1Rejected with the contract's reason when it would revert.
        """
        ...

    def send(self, call: L1Call, nonce: int, fees: L1Fees) -> Hash32:
        """Sign ``call`` with the poster key and hand it to the L1 node, without waiting.

        Sending the same (call, nonce, fees) again is harmless.
        """
        ...

    def receipt(self, tx_hash: Hash32) -> L1Receipt | None:
        """The receipt of ``tx_hash``; None while it is not mined (or no longer is)."""
        ...

    def is_known(self, tx_hash: Hash32) -> bool:
        """Whether the L1 node has ``tx_hash`` (pending or mined); False after it dropped it."""
        ...


class BatchSignatures(Protocol):
    """Where the poster gets the validators' signatures for a batch or a validator-set update."""

    def signatures(self, commitment: BatchCommitment, domain: BatchDomain) -> Sequence[bytes] | None:
        """Signatures of more than 2/3 of the weight of the batch's epoch (that of its first
        block) over batch_digest(domain, commitment), in the contract's order; None while the
        quorum is not reached (ask again later)."""
        ...

    def validator_signatures(self, new_set: ValidatorSet, domain: BatchDomain) -> Sequence[bytes] | None:
        """Signatures of more than 2/3 of the weight of epoch ``new_set.epoch - 1`` (the set
        the contract holds) over validators_digest for ``new_set``, in the contract's order;
        None while the quorum is not reached (ask again later)."""
        ...


class PosterStore(Protocol):
    """Durable home of the poster's queue and in-flight transactions."""

    def load(self) -> PosterState:
        """The last saved state (an empty one before the first save)."""
        ...

    def save(self, state: PosterState) -> None:
        """Replace the saved state, durably, before returning."""
        ...


class BlockSource(Protocol):
    """Finalized L2 blocks, as the node stores them."""

    def head_number(self) -> int:
        """Number of the latest finalized block (0 when only genesis exists)."""
        ...

    def block_data(self, number: int) -> L2BlockData:
        """Data of finalized block ``number`` (1 .. head_number())."""
        ...

    def state_root(self, number: int) -> Hash32:
        """State root after block ``number`` (the genesis root for 0)."""
        ...

    def epoch_of(self, number: int) -> int:
        """The validator-set epoch of block ``number``: its validators sign its batch."""
        ...

    def validators(self, epoch: int) -> Mapping[Address, int] | None:
        """The weights of ``epoch``'s validators, or None while the finalized chain has not
        fixed them yet."""
        ...
