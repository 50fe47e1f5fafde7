"""PyEvmExecutor: receipts, rejections in geth's wording, state diffs that StateDB reproduces."""

from __future__ import annotations

import random
import time

import pytest

from executor_gpu.reference import PyEvmExecutor
from executor_gpu.tracing import ReferenceTracer
from executor_gpu.types import CallMessage, Deadline, TraceOptions
from node.db.state import GenesisAccount
from primitives.crypto import keccak256
from primitives.errors import ExecutionAborted
from primitives.transactions import Transaction
from primitives.types import Address
from tests.execution.helpers import (
    ADDRESSES,
    BASE_FEE,
    CHAIN_ID,
    COINBASE,
    ENV_READER,
    LOGGER,
    REVERTER,
    STORE,
    Chain,
    block_env,
    create_address,
    deploy_code,
    funded,
    self_destruct_to,
    sign,
    word,
)

STORE_AT = Address(b"\x51" * 20)
LOGGER_AT = Address(b"\x52" * 20)
REVERTER_AT = Address(b"\x53" * 20)
ENV_AT = Address(b"\x54" * 20)
RECIPIENT = Address(b"\x77" * 20)


def contracts() -> dict[Address, GenesisAccount]:
    return funded(
        (STORE_AT, GenesisAccount(code=STORE, storage={1: 10, 2: 20})),
        (LOGGER_AT, GenesisAccount(code=LOGGER)),
        (REVERTER_AT, GenesisAccount(code=REVERTER)),
        (ENV_AT, GenesisAccount(code=ENV_READER)),
    )


def test_transfers_pay_value_fees_and_tips() -> None:
    chain = Chain(funded())
    before = chain.view
    result = chain.run(
        [
            sign(0, 0, RECIPIENT, value=5, tip=2, fee_cap=10),
            sign(0, 1, RECIPIENT, value=6, tip=1, fee_cap=BASE_FEE, tx_type=0),
        ]
    )
    assert result.rejected == ()
    first, second = result.executed
    assert (first.gas_used, second.gas_used, result.gas_used) == (21_000, 21_000, 42_000)
    assert [tx.receipt.cumulative_gas_used for tx in result.executed] == [21_000, 42_000]
    assert (first.effective_gas_price, second.effective_gas_price) == (BASE_FEE + 2, BASE_FEE)
    assert first.receipt.succeeded and first.error is None and first.contract_address is None
    view = chain.view
    sender_before, sender_after = before.get_account(ADDRESSES[0]), view.get_account(ADDRESSES[0])
    assert sender_before is not None and sender_after is not None
    assert sender_after.nonce == 2
    assert (
        sender_before.balance - sender_after.balance
        == 11 + 21_000 * (BASE_FEE + 2) + 21_000 * BASE_FEE
    )
    assert view.get_account(RECIPIENT) is not None
    coinbase = view.get_account(COINBASE)
    assert coinbase is not None and coinbase.balance == 21_000 * 2


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda: sign(0, 1, RECIPIENT), "nonce too high"),
        (
            lambda: sign(1, 0, RECIPIENT, fee_cap=BASE_FEE - 1, tip=0),
            "max fee per gas less than block base fee",
        ),
        (lambda: sign(1, 0, RECIPIENT, value=10**21), "insufficient funds for gas * price + value"),
        (lambda: sign(1, 0, RECIPIENT, gas=20_999), "intrinsic gas too low"),
        (lambda: sign(1, 0, RECIPIENT, gas=30_000_001), "gas limit reached"),
        (lambda: sign(1, 0, RECIPIENT, chain_id=CHAIN_ID + 1), "invalid chain id for signer"),
        (
            lambda: sign(1, 0, None, data=b"\x00" * 49_153, gas=5_000_000),
            "max initcode size exceeded",
        ),
        (lambda: sign(2, 0, RECIPIENT), "sender not an eoa"),
    ],
)
def test_invalid_transactions_are_rejected_in_geth_words(make: object, reason: str) -> None:
    chain = Chain(funded((ADDRESSES[2], GenesisAccount(balance=10**21, code=b"\x00"))))
    before = chain.root
    bad: Transaction = make()  # type: ignore[operator]
    result = chain.run([bad])
    assert result.executed == ()
    assert [(r.index, r.tx) for r in result.rejected] == [(0, bad)]
    assert result.rejected[0].reason.startswith(reason)
    assert result.state_diff.accounts == {} and chain.root == before


