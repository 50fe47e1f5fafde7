"""Block building through the Executor seam; roots checked against py-evm's own trie helpers."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pytest
from eth.abc import ReceiptAPI
from eth.constants import BLANK_ROOT_HASH
from eth.db.trie import make_trie_root_and_nodes
from eth.rlp.logs import Log as EvmLog
from eth.rlp.receipts import Receipt as EvmReceipt
from eth.vm.forks.cancun.receipts import CancunReceiptBuilder
from eth.vm.forks.cancun.transactions import CancunTransactionBuilder

from executor_gpu.api import StateReader
from executor_gpu.types import (
    Account,
    BatchResult,
    BlockEnv,
    ExecutedTx,
    RejectedTx,
    StateDiff,
)
from primitives.blocks import Header, Log, Receipt
from primitives.clock import ManualClock
from primitives.crypto import keccak256
from primitives.errors import Halt
from primitives.transactions import LEGACY_TX, Transaction
from primitives.types import ZERO_HASH, Address, Hash32
from sequencer.builder import BuildPace, execute_block, make_header, next_block_env
from sequencer.mempool import Mempool
from sequencer.types import AccountState, BlockBody, PoolConfig

Sign = Callable[..., Transaction]
COINBASE = Address(b"\xc0" * 20)
GAS_LIMIT = 30_000_000
REJECT_VALUE = 13
"""The executor twin rejects transactions carrying exactly this value."""


def build_block(
    pool: Mempool, executor: ExecutorTwin, state: StateTwin, env: BlockEnv, max_txs: int
) -> BlockBody:
    """What a proposer does: select from the pool (at the nonces it was given), execute in one
    call."""
    txs = pool.select(env.base_fee_per_gas, env.gas_limit, max_txs, 10**9)
    return execute_block(executor, state, env, txs)


@dataclass
class StateTwin:
    """A StateReader over a dict of account nonces (tests only)."""

    nonces: dict[Address, int]
    state_root: Hash32 = ZERO_HASH
    node_store: Mapping[bytes, bytes] = field(default_factory=dict)
    reads_flat: bool = False

    def get_account(self, address: Address) -> Account | None:
        if address not in self.nonces:
            return None
        return Account(self.nonces[address], 10**30, BLANK_ROOT_HASH, keccak256(b""))

    def get_code(self, address: Address) -> bytes:
        return b""

    def get_storage(self, address: Address, slot: int) -> int:
        return 0

    def flat_accounts(self, account_hashes: Sequence[bytes]) -> list[bytes | None] | None:
        return None

    def flat_slots(self, slot_paths: Sequence[bytes]) -> list[bytes | None] | None:
        return None


@dataclass
class ExecutorTwin:
    """An Executor faking a fixed shape of result: every 2nd tx logs, every 3rd fails."""

    name: str = "twin"
    calls: list[list[Transaction]] = field(default_factory=list)
    gas_error: int = 0
    """Added to the reported gas used, to play a broken executor."""

    def execute(
        self, pre_state: StateReader, block_env: BlockEnv, txs: Sequence[Transaction]
    ) -> BatchResult:
        self.calls.append(list(txs))
        executed, rejected, cumulative = [], [], 0
        for index, tx in enumerate(txs):
            if tx.value == REJECT_VALUE:
                rejected.append(RejectedTx(index, tx, "insufficient funds for gas * price + value"))
                continue
            gas = tx.gas_limit - index
            cumulative += gas
            logs = (
                (Log(COINBASE, (keccak256(bytes([index])), keccak256(tx.hash)), tx.hash),)
                if index % 2 == 0
                else ()
            )
            receipt = Receipt(tx.tx_type, index % 3 != 2, cumulative, logs)
            price = tx.effective_gas_price(block_env.base_fee_per_gas)
            executed.append(ExecutedTx(tx, receipt, gas, price, None))
        return BatchResult(
            tuple(executed), tuple(rejected), StateDiff({}), cumulative + self.gas_error
        )


def evm_receipt(receipt: Receipt) -> ReceiptAPI:
    """The same receipt built from py-evm's classes (status 1 is b'\\x01', 0 is b'')."""
    logs = [
        EvmLog(log.address, tuple(int.from_bytes(topic, "big") for topic in log.topics), log.data)
        for log in receipt.logs
    ]
    inner = EvmReceipt(b"\x01" if receipt.succeeded else b"", receipt.cumulative_gas_used, logs)
    if receipt.tx_type == LEGACY_TX:
        return inner
    return CancunReceiptBuilder.typed_receipt_class(receipt.tx_type, inner)


