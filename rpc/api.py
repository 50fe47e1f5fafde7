"""The seam between the RPC server and the node: everything a JSON-RPC method may ask."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from executor_gpu.api import StateReader
from executor_gpu.types import CallMessage, CallResult, Deadline, TraceOptions, TxTrace
from primitives.blocks import Header
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
    PoolContent,
    ReceiptView,
    SimulatedBlockSpec,
    SimulatedBlockView,
    TxLocation,
)


class ChainEvents(Protocol):
    """What the node tells the RPC server as it happens (subscriptions and filters).

    Called from the node's threads; implementations hand the work over and return at once.
    """

    def wants_pending(self) -> bool:
        """True when someone listens for new pool transactions (else the node skips
        ``new_pending``, keeping admission free of the work)."""
        ...

    def new_pending(self, txs: Sequence[Transaction]) -> None:
        """Transactions just admitted to the pool, one call per admitted batch."""
        ...

    def new_head(self, header: Header) -> None:
        """A block just became the head (final)."""
        ...


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

    def safe_number(self) -> int:
        """Height of the "safe" block: the last block of the newest batch committed to L1."""
        ...

    def finalized_number(self) -> int:
        """Height of the "finalized" block: the last block of the newest batch whose L1
        commitment is final."""
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

    def pool_content(self, sender: Address | None = None) -> PoolContent:
        """The pooled transactions (of ``sender`` only, when given)."""
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

    def call(self, message: CallMessage, number: int, deadline: Deadline) -> CallResult:
        """Run an unsigned call on the state after block ``number``, in the next block's env.

        Raises primitives.errors.ExecutionAborted once ``deadline`` has passed.
        """
        ...

    def estimate_gas(self, message: CallMessage, number: int, deadline: Deadline) -> int:
        """Least gas with which ``message`` succeeds.

        Raises primitives.errors.ExecutionReverted (with the revert data) when it fails even
        with all of ``message.gas``, ExecutionAborted once ``deadline`` has passed.
        """
        ...

    def simulate(
        self, blocks: Sequence[SimulatedBlockSpec], number: int, validation: bool,
        trace_transfers: bool, gas_cap: int, deadline: Deadline,
    ) -> Sequence[SimulatedBlockView]:
        """eth_simulateV1: ``blocks`` built one on the other on top of block ``number``, on the
        reference executor, all calls together using at most ``gas_cap`` gas. Raises
        primitives.errors.TransactionRejected for a call that cannot run (go-ethereum's
        wording), ExecutionAborted once ``deadline`` has passed."""
        ...

    def trace_call(
        self, message: CallMessage, number: int, options: TraceOptions,
        deadline: Deadline | None = None,
    ) -> TxTrace:
        """``call``, recorded step by step on the reference executor. Raises
        primitives.errors.TransactionRejected when the message cannot run (funds, gas),
        InvalidInput when the trace would outgrow ``options``' bounds, ExecutionAborted once
        ``deadline`` has passed."""
        ...

    def trace_block(
        self, number: int, options: TraceOptions, only: int | None = None,
        deadline: Deadline | None = None,
    ) -> Sequence[TxTrace]:
        """Block ``number`` re-run on its parent's state, each transaction traced (or only the
        one at index ``only``, the ones before it run untraced), by ``deadline``."""
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

    def subscribe(self, events: ChainEvents) -> None:
        """Report every new head and every admitted batch of transactions to ``events``."""
        ...
