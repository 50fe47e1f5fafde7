"""A solc-compiled ERC-20 (tests/e2e/TestToken.sol) on the native executor and the reference."""

from __future__ import annotations

import functools
from pathlib import Path

from executor_gpu.native import NativeExecutor
from executor_gpu.native_tx import create_address
from node.db.state import GenesisAccount
from primitives.crypto import keccak256
from primitives.transactions import Transaction
from tests.native.chain import ENV, address, comparable, make_state, make_tx, reference, run_both
from tests.solc import compile_contract

TOKEN_SOURCE = Path(__file__).resolve().parents[1] / "e2e" / "TestToken.sol"


@functools.cache
def token_bytecode() -> bytes:
    _, bytecode = compile_contract(TOKEN_SOURCE, "TestToken")
    return bytes.fromhex(bytecode.removeprefix("0x"))


def call(signature: str, *args: int | bytes) -> bytes:
    words = b"".join(a.rjust(32, b"\0") if isinstance(a, bytes) else a.to_bytes(32, "big") for a in args)
    return keccak256(signature.encode())[:4] + words


def test_deploy_transfer_approve_and_transfer_from() -> None:
    alloc = {address(i): GenesisAccount(balance=10**22) for i in range(6)}
    token = create_address(address(0), 0)
    txs: list[Transaction] = [make_tx(0, 0, None, data=token_bytecode() + call("", 10**6)[4:], gas=2_000_000)]
    # The deployer funds five holders, who pay each other (conflicts on shared balances).
    txs += [make_tx(0, 1 + i, token, data=call("transfer(address,uint256)", address(i + 1), 1000 * (i + 1)))
            for i in range(5)]
    txs += [make_tx(i + 1, 0, token, data=call("transfer(address,uint256)", address((i + 2) % 5 + 1), 7))
            for i in range(5)]
    txs += [
        make_tx(1, 1, token, data=call("approve(address,uint256)", address(2), 500)),
        make_tx(2, 1, token, data=call("transferFrom(address,address,uint256)", address(1), address(3), 300)),
        make_tx(2, 2, token, data=call("transferFrom(address,address,uint256)", address(1), address(3), 300)),
        make_tx(3, 1, token, data=call("transfer(address,uint256)", address(4), 10**9)),  # reverts
        make_tx(4, 1, token, data=call("balanceOf(address)", address(4))),
    ]
    mine, _ = run_both(alloc, txs)
    assert [e.error for e in mine.executed[-3:]] == ["execution reverted", "execution reverted", None]
    assert all(e.receipt.logs for e in mine.executed[1:11])
    assert mine.fallbacks == 0


def test_a_learned_function_runs_each_transaction_once() -> None:
    """After one block, the executor loads the balances a ``transfer`` reads before it runs it:
    no transaction stops to ask for a slot (two asks, three runs, before it learned)."""
    holders = [address(i) for i in range(1, 7)]
    token = create_address(address(0), 0)
    setup = [make_tx(0, 0, None, data=token_bytecode() + call("", 10**6)[4:], gas=2_000_000)]
    setup += [make_tx(0, 1 + i, token, data=call("transfer(address,uint256)", h, 1000))
              for i, h in enumerate(holders)]
    deployed, _ = run_both({address(0): GenesisAccount(balance=10**22)}, setup)
    change = deployed.state_diff.accounts[token]
    assert change is not None and change.code is not None
    alloc = {h: GenesisAccount(balance=10**22) for h in holders}
    alloc[token] = GenesisAccount(code=change.code, storage=dict(change.storage))
    txs = [make_tx(i + 1, nonce, token, data=call("transfer(address,uint256)",
                                                  keccak256(b"fresh %d %d" % (i, nonce))[:20], 5))
           for nonce in range(2) for i in range(len(holders))]
    executor = NativeExecutor("cpu")
    first = executor.execute(make_state(alloc), ENV, txs)
    learned_runs = executor.device.time.slots
    second = executor.execute(make_state(alloc), ENV, txs)
    assert executor.device.time.slots - learned_runs == len(txs)
    assert learned_runs > len(txs)
    assert comparable(second) == comparable(first) == comparable(reference().execute(make_state(alloc), ENV, txs))
    assert all(e.error is None and e.receipt.logs for e in second.executed)


def test_one_senders_transfers_to_new_holders_run_in_a_few_launches() -> None:
    """A deploy, then its deployer paying 200 new holders in the same block (bench.load's
    ERC-20 setup): a chain, run in order. Each transfer reads a slot no one loaded; once the
    first asked for it, the rest are loaded before they run (it took a launch or two each:
    10,000 of them took 10,000 rounds)."""
    token = create_address(address(0), 0)
    txs = [make_tx(0, 0, None, data=token_bytecode() + call("", 10**6)[4:], gas=2_000_000)]
    txs += [make_tx(0, 1 + i, token, data=call("transfer(address,uint256)", keccak256(b"holder %d" % i)[:20], 5))
            for i in range(200)]
    executor = NativeExecutor("cpu")
    mine = executor.execute(make_state({address(0): GenesisAccount(balance=10**22)}), ENV, txs)
    assert executor.device.time.launches <= 10
    assert all(e.error is None for e in mine.executed) and len(mine.executed) == len(txs)
    assert comparable(mine) == comparable(reference().execute(make_state({address(0): GenesisAccount(balance=10**22)}), ENV, txs))
