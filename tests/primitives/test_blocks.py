"""Headers, receipts and blooms encode exactly as py-evm does."""

from __future__ import annotations

import rlp
from eth.db.trie import make_trie_root_and_nodes
from eth.rlp.logs import Log as EvmLog
from eth.rlp.receipts import Receipt as EvmReceipt
from eth.vm.forks.cancun.blocks import CancunBlockHeader
from eth_bloom.bloom import BloomFilter
from eth_typing import BlockNumber
from hypothesis import given, settings
from hypothesis import strategies as st
from trie.hexary import HexaryTrie

from primitives.blocks import (
    EMPTY_BLOOM,
    EMPTY_ROOT,
    Header,
    Log,
    Receipt,
    bloom_contains,
    bloom_of,
    ordered_trie_root,
)
from primitives.transactions import DYNAMIC_FEE_TX, LEGACY_TX
from primitives.types import Address, Hash32

LOG = Log(Address(b"\x11" * 20), (Hash32(b"\x01" * 32), Hash32(b"\x02" * 32)), b"payload")


def test_header_hash_equals_py_evm() -> None:
    ours = Header(
        parent_hash=Hash32(b"\x01" * 32), coinbase=Address(b"\x02" * 20),
        state_root=Hash32(b"\x03" * 32), transactions_root=EMPTY_ROOT, receipts_root=EMPTY_ROOT,
        logs_bloom=bloom_of([LOG]), number=7, gas_limit=30_000_000, gas_used=21_000,
        timestamp=1_700_000_007, base_fee_per_gas=875_000_000, extra_data=b"l2",
    )
    theirs = CancunBlockHeader(
        parent_hash=ours.parent_hash, coinbase=ours.coinbase, state_root=ours.state_root,
        transaction_root=EMPTY_ROOT, receipt_root=EMPTY_ROOT,
        bloom=int.from_bytes(ours.logs_bloom, "big"), difficulty=0, block_number=BlockNumber(7),
        gas_limit=30_000_000, gas_used=21_000, timestamp=1_700_000_007, extra_data=b"l2",
        mix_hash=Hash32(b"\x00" * 32), nonce=b"\x00" * 8, base_fee_per_gas=875_000_000,
        withdrawals_root=EMPTY_ROOT, blob_gas_used=0, excess_blob_gas=0,
        parent_beacon_block_root=Hash32(b"\x00" * 32),
    )
    assert ours.hash == theirs.hash
    assert Header.decode(ours.encode()) == ours


def test_bloom_equals_eth_bloom() -> None:
    expected = BloomFilter()
    expected.add(LOG.address)
    for topic in LOG.topics:
        expected.add(topic)
    assert int.from_bytes(bloom_of([LOG]), "big") == int(expected)
    assert bloom_contains(bloom_of([LOG]), LOG.address)
    assert not bloom_contains(EMPTY_BLOOM, LOG.address)


def test_receipts_root_equals_py_evm() -> None:
    ours = [
        Receipt(LEGACY_TX, True, 21_000, ()),
        Receipt(DYNAMIC_FEE_TX, False, 60_000, (LOG,)),
    ]
    evm_log = EvmLog(LOG.address, tuple(int.from_bytes(t, "big") for t in LOG.topics), LOG.data)
    legacy = EvmReceipt(b"\x01", 21_000, [])
    typed = EvmReceipt(b"", 60_000, [evm_log])
    theirs = [rlp.encode(legacy), bytes([DYNAMIC_FEE_TX]) + rlp.encode(typed)]
    assert [r.encode() for r in ours] == theirs
    assert ordered_trie_root([r.encode() for r in ours]) == make_trie_root_and_nodes(tuple(ours))[0]  # type: ignore[arg-type]
    assert ordered_trie_root([]) == EMPTY_ROOT


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=80), max_size=300))
def test_ordered_trie_root_equals_hexary_trie(items: list[bytes]) -> None:
    trie = HexaryTrie({})
    for index, item in enumerate(items):
        trie[rlp.encode(index)] = item
    assert ordered_trie_root(items) == trie.root_hash


logs = st.builds(
    Log,
    st.binary(min_size=20, max_size=20).map(Address),
    st.lists(st.binary(min_size=32, max_size=32).map(Hash32), max_size=4).map(tuple),
    st.binary(max_size=120),
)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([0, 1, 2]), st.booleans(), st.integers(0, 2**64 - 1),
       st.lists(logs, max_size=4))
def test_receipt_and_log_encodings_equal_pyrlp(tx_type: int, succeeded: bool, cumulative: int,
                                               emitted: list[Log]) -> None:
    receipt = Receipt(tx_type, succeeded, cumulative, tuple(emitted))
    structure = [1 if succeeded else 0, cumulative, bloom_of(emitted),
                 [log.to_rlp() for log in emitted]]
    body = rlp.encode(structure)
    assert receipt.encode() == (body if tx_type == LEGACY_TX else bytes([tx_type]) + body)
    assert [log.encode() for log in emitted] == [rlp.encode(log.to_rlp()) for log in emitted]
