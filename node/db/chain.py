"""The chain's blocks, receipts and indexes over a KV store.

Stored values are RLP. A body is a list of [raw transaction, sender], so reads
skip signature recovery. A stored receipt is [tx type, status, cumulative gas,
logs, gas used, effective gas price, contract address or empty].
Blocks are stored contiguously from height 0: every height up to HEAD exists.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import accumulate
from operator import attrgetter

import numpy as np

from executor_gpu.native_encode import body_raws, encode_body, encode_receipts
from executor_gpu.types import ExecutedTx
from node.db import schema
from node.db.api import KV, KVReader, WriteBatch
from primitives import rlp
from primitives.blocks import Header, Log, Receipt, bloom_contains
from primitives.crypto import keccak256
from primitives.errors import Halt
from primitives.transactions import Transaction, decode_transaction
from primitives.types import UINT64_MAX, Address, Hash32
from rpc.types import BlockView, LogFilter, LogView, ReceiptView, TxLocation

_TX_INDEX_BYTES = 4
"""Width of the position within a block in a tx index entry."""
_TX_INDEX_ENTRY = 8 + _TX_INDEX_BYTES
"""A tx index entry: the block's height, then the position."""
_TX, _HASH, _RAW = attrgetter("tx"), attrgetter("hash"), attrgetter("raw")


@contextmanager
def _decoding(what: str) -> Iterator[None]:
    """Our own stored data that fails to decode means the database is corrupt."""
    try:
        yield
    except (ValueError, IndexError, TypeError) as exc:  # rlp.DecodingError is a ValueError
        raise Halt(f"corrupt {what} in the database: {exc}") from exc


def _bytes(item: object) -> bytes:
    if not isinstance(item, bytes):
        raise TypeError("expected an RLP string")
    return item


def _list(item: object) -> list[object]:
    if not isinstance(item, list):
        raise TypeError("expected an RLP list")
    return item


def _int(item: object) -> int:
    return int.from_bytes(_bytes(item), "big")


def _log(item: object) -> Log:
    address, topics, data = _list(item)
    return Log(
        Address(_bytes(address)), tuple(Hash32(_bytes(t)) for t in _list(topics)), _bytes(data)
    )


@dataclass(frozen=True)
class _StoredTx:
    """A transaction as kept in a block body."""

    raw: bytes
    """Canonical encoding."""
    sender: Address
    """Sender recovered when the transaction was accepted."""

    @property
    def hash(self) -> Hash32:
        """Transaction hash."""
        return keccak256(self.raw)

    def decode(self) -> Transaction:
        """The full transaction, without signature recovery."""
        with _decoding("transaction"):
            return decode_transaction(self.raw, sender=self.sender)


@dataclass(frozen=True)
class _StoredReceipt:
    """A receipt as kept in a block's receipt list."""

    receipt: Receipt
    """Consensus receipt."""
    gas_used: int
    """Gas used by this transaction alone."""
    effective_gas_price: int
    """Price per gas paid."""
    contract_address: Address | None
    """Created contract, if any."""

    @classmethod
    def from_rlp(cls, item: object) -> _StoredReceipt:
        """Inverse of ``to_rlp``; raises ValueError or TypeError on a wrong shape."""
        tx_type, status, cumulative, logs, gas_used, price, contract = _list(item)
        contract_address = _bytes(contract)
        return cls(
            receipt=Receipt(
                tx_type=_int(tx_type),
                succeeded=_int(status) == 1,
                cumulative_gas_used=_int(cumulative),
                logs=tuple(_log(log) for log in _list(logs)),
            ),
            gas_used=_int(gas_used),
            effective_gas_price=_int(price),
            contract_address=Address(contract_address) if contract_address else None,
        )


def _decode(stored: _StoredTx | Transaction) -> Transaction:
    return stored if isinstance(stored, Transaction) else stored.decode()


