"""Values the RPC layer reads from the node."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from annotated_types import Ge, Gt

from executor_gpu.types import AccountOverride, SimulatedCall, SimulatedCallResult
from primitives.blocks import Header, Log, Receipt
from primitives.transactions import Transaction
from primitives.types import Address, Hash32


@dataclass(frozen=True)
class BlockView:
    """A finalized block with its transactions."""

    header: Header
    """The header; ``header.hash`` is the block hash."""
    transactions: tuple[Transaction, ...]
    """Transactions in block order."""


@dataclass(frozen=True)
class TxLocation:
    """Where a transaction was included."""

    block_hash: Hash32
    """Hash of the including block."""
    block_number: int
    """Height of the including block."""
    index: int
    """Position within the block."""
    block_timestamp: int
    """Timestamp of the including block (``blockTimestamp`` in transactions and logs)."""


@dataclass(frozen=True)
class ReceiptView:
    """A receipt with everything eth_getTransactionReceipt returns."""

    tx: Transaction
    """The transaction."""
    location: TxLocation
    """Where it was included."""
    receipt: Receipt
    """Consensus receipt."""
    gas_used: int
    """Gas used by this transaction alone."""
    effective_gas_price: int
    """Price per gas paid."""
    contract_address: Address | None
    """Created contract, if any."""
    first_log_index: int
    """Block-wide index of this receipt's first log."""


@dataclass(frozen=True)
class LogView:
    """A log with its position, as eth_getLogs returns it."""

    log: Log
    """The log."""
    location: TxLocation
    """Transaction that emitted it."""
    tx_hash: Hash32
    """Hash of that transaction."""
    log_index: int
    """Index of the log within its block."""


@dataclass(frozen=True)
class LogFilter:
    """eth_getLogs criteria, already resolved to block numbers."""

    from_block: int
    """First height, inclusive."""
    to_block: int
    """Last height, inclusive."""
    addresses: tuple[Address, ...] = ()
    """Match any of these emitters; empty matches all."""
    topics: tuple[tuple[Hash32, ...] | None, ...] = ()
    """Per position: any of these topics, or None for a wildcard."""


@dataclass(frozen=True)
class FeeHistory:
    """eth_feeHistory result."""

    oldest_block: int
    """First height covered."""
    base_fees: tuple[int, ...]
    """Base fee per block, plus the next block's."""
    gas_used_ratios: tuple[float, ...]
    """gas used / gas limit per block."""
    rewards: tuple[tuple[int, ...], ...]
    """Tip percentiles per block (empty when no percentiles asked)."""


@dataclass(frozen=True)
class PoolContent:
    """The transaction pool (txpool_*), ordered by sender and nonce."""

    pending: tuple[Transaction, ...]
    """Executable now: each sender's contiguous run from its account nonce."""
    queued: tuple[Transaction, ...]
    """Waiting behind a nonce gap."""


@dataclass(frozen=True)
class BatchView:
    """A batch of blocks the node committed to L1."""

    number: int
    """Batch number (1-based on the contract)."""
    first_block: int
    """First L2 height in the batch."""
    last_block: int
    """Last L2 height in the batch."""
    prev_state_root: Hash32
    """State root before the batch."""
    state_root: Hash32
    """State root after the batch (of ``last_block``)."""
    data_hash: Hash32
    """Keccak-256 of the posted batch data."""
    l1_tx_hash: Hash32 | None
    """L1 transaction that carried the commitment, once sent."""
    l1_block_number: int | None
    """L1 block that included it, once mined."""


@dataclass(frozen=True)
class StorageProof:
    """A storage slot's value with its Merkle proof (EIP-1186)."""

    slot: int
    """The slot."""
    value: int
    """Its value (0 when unset)."""
    proof: tuple[bytes, ...]
    """RLP-encoded nodes of the account's storage trie, from its root along keccak(slot)."""


@dataclass(frozen=True)
class AccountProof:
    """An account with its Merkle proof against a block's state root (eth_getProof)."""

    address: Address
    """The account."""
    nonce: int
    """Its nonce (0 when it does not exist)."""
    balance: int
    """Its balance in wei."""
    storage_root: Hash32
    """Root of its storage trie (the empty trie's when it has none)."""
    code_hash: Hash32
    """Keccak-256 of its code (of empty code when it has none)."""
    proof: tuple[bytes, ...]
    """RLP-encoded nodes of the state trie, from the state root along keccak(address)."""
    storage: tuple[StorageProof, ...]
    """The slots asked for, in the order asked."""


