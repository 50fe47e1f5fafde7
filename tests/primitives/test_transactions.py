"""Transaction decoding against eth-account (the wallet side) and py-evm (the reference)."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any

import pytest
import rlp
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from primitives.crypto import SECP256K1_N
from primitives.errors import InvalidTransaction
from primitives.transactions import decode_transaction

KEY = b"\x01" * 32
SENDER = bytes.fromhex(Account.from_key(KEY).address[2:])


def sign(**fields: Any) -> bytes:
    return bytes(Account.sign_transaction(fields, KEY).raw_transaction)


legacy = {
    "nonce": 3, "gasPrice": 10**9, "gas": 21_000, "to": "0x" + "22" * 20, "value": 5, "chainId": 7331,
}
access = {
    **legacy, "type": 1,
    "accessList": [{"address": "0x" + "33" * 20, "storageKeys": ["0x" + "00" * 31 + "09"]}],
}
dynamic = {
    "type": 2, "nonce": 1, "maxFeePerGas": 3 * 10**9, "maxPriorityFeePerGas": 10**9,
    "gas": 50_000, "to": None, "value": 0, "data": b"\x60\x00", "chainId": 7331,
}


@pytest.mark.parametrize("fields", [legacy, access, dynamic], ids=["legacy", "2930", "1559"])
def test_decodes_what_wallets_sign(fields: dict[str, Any]) -> None:
    signed = Account.sign_transaction(fields, KEY)
    tx = decode_transaction(bytes(signed.raw_transaction))
    assert tx.sender == SENDER
    assert tx.hash == bytes(signed.hash)
    assert tx.raw == bytes(signed.raw_transaction)
    assert tx.chain_id == 7331
    assert tx.nonce == fields["nonce"]
    assert tx.gas_limit == fields["gas"]


def test_matches_py_evm() -> None:
    from eth.vm.forks.cancun import CancunVM

    builder = CancunVM.get_transaction_builder()
    for fields in (legacy, access, dynamic):
        raw = sign(**fields)
        ours = decode_transaction(raw)
        theirs = builder.decode(raw)
        assert ours.sender == theirs.sender
        assert ours.hash == theirs.hash
        assert ours.max_fee_per_gas == theirs.max_fee_per_gas
        assert ours.max_priority_fee_per_gas == theirs.max_priority_fee_per_gas
        assert ours.to == (theirs.to or None)


def test_a_transaction_is_immutable_and_knows_its_upfront_cost() -> None:
    tx = decode_transaction(sign(**legacy))
    assert tx.upfront_cost == 21_000 * 10**9 + 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        tx.nonce = 4  # type: ignore[misc]
    for same in (copy.copy(tx), copy.deepcopy(tx), pickle.loads(pickle.dumps(tx))):
        assert same == tx and hash(same) == hash(tx) and same.upfront_cost == tx.upfront_cost
    dearer = dataclasses.replace(tx, value=6)
    assert dearer != tx and dearer.upfront_cost == tx.upfront_cost + 1
    assert "upfront_cost" not in repr(tx)


def test_pre_eip155_legacy_has_no_chain_id() -> None:
    raw = sign(**{k: v for k, v in legacy.items() if k != "chainId"})
    tx = decode_transaction(raw)
    assert tx.chain_id is None and tx.sender == SENDER


def test_effective_price_and_tip() -> None:
    tx = decode_transaction(sign(**dynamic))
    assert tx.effective_gas_price(10**9) == 2 * 10**9
    assert tx.effective_gas_price(25 * 10**8) == 3 * 10**9
    assert tx.effective_tip(25 * 10**8) == 5 * 10**8


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"", "empty"),
        (b"\x03\xc0", "blob"),
        (b"\x05\xc0", "type 5"),
        (b"\x02\xc0", "12 fields"),
        (b"\xc0", "9 fields"),
        (b"\x02\xf8", "rlp"),
    ],
)
def test_rejects_malformed(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidTransaction, match=message):
        decode_transaction(raw)


def test_rejects_high_s() -> None:
    fields = rlp.decode(sign(**legacy))
    s = int.from_bytes(fields[8], "big")
    fields[8] = (SECP256K1_N - s).to_bytes(32, "big")
    with pytest.raises(InvalidTransaction, match="signature"):
        decode_transaction(rlp.encode(fields))


def test_rejects_leading_zeros() -> None:
    fields = rlp.decode(sign(**legacy))
    fields[0] = b"\x00\x03"
    with pytest.raises(InvalidTransaction, match="leading zero"):
        decode_transaction(rlp.encode(fields))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_crash(raw: bytes) -> None:
    try:
        decode_transaction(raw)
    except InvalidTransaction:
        pass


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=len(sign(**dynamic)) - 1))
def test_truncations_are_rejected(cut: int) -> None:
    with pytest.raises(InvalidTransaction):
        decode_transaction(sign(**dynamic)[:cut])
