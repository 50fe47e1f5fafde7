"""Values crossing the Executor seam."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from primitives.blocks import Log, Receipt
from primitives.frozen import direct_init
from primitives.transactions import AccessListEntry, Transaction
from primitives.types import ZERO_HASH, Address, Hash32


@dataclass(frozen=True)
class Account:
    """An account as stored in the state trie."""

    nonce: int
    """Transactions sent (EOA) or contracts created (contract)."""
    balance: int
    """Wei held."""
    storage_root: Hash32
    """Root of the account's storage trie."""
    code_hash: Hash32
    """Keccak-256 of the account's code."""


@dataclass(frozen=True)
class BlockEnv:
    """The block a batch executes in: everything the EVM's block opcodes read."""

    number: int
    """Height of the block being built (NUMBER)."""
    timestamp: int
    """Block time in seconds (TIMESTAMP)."""
    coinbase: Address
    """Receiver of priority fees (COINBASE)."""
    gas_limit: int
    """Block gas limit (GASLIMIT)."""
    base_fee_per_gas: int
    """EIP-1559 base fee (BASEFEE)."""
    chain_id: int
    """Chain id (CHAINID); transactions signed for another chain are rejected."""
    prev_randao: Hash32 = ZERO_HASH
    """PREVRANDAO value."""
    excess_blob_gas: int = 0
    """Sets BLOBBASEFEE; 0 on this L2."""
    parent_beacon_block_root: Hash32 = ZERO_HASH
    """EIP-4788 root; zero on this L2."""
    block_hashes: tuple[Hash32, ...] = ()
    """Hashes of up to 256 previous blocks, most recent first (BLOCKHASH)."""


@direct_init
@dataclass(frozen=True)
class AccountChange:
    """The new value of an account that a batch changed."""

    nonce: int
    """New nonce."""
    balance: int
    """New balance."""
    code: bytes | None = None
    """New code when it changed (contract creation); None keeps the old code."""
    storage: Mapping[int, int] = field(default_factory=dict)
    """Slots whose value changed, with their new value (0 deletes the slot)."""
    storage_reset: bool = False
    """True when the old storage was wiped before ``storage`` applies."""


@dataclass(frozen=True)
class StateDiff:
    """Every state change of a batch; applying it to the pre-state gives the post-state."""

    accounts: Mapping[Address, AccountChange | None]
    """Changed accounts; None means the account no longer exists."""
    packed: PackedState | None = field(default=None, compare=False, repr=False)
    """The same changes as the state committer takes them, when the executor made them in
    bulk from its arrays (a block's tens of thousands of accounts, packed one by one in Python,
    cost tens of ms); None: packed from ``accounts`` when committed."""

    def nonces_and_balances(self, addresses: Sequence[Address]) -> tuple[list[int], list[int]]:
        """The nonce and the balance after the diff of each of ``addresses``, all of which it
        changed (0 and 0 for a deleted one). The native executor's diffs read them from their
        arrays (a block's senders, without making each one's ``AccountChange``)."""
        bulk = getattr(self.accounts, "nonces_and_balances", None)
        if bulk is not None:
            columns: tuple[list[int], list[int]] = bulk(addresses)
            return columns
        changes = [self.accounts[address] for address in addresses]
        return ([0 if change is None else change.nonce for change in changes],
                [0 if change is None else change.balance for change in changes])


@dataclass(frozen=True)
class PackedState:
    """A diff's changes in the state committer's layout (``kernels/evm_mpt.h``)."""

    records: bytes
    """An account record (``MA_SIZE`` bytes) for each account of the diff, in its order."""
    slots: bytes
    """The slots set, ``MS_SIZE`` bytes each (slot, value; 32 bytes big-endian each), grouped
    by account in the diff's order, each account's in its storage's order."""
    counts: npt.NDArray[np.uint64]
    """How many of ``slots`` each account has."""
    codes: Mapping[bytes, bytes]
    """New contract code by its Keccak-256 hash."""
    paths: bytes | None = None
    """The accounts' trie keys (Keccak-256 of each address, 32 bytes each, joined), when the
    executor had them; None: hashed where needed."""
    slot_paths: bytes | None = None
    """Likewise the slots' trie keys (Keccak-256 of each slot), in ``slots``'s order."""


@direct_init
@dataclass(frozen=True)
class ExecutedTx:
    """Outcome of one included transaction."""

    tx: Transaction
    """The transaction."""
    receipt: Receipt
    """Consensus receipt (status, cumulative gas, logs)."""
    gas_used: int
    """Gas charged to this transaction after refunds."""
    effective_gas_price: int
    """Price per gas paid."""
    contract_address: Address | None
    """Address of the contract created, for creation transactions."""
    error: str | None = None
    """Why execution failed (revert, out of gas...), or None on success."""

    @property
    def logs(self) -> tuple[Log, ...]:
        """Logs emitted by this transaction."""
        return self.receipt.logs


