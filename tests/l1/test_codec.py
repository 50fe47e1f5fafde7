"""Batch data encoding and batch signatures."""

from __future__ import annotations

import dataclasses
import zlib

import pytest
import rlp
from hypothesis import given, settings
from hypothesis import strategies as st

from l1.codec import (
    BATCH_DATA_VERSION,
    MAX_DECODED_SIZE,
    ZLIB_VERSION,
    decode_batch_data,
    encode_batch_data,
    order_signatures,
    recover_batch_signer,
    sign_batch,
)
from l1.types import L2BlockData
from primitives.crypto import SECP256K1_N, keccak256, private_key_to_address
from primitives.errors import InvalidInput
from primitives.types import Address
from tests.l1.conftest import VALIDATOR_KEYS, make_block

blocks = st.builds(
    L2BlockData,
    number=st.integers(0, 2**64 - 1),
    timestamp=st.integers(0, 2**64 - 1),
    coinbase=st.binary(min_size=20, max_size=20).map(Address),
    gas_limit=st.integers(0, 2**64 - 1),
    base_fee_per_gas=st.integers(0, 2**256 - 1),
    transactions=st.lists(st.binary(max_size=200), max_size=5).map(tuple),
    proofs=st.lists(st.binary(max_size=80), max_size=2).map(tuple),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(blocks, max_size=6))
def test_round_trip(batch: list[L2BlockData]) -> None:
    data = encode_batch_data(batch)
    assert data[0] == BATCH_DATA_VERSION
    assert decode_batch_data(data) == tuple(batch)
    # The same bytes as pyrlp's encoding of the layout (the node encodes with its own).
    layout = [[b.number, b.timestamp, b.coinbase, b.gas_limit, b.base_fee_per_gas,
               list(b.transactions), list(b.proofs)] for b in batch]
    assert data[1:] == rlp.encode(layout)


def test_layout_is_version_byte_then_canonical_rlp() -> None:
    block = dataclasses.replace(make_block(5), proofs=(b"proof one", b"proof two"))
    data = encode_batch_data([block])
    expected = [
        [
            5,
            block.timestamp,
            block.coinbase,
            block.gas_limit,
            block.base_fee_per_gas,
            list(block.transactions),
            [b"proof one", b"proof two"],
        ]
    ]
    # The RLP itself, uncompressed: the data hash depends on the blocks, not on a zlib build.
    assert data[1:] == rlp.encode(expected)


def test_batches_posted_compressed_still_decode() -> None:
    block = dataclasses.replace(make_block(5), proofs=(b"proof",))
    posted = encode_batch_data([block])
    for level in (1, 6, 9):  # any deflate stream of the same RLP: what version 1 posted
        assert decode_batch_data(_version1(posted[1:], level)) == (block,)


def _version1(payload: bytes, level: int = 6) -> bytes:
    return bytes([ZLIB_VERSION]) + zlib.compress(payload, level)


@pytest.mark.parametrize(
    "data, why",
    [
        (b"", "empty"),
        (bytes([3]) + rlp.encode([]), "version"),
        (bytes([ZLIB_VERSION]) + b"not zlib", "zlib"),
        (_version1(rlp.encode([]))[:-3], "truncated"),
        (_version1(rlp.encode([])) + b"\x00", "trailing"),
        (encode_batch_data([make_block(1)])[:-3], "RLP"),
        (encode_batch_data([make_block(1)]) + b"\x00", "RLP"),
        (bytes([BATCH_DATA_VERSION]) + rlp.encode([[1, 2, 3]]), "layout"),
        (_version1(b"\xff\xff"), "RLP"),
        (_version1(rlp.encode([[1, 2, 3]])), "layout"),
        (_version1(rlp.encode([[1, 2, b"\x01" * 19, 4, 5, []]])), "layout"),
        (_version1(rlp.encode([[b"\x00\x01", 2, b"\x01" * 20, 4, 5, []]])), "layout"),
        (_version1(b"\x00" * (MAX_DECODED_SIZE + 1)), "inflates"),
    ],
)
def test_decode_rejects(data: bytes, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        decode_batch_data(data)


def test_sign_and_recover() -> None:
    digest = keccak256(b"some batch")
    key = VALIDATOR_KEYS[0]
    signature = sign_batch(digest, key)
    assert len(signature) == 65 and signature[64] in (27, 28)
    assert int.from_bytes(signature[32:64], "big") <= SECP256K1_N // 2
    assert recover_batch_signer(digest, signature) == private_key_to_address(key)
    assert recover_batch_signer(keccak256(b"other"), signature) != private_key_to_address(key)


def test_recover_rejects_malformed() -> None:
    digest = keccak256(b"some batch")
    signature = sign_batch(digest, VALIDATOR_KEYS[0])
    high_s = (SECP256K1_N - int.from_bytes(signature[32:64], "big")).to_bytes(32, "big")
    flipped_v = bytes([55 - signature[64]])  # 27 <-> 28: the same signature, malleated
    for bad in (signature[:64], signature[:64] + b"\x01", signature[:32] + high_s + flipped_v):
        with pytest.raises(InvalidInput):
            recover_batch_signer(digest, bad)


def test_order_signatures_sorts_by_signer() -> None:
    digest = keccak256(b"some batch")
    signatures = [sign_batch(digest, key) for key in VALIDATOR_KEYS]
    ordered = order_signatures(digest, signatures)
    signers = [recover_batch_signer(digest, s) for s in ordered]
    assert signers == sorted(private_key_to_address(k) for k in VALIDATOR_KEYS)
    assert sorted(ordered) == sorted(signatures)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.booleans())
def test_hostile_data_is_invalid_input_or_blocks(payload: bytes, compress: bool) -> None:
    """Whatever arrives from L1 decodes to blocks or raises InvalidInput, nothing else."""
    data = _version1(payload) if compress else bytes([BATCH_DATA_VERSION]) + payload  # both versions
    try:
        blocks = decode_batch_data(data)
    except InvalidInput:
        return
    assert all(isinstance(b, L2BlockData) for b in blocks)