def test_rejection_leaves_no_trace_and_the_batch_goes_on() -> None:
    chain = Chain(funded())
    ok = sign(0, 0, RECIPIENT, value=1)
    result = chain.run([ok, sign(0, 0, RECIPIENT, value=2), sign(0, 1, RECIPIENT, value=3)])
    assert [r.reason.split(":")[0] for r in result.rejected] == ["nonce too low"]
    assert [tx.tx.nonce for tx in result.executed] == [0, 1]
    recipient = chain.view.get_account(RECIPIENT)
    assert recipient is not None and recipient.balance == 4


def test_block_gas_is_shared_by_the_batch() -> None:
    chain = Chain(funded())
    result = chain.run(
        [sign(0, 0, RECIPIENT, gas=30_000), sign(1, 0, RECIPIENT, gas=30_000)], gas_limit=50_000
    )
    # The first used 21,000 of its 30,000: 29,000 are left, not enough for 30,000.
    assert len(result.executed) == 1
    assert result.rejected[0].reason.startswith("gas limit reached")


def test_storage_logs_and_revert() -> None:
    chain = Chain(contracts())
    result = chain.run(
        [
            sign(0, 0, STORE_AT, data=word(0) + word(1)),  # delete slot 1
            sign(0, 1, STORE_AT, data=word(99) + word(3)),  # new slot 3
            sign(0, 2, LOGGER_AT, data=word(0xABC) + word(5)),
            sign(0, 3, REVERTER_AT),
        ]
    )
    stored, created, logged, reverted = result.executed
    assert all(tx.receipt.succeeded for tx in (stored, created, logged))
    view = chain.view
    assert [view.get_storage(STORE_AT, slot) for slot in (1, 2, 3)] == [0, 20, 99]
    change = result.state_diff.accounts[STORE_AT]
    assert change is not None and dict(change.storage) == {1: 0, 3: 99}
    (log,) = logged.logs
    assert (log.address, log.topics, log.data) == (LOGGER_AT, (word(0xABC),), word(5))
    assert logged.receipt.bloom != b"\x00" * 256
    assert not reverted.receipt.succeeded and reverted.error == "execution reverted"
    assert reverted.logs == () and view.get_storage(REVERTER_AT, 0) == 0
    assert REVERTER_AT not in result.state_diff.accounts


def test_contract_creation_and_self_destruct_in_the_same_transaction() -> None:
    chain = Chain(funded())
    deployed = create_address(ADDRESSES[0], 0)
    doomed = create_address(ADDRESSES[0], 1)
    result = chain.run(
        [
            sign(0, 0, None, data=deploy_code(STORE)),
            sign(0, 1, None, data=self_destruct_to(RECIPIENT), value=1000),
            sign(0, 2, deployed, data=word(7) + word(7)),
        ]
    )
    assert [tx.contract_address for tx in result.executed] == [deployed, doomed, None]
    view = chain.view
    assert view.get_code(deployed) == STORE and view.get_storage(deployed, 7) == 7
    assert view.get_account(doomed) is None
    recipient = view.get_account(RECIPIENT)
    assert recipient is not None and recipient.balance == 1000


def test_failed_creation_reports_its_address_and_error() -> None:
    chain = Chain(funded())
    (tx,) = chain.run([sign(0, 0, None, data=bytes.fromhex("60006000fd"))]).executed
    assert not tx.receipt.succeeded and tx.error == "execution reverted"
    assert tx.contract_address == create_address(ADDRESSES[0], 0)


def create2_address(factory: Address) -> Address:
    """Address of CREATE2 with salt 0 and empty init code."""
    return Address(keccak256(b"\xff" + factory + word(0) + keccak256(b""))[12:])


def test_creation_collides_with_an_address_that_has_storage() -> None:
    # EIP-7610: storage alone makes an address unusable for a new contract.
    factory = Address(b"\x66" * 20)
    target = create2_address(factory)
    code = bytes.fromhex("6000600060006000f5600155")  # sstore(1, create2(0, 0, 0, salt 0))
    chain = Chain(
        funded(
            (factory, GenesisAccount(nonce=1, code=code)),
            (target, GenesisAccount(balance=3, storage={1: 1})),
        )
    )
    # A failed CREATE2 keeps only 1/64 of the gas: 1M leaves enough for the SSTORE.
    result = chain.run([sign(0, 0, factory, gas=1_000_000)])
    assert result.executed[0].receipt.succeeded
    assert chain.view.get_storage(factory, 1) == 0  # CREATE2 pushed 0: collision
    assert target not in result.state_diff.accounts
    empty_target = create2_address(Address(b"\x67" * 20))
    chain = Chain(
        funded(
            (Address(b"\x67" * 20), GenesisAccount(code=code)),
            (empty_target, GenesisAccount(balance=3)),
        )
    )
    chain.run([sign(0, 0, Address(b"\x67" * 20), gas=1_000_000)])
    assert chain.view.get_storage(Address(b"\x67" * 20), 1) == int.from_bytes(empty_target, "big")