@dataclass(frozen=True)
class RejectedTx:
    """A transaction that cannot be included against the batch's state."""

    index: int
    """Position in the ``txs`` passed to ``execute``."""
    tx: Transaction
    """The transaction."""
    reason: str
    """Why, in go-ethereum's wording ("nonce too low", "insufficient funds for gas * price + value", ...)."""


@dataclass(frozen=True)
class BatchResult:
    """Result of executing a batch of transactions in order."""

    executed: tuple[ExecutedTx, ...]
    """Included transactions, in order."""
    rejected: tuple[RejectedTx, ...]
    """Transactions skipped because they were invalid against the state at their turn."""
    state_diff: StateDiff
    """State changes of the whole batch."""
    gas_used: int
    """Total gas of the included transactions."""
    state_root: Hash32 | None = None
    """Post-state root, when the executor computed one itself; the node cross-checks it."""
    fallbacks: int = 0
    """Transactions a native executor handed to the reference executor."""


@dataclass(frozen=True)
class AccountOverride:
    """One account of an eth_call state override set (geth's OverrideAccount)."""

    nonce: int | None = None
    """New nonce; None keeps it."""
    balance: int | None = None
    """New balance; None keeps it."""
    code: bytes | None = None
    """New code; None keeps it."""
    state: Mapping[int, int] | None = None
    """Replaces the whole storage with these slots; None keeps it."""
    state_diff: Mapping[int, int] = field(default_factory=dict)
    """Slots set on top of the storage."""
    move_precompile_to: Address | None = None
    """Where the precompile at this address moves to (it must be one); overriding a
    precompile's address in any way makes it an ordinary account, as in go-ethereum."""


@dataclass(frozen=True)
class CallMessage:
    """An unsigned call for eth_call / eth_estimateGas: no signature, no fee charged."""

    sender: Address
    """Caller (``from``); zero address when not given."""
    to: Address | None
    """Callee, or None to run ``data`` as init code."""
    gas: int
    """Gas available to the call."""
    value: int = 0
    """Wei sent with the call."""
    data: bytes = b""
    """Call data or init code."""
    gas_price: int = 0
    """Price per gas (GASPRICE); 0 when not given, so no balance is needed for gas."""
    access_list: tuple[AccessListEntry, ...] = ()
    """EIP-2930 access list: pre-warmed, and charged in the intrinsic gas."""
    overrides: Mapping[Address, AccountOverride] = field(default_factory=dict)
    """eth_call state overrides: accounts replaced or patched before the call runs."""


@dataclass(frozen=True)
class Deadline:
    """When an unsigned call (eth_call, eth_estimateGas) must stop."""

    at: float
    """time.monotonic() value past which it stops."""
    cancelled: threading.Event = field(default_factory=threading.Event)
    """Set to stop it at once (the node is shutting down)."""

    def passed(self) -> bool:
        return self.cancelled.is_set() or time.monotonic() > self.at


@dataclass(frozen=True)
class CallResult:
    """Outcome of a CallMessage."""

    succeeded: bool
    """False on revert or exceptional halt."""
    output: bytes
    """Return data (or revert data)."""
    gas_used: int
    """Gas consumed, after refunds."""
    error: str | None = None
    """Why the call failed ("execution reverted", "out of gas", ...)."""


@dataclass(frozen=True)
class SimulatedCall:
    """One call of an eth_simulateV1 block: a transaction run without a signature."""

    sender: Address
    """Caller (``from``); zero address when not given."""
    to: Address | None
    """Callee, or None to run ``data`` as init code."""
    gas: int | None
    """Gas limit; None: what is left of the block's gas (and of the simulation's gas cap)."""
    value: int = 0
    """Wei sent with the call."""
    data: bytes = b""
    """Call data or init code."""
    max_fee_per_gas: int = 0
    """Fee cap (the gas price for legacy pricing); 0 when not given."""
    max_priority_fee_per_gas: int = 0
    """Tip cap (the gas price for legacy pricing); 0 when not given."""
    access_list: tuple[AccessListEntry, ...] = ()
    """EIP-2930 access list: pre-warmed, and charged in the intrinsic gas."""
    nonce: int | None = None
    """Nonce; None: the sender's nonce in the simulated state. Checked only when validating."""


@dataclass(frozen=True)
class SimulatedCallResult:
    """Outcome of a SimulatedCall; its state changes stay for the calls after it."""

    succeeded: bool
    """False on revert or exceptional halt."""
    output: bytes
    """Return data (or revert data)."""
    gas_used: int
    """Gas charged, after refunds."""
    max_used_gas: int
    """Most gas it held at once: charged before refunds (what a gas limit must cover)."""
    gas_limit: int
    """The gas limit it ran with (its ``gas``, or the default it got)."""
    nonce: int
    """The nonce it ran with (its ``nonce``, or the sender's)."""
    logs: tuple[Log, ...]
    """Logs it emitted (its receipt's)."""
    reported_logs: tuple[Log, ...]
    """``logs`` with its ETH transfers as ERC-20 Transfer logs between them, when transfers are
    traced; else ``logs``."""
    error: str | None = None
    """Why the call failed ("execution reverted", "out of gas", ...)."""


