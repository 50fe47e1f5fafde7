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
        return encode_string(item)
    if isinstance(item, int):
        return encode_uint(item)
    return encode_list_payload(b"".join([encode(child) for child in item]))


def encode_string(data: bytes) -> bytes:
    """The RLP encoding of the byte string ``data``."""
    size = len(data)
    if size < 56:
        if size == 1 and data[0] < 0x80:
            return data
        return _SHORT_STRING[size] + data
    return length_prefix(size, 0x80) + data


def encode_uint(value: int) -> bytes:
    """The RLP encoding of a non-negative integer (a minimal big-endian string)."""
    if value < 0x80:
        if value < 0:
            raise ValueError(f"RLP cannot encode the negative integer {value}")
        return _SMALL_INT[value]
    return encode_string(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def encode_list_payload(payload: bytes) -> bytes:
    """The RLP encoding of a list whose items, encoded and concatenated, are ``payload``.

    Hot paths build a list's payload from pieces they know (fixed-width fields, items
    encoded once) and wrap it here, instead of nesting Python lists for ``encode``."""
    size = len(payload)
    return (_SHORT_LIST[size] if size < 56 else length_prefix(size, 0xC0)) + payload


_SHORT_STRING = [bytes([0x80 + size]) for size in range(56)]
_SHORT_LIST = [bytes([0xC0 + size]) for size in range(56)]
"""Headers of payloads under 56 bytes, made once."""
_SMALL_INT = [b"\x80"] + [bytes([value]) for value in range(1, 0x80)]
"""Encodings of the integers below 0x80."""


def length_prefix(length: int, offset: int) -> bytes:
    """The header of a string (offset 0x80) or list (0xc0) payload of ``length`` bytes."""
    if length < 56:
        return bytes([offset + length])
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(size)]) + size


Decoded = bytes | list["Decoded"]
"""What ``decode`` returns: byte strings and lists of them."""

MAX_DEPTH = 16
"""Deepest list nesting ``decode`` accepts by default; the chain's structures need 4."""


class DecodingError(ValueError):
    """Bytes that are not one canonical RLP item."""


def decode(data: bytes, max_depth: int = MAX_DEPTH) -> Decoded:
    """The item ``data`` encodes, which must be canonical (the shortest form of every length)
    with nothing after it, nested at most ``max_depth`` lists deep (hostile input cannot
    exhaust the stack). Raises DecodingError."""
    item, end = _decode_at(data, 0, max_depth)
    if end != len(data):
        raise DecodingError(f"{len(data) - end} bytes after the item")
    return item


def _decode_at(data: bytes, at: int, depth: int) -> tuple[Decoded, int]:
    if at >= len(data):
        raise DecodingError("truncated")
    first = data[at]
    if first < 0x80:
        return data[at : at + 1], at + 1
    if first < 0xC0:
        start, end = _payload(data, at, first - 0x80)
        if end - start == 1 and data[start] < 0x80:
            raise DecodingError("a single byte below 0x80 encoded as a string")
        return data[start:end], end
    if depth == 0:
        raise DecodingError("nested too deeply")
    start, end = _payload(data, at, first - 0xC0)
    items: list[Decoded] = []
    while start < end:
        item, start = _decode_at(data, start, depth - 1)
        items.append(item)
    if start != end:
        raise DecodingError("an item runs past the end of its list")
    return items, end


def _payload(data: bytes, at: int, short: int) -> tuple[int, int]:
    """Start and end of the payload whose header is at ``at`` (``short``: header byte less
    the string or list offset)."""
    if short < 56:
        start, end = at + 1, at + 1 + short
    else:
        size = short - 55
        start = at + 1 + size
        if start > len(data) or data[at + 1] == 0:
            raise DecodingError("truncated or zero-padded length")
        length = int.from_bytes(data[at + 1 : start], "big")
        if length < 56:
            raise DecodingError("a short payload with a long length header")
        end = start + length
    if end > len(data):
        raise DecodingError("truncated")
    return start, end
