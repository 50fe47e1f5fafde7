"""Typed values shared by every component."""

from __future__ import annotations

# The same NewTypes py-evm and web3 use, so values cross those APIs without casts.
from eth_typing import Address, Hash32

__all__ = [
    "UINT64_MAX",
    "UINT256_MAX",
    "ZERO_ADDRESS",
    "ZERO_HASH",
    "Address",
    "Hash32",
    "to_address",
    "to_hash32",
]

UINT256_MAX = 2**256 - 1
UINT64_MAX = 2**64 - 1


def to_address(value: bytes) -> Address:
    """Check that ``value`` is 20 bytes and type it as an Address."""
    if len(value) != 20:
        raise ValueError(f"an address is 20 bytes, got {len(value)}")
    return Address(bytes(value))


def to_hash32(value: bytes) -> Hash32:
    """Check that ``value`` is 32 bytes and type it as a Hash32."""
    if len(value) != 32:
        raise ValueError(f"a hash is 32 bytes, got {len(value)}")
    return Hash32(bytes(value))


ZERO_ADDRESS = Address(b"\x00" * 20)
ZERO_HASH = Hash32(b"\x00" * 32)