@dataclass(frozen=True)
class Withdrawal:
    """A withdrawal credited at the end of a simulated block (eth_simulateV1's
    blockOverrides.withdrawals)."""

    index: int
    """Withdrawal index."""
    validator_index: int
    """Index of the validator withdrawing."""
    address: Address
    """Account credited."""
    amount: int
    """Amount in gwei."""


@dataclass(frozen=True)
class SimulatedBlockSpec:
    """One block of an eth_simulateV1 request, its number and time settled (gaps filled)."""

    number: int
    """Height; one more than the block before it."""
    timestamp: int
    """Timestamp; more than the block before it."""
    gas_limit: int | None
    """Gas limit; None: the block before's."""
    coinbase: Address | None
    """Fee recipient; None: the block before's."""
    base_fee_per_gas: int | None
    """Base fee; None: the next base fee when validating, else 0 (as go-ethereum)."""
    prev_randao: Hash32
    """PREVRANDAO value."""
    withdrawals: tuple[Withdrawal, ...]
    """Credited after the calls."""
    overrides: Mapping[Address, AccountOverride]
    """State overrides applied before the calls."""
    calls: tuple[SimulatedCall, ...]
    """The calls, in order."""


@dataclass(frozen=True)
class SimulatedBlockView:
    """A block eth_simulateV1 built."""

    header: Header
    """Its header, hashed as a real block's."""
    transactions: tuple[Transaction, ...]
    """Its calls as unsigned transactions."""
    calls: tuple[SimulatedCallResult, ...]
    """The calls' outcomes."""
    withdrawals: tuple[Withdrawal, ...]
    """Its withdrawals."""


@dataclass(frozen=True)
class Readiness:
    """The answer to GET /ready: whether the node should get traffic, and why not."""

    reasons: tuple[str, ...]
    """What is wrong, one sentence each; empty when ready."""
    details: tuple[tuple[str, float], ...] = ()
    """The figures the checks looked at (head, head age, peers, L1 lag...), by name."""

    @property
    def ready(self) -> bool:
        """True when nothing is wrong."""
        return not self.reasons


@dataclass(frozen=True)
class RpcLimits:
    """What one caller may make the JSON-RPC server spend (geth's flag in brackets); the
    ranges are checked when a node config is loaded."""

    evm_timeout: Annotated[float, Gt(0)] = 5.0
    """Seconds an eth_call or eth_estimateGas may run before it is aborted (--rpc.evmtimeout)."""
    gas_cap: Annotated[int, Ge(1)] = 50_000_000
    """Most gas an eth_call or eth_estimateGas may use (--rpc.gascap; geth's default)."""
    expensive_calls: Annotated[int, Ge(1)] = 2
    """Most eth_call, eth_estimateGas and long eth_getLogs running at once. Python runs one at
    a time anyway (the GIL): more only slows every other request and block production."""
    busy_wait: Annotated[float, Ge(0)] = 1.0
    """Seconds an expensive call waits for a free slot before it is answered "server busy"."""
    max_body_bytes: Annotated[int, Ge(1)] = 5 * 1024 * 1024
    """Largest request body; a longer one is refused while it is read."""
    max_batch: Annotated[int, Ge(1)] = 1000
    """Most requests in one batch."""
    body_memory: Annotated[int, Ge(0)] = 64 * 1024 * 1024
    """Most bytes of large request bodies held at once, from reading to answer; past it a
    large request is answered "server busy"."""
    header_timeout: Annotated[float, Gt(0)] = 10.0
    """Seconds a connection may take to send a request's headers (--http.readheadertimeout)."""
    read_timeout: Annotated[float, Gt(0)] = 30.0
    """Seconds a request's body may take to arrive (geth's http ReadTimeout)."""
    idle_timeout: Annotated[float, Gt(0)] = 30.0
    """Seconds a keep-alive connection may stay idle between requests (geth's IdleTimeout)."""
    max_connections: Annotated[int, Ge(0)] = 0
    """Most open connections; further ones are answered 503 and closed. 0: a quarter of the
    process's open-file limit (the rest is for the database and peers)."""


DEFAULT_LIMITS = RpcLimits()
"""The limits when none are configured."""
