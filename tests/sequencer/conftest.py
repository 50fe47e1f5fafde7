"""Real signed transactions for the sequencer tests: eth_account signs, primitives decodes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import pytest
from eth_account import Account

from primitives.transactions import Transaction, decode_transaction
from primitives.types import Address

CHAIN_ID = 1337
RECIPIENT = "0x" + "22" * 20
KEYS = [(index + 1).to_bytes(32, "big") for index in range(8)]
ADDRESSES = [Address(bytes.fromhex(Account.from_key(key).address[2:])) for key in KEYS]


@cache
def sign(
    sender: int = 0,
    nonce: int = 0,
    tip: int = 1,
    fee_cap: int = 100,
    gas: int = 21_000,
    tx_type: int = 2,
    create: bool = False,
    value: int = 0,
    data: bytes = b"",
    access_list: tuple[tuple[str, tuple[str, ...]], ...] = (),
) -> Transaction:
    """A transaction from test key ``sender``; types 0 and 1 use ``fee_cap`` as gas price."""
    fields: dict[str, Any] = {
        "chainId": CHAIN_ID,
        "nonce": nonce,
        "gas": gas,
        "value": value,
        "data": data,
        "to": None if create else RECIPIENT,
    }
    if tx_type == 2:
        fields.update(maxPriorityFeePerGas=tip, maxFeePerGas=fee_cap)
    else:
        fields["gasPrice"] = fee_cap
    if tx_type >= 1:
        fields["type"] = tx_type
        fields["accessList"] = [
            {"address": address, "storageKeys": list(keys)} for address, keys in access_list
        ]
    signed = Account.sign_transaction(fields, KEYS[sender])
    return decode_transaction(bytes(signed.raw_transaction))


@pytest.fixture(scope="session")
def signer() -> Callable[..., Transaction]:
    """Signs and decodes test transactions (cached: hypothesis asks for the same ones often)."""
    return sign


@pytest.fixture(scope="session")
def addresses() -> Sequence[Address]:
    """Addresses of the test keys, by index."""
    return ADDRESSES
