"""NativeExecutor(cpu) against the reference executor: the BatchResults must be identical."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from executor_gpu.native_tx import create_address
from node.db.state import GenesisAccount
from primitives.transactions import AccessListEntry
from primitives.types import Address
from tests.native.chain import COINBASE, ENV, address, make_tx, run_both
from tests.native.programs import program, push

RICH = 10**24


def funded(*indices: int, balance: int = RICH) -> dict[Address, GenesisAccount]:
    return {address(i): GenesisAccount(balance=balance) for i in indices}


def contract(n: int) -> Address:
    return Address((0xC0DE0000 + n).to_bytes(20, "big"))


def test_plain_transfers_between_distinct_accounts() -> None:
    alloc = funded(*range(10))
    txs = [make_tx(i, 0, address(i + 10), value=10**18 + i) for i in range(10)]
    mine, _ = run_both(alloc, txs)
    assert len(mine.executed) == 10 and mine.fallbacks == 0


def test_transfers_that_conflict_run_as_if_sequential() -> None:
    # One sender's nonce chain, and money that moves on through several hands.
    alloc = funded(0, 1)
    txs = [make_tx(0, n, address(2 + n % 3), value=1000 + n) for n in range(12)]
    txs += [make_tx(1, 0, address(5), value=10**20), make_tx(1, 1, address(6), value=1)]
    txs += [make_tx(5, 0, address(7), value=5 * 10**19)]  # funded by the transfer just before
    mine, _ = run_both(alloc, txs)
    assert len(mine.executed) == len(txs)


def test_transfers_touching_the_coinbase_and_empty_accounts() -> None:
    alloc = funded(0, 1) | {Address(b"\x00" * 19 + b"\x77"): GenesisAccount()}  # an empty account
    txs = [
        make_tx(0, 0, COINBASE, value=123),
        make_tx(1, 0, Address(b"\x00" * 19 + b"\x77"), value=0),  # touched empty: deleted
        make_tx(0, 1, Address(b"\x00" * 19 + b"\x78"), value=0),  # never existed: stays so
        make_tx(1, 1, address(9), value=0, tip=0),
    ]
    run_both(alloc, txs)


def test_transaction_types_and_access_lists() -> None:
    alloc = funded(0, 1, 2) | {contract(1): GenesisAccount(code=push(5) + push(1) + b"\x55\x00")}
    entries = (AccessListEntry(contract(1), (1, 2)), AccessListEntry(address(9), ()))
    txs = [
        make_tx(0, 0, contract(1), tx_type=0, max_fee=9),
        make_tx(1, 0, contract(1), tx_type=1, max_fee=9, access_list=entries),
        make_tx(2, 0, contract(1), tx_type=2, access_list=entries),
    ]
    run_both(alloc, txs)


def test_rejections_in_go_ethereum_wording() -> None:
    alloc = funded(0, 1, 2) | funded(3, balance=10**6) | {
        address(4): GenesisAccount(balance=RICH, code=b"\x00"),  # a sender with code (EIP-3607)
    }
    txs = [
        make_tx(0, 1, address(9)),  # nonce too high
        make_tx(0, 0, address(9)),
        make_tx(0, 0, address(9)),  # nonce too low
        make_tx(3, 0, address(9), value=10**6),  # insufficient funds
        make_tx(1, 0, address(9), gas=20_000),  # intrinsic gas too low
        make_tx(1, 0, address(9), max_fee=6, tip=1),  # below the base fee
        make_tx(1, 0, address(9), chain_id=1),  # another chain
        make_tx(4, 0, address(9)),  # sender not an EOA
        make_tx(2, 0, None, data=b"\x00" * 49153, gas=2_000_000),  # init code too large
        make_tx(2, 0, address(9), gas=29_000_000),
        make_tx(1, 0, address(9), gas=2_000_000),  # gas limit reached after the one before
        make_tx(1, 0, address(9)),
    ]
    mine, _ = run_both(alloc, txs)
    assert len(mine.rejected) == 9


def test_contract_creation_and_call() -> None:
    # Runtime: store CALLVALUE at slot 0, log it, return 32 bytes.
    runtime = bytes.fromhex("34600055") + push(7) + push(0) + b"\x52" + push(32) + push(0) + b"\xa0" + (
        push(32) + push(0) + b"\xf3"
    )
    # PUSH1 len DUP1 PUSH1 9 PUSH0 CODECOPY PUSH0 RETURN: copies the 9-byte-offset runtime out.
    init = bytes([0x60, len(runtime), 0x80, 0x60, 9, 0x5F, 0x39, 0x5F, 0xF3])
    alloc = funded(0)
    created = create_address(address(0), 0)
    txs = [
        make_tx(0, 0, None, data=init + runtime, gas=200_000),
        make_tx(0, 1, created, value=55),
        make_tx(0, 2, None, data=b"\x60\x00\x60\x00\xfd", gas=100_000),  # reverting init code
        make_tx(0, 3, None, data=push(1) + push(0) + b"\x53" + push(1) + push(0) + b"\xf3"),  # 0x01 code
        make_tx(0, 4, None, data=b"\x60\xef\x60\x00\x53\x60\x01\x60\x00\xf3"),  # 0xEF code: rejected
    ]
    mine, _ = run_both(alloc, txs)
    assert mine.executed[0].contract_address == created
    assert mine.state_diff.accounts[created] is not None


def test_block_environment_opcodes() -> None:
    body = b"".join(bytes([op]) + push(0x200 + i) + b"\x55" for i, op in enumerate(
        [0x30, 0x32, 0x33, 0x34, 0x36, 0x38, 0x3A, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x4A]
    ))
    body += b"".join(push(n) + b"\x40" + push(0x300 + n) + b"\x55" for n in (0, 1, 5, 6, 7, 300))
    alloc = funded(0) | {contract(1): GenesisAccount(balance=77, code=body)}
    run_both(alloc, [make_tx(0, 0, contract(1), value=3, data=b"\x01\x02", gas=1_000_000)])
    run_both(alloc, [make_tx(0, 0, contract(1), gas=1_000_000)], replace(ENV, excess_blob_gas=10**7))


def test_a_callee_starts_without_its_callers_return_data() -> None:
    """EIP-211: RETURNDATASIZE is 0 in a new frame, whatever its caller's last call returned
    (the native interpreter once let the callee see it: a hypothesis example found it)."""
    returns_one_byte = push(1) + push(0) + b"\xf3"
    stores_its_return_data_size = b"\x3d" + push(1) + b"\x01" + push(0) + b"\x55\x00"

    def call(target: Address) -> bytes:
        return push(0) * 5 + push(int.from_bytes(target, "big")) + b"\x5a\xf1\x50"

    alloc = funded(0) | {
        contract(1): GenesisAccount(code=returns_one_byte),
        contract(2): GenesisAccount(code=stores_its_return_data_size),
        contract(3): GenesisAccount(code=call(contract(1)) + call(contract(2)) + b"\x00"),
    }
    mine, _ = run_both(alloc, [make_tx(0, 0, contract(3), gas=300_000)])
    stored = mine.state_diff.accounts[contract(2)]
    assert stored is not None and stored.storage == {0: 1}


PEERS = [0xC0DE0001, 0xC0DE0002, 0xC0DE0003]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    codes=st.lists(program([*PEERS, 0xC0DE0004]), min_size=3, max_size=3),
    calls=st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from([0, 1, 10**9]), st.binary(max_size=40),
                  st.sampled_from([60_000, 300_000, 1_000_000, 3_000_000])),
        min_size=1, max_size=8,  # several calls of one contract: conflicts, then runs in order
    ),
    storage=st.dictionaries(st.integers(0, 4), st.integers(1, 2**256 - 1), max_size=5),
)
# A JUMP onto a 0x5b byte inside PUSH4 data (offset 12): go-ethereum's "invalid jump
# destination", which py-evm words as an invalid instruction.
@example(
    codes=[b"\x00", bytes.fromhex("6001600103610100556301" + "4e5b00" + "5f0161010155600c56"), b"\x00"],
    calls=[(1, 0, b"", 60_000)],
    storage={},
)
def test_random_programs_match_the_reference(
    codes: list[bytes], calls: list[tuple[int, int, bytes, int]], storage: dict[int, int]
) -> None:
    alloc = funded(0, 1) | {
        contract(n + 1): GenesisAccount(balance=10**9, code=code, storage=storage)
        for n, code in enumerate(codes)
    }
    txs = [
        make_tx(i % 2, i // 2, contract(target + 1), value=value, data=data, gas=gas)
        for i, (target, value, data, gas) in enumerate(calls)
    ]
    run_both(alloc, txs)


def precompile_caller(precompile: int, gas: int) -> bytes:
    """Calls ``precompile`` with the call data; stores success, output word and output size."""
    return (
        b"\x36\x5f\x5f\x37"  # CALLDATACOPY(0, 0, CALLDATASIZE)
        + push(0x20) + push(0x1000) + b"\x36" + push(0) + push(0) + push(precompile) + push(gas)
        + b"\xf1" + push(0) + b"\x55"  # CALL ... -> slot 0
        + push(0x1000) + b"\x51" + push(1) + b"\x55"  # output word -> slot 1
        + b"\x3d" + push(2) + b"\x55"  # RETURNDATASIZE -> slot 2
    )


def _signature_input(seed: int, v_delta: int) -> bytes:
    from primitives.crypto import keccak256, sign_hash

    digest = keccak256(b"message %d" % seed)
    parity, r, s = sign_hash(digest, keccak256(b"signer %d" % seed))
    return digest + (27 + parity + v_delta).to_bytes(32, "big") + r.to_bytes(32, "big") + s.to_bytes(32, "big")


@settings(max_examples=40, deadline=None)
@given(
    inputs=st.lists(st.one_of(
        st.binary(max_size=200),
        st.builds(_signature_input, st.integers(0, 10**6), st.sampled_from([0, 0, 0, 1, -1, 2])),
    ), min_size=1, max_size=4),
    gas=st.sampled_from([100_000, 700, 80, 3000]),
)
def test_precompiles_one_to_four_match_the_reference(inputs: list[bytes], gas: int) -> None:
    alloc = funded(0) | {contract(p): GenesisAccount(code=precompile_caller(p, gas)) for p in (1, 2, 3, 4)}
    txs = [make_tx(0, n, contract(p), data=data, gas=500_000)
           for n, (p, data) in enumerate((p, data) for data in inputs for p in (1, 2, 3, 4))]
    mine, _ = run_both(alloc, txs)
    assert mine.fallbacks == 0


def test_calls_to_ripemd160_touch_it_even_when_they_fail() -> None:
    # 0x03 exists and is empty; a call that runs out of gas still deletes it (EIP-716).
    alloc = funded(0) | {Address(b"\0" * 19 + b"\3"): GenesisAccount(), contract(3): GenesisAccount(
        code=precompile_caller(3, 10))}
    run_both(alloc, [make_tx(0, 0, contract(3), data=b"abc")])
