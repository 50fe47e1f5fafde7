"""SlotPatterns: which mapping slots a function reads, learned from the slots it asked for."""

from __future__ import annotations

from executor_gpu.native_build import cpu_library
from executor_gpu.native_prefetch import LESSONS, SlotPatterns
from primitives.crypto import keccak256
from primitives.transactions import Transaction
from primitives.types import Address
from tests.native.chain import address, make_tx

TOKEN = Address(b"\x70" * 20)
TRANSFER = keccak256(b"transfer(address,uint256)")[:4]


def mapping_slot(key: bytes, index: int) -> bytes:
    return keccak256(key.rjust(32, b"\0") + index.to_bytes(32, "big"))


def transfer(sender: int, to: bytes, to_contract: Address = TOKEN) -> Transaction:
    return make_tx(sender, 0, to_contract, data=TRANSFER + to.rjust(32, b"\0") + (5).to_bytes(32, "big"))


def test_caller_and_argument_mappings_are_learned_and_predicted() -> None:
    patterns = SlotPatterns(cpu_library())
    first = transfer(1, b"\x11" * 20)
    # The sender's balance at index 0, the recipient's at index 0, and a slot of no pattern.
    patterns.learn([first, first, first], [
        TOKEN + mapping_slot(first.sender, 0), TOKEN + mapping_slot(b"\x11" * 20, 0),
        TOKEN + (2).to_bytes(32, "big"),
    ])
    later = transfer(2, b"\x22" * 20)
    assert sorted(patterns.slots([later])) == sorted([
        TOKEN + mapping_slot(later.sender, 0), TOKEN + mapping_slot(b"\x22" * 20, 0),
    ])
    # Another contract, a call without a selector, and a creation expect nothing.
    assert patterns.slots([transfer(3, b"\x33" * 20, Address(b"\x71" * 20)),
                           make_tx(3, 0, TOKEN, data=b"\x01"), make_tx(3, 0, None)]) == []


def test_study_stops_after_enough_unexplained_slots() -> None:
    patterns = SlotPatterns(cpu_library())
    tx = transfer(1, b"\x11" * 20)
    patterns.learn([tx] * LESSONS, [TOKEN + (i + 100).to_bytes(32, "big") for i in range(LESSONS)])
    patterns.learn([tx], [TOKEN + mapping_slot(tx.sender, 3)])  # too late: no longer studied
    assert patterns.slots([transfer(2, b"\x22" * 20)]) == []
    fresh = SlotPatterns(cpu_library())
    fresh.learn([tx], [TOKEN + mapping_slot(tx.sender, 3)])
    assert fresh.slots([transfer(2, b"\x22" * 20)]) == [TOKEN + mapping_slot(address(2), 3)]
