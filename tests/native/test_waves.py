"""Blocks whose transactions conflict, interleaved with rejections and fallbacks: the waves and
the array commit of plain runs must still give the sequential result."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.executor import TOKEN, balance_slot, token_code
from node.db.state import GenesisAccount
from primitives.transactions import Transaction
from primitives.types import Address
from tests.native.chain import COINBASE, ENV, address, make_tx, native, run_both
from tests.native.programs import push

READ_COINBASE = Address(b"\x00" * 18 + b"\xcb\x01")
"""A contract that stores the coinbase's balance: it must see every earlier fee."""
STORAGE_ONLY = [Address(b"\x00" * 18 + bytes([0x5E, i])) for i in range(4)]
"""Empty accounts that hold storage: a call touches one, which deletes it and wipes its storage
(EIP-161), which the native interpreter hands to the reference."""


def transfer(to: Address, amount: int) -> bytes:
    return bytes.fromhex("a9059cbb") + to.rjust(32, b"\0") + amount.to_bytes(32, "big")


def alloc(holders: int) -> dict[Address, GenesisAccount]:
    accounts = {address(i): GenesisAccount(balance=10**22) for i in range(holders)}
    accounts[TOKEN] = GenesisAccount(code=token_code(), storage={balance_slot(address(i)): 10**9 for i in range(holders)})
    accounts[READ_COINBASE] = GenesisAccount(code=b"\x41\x31" + push(0) + b"\x55")
    accounts |= {a: GenesisAccount(storage={1: i + 1}) for i, a in enumerate(STORAGE_ONLY)}
    return accounts


def block(seed: int, holders: int, size: int) -> list[Transaction]:
    """Token and ETH transfers among few holders (so they conflict), with nonce chains,
    coinbase readers, fallbacks and rejections mixed in."""
    rng = random.Random(seed)
    nonces = [0] * holders
    txs = []
    for _ in range(size):
        sender = rng.randrange(holders)
        kind = rng.random()
        nonce = nonces[sender]
        if kind < 0.05:
            txs.append(make_tx(sender, nonce + 5, address(0)))  # nonce too high: rejected
            continue
        if kind < 0.5:
            tx = make_tx(sender, nonce, TOKEN, data=transfer(address(rng.randrange(holders)), rng.randrange(10**6)))
        elif kind < 0.8:
            tx = make_tx(sender, nonce, address(rng.randrange(holders)), value=rng.randrange(10**15))
        elif kind < 0.9:
            tx = make_tx(sender, nonce, READ_COINBASE)
        elif kind < 0.95:
            tx = make_tx(sender, nonce, COINBASE, value=1)
        else:
            tx = make_tx(sender, nonce, STORAGE_ONLY[nonce % len(STORAGE_ONLY)])
        nonces[sender] += 1
        txs.append(tx)
    return txs


def test_conflicting_block_matches_the_reference() -> None:
    mine, _ = run_both(alloc(6), block(1, 6, 120))
    assert mine.fallbacks > 0 and mine.rejected


def test_a_long_chain_of_one_sender_runs_in_order_in_few_launches() -> None:
    """200 payments of one sender to new accounts (each after the one before, none
    conflicting with another) among a few of others: the chain runs in order (CHAIN_SHARE),
    not one launch per link, and the result is the reference's."""
    executor = native()
    txs = [make_tx(0, nonce, address(100 + nonce), value=nonce + 1) for nonce in range(200)]
    txs += [make_tx(sender, 0, address(0), value=1) for sender in range(1, 4)]
    before = executor.device.time.launches
    run_both(alloc(4), txs)
    assert executor.device.time.launches - before <= 10


def test_block_gas_limit_reached_midway() -> None:
    txs = block(2, 8, 60)
    mine, _ = run_both(alloc(8), txs, replace(ENV, gas_limit=1_500_000))
    assert any(r.reason.startswith("gas limit reached") for r in mine.rejected)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10**9), holders=st.integers(1, 12), size=st.integers(1, 80))
def test_random_conflicting_blocks(seed: int, holders: int, size: int) -> None:
    run_both(alloc(holders), block(seed, holders, size))
