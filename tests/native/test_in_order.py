"""Sequential launches: after a conflict the native executor runs the next transactions in one
launch, each on the state the ones before it left (chains of payments, one hot contract). The
results must still equal the reference executor's, and the chain must not take a round per
transaction."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executor_gpu.native_launch import CpuDevice
from executor_gpu.native_tx import create_address
from node.db.state import GenesisAccount
from primitives.types import Address
from tests.native.chain import COINBASE, ENV, address, make_tx, run_both
from tests.native.programs import push

RICH = 10**24
GWEI = 10**9
# SLOAD(0) + 1 -> SSTORE(0); then the coinbase's balance -> slot 1 (it grows by each fee).
COUNTER = push(0) + b"\x54" + push(1) + b"\x01" + push(0) + b"\x55" + b"\x41\x31" + push(1) + b"\x55"
HOT = Address(b"\xc0\xde" + b"\x00" * 17 + b"\x01")


@pytest.fixture
def in_order_launches(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Slots of every sequential launch the tests' executor makes."""
    sizes: list[int] = []
    real = CpuDevice.run_sequential

    def spy(self: CpuDevice, *args: Any) -> Any:
        sizes.append(len(args[1]))
        return real(self, *args)

    monkeypatch.setattr(CpuDevice, "run_sequential", spy)
    yield sizes


def payment_chain(length: int, first: int = 0, value: int = 10**21) -> list[Any]:
    """Each transaction pays the next one's sender: every one depends on the one before."""
    return [make_tx(first + i, 0, address(first + i + 1), value=value - i * GWEI) for i in range(length)]


def test_a_chain_of_payments_runs_in_few_launches(in_order_launches: list[int]) -> None:
    txs = payment_chain(300)
    mine, _ = run_both({address(0): GenesisAccount(balance=RICH)}, txs)
    assert len(mine.executed) == 300 and not mine.rejected
    assert in_order_launches, "the chain never ran in order"
    assert len(in_order_launches) < 20


def test_one_hot_contract_called_by_many_senders(in_order_launches: list[int]) -> None:
    alloc = {address(i): GenesisAccount(balance=RICH) for i in range(120)}
    alloc[HOT] = GenesisAccount(code=COUNTER, storage={0: 5})
    txs = [make_tx(i, 0, HOT, tip=1 + i % 3) for i in range(120)]
    mine, _ = run_both(alloc, txs)
    hot = mine.state_diff.accounts[HOT]
    assert hot is not None and hot.storage[0] == 125
    assert in_order_launches


def test_chains_through_rejections_creations_deletions_and_the_coinbase(
    in_order_launches: list[int],
) -> None:
    empty = Address(b"\x00" * 19 + b"\x99")  # exists, empty: a zero-value touch deletes it
    alloc = {address(0): GenesisAccount(balance=RICH), address(50): GenesisAccount(balance=RICH),
             empty: GenesisAccount(), HOT: GenesisAccount(code=COUNTER)}
    created = create_address(address(50), 0)
    init = bytes([0x60, len(COUNTER), 0x80, 0x60, 9, 0x5F, 0x39, 0x5F, 0xF3]) + COUNTER
    txs = payment_chain(10)
    txs.append(make_tx(10, 0, address(11), value=RICH))  # more than it has: rejected
    txs.append(make_tx(11, 0, address(12), value=1))  # so this one has nothing to pay with
    txs += [make_tx(50, 0, None, data=init, gas=300_000), make_tx(50, 1, created),
            make_tx(50, 2, empty, value=0), make_tx(50, 3, HOT), make_tx(50, 4, created)]
    txs += payment_chain(10, first=20) + [make_tx(5, 1, COINBASE, value=1000), make_tx(6, 1, HOT)]
    alloc[address(20)] = GenesisAccount(balance=RICH)
    mine, _ = run_both(alloc, txs)
    assert len(mine.rejected) == 2
    assert mine.state_diff.accounts[empty] is None
    assert in_order_launches


def test_a_chain_longer_than_the_block_gas_stops_where_the_reference_does(
    in_order_launches: list[int],
) -> None:
    env = replace(ENV, gas_limit=21_000 * 36 + 100_000 - 1)
    mine, _ = run_both({address(0): GenesisAccount(balance=RICH)}, payment_chain(60), env)
    # Each asks for 100,000 gas: the 37th finds less than that left.
    assert len(mine.executed) == 36 and len(mine.rejected) == 24
    assert "gas limit reached" in mine.rejected[0].reason
    assert in_order_launches


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 7), st.sampled_from(["pay", "hot", "coinbase"]),
                  st.integers(0, 3).map(lambda n: 10**n * 10**17)),
        min_size=2, max_size=40,
    ),
)
def test_random_conflicting_blocks_match_the_reference(steps: list[tuple[int, str, int]]) -> None:
    alloc = {address(i): GenesisAccount(balance=10**18 * (i + 1)) for i in range(8)}
    alloc[HOT] = GenesisAccount(code=COUNTER)
    nonces = [0] * 8
    txs = []
    for sender, kind, value in steps:
        to = {"pay": address((sender + 1) % 8), "hot": HOT, "coinbase": COINBASE}[kind]
        txs.append(make_tx(sender, nonces[sender], to, value=value))
        nonces[sender] += 1
    run_both(alloc, txs)

