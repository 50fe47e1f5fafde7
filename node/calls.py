"""Calls, simulations and traces on the state after a past block (eth_call, eth_estimateGas,
eth_simulateV1, debug_trace*): read-only, on the reference executor, beside the block path."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from executor_gpu.api import Caller, Tracer
from executor_gpu.types import BlockEnv, CallMessage, CallResult, Deadline, TraceOptions, TxTrace
from node.db.chain import ChainStore
from node.db.state import StateDB
from node.simulate import simulate_blocks
from primitives.blocks import Header, OrderedRoot
from primitives.errors import InvalidInput, InvalidTransaction
from rpc.types import SimulatedBlockSpec, SimulatedBlockView
from sequencer.builder import next_block_env


class Calls:
    """Runs messages and re-runs blocks on past states of one chain."""

    def __init__(
        self, chain: ChainStore, state: StateDB, caller: Caller, tracer: Tracer | None,
        chain_id: int, gas_limit: int, next_env: Callable[[Header], BlockEnv],
        ordered_root: OrderedRoot,
    ) -> None:
        """``caller`` runs calls (the reference executor); ``tracer`` re-runs them step by step
        (None: tracing is off); a call runs in ``next_env`` of the block it reads: the env of
        the block this node would build on it now."""
        self._chain = chain
        self._state = state
        self._caller = caller
        self._tracer = tracer
        self._chain_id = chain_id
        self._gas_limit = gas_limit
        self._next_env = next_env
        self._ordered_root = ordered_root

    def call(
        self, message: CallMessage, number: int, deadline: Deadline | None = None
    ) -> CallResult:
        """Run ``message`` on the state after block ``number`` in the next block's env
        (ExecutionAborted once ``deadline`` has passed)."""
        header = self._chain.header(number)
        if header is None:
            raise InvalidTransaction(f"unknown block {number}")
        env = self._next_env(header)
        return self._caller.call(self._state.at(header.state_root), env, message, deadline)

    def simulate(
        self, blocks: Sequence[SimulatedBlockSpec], number: int, validation: bool,
        trace_transfers: bool, gas_cap: int, deadline: Deadline,
    ) -> list[SimulatedBlockView]:
        """eth_simulateV1 on the state after block ``number`` (node/simulate.py)."""
        header = self._chain.header(number)
        if header is None:
            raise InvalidInput(f"unknown block {number}")
        return simulate_blocks(
            self._caller, self._state.at(header.state_root), header, self._chain.block_hashes(header),
            self._chain_id, blocks, validation, trace_transfers, gas_cap, deadline,
            self._ordered_root,
        )

    def _tracing(self) -> Tracer:
        if self._tracer is None:
            raise InvalidInput("tracing is not enabled on this node")
        return self._tracer

    def trace_call(
        self, message: CallMessage, number: int, options: TraceOptions,
        deadline: Deadline | None = None,
    ) -> TxTrace:
        """Trace ``message`` as ``call`` runs it."""
        header = self._chain.header(number)
        if header is None:
            raise InvalidInput(f"unknown block {number}")
        env = self._next_env(header)
        return self._tracing().trace_call(
            self._state.at(header.state_root), env, message, options, deadline
        )

    def trace_block(
        self, number: int, options: TraceOptions, only: int | None = None,
        deadline: Deadline | None = None,
    ) -> list[TxTrace]:
        """Re-run block ``number`` (> 0) on its parent's state in its own env, tracing every
        transaction (or only the one at index ``only``), by ``deadline``."""
        header, parent = self._chain.header(number), self._chain.header(number - 1)
        if header is None or parent is None:
            raise InvalidInput(f"unknown block {number}")
        env = next_block_env(
            parent, header.timestamp, header.coinbase, self._chain_id,
            self._gas_limit, self._chain.block_hashes(parent),
        )
        return self._tracing().trace_transactions(
            self._state.at(parent.state_root), env, self._chain.transactions(number), options, only,
            deadline,
        )