def test_a_deleted_then_recreated_account_has_its_storage_reset() -> None:
    # An empty account that still holds storage is deleted when touched (EIP-161);
    # a later transfer re-creates it, without the old storage.
    ghost = Address(b"\x68" * 20)
    chain = Chain(funded((ghost, GenesisAccount(storage={1: 1, 2: 2}))))
    result = chain.run([sign(0, 0, ghost), sign(0, 1, ghost, value=5)])
    change = result.state_diff.accounts[ghost]
    assert change is not None and change.storage_reset and dict(change.storage) == {}
    assert change.balance == 5
    assert [chain.view.get_storage(ghost, slot) for slot in (1, 2)] == [0, 0]
    deleted = Chain(funded((ghost, GenesisAccount(storage={1: 1}))))
    assert deleted.run([sign(0, 0, ghost)]).state_diff.accounts[ghost] is None


def test_block_environment_reaches_the_evm() -> None:
    chain = Chain(contracts())
    env = block_env(5)
    result = PyEvmExecutor().call(
        chain.view, env, CallMessage(sender=ADDRESSES[0], to=ENV_AT, gas=100_000, gas_price=9)
    )
    assert result.succeeded, result.error
    words = [int.from_bytes(result.output[i : i + 32], "big") for i in range(0, 256, 32)]
    assert words[:3] == [5, env.timestamp, int.from_bytes(COINBASE, "big")]
    assert words[3:6] == [BASE_FEE, int.from_bytes(env.prev_randao, "big"), CHAIN_ID]
    assert words[6] == int.from_bytes(env.block_hashes[0], "big")
    assert words[7] == 9


def test_call_runs_without_fees_and_discards_changes() -> None:
    chain = Chain(contracts())
    before = chain.root
    nobody = Address(b"\x99" * 20)  # no balance: a free call needs none
    result = PyEvmExecutor().call(
        chain.view,
        block_env(1),
        CallMessage(sender=nobody, to=STORE_AT, gas=100_000, data=word(5) + word(9)),
    )
    assert result.succeeded and result.error is None
    assert 21_000 < result.gas_used < 100_000
    assert chain.root == before and chain.view.get_storage(STORE_AT, 9) == 0
    reverted = PyEvmExecutor().call(
        chain.view, block_env(1), CallMessage(sender=nobody, to=REVERTER_AT, gas=100_000)
    )
    assert not reverted.succeeded and reverted.error == "execution reverted"
    broke = PyEvmExecutor().call(
        chain.view, block_env(1), CallMessage(sender=nobody, to=STORE_AT, gas=100_000, value=1)
    )
    assert broke.error is not None and broke.error.startswith("insufficient funds")
    created = PyEvmExecutor().call(
        chain.view,
        block_env(1),
        CallMessage(sender=ADDRESSES[0], to=None, gas=200_000, data=deploy_code(STORE)),
    )
    assert created.succeeded and created.output == STORE


LOOP = bytes.fromhex("5b600056")
"""JUMPDEST; PUSH1 0; JUMP: loops until the gas runs out (50M gas: about 15 s on py-evm)."""
FORK_BOMB = bytes.fromhex("60006000600060006000305af1" * 2 + "00")
"""Calls itself twice, with no jump: a tree of calls as big as the gas allows."""
BOMB_AT = Address(b"\x55" * 20)


@pytest.mark.parametrize("to, code", [(None, LOOP), (BOMB_AT, b"")], ids=["jump-loop", "call-tree"])
def test_call_stops_at_its_deadline(to: Address | None, code: bytes) -> None:
    chain = Chain({**contracts(), BOMB_AT: GenesisAccount(code=FORK_BOMB)})
    message = CallMessage(sender=ADDRESSES[0], to=to, gas=50_000_000, data=code)
    start = time.monotonic()
    with pytest.raises(ExecutionAborted):
        PyEvmExecutor().call(chain.view, block_env(1), message, Deadline(start + 0.3))
    assert time.monotonic() - start < 5  # without the deadline: 15 s and more
    # The same executor answers the next call as usual.
    result = PyEvmExecutor().call(
        chain.view, block_env(1), CallMessage(sender=ADDRESSES[0], to=STORE_AT, gas=100_000),
        Deadline(time.monotonic() + 5),
    )
    assert result.succeeded


