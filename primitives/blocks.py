"""Headers, logs, blooms and receipts in Ethereum's (Cancun) encodings."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import rlp

from primitives.crypto import keccak256
from primitives.frozen import direct_init
from primitives.rlp import Item, encode_list_payload, encode_string, encode_uint
from primitives.rlp import encode as rlp_encode
from primitives.transactions import LEGACY_TX
from primitives.types import ZERO_HASH, Address, Hash32

EMPTY_ROOT = Hash32(keccak256(rlp_encode(b"")))
"""Root of an empty Merkle-Patricia trie."""
EMPTY_OMMERS_HASH = Hash32(keccak256(rlp_encode([])))
"""Hash of an empty ommers list (no ommers after the merge)."""
EMPTY_BLOOM = b"\x00" * 256
_BLOOM_HEADER = b"\xb9\x01\x00"
"""RLP header of a 256-byte string."""
_TYPE_BYTE = [bytes([tx_type]) for tx_type in range(0x80)]


@direct_init
@dataclass(frozen=True)
class Log:
    """One event emitted by a contract."""

    address: Address
    """Contract that emitted the log."""
    topics: tuple[Hash32, ...]
    """Up to four indexed topics."""
    data: bytes
    """Unindexed payload."""

    def to_rlp(self) -> list[Item]:
        """RLP structure: [address, [topics], data]."""
        return [self.address, list(self.topics), self.data]

    def encode(self) -> bytes:
        """RLP of ``to_rlp()``, built from its fixed-width parts."""
        topics = encode_list_payload(b"".join([b"\xa0" + topic for topic in self.topics]))
        return encode_list_payload(b"\x94" + self.address + topics + encode_string(self.data))


def encode_logs(logs: Sequence[Log]) -> bytes:
    """RLP of a list of logs."""
    return encode_list_payload(b"".join([log.encode() for log in logs])) if logs else b"\xc0"


def bloom_of(logs: Iterable[Log]) -> bytes:
    """2048-bit bloom filter over the addresses and topics of ``logs``."""
    bloom = 0
    for log in logs:
        for item in (log.address, *log.topics):
            digest = keccak256(item)
            for i in (0, 2, 4):
                bloom |= 1 << (((digest[i] << 8) | digest[i + 1]) & 2047)
    return bloom.to_bytes(256, "big")


def bloom_contains(bloom: bytes, item: bytes) -> bool:
    """True when ``item`` (an address or topic) may be in the bloom."""
    value = int.from_bytes(bloom, "big")
    digest = keccak256(item)
    return all(
        value >> (((digest[i] << 8) | digest[i + 1]) & 2047) & 1 for i in (0, 2, 4)
    )


@direct_init
@dataclass(frozen=True)
class Receipt:
    """Consensus part of a transaction receipt (what the receipts root commits to)."""

    tx_type: int
    """Type of the transaction this receipt belongs to."""
    succeeded: bool
    """Status: True for success, False for revert or exceptional halt."""
    cumulative_gas_used: int
    """Gas used in the block up to and including this transaction."""
    logs: tuple[Log, ...]
    """Logs emitted, in order."""

    @property
    def bloom(self) -> bytes:
        """Bloom filter of ``logs``."""
        return bloom_of(self.logs)

    def encode(self) -> bytes:
        """Consensus encoding: RLP [status, cumulative gas, bloom, logs], prefixed by the type
        byte for typed transactions."""
        logs = self.logs
        body = encode_list_payload(
            (b"\x01" if self.succeeded else b"\x80")
            + encode_uint(self.cumulative_gas_used)
            + _BLOOM_HEADER + (bloom_of(logs) if logs else EMPTY_BLOOM)
            + encode_logs(logs)
        )
        return body if self.tx_type == LEGACY_TX else _TYPE_BYTE[self.tx_type] + body


OrderedRoot = Callable[[Sequence[bytes]], Hash32]
"""Computes ``ordered_trie_root`` (the node injects a native one)."""

ReceiptsRoot = Callable[[Sequence[Receipt]], tuple[Hash32, bytes]]
"""Computes ``receipts_root`` (the node injects a native one)."""


def receipts_root(receipts: Sequence[Receipt]) -> tuple[Hash32, bytes]:
    """A block's receipts root and logs bloom (the union of the receipts' blooms)."""
    return (ordered_trie_root([receipt.encode() for receipt in receipts]),
            bloom_of(log for receipt in receipts for log in receipt.logs))


def ordered_trie_root(items: Sequence[bytes]) -> Hash32:
    """Root of the trie mapping rlp(index) -> item (transactions and receipts roots).

    Built bottom-up from the sorted keys in one pass: inserting item by item into a
    HexaryTrie costs about ten times more for a block of thousands of transactions.
    """
    if not items:
        return EMPTY_ROOT
    keyed = sorted((_nibbles(rlp_encode(index)), item) for index, item in enumerate(items))
    return keccak256(rlp_encode(_trie_node(keyed, 0)))


def _nibbles(key: bytes) -> bytes:
    return bytes(n for byte in key for n in (byte >> 4, byte & 0x0F))


def _hex_prefix(nibbles: bytes, is_leaf: bool) -> bytes:
    flag = (2 if is_leaf else 0) + (len(nibbles) % 2)
    padded = bytes([flag]) + nibbles if len(nibbles) % 2 else bytes([flag, 0]) + nibbles
    return bytes((padded[i] << 4) | padded[i + 1] for i in range(0, len(padded), 2))


def _trie_node(items: Sequence[tuple[bytes, bytes]], depth: int) -> Item:
    """Node (as an RLP structure) of the trie over ``items``, sorted, keys as nibbles."""
    if len(items) == 1:
        key, value = items[0]
        return [_hex_prefix(key[depth:], True), value]
    first, last = items[0][0], items[-1][0]
    shared = 0
    while depth + shared < min(len(first), len(last)) and first[depth + shared] == last[depth + shared]:
        shared += 1
    if shared:
        return [_hex_prefix(first[depth : depth + shared], False),
                _child_ref(_trie_node(items, depth + shared))]
    branch: list[Item] = [b""] * 17
    start = 0
    if len(first) == depth:  # a key ending here stores its value in the branch itself
        branch[16] = items[0][1]
        start = 1
    while start < len(items):
        nibble = items[start][0][depth]
        end = start
        while end < len(items) and items[end][0][depth] == nibble:
            end += 1
        branch[nibble] = _child_ref(_trie_node(items[start:end], depth + 1))
        start = end
    return branch


def _child_ref(node: Item) -> Item:
    """A child is embedded when its encoding is under 32 bytes, else referenced by hash."""
    encoded = rlp_encode(node)
    return node if len(encoded) < 32 else keccak256(encoded)


@dataclass(frozen=True)
class Header:
    """A Cancun block header; its hash is Ethereum's block hash."""

    parent_hash: Hash32
    """Hash of the parent header (zero for genesis)."""
    coinbase: Address
    """Receiver of priority fees: the proposer's fee address."""
    state_root: Hash32
    """Merkle-Patricia root of the state after this block."""
    transactions_root: Hash32
    """Root of the ordered trie of encoded transactions."""
    receipts_root: Hash32
    """Root of the ordered trie of encoded receipts."""
    logs_bloom: bytes
    """Union of the receipts' blooms."""
    number: int
    """Height; genesis is 0."""
    gas_limit: int
    """Most gas the block may use."""
    gas_used: int
    """Gas the block used."""
    timestamp: int
    """Seconds since the Unix epoch."""
    base_fee_per_gas: int
    """EIP-1559 base fee."""
    extra_data: bytes = b""
    """Free bytes (at most 32)."""
    prev_randao: Hash32 = ZERO_HASH
    """PREVRANDAO value (mixHash field)."""
    withdrawals_root: Hash32 = EMPTY_ROOT
    """No withdrawals on this L2: always the empty root."""
    blob_gas_used: int = 0
    """No blobs on this L2: always 0."""
    excess_blob_gas: int = 0
    """No blobs on this L2: always 0."""
    parent_beacon_block_root: Hash32 = ZERO_HASH
    """No beacon chain on this L2: always zero."""

    def to_rlp(self) -> list[Item]:
        """RLP structure in Ethereum's field order."""
        return [
            self.parent_hash,
            EMPTY_OMMERS_HASH,
            self.coinbase,
            self.state_root,
            self.transactions_root,
            self.receipts_root,
            self.logs_bloom,
            0,
            self.number,
            self.gas_limit,
            self.gas_used,
            self.timestamp,
            self.extra_data,
            self.prev_randao,
            b"\x00" * 8,
            self.base_fee_per_gas,
            self.withdrawals_root,
            self.blob_gas_used,
            self.excess_blob_gas,
            self.parent_beacon_block_root,
        ]

    def encode(self) -> bytes:
        """RLP encoding."""
        return rlp_encode(self.to_rlp())

    @property
    def hash(self) -> Hash32:
        """Block hash: Keccak-256 of the RLP encoding."""
        return keccak256(self.encode())

    @classmethod
    def decode(cls, data: bytes) -> Header:
        """Inverse of ``encode``."""
        f = rlp.decode(data)

        def n(item: bytes) -> int:
            return int.from_bytes(item, "big")

        return cls(
            parent_hash=Hash32(f[0]),
            coinbase=Address(f[2]),
            state_root=Hash32(f[3]),
            transactions_root=Hash32(f[4]),
            receipts_root=Hash32(f[5]),
            logs_bloom=f[6],
            number=n(f[8]),
            gas_limit=n(f[9]),
            gas_used=n(f[10]),
            timestamp=n(f[11]),
            extra_data=f[12],
            prev_randao=Hash32(f[13]),
            base_fee_per_gas=n(f[15]),
            withdrawals_root=Hash32(f[16]),
            blob_gas_used=n(f[17]),
            excess_blob_gas=n(f[18]),
            parent_beacon_block_root=Hash32(f[19]),
        )
