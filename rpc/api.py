"""The seam between the RPC server and the node: everything a JSON-RPC method may ask."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from executor_gpu.api import StateReader
from executor_gpu.types import CallMessage, CallResult
from primitives.errors import L2NodeError
from primitives.transactions import Transaction
from primitives.types import Address, Hash32
from rpc.types import (
    AccountProof,
    BatchView,
    BlockView,
    FeeHistory,
    LogFilter,
    LogView,
    ReceiptView,
    TxLocation,
)


class NodeBackend(Protocol):
    """What the node offers the RPC server. Block tags are resolved by the server to numbers."""

    @property
    def chain_id(self) -> int:
        """The L2 chain id."""
        ...

    @property
    def client_version(self) -> str:
        """web3_clientVersion string."""
        ...

    def head_number(self) -> int:
        """Height of the latest finalized block."""
        ...

    def block_by_number(self, number: int) -> BlockView | None:
        """Finalized block at ``number``."""
        ...

    def block_by_hash(self, block_hash: Hash32) -> BlockView | None:
        """Finalized block with this hash."""
        ...

    def transaction(self, tx_hash: Hash32) -> tuple[Transaction, TxLocation | None] | None:
        """A transaction, included (with location) or pending (location None)."""
        ...

    def receipt(self, tx_hash: Hash32) -> ReceiptView | None:
        """Receipt of an included transaction."""
        ...

    def block_receipts(self, number: int) -> Sequence[ReceiptView]:
        """All receipts of a block, in order."""
        ...

    def state_at(self, number: int) -> StateReader:
        """State after block ``number``."""
        ...

    def proof(self, number: int, address: Address, slots: Sequence[int]) -> AccountProof:
        """The account and ``slots`` after block ``number``, with their Merkle proofs."""
        ...

    def pending_nonce(self, address: bytes) -> int:
        """Next nonce for ``address`` counting pooled transactions."""
        ...

    def send_raw_transactions(self, raws: Sequence[bytes]) -> Sequence[Hash32 | L2NodeError]:
        """Validate and pool transactions, in order, together (one durable write for all).

        Each one's hash, or why it was refused (primitives.errors.InvalidTransaction or
        TransactionRejected).
        """
        ...

    def call(self, message: CallMessage, number: int) -> CallResult:
        """Run an unsigned call on the state after block ``number``, in the next block's env."""
        ...

    def estimate_gas(self, message: CallMessage, number: int) -> int:
        """Least gas with which ``message`` succeeds.

        Raises primitives.errors.ExecutionReverted (with the revert data) when it fails even
        with all of ``message.gas``.
        """
        ...

    def gas_price(self) -> int:
        """Suggested legacy gas price: next base fee plus suggested tip."""
        ...

    def max_priority_fee(self) -> int:
        """Suggested tip."""
        ...

    def next_base_fee(self) -> int:
        """Base fee of the next block."""
        ...

    def fee_history(self, block_count: int, newest: int, percentiles: Sequence[float]) -> FeeHistory:
        """eth_feeHistory over finalized blocks."""
        ...

    def logs(self, log_filter: LogFilter) -> Sequence[LogView]:
        """Logs matching the filter, in chain order."""
        ...

    def batch(self, number: int) -> BatchView | None:
        """An L1 batch by number."""
        ...

    def latest_committed_batch(self) -> BatchView | None:
        """The newest batch the L1 contract holds."""
        ...

    def validators(self, height: int) -> tuple[int, Mapping[Address, int]]:
        """(epoch, address -> weight) of the validator set deciding ``height``."""
        ...

    def leader_seed(self, height: int) -> Hash32:
        """The seed that draws the proposers of ``height`` (its epoch's seed)."""
        ...

    def peer_count(self) -> int:
        """Peers connected on the validator network (0 for a single validator)."""
        ...
