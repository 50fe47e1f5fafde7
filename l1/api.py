"""The L1 seams: the batch contract as the node sees it, and what the poster reads from the node."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from l1.types import BatchCommitment, BatchDomain, CommittedBatch, L2BlockData
from primitives.errors import Halt
from primitives.types import Hash32


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

    def commit_batch(
        self, commitment: BatchCommitment, data: bytes, signatures: Sequence[bytes]
    ) -> Hash32:
        """Send commitBatch with ``data`` as calldata; returns the L1 tx hash once it is mined."""
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
