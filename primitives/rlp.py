"""RLP encoding of byte strings, integers and lists of them: the hot path's encoder.

pyrlp infers a serializer for every item (about 2 us each); blocks of thousands of
transactions encode hundreds of thousands of items (receipts, bodies, signing payloads,
trie nodes). This encoder handles only the shapes the chain uses, with the same output:
integers as minimal big-endian strings (zero is empty), booleans as 0 / 1.
"""

from __future__ import annotations

from collections.abc import Sequence

Item = bytes | int | Sequence["Item"]
"""What ``encode`` takes: byte strings, non-negative integers and lists or tuples of items."""


def encode(item: Item) -> bytes:
    """The RLP encoding of ``item``."""
    if isinstance(item, bytes):
        if len(item) == 1 and item[0] < 0x80:
            return item
        return length_prefix(len(item), 0x80) + item
    if isinstance(item, int):
        if item < 0:
            raise ValueError(f"RLP cannot encode the negative integer {item}")
        if item < 0x80:
            return bytes([item]) if item else b"\x80"
        data = item.to_bytes((item.bit_length() + 7) // 8, "big")
        return length_prefix(len(data), 0x80) + data
    payload = b"".join(map(encode, item))
    return length_prefix(len(payload), 0xC0) + payload


def length_prefix(length: int, offset: int) -> bytes:
    """The header of a string (offset 0x80) or list (0xc0) payload of ``length`` bytes."""
    if length < 56:
        return bytes([offset + length])
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(size)]) + size
