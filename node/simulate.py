"""eth_simulateV1's blocks: built one on the other on top of a block of the chain, each
hashed as a real block, none of them stored."""

from __future__ import annotations

from collections.abc import Sequence

from executor_gpu.api import Caller, StateReader
from executor_gpu.types import BlockEnv, Deadline
from primitives import rlp
from primitives.blocks import EMPTY_ROOT, Header, OrderedRoot, Receipt, bloom_of
from primitives.transactions import DYNAMIC_FEE_TX, unsigned_transaction
from primitives.types import Hash32
from rpc.types import SimulatedBlockSpec, SimulatedBlockView, Withdrawal
from sequencer.builder import MAX_BLOCK_HASHES
from sequencer.fees import next_base_fee

GWEI = 10**9


def simulate_blocks(
    caller: Caller,
    base_state: StateReader,
    base: Header,
    ancestors: Sequence[Hash32],
    chain_id: int,
    blocks: Sequence[SimulatedBlockSpec],
    validation: bool,
    trace_transfers: bool,
    gas_cap: int,
    deadline: Deadline,
    ordered_root: OrderedRoot,
) -> list[SimulatedBlockView]:
    """Run ``blocks`` on ``base_state`` (after block ``base``, whose hash and those of its
    ancestors, newest first, are ``ancestors``). The blocks' numbers follow ``base``'s."""
    simulation = caller.simulation(base_state, validation, trace_transfers, gas_cap, deadline)
    hashes = list(ancestors)
    parent = base
    views: list[SimulatedBlockView] = []
    for spec in blocks:
        base_fee = spec.base_fee_per_gas
        if base_fee is None:
            # Without validation a call need not pay a base fee (go-ethereum's choice).
            base_fee = (next_base_fee(parent.gas_used, parent.gas_limit, parent.base_fee_per_gas)
                        if validation else 0)
        env = BlockEnv(
            number=spec.number,
            timestamp=spec.timestamp,
            # Not overridden, they are the block before's (an override holds on, as in geth).
            coinbase=parent.coinbase if spec.coinbase is None else spec.coinbase,
            gas_limit=parent.gas_limit if spec.gas_limit is None else spec.gas_limit,
            base_fee_per_gas=base_fee,
            chain_id=chain_id,
            prev_randao=spec.prev_randao,
            block_hashes=tuple(hashes[:MAX_BLOCK_HASHES]),
        )
        credits = [(w.address, w.amount * GWEI) for w in spec.withdrawals]
        result = simulation.run_block(env, spec.overrides, spec.calls, credits)
        txs = tuple(
            unsigned_transaction(
                chain_id, call.sender, outcome.nonce, call.max_priority_fee_per_gas,
                call.max_fee_per_gas, outcome.gas_limit, call.to, call.value, call.data,
                call.access_list,
            )
            for call, outcome in zip(spec.calls, result.calls, strict=True)
        )
        receipts: list[Receipt] = []
        cumulative = 0
        for outcome in result.calls:
            cumulative += outcome.gas_used
            receipts.append(Receipt(DYNAMIC_FEE_TX, outcome.succeeded, cumulative, outcome.logs))
        header = Header(
            parent_hash=parent.hash,
            coinbase=env.coinbase,
            state_root=result.state_root,
            transactions_root=ordered_root([tx.raw for tx in txs]),
            receipts_root=ordered_root([receipt.encode() for receipt in receipts]),
            logs_bloom=bloom_of(log for receipt in receipts for log in receipt.logs),
            number=env.number,
            gas_limit=env.gas_limit,
            gas_used=result.gas_used,
            timestamp=env.timestamp,
            base_fee_per_gas=base_fee,
            prev_randao=env.prev_randao,
            withdrawals_root=_withdrawals_root(spec.withdrawals, ordered_root),
        )
        views.append(SimulatedBlockView(header, txs, result.calls, spec.withdrawals))
        hashes.insert(0, header.hash)
        parent = header
    return views


def _withdrawals_root(withdrawals: Sequence[Withdrawal], ordered_root: OrderedRoot) -> Hash32:
    if not withdrawals:
        return EMPTY_ROOT
    return ordered_root([
        rlp.encode([w.index, w.validator_index, w.address, w.amount]) for w in withdrawals
    ])