@dataclass(frozen=True)
class SimulatedBlockResult:
    """One block of an eth_simulateV1 run."""

    calls: tuple[SimulatedCallResult, ...]
    """Its calls' outcomes, in order."""
    gas_used: int
    """Gas its calls used."""
    state_root: Hash32
    """State root after the block (its overrides, calls and withdrawals)."""


@dataclass(frozen=True)
class TraceOptions:
    """What a trace records beyond the call tree and the touched accounts."""

    struct_logs: bool = False
    """Record every EVM step (geth's struct logger)."""
    memory: bool = False
    """Each step carries the memory (enableMemory)."""
    stack: bool = True
    """Each step carries the stack (not disableStack)."""
    storage: bool = True
    """SLOAD/SSTORE steps carry the slots of the contract seen so far (not disableStorage)."""
    return_data: bool = False
    """Each step carries the last call's return data (enableReturnData)."""
    step_limit: int = 100_000
    """Most steps recorded (a bound on memory)."""
    byte_limit: int = 64 * 1024 * 1024
    """Most bytes of stacks, memory, storage and return data recorded over all steps of a
    call or of a whole block (one step may copy a megabyte of memory)."""
    truncate: bool = False
    """At ``step_limit``, stop recording and finish (geth's ``limit``); else the trace fails.
    Past ``byte_limit`` the trace fails either way."""


@dataclass(frozen=True)
class TraceStep:
    """One EVM step, as geth's struct logger prints it."""

    pc: int
    """Program counter."""
    op: str
    """Mnemonic, geth's spelling."""
    gas: int
    """Gas left before the step."""
    gas_cost: int
    """Gas the step cost (for calls and creates: with the gas handed to the callee)."""
    depth: int
    """Call depth, 1 for the transaction's own frame."""
    refund: int
    """Refund counter before the step."""
    stack: tuple[int, ...] | None
    """Stack before the step, bottom first (None when not recorded)."""
    memory: bytes | None
    """Memory before the step (None when not recorded)."""
    storage: Mapping[int, int] | None
    """For SLOAD/SSTORE: the contract's slots seen so far, with this step's."""
    return_data: bytes | None
    """Return data of the last call (None when not recorded)."""
    error: str | None
    """Why the step failed, if it did."""


@dataclass(frozen=True)
class CallFrame:
    """A message call or creation and the calls it made (geth's callTracer frame)."""

    call_type: str
    """CALL, STATICCALL, DELEGATECALL, CALLCODE, CREATE, CREATE2 or SELFDESTRUCT."""
    sender: Address
    """``from``."""
    to: Address
    """Callee, or the created contract."""
    value: int | None
    """Wei sent (None for STATICCALL and DELEGATECALL, which send none)."""
    gas: int
    """Gas given to the frame."""
    gas_used: int
    """Gas the frame used."""
    input: bytes
    """Call data or init code."""
    output: bytes
    """Return data, revert data, or the created code."""
    error: str | None
    """Why the frame failed, if it did."""
    calls: tuple[CallFrame, ...]
    """Sub-calls, in order."""
    logs: tuple[Log, ...]
    """Logs the frame emitted itself (kept only when it succeeded)."""


@dataclass(frozen=True)
class AccountSnapshot:
    """An account touched by a traced transaction, before or after it (prestateTracer)."""

    balance: int
    """Wei held."""
    nonce: int
    """Nonce."""
    code: bytes
    """Code."""
    storage: Mapping[int, int]
    """The touched slots' values."""


@dataclass(frozen=True)
class TxTrace:
    """Everything one traced transaction or call recorded."""

    gas_used: int
    """Gas charged, after refunds."""
    failed: bool
    """True when it reverted or halted."""
    output: bytes
    """Return or revert data."""
    call: CallFrame
    """The call tree."""
    steps: tuple[TraceStep, ...]
    """Every step, when TraceOptions.struct_logs."""
    accessed: Mapping[Address, tuple[int, ...]]
    """Accounts and slots its opcodes accessed (SLOAD/SSTORE, BALANCE, EXTCODE*, CALL*,
    SELFDESTRUCT), in first-access order: what eth_createAccessList builds on."""
    pre: Mapping[Address, AccountSnapshot]
    """Every touched account before the transaction."""
    post: Mapping[Address, AccountSnapshot]
    """The same accounts after it (absent: it no longer exists)."""
