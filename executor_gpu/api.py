"""The Executor seam: what every executor (reference, native CPU, native CUDA) offers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from executor_gpu.types import Account, BatchResult, BlockEnv, CallMessage, CallResult, Deadline
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

    def get_account(self, address: Address) -> Account | None:
        """The account, or None when it does not exist."""
        ...

    def get_code(self, address: Address) -> bytes:
        """Code of the account (empty when none)."""
        ...

    def get_storage(self, address: Address, slot: int) -> int:
        """Value of a storage slot (0 when unset)."""
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