def _filter_may_match(bloom: bytes, log_filter: LogFilter) -> bool:
    """False when the block's bloom proves that no log of the block matches."""
    if log_filter.addresses and not any(bloom_contains(bloom, a) for a in log_filter.addresses):
        return False
    return all(
        not options or any(bloom_contains(bloom, topic) for topic in options)
        for options in log_filter.topics
    )


def _log_matches(log: Log, log_filter: LogFilter) -> bool:
    """eth_getLogs matching: address in the set; topics by position, None or () a wildcard."""
    if log_filter.addresses and log.address not in log_filter.addresses:
        return False
    # Like go-ethereum: a filter with more positions than the log has topics never matches.
    if len(log_filter.topics) > len(log.topics):
        return False
    return all(
        not options or topic in options for options, topic in zip(log_filter.topics, log.topics)
    )


DECODED_BLOCKS = 4
"""Blocks whose decoded bodies and receipts are kept: wallets poll the receipts of the newest
blocks, and a block may hold tens of thousands (decoding one block's receipts list once per
eth_getTransactionReceipt made each call cost O(block))."""


@dataclass
class _DecodedBlock:
    """A block's stored transactions and receipts, decoded (or as the committer had them:
    a Transaction has a stored transaction's fields, an ExecutedTx a stored receipt's)."""

    body: Sequence[_StoredTx | Transaction]
    """Transactions, in order."""
    receipts: Sequence[_StoredReceipt | ExecutedTx]
    """Their receipts."""
    decoded: tuple[Transaction, ...] | None = None
    """The full transactions, once something asked for them (or the committer gave them)."""

    @functools.cached_property
    def first_log_index(self) -> list[int]:
        """Block-wide index of each transaction's first log (counted on first use, by the
        reader that needs it, not by the block path; racing readers count alike)."""
        return list(accumulate((len(r.receipt.logs) for r in self.receipts), initial=0))[:-1]

    @property
    def transactions(self) -> tuple[Transaction, ...]:
        """The full transactions, decoded on first use (racing readers decode alike)."""
        if self.decoded is None:
            self.decoded = tuple(_decode(stored) for stored in self.body)
        return self.decoded


