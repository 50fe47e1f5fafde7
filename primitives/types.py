"""Typed values shared by every component."""

from __future__ import annotations

from typing import NewType

Address = NewType("Address", bytes)
"""A 20-byte account address."""

Hash32 = NewType("Hash32", bytes)
"""A 32-byte Keccak-256 digest."""

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
