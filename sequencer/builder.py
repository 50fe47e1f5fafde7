"""Block building: execute the selected transactions in one call, derive roots and header."""

from __future__ import annotations

from collections.abc import Sequence

from executor_gpu.api import Executor, StateReader
from executor_gpu.types import BatchResult, BlockEnv
from primitives.blocks import Header, OrderedRoot, ReceiptsRoot, ordered_trie_root
from primitives.blocks import receipts_root as python_receipts_root
from primitives.errors import Halt
from primitives.transactions import Transaction
from primitives.types import Address, Hash32
from sequencer.fees import next_base_fee
from sequencer.types import BlockBody

MAX_BLOCK_HASHES = 256
"""BLOCKHASH reaches back at most this many blocks."""


class BuildPace:
    """How fast this node builds a block (select, execute, state root), in seconds per gas,
    from the blocks it built or verified: how much gas a proposer can build in a given time.

    A proposal that takes longer than its round's propose timeout to build reaches the
    others after they prevoted nil, and the next round's proposer, building the same pool,
    fails alike: under a backlog, a proposer takes what it can build in time.
    """

    SMALLEST = 5_000_000
    """Gas of the smallest block learnt from: below it, fixed costs dominate."""
    NEWEST_WEIGHT = 0.5
    """Weight of the newest block in the running estimate."""
    FIRST_GUESS = 1 / 100_000_000
    """Seconds per gas until a block was timed: 100M gas a second (about 4,800 transfers),
    below what the 2-core box built with four validators on it; the first timed block
    replaces it."""

    def __init__(self) -> None:
        self.seconds_per_gas = self.FIRST_GUESS
        """The running estimate."""
        self._timed = False

    def observe(self, gas: int, seconds: float) -> None:
        """A block of ``gas`` took ``seconds`` to build or verify."""
        if gas < self.SMALLEST or seconds <= 0:
            return
        weight = self.NEWEST_WEIGHT if self._timed else 1.0
        self.seconds_per_gas = weight * seconds / gas + (1 - weight) * self.seconds_per_gas
        self._timed = True

    def gas_within(self, seconds: float) -> int:
        """Gas a block built in ``seconds`` may take (at least ``SMALLEST``: a slow block
        still moves the chain on)."""
        return max(self.SMALLEST, int(seconds / self.seconds_per_gas))


def next_block_env(
    parent: Header,
    timestamp: int,
    coinbase: Address,
    chain_id: int,
    gas_limit: int,
    block_hashes: Sequence[Hash32],
) -> BlockEnv:
    """Environment of the child of ``parent``.

    ``block_hashes`` are the hashes of the latest blocks, most recent (``parent``) first.
    The timestamp is raised to parent + 1 when the clock gives less, because block
    timestamps must strictly increase.
    """
    if block_hashes and block_hashes[0] != parent.hash:
        raise Halt("block_hashes must start with the parent's hash")
    return BlockEnv(
        number=parent.number + 1,
        timestamp=max(timestamp, parent.timestamp + 1),
        coinbase=coinbase,
        gas_limit=gas_limit,
        base_fee_per_gas=next_base_fee(parent.gas_used, parent.gas_limit, parent.base_fee_per_gas),
        chain_id=chain_id,
        block_hashes=tuple(block_hashes[:MAX_BLOCK_HASHES]),
    )


def execute_block(
    executor: Executor, pre_state: StateReader, env: BlockEnv, txs: Sequence[Transaction],
    ordered_root: OrderedRoot = ordered_trie_root, receipts_root: ReceiptsRoot = python_receipts_root,
) -> BlockBody:
    """Execute ``txs`` in one call and derive the block's roots (proposer and re-executing peers),
    with ``ordered_root`` and ``receipts_root`` (native ones in the node)."""
    return block_body(execute_txs(executor, pre_state, env, txs), ordered_root, receipts_root)


def execute_txs(
    executor: Executor, pre_state: StateReader, env: BlockEnv, txs: Sequence[Transaction]
) -> BatchResult:
    """Execute ``txs`` in one call; Halt when the executor's gas accounting is inconsistent."""
    result = executor.execute(pre_state, env, txs)
    # A disagreement here means the executor is broken; building on it would fork the chain.
    last_cumulative = result.executed[-1].receipt.cumulative_gas_used if result.executed else 0
    if result.gas_used != last_cumulative or result.gas_used > env.gas_limit:
        raise Halt(
            f"executor {executor.name} reports gas used {result.gas_used}, receipts say "
            f"{last_cumulative}, block gas limit {env.gas_limit}"
        )
    return result


def block_body(
    result: BatchResult, ordered_root: OrderedRoot = ordered_trie_root,
    receipts_root: ReceiptsRoot = python_receipts_root,
) -> BlockBody:
    """The block of an executed batch: its transactions and receipts roots and logs bloom."""
    receipts = [executed.receipt for executed in result.executed]
    root, bloom = receipts_root(receipts)
    return BlockBody(
        result=result,
        transactions_root=ordered_root([executed.tx.raw for executed in result.executed]),
        receipts_root=root,
        logs_bloom=bloom,
        gas_used=result.gas_used,
    )


def make_header(parent: Header, env: BlockEnv, body: BlockBody, state_root: Hash32) -> Header:
    """Header of the block ``body`` executed in ``env`` on top of ``parent``."""
    if env.number != parent.number + 1:
        raise Halt(f"block {env.number} cannot follow block {parent.number}")
    return Header(
        parent_hash=parent.hash,
        coinbase=env.coinbase,
        state_root=state_root,
        transactions_root=body.transactions_root,
        receipts_root=body.receipts_root,
        logs_bloom=body.logs_bloom,
        number=env.number,
        gas_limit=env.gas_limit,
        gas_used=body.gas_used,
        timestamp=env.timestamp,
        base_fee_per_gas=env.base_fee_per_gas,
        prev_randao=env.prev_randao,
        parent_beacon_block_root=env.parent_beacon_block_root,
    )