def test_a_trace_stops_at_its_deadline() -> None:
    chain = Chain(contracts())
    message = CallMessage(sender=ADDRESSES[0], to=None, gas=50_000_000, data=LOOP)
    start = time.monotonic()
    with pytest.raises(ExecutionAborted):
        ReferenceTracer().trace_call(
            chain.view, block_env(1), message, TraceOptions(), Deadline(start + 0.3)
        )
    assert time.monotonic() - start < 5


def test_pre_state_is_never_mutated() -> None:
    chain = Chain(contracts())
    stored = dict(chain.kv.iterate())
    PyEvmExecutor().execute(
        chain.view,
        block_env(1),
        [
            sign(0, 0, STORE_AT, data=word(1) + word(1)),
            sign(0, 1, None, data=deploy_code(STORE)),
        ],
    )
    assert dict(chain.kv.iterate()) == stored


def random_batch(
    rng: random.Random, nonces: list[int], deployed: list[Address]
) -> list[Transaction]:
    """Transfers, deployments, storage writes and deletions, logs, reverts and self-destructs."""
    txs = []
    for _ in range(rng.randrange(5, 25)):
        sender = rng.randrange(len(nonces))
        nonce = nonces[sender]
        kind = rng.randrange(7)
        if kind == 0:
            tx = sign(
                sender,
                nonce,
                Address(bytes([0x70 + rng.randrange(8)]) * 20),
                value=rng.randrange(3),
            )
        elif kind == 1:
            tx = sign(sender, nonce, None, data=deploy_code(STORE), tx_type=rng.randrange(3))
            deployed.append(create_address(ADDRESSES[sender], nonce))
        elif kind == 2:
            target = rng.choice([STORE_AT, *deployed])
            tx = sign(
                sender,
                nonce,
                target,
                data=word(rng.choice([0, rng.randrange(1, 2**256)])) + word(rng.randrange(4)),
            )
        elif kind == 3:
            tx = sign(sender, nonce, LOGGER_AT, data=word(rng.randrange(2**256)) + word(1))
        elif kind == 4:
            tx = sign(sender, nonce, REVERTER_AT, tx_type=rng.randrange(3))
        elif kind == 5:
            tx = sign(
                sender,
                nonce,
                None,
                value=rng.randrange(100),
                data=self_destruct_to(Address(bytes([0x70 + rng.randrange(8)]) * 20)),
            )
        else:
            tx = sign(sender, nonce + rng.choice([1, -1]) if nonce else nonce + 1, RECIPIENT)
        if kind != 6:
            nonces[sender] += 1
        txs.append(tx)
    return txs


def test_state_db_reproduces_the_executor_root_on_generated_batches() -> None:
    rng = random.Random(2024)
    chain = Chain(contracts())
    nonces = [0] * 6
    deployed: list[Address] = []
    for _ in range(15):
        result = chain.run(random_batch(rng, nonces, deployed))  # Chain.run checks the roots
        assert len(result.executed) + len(result.rejected) > 0
    assert chain.number == 15


@pytest.mark.slow
def test_throughput_of_a_2000_transfer_block() -> None:
    senders = len(ADDRESSES)
    txs = [
        sign(i % senders, i // senders, Address(keccak256(b"%d" % i)[:20]), value=1)
        for i in range(2000)
    ]
    chain = Chain(funded())
    started = time.perf_counter()
    result = PyEvmExecutor().execute(chain.view, block_env(1, gas_limit=60_000_000), txs)
    executed = time.perf_counter()
    batch = chain.kv.write_batch()
    root = chain.state.apply(chain.root, result.state_diff, batch)
    batch.commit()
    done = time.perf_counter()
    assert len(result.executed) == 2000 and root == result.state_root
    execute_s, total_s = executed - started, done - started
    print(
        f"\n2000 transfers: execute {execute_s:.3f} s ({2000 / execute_s:.0f} tx/s), "
        f"execute + StateDB.apply + commit {total_s:.3f} s ({2000 / total_s:.0f} tx/s)"
    )
