"""The Executor seam: what every executor (reference, native CPU, native CUDA) offers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from executor_gpu.types import (
    Account,
    AccountOverride,
    BatchResult,
    BlockEnv,
    CallMessage,
    CallResult,
    Deadline,
    SimulatedBlockResult,
    SimulatedCall,
    TraceOptions,
    TxTrace,
)
from primitives.transactions import Transaction
from primitives.types import Address, Hash32


class StateReader(Protocol):
    """Read-only view of the state a batch starts from."""

    @property
    def state_root(self) -> Hash32:
        """Merkle-Patricia root of this state."""
        ...

    @property
    def node_store(self) -> Mapping[bytes, bytes]:
        """Trie nodes and contract code keyed by their Keccak-256 hash (for trie-walking executors)."""
        ...

    @property
    def reads_flat(self) -> bool:
        """True while ``get_account`` and ``get_storage`` read flat tables, one read each: an
        executor then reads through them; False: they walk the trie, as an executor can
        itself (under ``state_root`` in ``node_store``)."""
        ...

    def get_account(self, address: Address) -> Account | None:
        """The account, or None when it does not exist."""
        ...

    def get_code(self, address: Address) -> bytes:
        """Code of the account (empty when none)."""
        ...

    def get_storage(self, address: Address, slot: int) -> int:
        """Value of a storage slot (0 when unset)."""
        ...

    def flat_accounts(self, account_hashes: Sequence[bytes]) -> list[bytes | None] | None:
        """Accounts by the Keccak-256 of their address, encoded as the state trie's leaves
        (RLP), from flat tables with one read each (None for an absent one); None when this
        state has no flat tables: walk the trie under ``state_root`` then."""
        ...

    def flat_slots(self, slot_paths: Sequence[bytes]) -> list[bytes | None] | None:
        """Storage values by account hash + slot hash (64 bytes), minimal big-endian, as
        ``flat_accounts`` reads accounts."""
        ...


class Executor(Protocol):
    """Executes ordered transactions; every implementation gives identical results."""

    name: str
    """Short name shown in logs and metrics ("reference", "native-cpu", "native-cuda")."""

    def execute(
        self, pre_state: StateReader, block_env: BlockEnv, txs: Sequence[Transaction]
    ) -> BatchResult:
        """Run ``txs`` in order on ``pre_state``; never mutates ``pre_state``."""
        ...


class Caller(Protocol):
    """Runs unsigned calls against a state without changing it (eth_call, eth_estimateGas)."""

    def call(
        self,
        pre_state: StateReader,
        block_env: BlockEnv,
        message: CallMessage,
        deadline: Deadline | None = None,
    ) -> CallResult:
        """Execute ``message`` on ``pre_state``; the changes are discarded.

        Once ``deadline`` has passed (None: never) the call stops and raises
        primitives.errors.ExecutionAborted.
        """
        ...

    def simulation(
        self, pre_state: StateReader, validation: bool, trace_transfers: bool, gas_cap: int,
        deadline: Deadline | None = None,
    ) -> Simulation:
        """A simulation starting from ``pre_state``: with ``validation`` calls are checked as
        transactions are (nonce, fee cap against the base fee); ``trace_transfers`` reports
        ETH transfers as logs; all calls together use at most ``gas_cap`` gas."""
        ...


class Simulation(Protocol):
    """An eth_simulateV1 run: blocks of calls, each on the state the ones before it left."""

    def run_block(
        self,
        env: BlockEnv,
        overrides: Mapping[Address, AccountOverride],
        calls: Sequence[SimulatedCall],
        credits: Sequence[tuple[Address, int]] = (),
    ) -> SimulatedBlockResult:
        """Apply ``overrides``, run ``calls`` in order in ``env``, then add ``credits``
        (withdrawals: address, wei). Raises primitives.errors.TransactionRejected, worded as
        go-ethereum words it, for a call that cannot run (nonce, fees, funds, gas);
        ExecutionAborted once the run's deadline has passed."""
        ...


class Tracer(Protocol):
    """Re-runs calls and included transactions step by step (debug_trace*, eth_createAccessList)."""

    def trace_call(
        self, pre_state: StateReader, block_env: BlockEnv, message: CallMessage,
        options: TraceOptions, deadline: Deadline | None = None,
    ) -> TxTrace:
        """Trace ``message`` on ``pre_state``; the changes are discarded. Raises
        TransactionRejected when it cannot run (funds, gas), InvalidInput when the trace
        would outgrow ``options``' bounds, ExecutionAborted once ``deadline`` has passed."""
        ...

    def trace_transactions(
        self, pre_state: StateReader, block_env: BlockEnv, txs: Sequence[Transaction],
        options: TraceOptions, only: int | None = None, deadline: Deadline | None = None,
    ) -> list[TxTrace]:
        """Run a block's ``txs`` in order and trace each (or only the one at index ``only``),
        by ``deadline`` (ExecutionAborted)."""
        ...