def parent_header(gas_used: int = 0, base_fee: int = 1_000_000_000) -> Header:
    return Header(
        parent_hash=Hash32(b"\x01" * 32),
        coinbase=COINBASE,
        state_root=Hash32(b"\x02" * 32),
        transactions_root=Hash32(BLANK_ROOT_HASH),
        receipts_root=Hash32(BLANK_ROOT_HASH),
        logs_bloom=b"\x00" * 256,
        number=41,
        gas_limit=GAS_LIMIT,
        gas_used=gas_used,
        timestamp=1_700_000_000,
        base_fee_per_gas=base_fee,
    )


def block_env(base_fee: int = 10) -> BlockEnv:
    return BlockEnv(
        number=42,
        timestamp=1_700_000_002,
        coinbase=COINBASE,
        gas_limit=GAS_LIMIT,
        base_fee_per_gas=base_fee,
        chain_id=1337,
    )


@pytest.fixture
def pool_and_txs(signer: Sign) -> tuple[Mempool, list[Transaction]]:
    """A pool whose best order is known by hand: tips 9, 7, 5, 3, 1 with one nonce dependency."""
    access_list = (("0x" + "33" * 20, ("0x" + "00" * 32,)),)
    a0 = signer(0, 0, tip=9, fee_cap=100, tx_type=2, data=b"\x00\x01", gas=30_000)
    b0 = signer(1, 0, tip=7, fee_cap=7 + 10, tx_type=1, access_list=access_list, gas=30_000)
    c0 = signer(2, 0, tip=5, fee_cap=100, create=True, data=b"\x60\x00", gas=60_000)
    a1 = signer(0, 1, tip=3, fee_cap=3 + 10, tx_type=0)
    b1 = signer(1, 1, tip=1, fee_cap=100, value=REJECT_VALUE)
    pool = Mempool(PoolConfig(), ManualClock())
    for tx in (b1, a1, c0, b0, a0):
        pool.add(tx, AccountState(nonce=0, balance=10**30), 10, GAS_LIMIT)
    return pool, [a0, b0, c0, a1, b1]


def test_build_block_executes_the_best_pool_transactions_in_one_call(
    pool_and_txs: tuple[Mempool, list[Transaction]], addresses: Sequence[Address]
) -> None:
    pool, ordered = pool_and_txs
    executor = ExecutorTwin()
    # Sender 2 has no account yet: its state nonce is 0.
    state = StateTwin({addresses[0]: 0, addresses[1]: 0})
    body = build_block(pool, executor, state, block_env(), max_txs=100)
    assert executor.calls == [ordered]
    assert body.transactions == tuple(ordered[:4])  # the twin rejected b1
    assert len(pool) == 5  # the caller removes transactions once the block is committed

    build_block(pool, executor, state, block_env(), max_txs=2)
    assert executor.calls[-1] == ordered[:2]


def test_block_body_roots_match_py_evm(pool_and_txs: tuple[Mempool, list[Transaction]]) -> None:
    pool, _ = pool_and_txs
    body = build_block(pool, ExecutorTwin(), StateTwin({}), block_env(), max_txs=100)
    receipts = [executed.receipt for executed in body.result.executed]
    assert len(receipts) == 4

    evm_txs = [CancunTransactionBuilder.decode(tx.raw) for tx in body.transactions]
    assert body.transactions_root == make_trie_root_and_nodes(evm_txs)[0]
    evm_receipts = [evm_receipt(receipt) for receipt in receipts]
    assert body.receipts_root == make_trie_root_and_nodes(evm_receipts)[0]
    bloom = 0
    for receipt in evm_receipts:
        bloom |= receipt.bloom
    assert bloom != 0
    assert body.logs_bloom == bloom.to_bytes(256, "big")
    assert body.gas_used == receipts[-1].cumulative_gas_used == body.result.gas_used


