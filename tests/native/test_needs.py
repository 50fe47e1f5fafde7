"""State the host did not load: one run names all the keys it reaches, then the transaction
runs again on them, however many there are."""

from __future__ import annotations

from executor_gpu.native_launch import DeviceTime
from node.db.state import GenesisAccount
from primitives.types import Address
from tests.native.chain import address, make_tx, native, run_both
from tests.native.programs import push

CONTRACT = Address(b"\xc0" * 20)
FRESH = [Address((0x1000 + i).to_bytes(20, "big")) for i in range(40)]


def runs(code: bytes, storage: dict[int, int] | None = None) -> int:
    """Times the one transaction calling ``code`` ran, checked against the reference."""
    alloc = {
        address(0): GenesisAccount(balance=10**18),
        CONTRACT: GenesisAccount(balance=10**6, code=code, storage=storage or {}),
    }
    native().device.time = DeviceTime()
    mine, _ = run_both(alloc, [make_tx(0, 0, CONTRACT, gas=2_000_000)])
    assert len(mine.executed) == 1 and mine.executed[0].receipt.succeeded
    return native().device.time.slots


def test_paying_many_new_accounts_runs_twice() -> None:
    # CALL(gas 0, to, value 1, no data): each payee is an account the host has not loaded.
    pay = b"".join(push(0) * 4 + push(1) + push(int.from_bytes(to, "big")) + push(0) + b"\xf1\x50" for to in FRESH)
    assert runs(pay) == 2


def test_reading_many_slots_runs_twice() -> None:
    # SLOAD of slots the pre-state holds, each added to slot 0: every value must be the real one.
    read = push(0) + b"".join(push(k) + b"\x54\x01" for k in range(1, 41)) + push(0) + b"\x55"
    assert runs(read, {k: k * 1000 for k in range(1, 41)}) == 2
