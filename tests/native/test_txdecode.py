"""The C decoder of admission (kernels/evm_txdecode.h) gives exactly what the Python decoder
gives: the same transactions, and for anything it does not take, the Python decoder's verdict."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executor_gpu.recover import KernelRecover, NativeDecode, NativeRecover
from primitives import rlp
from primitives.crypto import SECP256K1_N, keccak256, sign_hash
from primitives.errors import InvalidTransaction
from primitives.transactions import Transaction, decode_transactions
from tests.node.helpers import transfer

KEY = keccak256(b"txdecode key")


def typed(tx_type: int, fields: list[Any], key: bytes = KEY, **signature: int) -> bytes:
    """A type 1 or 2 transaction of ``fields`` (all but the signature), signed with ``key``;
    ``y``, ``r`` or ``s`` replace what the signature gives."""
    y, r, s = sign_hash(keccak256(bytes([tx_type]) + rlp.encode(fields)), key)
    y, r, s = signature.get("y", y), signature.get("r", r), signature.get("s", s)
    return bytes([tx_type]) + rlp.encode([*fields, y, r, s])


def dynamic_fee(chain_id: int = 7, nonce: int = 3, tip: int = 10**9, fee: int = 2 * 10**9,
                gas: int = 21_000, to: bytes = b"\x22" * 20, value: int = 5, data: bytes = b"",
                access: list[Any] | None = None, **signature: int) -> bytes:
    fields = [chain_id, nonce, tip, fee, gas, to, value, data, access or []]
    return typed(2, fields, KEY, **signature)


def outcome(tx: Transaction | InvalidTransaction) -> object:
    return tx if isinstance(tx, Transaction) else ("invalid", str(tx))


def same_as_python(raws: list[bytes], threads: int = 2, slow: int | None = None
                   ) -> list[Transaction | InvalidTransaction]:
    """The native decoder's outcomes, checked against Python's, both with libsecp256k1's
    recovery in the C decoder and with the recovery deferred to the GPU's code (its CPU
    build); ``slow``: how many of ``raws`` the C decoder must have left to the Python one."""
    python = [outcome(tx) for tx in decode_transactions(raws)]
    deferred = NativeRecover(threads, gpu=KernelRecover("cpu", threads), gpu_from=0)
    for decode in (NativeDecode(NativeRecover(threads)), NativeDecode(deferred)):
        native = decode(raws)
        assert [outcome(tx) for tx in native] == python
        if slow is not None:
            assert decode.slow == slow
    return native


def test_wallet_transactions_decode_as_in_python() -> None:
    raws = [
        transfer(user, nonce) for user in range(3) for nonce in range(3)
    ] + [
        dynamic_fee(),
        dynamic_fee(to=b"", data=b"\x60\x00" * 400),  # a creation, longer than the C stack buffer
        dynamic_fee(chain_id=0, nonce=0, tip=0, fee=0, value=0),
        dynamic_fee(nonce=2**64 - 2, gas=2**64 - 1, value=2**256 - 1, fee=2**256 - 1),
        typed(1, [7, 1, 10**9, 50_000, b"\x33" * 20, 0, b"\x01", []]),
    ]
    decoded = same_as_python(raws, slow=0)
    assert all(isinstance(tx, Transaction) for tx in decoded)


@pytest.mark.parametrize("raw", [
    dynamic_fee(chain_id=2**64),  # wider than the C decoder takes: Python decodes it
    dynamic_fee(access=[[b"\x44" * 20, [b"\x00" * 32]]]),
    typed(1, [7, 1, 10**9, 50_000, b"\x33" * 20, 0, b"", [[b"\x44" * 20, []]]]),
    dynamic_fee(nonce=2**64 - 1),
    dynamic_fee(tip=3, fee=2),
    dynamic_fee(to=b"\x22" * 19),
    dynamic_fee(y=2),
    dynamic_fee(s=SECP256K1_N - 1),  # a high s
    dynamic_fee(r=0),
    dynamic_fee(r=SECP256K1_N),
    dynamic_fee(s=0),
    dynamic_fee(r=5, s=7),  # recovers no key (or another one)
    b"\x02" + rlp.encode([7, 3, 1, 2, 21_000, b"\x22" * 20, 5, b"", [], 0, 1, 2])[:-1],
    b"\x02\xc0",
    b"\x03\xc0",
    b"\x02",
    b"",
])
def test_what_c_does_not_take_gets_the_python_verdict(raw: bytes) -> None:
    same_as_python([dynamic_fee(), raw, dynamic_fee(nonce=4)], slow=1)


def test_non_canonical_encodings_get_the_python_verdict() -> None:
    good = dynamic_fee(data=b"\x01\x02")
    payload = rlp.decode(good[1:])
    assert isinstance(payload, list)
    items = [rlp.encode(item) for item in payload]

    def with_item(index: int, encoding: bytes) -> bytes:
        return b"\x02" + rlp.encode_list_payload(b"".join([*items[:index], encoding,
                                                             *items[index + 1:]]))

    raws = [
        good,
        with_item(1, b"\x82\x00\x03"),  # nonce with a leading zero
        with_item(1, b"\x81\x03"),  # a single byte below 0x80 as a string
        with_item(7, b"\xb8\x02\x01\x02"),  # a short string with a long header
        with_item(7, b"\xb9\x00\x02\x01\x02"),  # a zero-padded length
        good + b"\x00",
    ]
    decoded = same_as_python(raws, slow=5)
    assert isinstance(decoded[0], Transaction)
    assert all(isinstance(tx, InvalidTransaction) for tx in decoded[1:])


def test_empty_batch() -> None:
    assert NativeDecode(NativeRecover())([]) == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, 2**66), st.integers(0, 2**64), st.integers(0, 2**80), st.integers(0, 2**80),
    st.integers(0, 2**64), st.sampled_from([b"", b"\x22" * 20, b"\x22" * 21]),
    st.integers(0, 2**256 - 1), st.binary(max_size=700),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=3),
)
def test_random_and_mutated_transactions(
    chain_id: int, nonce: int, tip: int, fee: int, gas: int, to: bytes, value: int, data: bytes,
    mutations: list[tuple[int, int]],
) -> None:
    raw = bytearray(dynamic_fee(chain_id, nonce, tip, fee, gas, to, value, data))
    for position, byte in mutations:
        raw[position % len(raw)] = byte
    same_as_python([bytes(raw), dynamic_fee(), bytes(raw[: len(raw) // 2])], threads=1)
