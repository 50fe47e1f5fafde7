"""The block as consensus agrees on it and peers exchange it: its wire codec, and the header's
commitment to the weight proofs it carries. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from primitives import rlp
from primitives.blocks import Header
from primitives.crypto import keccak256
from primitives.errors import InvalidInput
from primitives.gossip import MAX_MESSAGE

MAX_BLOCK_BYTES = MAX_MESSAGE - 64 * 1024
"""Most bytes a block's encoding may take: a proposal gossips it with a few fields (height,
rounds, signature) in one message of at most ``MAX_MESSAGE``, and a larger one could never
be proposed (about 35,000 transfers fill it)."""


@dataclass(frozen=True)
class Block:
    """A block as consensus agrees on it and peers exchange it."""

    header: Header
    """Its header; the hash is the block's id."""
    transactions: tuple[bytes, ...]
    """Raw transactions, in order."""
    proofs: tuple[bytes, ...] = ()
    """Encoded GPU weight proofs it carries; its header's extra_data commits to them."""


def encode_block(header: Header, raw_txs: Sequence[bytes], proofs: Sequence[bytes] = ()) -> bytes:
    """RLP [header, [raw txs], [proofs]]."""
    return rlp.encode([header.to_rlp(), list(raw_txs), list(proofs)])


def transactions_room(proofs: Sequence[bytes]) -> int:
    """Bytes a block carrying ``proofs`` has for its raw transactions (as list items, see
    ``sequencer.mempool.block_size``) within ``MAX_BLOCK_BYTES``; the header and the lists'
    headers take less than the margin under ``MAX_MESSAGE``."""
    return MAX_BLOCK_BYTES - len(rlp.encode(list(proofs)))


def decode_block(value: bytes) -> Block:
    """Inverse of ``encode_block``; InvalidInput on anything malformed."""
    try:
        decoded = rlp.decode(value)
        if not isinstance(decoded, list) or len(decoded) != 3:
            raise TypeError("a block is a list of header, transactions and proofs")
        header_rlp, raws, proofs = decoded
        header = Header.decode(rlp.encode(header_rlp))
        if header.encode() != rlp.encode(header_rlp):
            raise ValueError("header is not canonically encoded")
        txs, carried = _byte_strings(raws), _byte_strings(proofs)
    except (ValueError, TypeError, IndexError) as exc:  # rlp.DecodingError is a ValueError
        raise InvalidInput(f"malformed block: {exc}") from exc
    return Block(header, txs, carried)


def _byte_strings(item: rlp.Decoded) -> tuple[bytes, ...]:
    if not isinstance(item, list) or not all(isinstance(entry, bytes) for entry in item):
        raise TypeError("transactions and proofs must be lists of byte strings")
    return tuple(entry for entry in item if isinstance(entry, bytes))


def proofs_commitment(proofs: Sequence[bytes]) -> bytes:
    """The header's extra_data: keccak of the RLP list of proofs, or empty without proofs."""
    return keccak256(rlp.encode(list(proofs))) if proofs else b""
