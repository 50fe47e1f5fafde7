"""Batch sender recovery on CPU threads gives coincurve's signers, one by one."""

from __future__ import annotations

import os

import pytest

from executor_gpu.recover import NativeRecover, batch_recover
from primitives.crypto import (
    SECP256K1_N,
    Signature,
    keccak256,
    private_key_to_address,
    recover_addresses,
    sign_hash,
)
from primitives.transactions import decode_transaction, decode_transactions
from primitives.types import Address
from tests.node.helpers import transfer


def _signed(count: int) -> tuple[list[Signature], list[Address]]:
    keys = [keccak256(b"key %d" % i) for i in range(count)]
    signatures: list[Signature] = []
    for i, key in enumerate(keys):
        message = keccak256(b"message %d" % i)
        signatures.append((message, *sign_hash(message, key)))
    return signatures, [private_key_to_address(key) for key in keys]


@pytest.mark.parametrize("threads", [1, 4])
def test_native_batch_equals_coincurve(threads: int) -> None:
    signatures, signers = _signed(200)
    # A key that is no point on the curve (r = 0 is checked before; this r has no y).
    broken = (os.urandom(32), 0, 5, 7)
    batch = [*signatures[:100], broken, *signatures[100:]]
    expected = recover_addresses(batch)
    assert expected[100] is None
    assert NativeRecover(threads)(batch) == expected
    assert expected[:100] + expected[101:] == signers


def test_empty_batch() -> None:
    assert NativeRecover()([]) == []


def test_decode_transactions_in_a_batch_equals_one_by_one() -> None:
    raws = [transfer(user, nonce) for user in range(4) for nonce in range(3)]
    tampered = bytearray(raws[0])
    tampered[-5] ^= 1  # another s: recovers another (or no) signer
    high_s = decode_transaction(raws[1])
    batch = [*raws, bytes(tampered), b"\x02\xc0"]
    decoded = decode_transactions(batch, batch_recover())
    assert decoded[: len(raws)] == [decode_transaction(raw) for raw in raws]
    assert decoded[len(raws)] != decode_transaction(raws[0])
    assert str(decoded[-1]).startswith("type 2 transaction must have")
    assert 0 < high_s.s < SECP256K1_N // 2
