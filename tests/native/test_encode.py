"""The C block encoders (executor_gpu/native_encode.py) equal pyrlp's encodings of the stored
formats (node/db/chain.py) and the Python receipts root and bloom (primitives/blocks.py, checked
against py-evm in tests/primitives/test_blocks.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import rlp
from hypothesis import given, settings
from hypothesis import strategies as st

from executor_gpu import native_encode
from executor_gpu.native_encode import body_raws, encode_body, encode_receipts
from primitives import blocks
from primitives.blocks import EMPTY_BLOOM, EMPTY_ROOT, Log, Receipt
from primitives.types import Address, Hash32


@dataclass(frozen=True)
class Outcome:
    """A stored receipt's fields."""

    receipt: Receipt
    """Consensus part."""
    gas_used: int
    """Gas of this transaction alone."""
    effective_gas_price: int
    """Price per gas paid."""
    contract_address: Address | None
    """Created contract, if any."""


@dataclass(frozen=True)
class Stored:
    """A body entry's fields."""

    raw: bytes
    """The transaction's encoding."""
    sender: Address
    """Its sender."""


addresses = st.binary(min_size=20, max_size=20).map(Address)
hashes = st.binary(min_size=32, max_size=32).map(Hash32)
# Data around the RLP length boundaries (1-byte values, 55/56, 255/256 bytes).
data = st.one_of(st.binary(max_size=2), st.binary(min_size=54, max_size=58),
                 st.binary(min_size=254, max_size=258), st.binary(max_size=1200))
logs = st.builds(Log, addresses, st.lists(hashes, max_size=4).map(tuple), data)
gas = st.one_of(st.integers(0, 300), st.integers(0, 2**64 - 1))
outcomes = st.builds(
    Outcome,
    st.builds(Receipt, st.sampled_from([0, 1, 2]), st.booleans(), gas,
              st.lists(logs, max_size=3).map(tuple)),
    gas,
    st.one_of(st.integers(0, 300), st.integers(0, 2**256 - 1)),
    st.one_of(st.none(), addresses),
)


def stored_receipts(items: list[Outcome]) -> bytes:
    """The stored receipts list as pyrlp encodes its structure."""
    return bytes(rlp.encode([
        [o.receipt.tx_type, int(o.receipt.succeeded), o.receipt.cumulative_gas_used,
         [log.to_rlp() for log in o.receipt.logs], o.gas_used, o.effective_gas_price,
         o.contract_address or b""]
        for o in items
    ]))


@settings(max_examples=150, deadline=None)
@given(st.lists(outcomes, max_size=40))
def test_receipts_equal_pyrlp(items: list[Outcome]) -> None:
    receipts = [o.receipt for o in items]
    # Each way round, twice: the columns gathered once for these receipts serve every call,
    # and the stored form's own fields (creations) never leak into the root's.
    for _ in range(2):
        assert native_encode.receipts_root(receipts) == blocks.receipts_root(receipts)
        assert encode_receipts(items) == stored_receipts(items)


def test_many_receipts_and_an_empty_block() -> None:
    # Thousands: the list's header grows to 4 bytes, the trie's keys to 3.
    token, topic = Address(b"\x11" * 20), Hash32(b"\x22" * 32)
    items = [Outcome(Receipt(i % 3, i % 5 != 0, 21_000 * (i + 1),
                             (Log(token, (topic,) * (i % 4), bytes(i % 70)),) if i % 2 else ()),
                     21_000, 10**9 + i, Address(bytes(19) + b"\x01") if i % 97 == 0 else None)
             for i in range(3000)]
    assert encode_receipts(items) == stored_receipts(items)
    receipts = [o.receipt for o in items]
    assert native_encode.receipts_root(receipts) == blocks.receipts_root(receipts)
    assert encode_receipts([]) == b"\xc0"
    assert native_encode.receipts_root([]) == blocks.receipts_root([]) == (EMPTY_ROOT, EMPTY_BLOOM)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.builds(Stored, data, addresses), max_size=40))
def test_body_equals_pyrlp(txs: list[Stored]) -> None:
    body = encode_body(txs)
    assert body == rlp.encode([[tx.raw, tx.sender] for tx in txs])
    assert body_raws(body) == tuple(tx.raw for tx in txs)


@pytest.mark.parametrize("body", [
    b"", b"\x00", b"\x80",  # not a list
    rlp.encode([[b"raw", b"\x11" * 20]]) + b"\x00",  # trailing bytes
    rlp.encode([[b"raw", b"\x11" * 20]])[:-1],  # truncated
    rlp.encode([[b"raw", b"\x11" * 19]]),  # a sender of 19 bytes
    rlp.encode([[b"raw", b"\x11" * 20, b"more"]]),  # a third field
    rlp.encode([[b"raw"]]),  # no sender
    rlp.encode([b"raw"]),  # a string, not a pair
    rlp.encode([[[b"raw"], b"\x11" * 20]]),  # a list, not a raw transaction
])
def test_body_raws_refuses_what_is_not_a_stored_body(body: bytes) -> None:
    with pytest.raises(ValueError, match="not a stored body"):
        body_raws(body)


def test_long_body() -> None:
    txs = [Stored(bytes([i % 256]) * (100 + i % 300), Address(bytes([i % 256]) * 20))
           for i in range(5000)]
    assert encode_body(txs) == rlp.encode([[tx.raw, tx.sender] for tx in txs])
    assert body_raws(encode_body(txs)) == tuple(tx.raw for tx in txs)