def test_empty_block(signer: Sign) -> None:
    pool = Mempool(PoolConfig(), ManualClock())
    pool.add(signer(tip=1, fee_cap=10), AccountState(0, 10**30), 10, GAS_LIMIT)
    # At base fee 11 the only transaction cannot pay.
    body = build_block(pool, ExecutorTwin(), StateTwin({}), block_env(base_fee=11), max_txs=10)
    assert body.transactions == ()
    assert body.transactions_root == body.receipts_root == BLANK_ROOT_HASH
    assert body.logs_bloom == b"\x00" * 256
    assert body.gas_used == 0


def test_inconsistent_executor_halts(pool_and_txs: tuple[Mempool, list[Transaction]]) -> None:
    pool, _ = pool_and_txs
    with pytest.raises(Halt):
        build_block(pool, ExecutorTwin(gas_error=1), StateTwin({}), block_env(), max_txs=100)


def test_make_header_links_to_the_parent(
    pool_and_txs: tuple[Mempool, list[Transaction]],
) -> None:
    pool, _ = pool_and_txs
    parent = parent_header()
    env = next_block_env(parent, 1_700_000_005, COINBASE, 1337, GAS_LIMIT, [parent.hash])
    body = build_block(pool, ExecutorTwin(), StateTwin({}), env, max_txs=100)
    state_root = Hash32(b"\x03" * 32)
    header = make_header(parent, env, body, state_root)
    assert header.parent_hash == parent.hash
    assert header.number == 42
    assert header.timestamp == 1_700_000_005
    assert header.coinbase == COINBASE
    assert header.state_root == state_root
    assert header.gas_limit == GAS_LIMIT
    assert header.base_fee_per_gas == env.base_fee_per_gas
    assert (header.transactions_root, header.receipts_root, header.logs_bloom, header.gas_used) == (
        body.transactions_root,
        body.receipts_root,
        body.logs_bloom,
        body.gas_used,
    )
    with pytest.raises(Halt):
        make_header(header, env, body, state_root)


def test_next_block_env_follows_eip_1559_and_the_clock() -> None:
    full_parent = parent_header(gas_used=GAS_LIMIT, base_fee=1_000_000_000)
    hashes = [full_parent.hash] + [Hash32(i.to_bytes(32, "big")) for i in range(300)]
    env = next_block_env(full_parent, 1_700_000_009, COINBASE, 1337, GAS_LIMIT, hashes)
    assert env.number == 42
    assert env.base_fee_per_gas == 1_125_000_000  # full parent: +12.5%
    assert env.timestamp == 1_700_000_009
    assert (env.coinbase, env.chain_id, env.gas_limit) == (COINBASE, 1337, GAS_LIMIT)
    assert env.block_hashes == tuple(hashes[:256])

    empty_parent = parent_header(gas_used=0, base_fee=1_000_000_000)
    # A clock that has not moved past the parent still gives a later timestamp.
    env = next_block_env(empty_parent, 1_699_999_000, COINBASE, 1337, GAS_LIMIT, [])
    assert env.base_fee_per_gas == 875_000_000  # empty parent: -12.5%
    assert env.timestamp == 1_700_000_001

    with pytest.raises(Halt):
        next_block_env(empty_parent, 1_700_000_009, COINBASE, 1337, GAS_LIMIT, [ZERO_HASH])


def test_build_pace_learns_seconds_per_gas_from_large_blocks_only() -> None:
    pace = BuildPace()
    assert pace.gas_within(1.0) == 100_000_000  # the first guess
    pace.observe(BuildPace.SMALLEST - 1, 10.0)  # fixed costs: not learnt from
    pace.observe(10_000_000, 0.0)
    assert pace.gas_within(1.0) == 100_000_000
    pace.observe(20_000_000, 1.0)  # the first timed block replaces the guess
    assert pace.gas_within(0.5) == 10_000_000
    pace.observe(20_000_000, 3.0)  # then half the newest: (1 + 3) / 2 seconds per 20M gas
    assert pace.gas_within(2.0) == 20_000_000
    # However slow, a block of SMALLEST gas may still be built: the chain moves on.
    assert pace.gas_within(0.0) == BuildPace.SMALLEST
