"""SlotPatterns: which mapping slots a function reads, learned from the slots it asked for."""

from __future__ import annotations

from collections.abc import Sequence

from executor_gpu.native_build import cpu_library
from executor_gpu.native_prefetch import LESSONS, SlotPatterns
from executor_gpu.native_state import StateTables
from executor_gpu.native_tx import pack_transactions
from primitives.crypto import keccak256
from primitives.transactions import Transaction
from primitives.types import Address
from tests.native.chain import ENV, address, make_state, make_tx

TOKEN = Address(b"\x70" * 20)
TRANSFER = keccak256(b"transfer(address,uint256)")[:4]


def mapping_slot(key: bytes, index: int) -> bytes:
    return keccak256(key.rjust(32, b"\0") + index.to_bytes(32, "big"))


def transfer(sender: int, to: bytes, to_contract: Address = TOKEN) -> Transaction:
    return make_tx(sender, 0, to_contract, data=TRANSFER + to.rjust(32, b"\0") + (5).to_bytes(32, "big"))


def expected(patterns: SlotPatterns, txs: Sequence[Transaction]) -> list[bytes]:
    """The slots ``patterns`` expects ``txs`` to read."""
    packed = pack_transactions(txs, ENV, StateTables(make_state({}), cpu_library()))
    return patterns.slots(packed.records, packed.data)


def test_caller_and_argument_mappings_are_learned_and_predicted() -> None:
    patterns = SlotPatterns(cpu_library())
    first = transfer(1, b"\x11" * 20)
    # The sender's balance at index 0, the recipient's at index 0, and a slot of no pattern.
    patterns.learn([first, first, first], [
        TOKEN + mapping_slot(first.sender, 0), TOKEN + mapping_slot(b"\x11" * 20, 0),
        TOKEN + (2).to_bytes(32, "big"),
    ])
    later = transfer(2, b"\x22" * 20)
    assert sorted(expected(patterns, [later])) == sorted([
        TOKEN + mapping_slot(later.sender, 0), TOKEN + mapping_slot(b"\x22" * 20, 0),
    ])
    # Another contract, a call without a selector, and a creation expect nothing.
    assert expected(patterns, [transfer(3, b"\x33" * 20, Address(b"\x71" * 20)),
                               make_tx(3, 0, TOKEN, data=b"\x01"), make_tx(3, 0, None)]) == []


def test_study_stops_after_enough_unexplained_slots() -> None:
    patterns = SlotPatterns(cpu_library())
    tx = transfer(1, b"\x11" * 20)
    patterns.learn([tx] * LESSONS, [TOKEN + (i + 100).to_bytes(32, "big") for i in range(LESSONS)])
    patterns.learn([tx], [TOKEN + mapping_slot(tx.sender, 3)])  # too late: no longer studied
    assert expected(patterns, [transfer(2, b"\x22" * 20)]) == []
    fresh = SlotPatterns(cpu_library())
    fresh.learn([tx], [TOKEN + mapping_slot(tx.sender, 3)])
    assert expected(fresh, [transfer(2, b"\x22" * 20)]) == [TOKEN + mapping_slot(address(2), 3)]


def test_callers_of_several_functions_and_short_call_data() -> None:
    patterns = SlotPatterns(cpu_library())
    other = Address(b"\x71" * 20)
    first, second = transfer(1, b"\x11" * 20), transfer(2, b"\x12" * 20, other)
    # TOKEN's transfer reads the recipient's (argument 1) at index 1; the other contract's the
    # caller's at index 2 and argument 2's at index 0.
    patterns.learn([first, second, second], [
        TOKEN + mapping_slot(b"\x11" * 20, 1), other + mapping_slot(second.sender, 2),
        other + mapping_slot((5).to_bytes(32, "big"), 0),
    ])
    short = make_tx(5, 0, other, data=TRANSFER + (b"\x15" * 20).rjust(32, b"\0"))  # no argument 2
    txs = [transfer(3, b"\x13" * 20, other), transfer(4, b"\x14" * 20), short]
    assert sorted(expected(patterns, txs)) == sorted([
        other + mapping_slot(address(3), 2), other + mapping_slot((5).to_bytes(32, "big"), 0),
        TOKEN + mapping_slot(b"\x14" * 20, 1), other + mapping_slot(address(5), 2),
    ])
