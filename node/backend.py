"""NodeBackend for the RPC server, answered from the node's finalized state."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from executor_gpu.api import StateReader
from executor_gpu.types import CallMessage, CallResult, Deadline, TraceOptions, TxTrace
from l1.api import L1Client
from l1.types import CommittedBatch
from node.db.state import EMPTY_CODE_HASH
from node.node import Node
from p2p.api import Gossip
from primitives.blocks import EMPTY_ROOT
from primitives.errors import ExecutionReverted, InvalidInput, L2NodeError
from primitives.transactions import Transaction
from primitives.types import Address, Hash32
from rpc.api import ChainEvents
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
    StorageProof,
    TxLocation,
)
from sequencer.fees import suggest_tip

CLIENT_VERSION = "l2node/0.1.0"
L1_FINAL_DEPTH = 6
"""L1 blocks on top of a batch commitment before it counts as final (the poster's default
``[l1] confirmations``): the L1 client reports no finalized tag of its own."""
TIP_FLOOR = 1_000_000  # wei: suggested tips never go below this, so transactions keep moving
TIP_SAMPLE_BLOCKS = 20


class NodeRpcBackend:
    """Implements rpc.api.NodeBackend over a Node and its L1 client."""

    def __init__(
        self,
        node: Node,
        l1: L1Client | None,
        relay: Callable[[bytes], None] | None = None,
        peers: Gossip | None = None,
        l1_final_depth: int = L1_FINAL_DEPTH,
    ) -> None:
        """``l1`` None: L1 posting is off; ``relay`` gossips accepted transactions;
        ``peers`` is the validator network, when there is one; ``l1_final_depth``: L1
        blocks on top of a commitment before the "finalized" tag counts it."""
        self.node = node
        self.l1 = l1
        self.l1_final_depth = l1_final_depth
        self.relay = relay
        self.gossip = peers

    @property
    def chain_id(self) -> int:
        return self.node.params.chain_id

    @property
    def client_version(self) -> str:
        return CLIENT_VERSION

    def head_number(self) -> int:
        return self.node.head_number()

    def safe_number(self) -> int:
        # Without an L1 view every block is final by the validators' BFT vote alone.
        if self.l1 is None:
            return self.head_number()
        batch = self.l1.latest_batch()
        return 0 if batch is None else min(batch.last_block, self.head_number())

    def finalized_number(self) -> int:
        if self.l1 is None:
            return self.head_number()
        final_l1 = self.l1.head().number - self.l1_final_depth
        batch = self.l1.latest_batch()
        while batch is not None and batch.l1_block_number > final_l1:
            batch = self.l1.batch(batch.batch_number - 1) if batch.batch_number > 1 else None
        return 0 if batch is None else min(batch.last_block, self.head_number())

    def block_by_number(self, number: int) -> BlockView | None:
        return self.node.chain.block(number)

    def block_by_hash(self, block_hash: Hash32) -> BlockView | None:
        number = self.node.chain.number_of(block_hash)
        return None if number is None else self.node.chain.block(number)

    def transaction(self, tx_hash: Hash32) -> tuple[Transaction, TxLocation | None] | None:
        chain = self.node.chain
        location = chain.tx_location(tx_hash)
        if location is None:
            pooled = self.node.pool.get(tx_hash)
            if pooled is not None:
                return pooled, None
            # A block's own transactions leave the pool as its write begins: until the write
            # lands neither holds them, and a wallet polling one would take it as dropped.
            self.node.admission.await_write()
            location = chain.tx_location(tx_hash)
            if location is None:
                return None
        return chain.transaction(location), location

    def receipt(self, tx_hash: Hash32) -> ReceiptView | None:
        return self.node.chain.receipt(tx_hash)

    def block_receipts(self, number: int) -> Sequence[ReceiptView]:
        return self.node.chain.receipts(number)

    def state_at(self, number: int) -> StateReader:
        header = self.node.chain.header(number)
        if header is None:
            raise InvalidInput(f"header not found: block {number}")
        return self.node.state.at(header.state_root)

    def proof(self, number: int, address: Address, slots: Sequence[int]) -> AccountProof:
        header = self.node.chain.header(number)
        if header is None:
            raise InvalidInput(f"header not found: block {number}")
        state = self.node.state.at(header.state_root)
        account = state.get_account(address)
        return AccountProof(
            address=address,
            nonce=0 if account is None else account.nonce,
            balance=0 if account is None else account.balance,
            storage_root=EMPTY_ROOT if account is None else account.storage_root,
            code_hash=EMPTY_CODE_HASH if account is None else account.code_hash,
            proof=state.account_proof(address),
            storage=tuple(
                StorageProof(slot, state.get_storage(address, slot),
                             state.storage_proof(address, slot))
                for slot in slots
            ),
        )

    def pool_content(self, sender: Address | None = None) -> PoolContent:
        pending, queued = self.node.admission.content(sender)
        return PoolContent(tuple(pending), tuple(queued))

    def pending_nonce(self, address: bytes) -> int:
        return self.node.pending_nonce(Address(address))

    def send_raw_transactions(self, raws: Sequence[bytes]) -> list[Hash32 | L2NodeError]:
        outcomes = self.node.submit_many(raws)
        if self.relay is not None:
            for tx in outcomes:
                if isinstance(tx, Transaction):
                    self.relay(tx.raw)
        return [tx.hash if isinstance(tx, Transaction) else tx for tx in outcomes]

    def validators(self, height: int) -> tuple[int, Mapping[Address, int]]:
        epochs = self.node.epochs
        epoch = epochs.epoch_of(height)
        return epoch, epochs.weights(epoch)

    def leader_seed(self, height: int) -> Hash32:
        epochs = self.node.epochs
        return epochs.seed(epochs.epoch_of(height))

    def peer_count(self) -> int:
        return 0 if self.gossip is None else len(self.gossip.peers())

    def subscribe(self, events: ChainEvents) -> None:
        self.node.events = events

    def call(self, message: CallMessage, number: int, deadline: Deadline) -> CallResult:
        return self.node.calls.call(message, number, deadline)

    def simulate(
        self, blocks: Sequence[SimulatedBlockSpec], number: int, validation: bool,
        trace_transfers: bool, gas_cap: int, deadline: Deadline,
    ) -> list[SimulatedBlockView]:
        return self.node.calls.simulate(blocks, number, validation, trace_transfers, gas_cap, deadline)

    def trace_call(
        self, message: CallMessage, number: int, options: TraceOptions,
        deadline: Deadline | None = None,
    ) -> TxTrace:
        return self.node.calls.trace_call(message, number, options, deadline)

    def trace_block(
        self, number: int, options: TraceOptions, only: int | None = None,
        deadline: Deadline | None = None,
    ) -> list[TxTrace]:
        return self.node.calls.trace_block(number, options, only, deadline)

    def estimate_gas(self, message: CallMessage, number: int, deadline: Deadline) -> int:
        """Binary search for the least gas that succeeds, like go-ethereum; all of its calls
        share one ``deadline``."""
        cap = message.gas or self.node.params.gas_limit
        top = self.node.calls.call(_with_gas(message, cap), number, deadline)
        if not top.succeeded:
            raise ExecutionReverted(top.error or "execution reverted", top.output)
        low, high = top.gas_used - 1, cap
        while low + 1 < high:
            mid = (low + high) // 2
            if self.node.calls.call(_with_gas(message, mid), number, deadline).succeeded:
                high = mid
            else:
                low = mid
        return high

    def max_priority_fee(self) -> int:
        head = self.head_number()
        tips: list[int] = []
        for number in range(max(1, head - TIP_SAMPLE_BLOCKS + 1), head + 1):
            block = self.node.chain.block(number)
            if block is None:
                continue
            base_fee = block.header.base_fee_per_gas
            tips.extend(tx.effective_tip(base_fee) for tx in block.transactions)
        return suggest_tip(tips, TIP_FLOOR)

    def next_base_fee(self) -> int:
        return self.node.next_base_fee()

    def gas_price(self) -> int:
        return self.next_base_fee() + self.max_priority_fee()

    def fee_history(self, block_count: int, newest: int, percentiles: Sequence[float]) -> FeeHistory:
        newest = min(newest, self.head_number())
        oldest = max(0, newest - block_count + 1)
        base_fees: list[int] = []
        ratios: list[float] = []
        rewards: list[tuple[int, ...]] = []
        for number in range(oldest, newest + 1):
            block = self.node.chain.block(number)
            if block is None:
                break
            header = block.header
            base_fees.append(header.base_fee_per_gas)
            ratios.append(header.gas_used / header.gas_limit if header.gas_limit else 0.0)
            if percentiles:
                rewards.append(_tip_percentiles(self.node.chain.receipts(number), header.base_fee_per_gas, percentiles))
        next_header = self.node.chain.header(newest + 1)
        base_fees.append(
            next_header.base_fee_per_gas if next_header is not None else self.next_base_fee()
        )
        return FeeHistory(oldest, tuple(base_fees), tuple(ratios), tuple(rewards))

    def logs(self, log_filter: LogFilter) -> Sequence[LogView]:
        return self.node.chain.logs(log_filter)

    def batch(self, number: int) -> BatchView | None:
        if self.l1 is None:
            return None
        committed = self.l1.batch(number)
        return None if committed is None else _batch_view(committed)

    def latest_committed_batch(self) -> BatchView | None:
        if self.l1 is None:
            return None
        committed = self.l1.latest_batch()
        return None if committed is None else _batch_view(committed)


def _with_gas(message: CallMessage, gas: int) -> CallMessage:
    return replace(message, gas=gas)


def _tip_percentiles(
    receipts: Sequence[ReceiptView], base_fee: int, percentiles: Sequence[float]
) -> tuple[int, ...]:
    """Tips at the given gas-weighted percentiles, as go-ethereum computes them."""
    if not receipts:
        return tuple(0 for _ in percentiles)
    weighted = sorted((r.effective_gas_price - base_fee, r.gas_used) for r in receipts)
    total = sum(gas for _, gas in weighted)
    result = []
    index, cumulative = 0, weighted[0][1]
    for p in percentiles:
        threshold = total * p / 100
        while cumulative < threshold and index < len(weighted) - 1:
            index += 1
            cumulative += weighted[index][1]
        result.append(weighted[index][0])
    return tuple(result)


def _batch_view(batch: CommittedBatch) -> BatchView:
    return BatchView(
        number=batch.batch_number,
        first_block=batch.first_block,
        last_block=batch.last_block,
        prev_state_root=batch.prev_state_root,
        state_root=batch.state_root,
        data_hash=batch.data_hash,
        l1_tx_hash=batch.l1_tx_hash,
        l1_block_number=batch.l1_block_number,
    )
