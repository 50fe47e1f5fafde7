"""Genesis: the prefunded development accounts."""

from __future__ import annotations

from eth_account import Account

from primitives.crypto import private_key_to_address
from primitives.types import Address


def development_keys(mnemonic: str, count: int) -> list[bytes]:
    """Private keys m/44'/60'/0'/0/i for i < count, as hardhat and anvil derive them."""
    Account.enable_unaudited_hdwallet_features()
    return [
        bytes(Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{i}").key)
        for i in range(count)
    ]


def development_accounts(mnemonic: str, count: int) -> list[Address]:
    """Addresses of ``development_keys``."""
    return [private_key_to_address(key) for key in development_keys(mnemonic, count)]