class ChainStore:
    """Finalized blocks: headers, bodies, receipts, and the hash and transaction indexes."""

    def __init__(self, kv: KV) -> None:
        self._kv = kv
        # Keyed by number and hash: an unwound and replaced block is never served from here.
        self._decoded: OrderedDict[tuple[int, Hash32], _DecodedBlock] = OrderedDict()
        self._decoded_lock = threading.Lock()

    def head_number(self) -> int | None:
        """Height of the latest stored block, or None before genesis."""
        return self._head(self._kv)

    def require_head(self) -> Header:
        """The head block's header; Halt when the database has none."""
        number = self.head_number()
        if number is None:
            raise Halt("database has no head block")
        header = self.header(number)
        if header is None:
            raise Halt(f"head block {number} missing from the database")
        return header

    def block_hashes(self, parent: Header) -> tuple[Hash32, ...]:
        """Hashes of ``parent`` and the 255 blocks before it, newest first (BLOCKHASH's view
        from ``parent``'s child)."""
        hashes = [parent.hash]
        number = parent.number - 1
        while number >= 0 and len(hashes) < 256:
            header = self.header(number)
            if header is None:
                break
            hashes.append(header.hash)
            number -= 1
        return tuple(hashes)

    def header(self, number: int) -> Header | None:
        """Header at ``number``, or None above the head."""
        return self._header(self._kv, number)

    def number_of(self, block_hash: Hash32) -> int | None:
        """Height of the block with hash ``block_hash``, or None if unknown."""
        data = self._kv.get(schema.hash_to_number_key(block_hash))
        return None if data is None else schema.decode_number(data)

    def block(self, number: int) -> BlockView | None:
        """Header and transactions at ``number``, or None above the head."""
        header = self.header(number)
        if header is None:
            return None
        return BlockView(header, self._decoded_block(number, header.hash).transactions)

    def transactions(self, number: int) -> tuple[Transaction, ...]:
        """Transactions of block ``number`` in order; empty above the head."""
        view = self.block(number)
        return () if view is None else view.transactions

    def raw_transactions(self, number: int) -> tuple[bytes, ...]:
        """The encodings of block ``number``'s transactions (nothing decoded); empty above the
        head. A recent block's come from the decoded blocks kept, an older one's are split
        out of its stored body in C: the poster and the validators signing its batches read
        ten blocks at a time, and decoding their bodies in Python cost more than the batch."""
        header = self.header(number)
        if header is None:
            return ()
        with self._decoded_lock:
            block = self._decoded.get((number, header.hash))
        if block is not None:
            return tuple(map(_RAW, block.body))
        data = self._kv.get(schema.body_key(number))
        if data is None:
            return ()
        with _decoding(f"body {number}"):
            return body_raws(data)

    def transaction(self, location: TxLocation) -> Transaction:
        """The transaction at ``location``."""
        block = self._decoded_block(location.block_number, location.block_hash)
        if location.index >= len(block.body):
            raise Halt(f"block {location.block_number} has no transaction {location.index}")
        if block.decoded is not None:
            return block.decoded[location.index]
        return _decode(block.body[location.index])

    def tx_location(self, tx_hash: Hash32) -> TxLocation | None:
        """Where ``tx_hash`` was included, or None if it is in no stored block."""
        data = self._kv.get(schema.tx_index_key(tx_hash))
        if data is None:
            return None
        number = schema.decode_number(data[:-_TX_INDEX_BYTES])
        header = self._require_header(number)
        return TxLocation(header.hash, number, _int(data[-_TX_INDEX_BYTES:]), header.timestamp)

    def receipts(self, number: int) -> tuple[ReceiptView, ...]:
        """Receipts of block ``number`` in order; empty above the head."""
        header = self.header(number)
        if header is None:
            return ()
        block_hash = header.hash
        block = self._decoded_block(number, block_hash)
        return tuple(
            self._receipt_view(tx, TxLocation(block_hash, number, index, header.timestamp),
                               receipt, first_log)
            for index, (tx, receipt, first_log) in enumerate(
                zip(block.transactions, block.receipts, block.first_log_index)
            )
        )

    def receipt(self, tx_hash: Hash32) -> ReceiptView | None:
        """Receipt of ``tx_hash``, or None if it is in no stored block."""
        location = self.tx_location(tx_hash)
        if location is None:
            return None
        block = self._decoded_block(location.block_number, location.block_hash)
        index = location.index
        if index >= len(block.body):
            raise Halt(f"tx index of {tx_hash.hex()} points past block {location.block_number}")
        tx = _decode(block.body[index]) if block.decoded is None else block.decoded[index]
        return self._receipt_view(tx, location, block.receipts[index],
                                  block.first_log_index[index])

    def logs(self, log_filter: LogFilter) -> list[LogView]:
        """Logs matching ``log_filter`` in stored blocks, in chain order (eth_getLogs)."""
        head = self.head_number()
        if head is None:
            return []
        found = []
        for number in range(max(log_filter.from_block, 0), min(log_filter.to_block, head) + 1):
            header = self._require_header(number)
            if not _filter_may_match(header.logs_bloom, log_filter):
                continue
            block_hash = header.hash
            block = self._decoded_block(number, block_hash)
            log_index = 0
            for index, (tx, receipt) in enumerate(zip(block.body, block.receipts)):
                for log in receipt.receipt.logs:
                    if _log_matches(log, log_filter):
                        location = TxLocation(block_hash, number, index, header.timestamp)
                        found.append(LogView(log, location, tx.hash, log_index))
                    log_index += 1
        return found

    def certificate(self, number: int) -> bytes | None:
        """Commit certificate of block ``number`` (None for genesis and single-validator blocks)."""
        if not 0 <= number <= UINT64_MAX:
            return None
        return self._kv.get(schema.certificate_key(number))

    def evidence(self) -> list[bytes]:
        """Every piece of double-signing evidence kept, in key order."""
        return [value for _key, value in self._kv.iterate(schema.EVIDENCE_PREFIX)]

    def add_evidence(self, evidence: bytes) -> bool:
        """Keep ``evidence`` (durable on return); False when it was already kept."""
        key = schema.evidence_key(keccak256(evidence))
        if self._kv.get(key) is not None:
            return False
        self._kv.put(key, evidence)
        return True

    def stage_block(
        self, batch: WriteBatch, header: Header, executed: Sequence[ExecutedTx]
    ) -> None:
        """Stage block ``header`` with its transactions' outcomes into ``batch``.

        Writes header, hash index, body, receipts, tx index entries and HEAD; the
        caller adds the state and commits once, so the block appears atomically.
        Several blocks may be staged into one batch, in order.
        Raises Halt when the block does not extend the head staged so far.
        """
        head = self._head(batch)
        expected = 0 if head is None else head + 1
        if header.number != expected:
            raise Halt(f"block {header.number} does not follow head {head}")
        if head is not None:
            parent = self._header(batch, head)
            if parent is None:
                raise Halt(f"header {head} is missing at the head")
            if header.parent_hash != parent.hash:
                raise Halt(f"block {header.number}'s parent hash is not the hash of block {head}")
        number = header.number
        block_hash = header.hash
        batch.put(schema.header_key(number), header.encode())
        batch.put(schema.hash_to_number_key(block_hash), schema.encode_number(number))
        txs = list(map(_TX, executed))
        batch.put(schema.body_key(number), encode_body(txs))
        batch.put(schema.receipts_key(number), encode_receipts(executed))
        if txs:
            # Each transaction's index entry: the block's height, then its position; staged
            # packed, as the trie nodes are (tens of thousands of keys a block).
            entries = np.empty((len(txs), _TX_INDEX_ENTRY), dtype=np.uint8)
            entries[:, :8] = np.frombuffer(schema.encode_number(number), dtype=np.uint8)
            entries[:, 8:] = np.arange(len(txs), dtype=f">u{_TX_INDEX_BYTES}").view(np.uint8).reshape(-1, _TX_INDEX_BYTES)
            batch.put_packed(schema.TX_INDEX_PREFIX, b"".join(map(_HASH, txs)), 32,
                             entries.tobytes(), np.full(len(txs), _TX_INDEX_ENTRY, dtype=np.int64))
        batch.put(schema.HEAD, schema.encode_number(number))

    def stage_unwind(self, batch: WriteBatch, number: int) -> None:
        """Stage removing every block above ``number``, which becomes the head: everything
        the block wrote (header, hash index, body, receipts, tx index, the weight proofs it
        carries, its commit certificate).

        For chains derived from L1 data, which an L1 reorg can take back; a validator's
        finalized blocks never unwind. State trie nodes stay (content-addressed, shared); the
        flat state unwinds with ``StateDB.stage_unwind`` into the same batch. Commit it before
        staging blocks again: their tx index entries are staged packed, and a packed put
        yields to a delete of its key staged in the same batch.
        """
        head = self._head(batch)
        if head is None or not 0 <= number <= head:
            raise Halt(f"cannot unwind to block {number}: the head is {head}")
        for above in range(head, number, -1):
            header = self._require_header(above)
            for stored in self._body(above):
                batch.delete(schema.tx_index_key(stored.hash))
            batch.delete(schema.hash_to_number_key(header.hash))
            batch.delete(schema.header_key(above))
            batch.delete(schema.body_key(above))
            batch.delete(schema.receipts_key(above))
            batch.delete(schema.proofs_key(above))
            batch.delete(schema.certificate_key(above))
        batch.put(schema.HEAD, schema.encode_number(number))

    @staticmethod
    def stage_proofs(batch: WriteBatch, number: int, proofs: Sequence[bytes]) -> None:
        """Stage the weight proofs block ``number`` carries (nothing when none)."""
        if proofs:
            batch.put(schema.proofs_key(number), rlp.encode(list(proofs)))

    def proofs(self, number: int) -> tuple[bytes, ...]:
        """Encoded weight proofs block ``number`` carries, in block order."""
        if not 0 <= number <= UINT64_MAX:
            return ()
        data = self._kv.get(schema.proofs_key(number))
        if data is None:
            return ()
        with _decoding(f"proofs {number}"):
            return tuple(_bytes(item) for item in _list(rlp.decode(data)))

    @staticmethod
    def stage_certificate(batch: WriteBatch, number: int, certificate: bytes) -> None:
        """Stage the commit certificate of block ``number`` beside the block itself."""
        batch.put(schema.certificate_key(number), certificate)

    @staticmethod
    def _head(reader: KVReader) -> int | None:
        data = reader.get(schema.HEAD)
        return None if data is None else schema.decode_number(data)

    @staticmethod
    def _header(reader: KVReader, number: int) -> Header | None:
        if not 0 <= number <= UINT64_MAX:
            return None
        data = reader.get(schema.header_key(number))
        if data is None:
            return None
        with _decoding(f"header {number}"):
            return Header.decode(data)

    def _require_header(self, number: int) -> Header:
        header = self.header(number)
        if header is None:
            raise Halt(f"header {number} is missing below the head")
        return header

    def _body(self, number: int) -> list[_StoredTx]:
        if not 0 <= number <= UINT64_MAX:
            return []
        data = self._kv.get(schema.body_key(number))
        if data is None:
            return []
        with _decoding(f"body {number}"):
            return [
                _StoredTx(_bytes(raw), Address(_bytes(sender)))
                for raw, sender in map(_list, _list(rlp.decode(data)))
            ]

    def _decoded_block(self, number: int, block_hash: Hash32) -> _DecodedBlock:
        """Block ``number`` (whose hash is ``block_hash``) decoded, from the recent ones kept."""
        key = (number, block_hash)
        with self._decoded_lock:
            block = self._decoded.get(key)
            if block is not None:
                self._decoded.move_to_end(key)
                return block
        block = _DecodedBlock(*self._body_and_receipts(number))
        self._keep(key, block)
        return block

    def remember(self, header: Header, executed: Sequence[ExecutedTx]) -> None:
        """Block ``header``, about to be committed with ``executed``, joins the decoded blocks
        kept: the first reads of a new block (wallets polling it) decode nothing. Kept before
        the write, it is found only once the write shows the header (by number and hash)."""
        txs = tuple(e.tx for e in executed)
        self._keep((header.number, header.hash), _DecodedBlock(txs, executed, txs))

    def _keep(self, key: tuple[int, Hash32], block: _DecodedBlock) -> None:
        with self._decoded_lock:
            self._decoded[key] = block
            self._decoded.move_to_end(key)
            while len(self._decoded) > DECODED_BLOCKS:
                self._decoded.popitem(last=False)

    def _body_and_receipts(self, number: int) -> tuple[list[_StoredTx], list[_StoredReceipt]]:
        body = self._body(number)
        data = self._kv.get(schema.receipts_key(number))
        with _decoding(f"receipts {number}"):
            items = [] if data is None else _list(rlp.decode(data))
            stored = [_StoredReceipt.from_rlp(item) for item in items]
        if len(stored) != len(body):
            raise Halt(f"block {number} has {len(body)} transactions but {len(stored)} receipts")
        return body, stored

    @staticmethod
    def _receipt_view(
        tx: Transaction, location: TxLocation, stored: _StoredReceipt | ExecutedTx,
        first_log_index: int,
    ) -> ReceiptView:
        return ReceiptView(
            tx=tx,
            location=location,
            receipt=stored.receipt,
            gas_used=stored.gas_used,
            effective_gas_price=stored.effective_gas_price,
            contract_address=stored.contract_address,
            first_log_index=first_log_index,
        )
