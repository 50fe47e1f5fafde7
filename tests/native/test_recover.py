"""Batch sender recovery gives coincurve's signers, one by one: on CPU threads with
libsecp256k1, and with the interpreter's own curve code (the GPU's, here its CPU build) on
random signatures and every edge case of the transaction rules."""

from __future__ import annotations

import os
import random

import coincurve
import pytest

from bench.precompiles import native_call, reference_call
from executor_gpu.native_build import cuda_available
from executor_gpu.recover import (
    KernelRecover,
    NativeDecode,
    NativeRecover,
    batch_decode,
    batch_recover,
    gpu_recover,
)
from primitives.crypto import (
    SECP256K1_HALF_N,
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


SECP256K1_P = 2**256 - 2**32 - 977


def _not_on_curve(rng: random.Random) -> int:
    """An x below n with no point on the curve (x^3 + 7 is no square mod p)."""
    while True:
        x = rng.randrange(1, SECP256K1_N)
        if pow(x**3 + 7, (SECP256K1_P - 1) // 2, SECP256K1_P) != 1:
            return x


def _at_infinity(rng: random.Random) -> Signature:
    """Values in range whose recovery is the point at infinity: R = kG and z = s k (mod n), so
    s R - z G = 0 and no key comes out."""
    while True:
        k = rng.randrange(1, SECP256K1_N)
        point = coincurve.PrivateKey(k.to_bytes(32, "big")).public_key.format(compressed=False)
        x, y = int.from_bytes(point[1:33], "big"), int.from_bytes(point[33:], "big")
        if x < SECP256K1_N:
            s = rng.randrange(1, SECP256K1_HALF_N)
            return (s * k % SECP256K1_N).to_bytes(32, "big"), y & 1, x, s


def recovery_cases(seed: int, count: int) -> tuple[list[Signature], list[Signature], list[Signature]]:
    """``count`` valid signatures over random hashes (and zero and >= n ones); signatures that
    break a rule or recover no key; and ones that recover some other key or none."""
    rng = random.Random(seed)
    valid: list[Signature] = []
    for _ in range(count):
        message = rng.randbytes(32)
        valid.append((message, *sign_hash(message, rng.randbytes(31) + b"\x01")))
    for message in (bytes(32), b"\xff" * 32, SECP256K1_N.to_bytes(32, "big")):
        valid.append((message, *sign_hash(message, rng.randbytes(32))))
    message, y, r, s = valid[0]
    refused: list[Signature] = [
        (message, 1 - y, r, SECP256K1_N - s),  # the high-s twin of a valid signature
        (message, y, r, SECP256K1_HALF_N + 1),
        (message, y, 0, s), (message, y, r, 0), (message, y, 0, 0),
        (message, y, SECP256K1_N, s), (message, y, SECP256K1_N + 1, s), (message, y, 2**256 - 1, s),
        (message, y, r, SECP256K1_N), (message, y, r, 2**256 - 1), (message, y, -r, s),
        (message, y, 2**256 + r, s),
        *((message, v, r, s) for v in (2, 3, 27, 28, 255, 256, -1)),
        (message, y, _not_on_curve(rng), s), (message, 1 - y, _not_on_curve(rng), s),
        _at_infinity(rng), _at_infinity(rng),
    ]
    others: list[Signature] = [
        (message, y, r, SECP256K1_HALF_N),  # the highest s allowed
        (message, 1 - y, r, s),  # the other R
        (message, y, r, s - 1), (message, y, r ^ 1, s),  # tampered
        (bytes(32), y, r, s), (bytes(32), 0, 1, 1),
    ]
    # Values in range but signed by no one: about half have no point at r.
    others += [(rng.randbytes(32), rng.randrange(2), rng.randrange(1, SECP256K1_N),
                rng.randrange(1, SECP256K1_HALF_N + 1)) for _ in range(40)]
    return valid, refused, others


def check_recovery(recover: KernelRecover, seed: int, count: int) -> None:
    """``recover`` gives coincurve's answer and libsecp256k1's batch's for every case, alone,
    in one batch and through NativeRecover's dispatch."""
    valid, refused, others = recovery_cases(seed, count)
    cases = valid + refused + others
    expected = recover_addresses(cases)
    assert None not in expected[: len(valid)]
    assert expected[len(valid) : len(valid) + len(refused)] == [None] * len(refused)
    assert 5 < expected[-40:].count(None) < 35
    assert NativeRecover(2)(cases) == expected
    assert recover(cases) == expected
    assert [recover([case])[0] for case in cases[count:]] == expected[count:]
    assert NativeRecover(2, gpu=recover, gpu_from=len(cases))(cases) == expected


@pytest.mark.parametrize("threads", [1, 2])
def test_the_gpu_code_on_the_cpu_equals_libsecp256k1(threads: int) -> None:
    check_recovery(KernelRecover("cpu", threads), seed=threads, count=300)


def test_the_ecrecover_precompile_keeps_its_own_rules() -> None:
    """The precompile shares secp_recover with tx_recover but takes v 27 or 28 and any s
    below n: the reference's answers on the cases, high s included."""
    valid, _, _ = recovery_cases(5, 4)
    for message, y, r, s in valid:
        for v in (27 + y, 28 - y, y, 29):
            words = (v, r, s, SECP256K1_N - s)
            for s_word in words[2:]:
                data = message + b"".join(w.to_bytes(32, "big") for w in (*words[:2], s_word))
                assert native_call(1, data, 5000) == reference_call(1, data, 5000)


def test_the_node_asks_for_gpu_recovery_and_gets_it_only_where_a_gpu_works() -> None:
    """batch_decode(gpu=True) is what node/run.py builds for a native-cuda executor: without
    CuPy or a GPU (CI) it is the CPU threads' decoder, and it decodes."""
    decode = batch_decode(gpu=True)
    assert isinstance(decode, NativeDecode)
    assert decode.recover.gpu is gpu_recover()
    if not cuda_available():
        assert decode.recover.gpu is None
    raws = [transfer(user, 0) for user in range(3)]
    assert decode(raws) == [decode_transaction(raw) for raw in raws]
