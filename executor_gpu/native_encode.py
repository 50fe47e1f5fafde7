"""A block's receipts and body encoded in C, one call per block (``kernels/evm_encode.h``).

Encoding them in Python cost about 10 us a transaction on the block path (a call per field).
Here Python only gathers each field of every transaction in one C-level pass (``map`` over
attribute getters) and C writes the encodings: the stored receipts list and body of
``node/db/chain.py`` (its module docstring has their format), and the receipts' consensus
encodings, hashed there into the receipts root, with the logs bloom.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, chain
from operator import attrgetter, is_, methodcaller
from typing import Protocol

import numpy as np
import numpy.typing as npt

from executor_gpu.native_build import cpu_library
from primitives.blocks import EMPTY_BLOOM, EMPTY_ROOT, Log, Receipt
from primitives.types import Address, Hash32

_RECEIPT = attrgetter("receipt")
_TYPE, _SUCCEEDED = attrgetter("tx_type"), attrgetter("succeeded")
_CUMULATIVE, _LOGS = attrgetter("cumulative_gas_used"), attrgetter("logs")
_GAS_USED, _PRICE = attrgetter("gas_used"), attrgetter("effective_gas_price")
_CONTRACT = attrgetter("contract_address")
_ADDRESS, _TOPICS, _DATA = attrgetter("address"), attrgetter("topics"), attrgetter("data")
_RAW, _SENDER = attrgetter("raw"), attrgetter("sender")
_WORD = methodcaller("to_bytes", 32, "big")
_NO_ADDRESS = bytes(20)


class ReceiptFields(Protocol):
    """What a stored receipt holds (an ``ExecutedTx`` has it)."""

    @property
    def receipt(self) -> Receipt: ...
    @property
    def gas_used(self) -> int: ...
    @property
    def effective_gas_price(self) -> int: ...
    @property
    def contract_address(self) -> Address | None: ...


class BodyFields(Protocol):
    """What a stored body holds of a transaction (a ``Transaction`` has it)."""

    @property
    def raw(self) -> bytes: ...
    @property
    def sender(self) -> Address: ...


@dataclass(frozen=True)
class _Columns:
    """Receipts' fields, column by column, as ``kernels/evm_encode.h`` reads them."""

    flags: np.ndarray
    """Per receipt: its type, status (1: succeeded), and a byte for whether it created a
    contract (0 here)."""
    gas: np.ndarray
    """Per receipt: its cumulative gas, and a word for its own gas (0 here)."""
    log_counts: np.ndarray
    """Logs per receipt."""
    addresses: bytes
    """Every log's address, 20 bytes each, in block order."""
    topic_counts: np.ndarray
    """Topics per log."""
    topics: bytes
    """Every topic, 32 bytes each."""
    data: bytes
    """Every log's data, concatenated."""
    data_offsets: np.ndarray
    """Where each log's data starts in ``data``, and the end."""
    logs_bound: int
    """Most bytes the receipts' logs lists take encoded."""


def _columns(receipts: list[Receipt]) -> _Columns:
    count = len(receipts)
    flags = np.zeros((count, 3), dtype=np.uint8)
    flags[:, 0] = np.fromiter(map(_TYPE, receipts), dtype=np.uint8, count=count)
    flags[:, 1] = np.fromiter(map(_SUCCEEDED, receipts), dtype=np.uint8, count=count)
    gas = np.zeros((count, 2), dtype=np.uint64)
    gas[:, 0] = np.fromiter(map(_CUMULATIVE, receipts), dtype=np.uint64, count=count)
    per_receipt = list(map(_LOGS, receipts))
    log_counts = np.fromiter(map(len, per_receipt), dtype=np.uint64, count=count)
    logs: list[Log] = list(chain.from_iterable(per_receipt))
    addresses = b"".join(map(_ADDRESS, logs))
    topic_lists = list(map(_TOPICS, logs))
    topic_counts = np.fromiter(map(len, topic_lists), dtype=np.uint8, count=len(logs))
    topics = b"".join(chain.from_iterable(topic_lists))
    datas = list(map(_DATA, logs))
    data_offsets = np.fromiter(accumulate(map(len, datas), initial=0), dtype=np.uint64,
                               count=len(logs) + 1)
    if len(addresses) != 20 * len(logs) or len(topics) != 32 * int(topic_counts.sum()):
        raise ValueError("a log's address is 20 bytes and its topics 32 bytes each")
    # List headers of at most 9 bytes: per receipt its logs list's; per log its own, its
    # topics' and its data's, with the address (21 bytes) and each topic (33).
    logs_bound = 9 * count + 48 * len(logs) + 33 * len(topics) // 32 + int(data_offsets[-1])
    return _Columns(flags, gas, log_counts, addresses, topic_counts, topics, b"".join(datas),
                    data_offsets, logs_bound)


class _LastColumns:
    """The columns of the last receipts gathered: a block's receipts are gathered twice, for
    their root (in the roots thread) and for their stored form (in the block's batch), 40-48
    ms each for 30,000 token transfers' receipts on the 2-core box. The same receipt objects in the
    same order are the same columns; any thread may ask (a race only gathers them again)."""

    def __init__(self) -> None:
        self._last: tuple[list[Receipt], _Columns] | None = None

    def of(self, receipts: list[Receipt]) -> _Columns:
        last = self._last
        if last is not None and len(last[0]) == len(receipts) and all(map(is_, last[0], receipts)):
            return last[1]
        columns = _columns(receipts)
        self._last = (receipts, columns)
        return columns


_LAST_COLUMNS = _LastColumns()


def encode_receipts(executed: Sequence[ReceiptFields]) -> bytes:
    """The stored receipts list of ``executed``, in block order."""
    count = len(executed)
    columns = _LAST_COLUMNS.of(list(map(_RECEIPT, executed)))
    # The flags and gas with the stored form's own fields (the columns may be shared).
    flags, gas = columns.flags.copy(), columns.gas.copy()
    gas[:, 1] = np.fromiter(map(_GAS_USED, executed), dtype=np.uint64, count=count)
    prices = b"".join(map(_WORD, map(_PRICE, executed)))
    created = list(map(_CONTRACT, executed))
    contracts = _NO_ADDRESS
    if created.count(None) != count:  # a creation in the block: mark each one
        flags[:, 2] = [address is not None for address in created]
        contracts = b"".join([address or _NO_ADDRESS for address in created])
        if len(contracts) != 20 * count:
            raise ValueError("a contract address is 20 bytes")
    # Per receipt at most: its list header, type, status, cumulative gas, gas used, price and
    # contract (9 + 1 + 1 + 9 + 9 + 33 + 21).
    stored = _unfilled(9 + 83 * count + columns.logs_bound)
    size = cpu_library().evm_encode_receipts(
        count, flags.ctypes.data, gas.ctypes.data, prices, contracts,
        columns.log_counts.ctypes.data, columns.addresses, columns.topic_counts.ctypes.data,
        columns.topics, columns.data, columns.data_offsets.ctypes.data, stored.ctypes.data,
    )
    return stored[:size].tobytes()


def receipts_root(receipts: Sequence[Receipt]) -> tuple[Hash32, bytes]:
    """The receipts root and logs bloom of a block's ``receipts`` (a ``ReceiptsRoot``)."""
    if not receipts:
        return EMPTY_ROOT, EMPTY_BLOOM
    count = len(receipts)
    columns = _LAST_COLUMNS.of(list(receipts))
    # Per receipt at most: type byte, list header, status, cumulative gas and the bloom
    # (1 + 9 + 1 + 9 + 259).
    scratch = _unfilled(279 * count + columns.logs_bound)
    offsets = np.empty(count + 1, dtype=np.uint64)
    bloom, root = ctypes.create_string_buffer(256), ctypes.create_string_buffer(32)
    if not cpu_library().evm_receipts_root(
        count, columns.flags.ctypes.data, columns.gas.ctypes.data, columns.log_counts.ctypes.data,
        columns.addresses, columns.topic_counts.ctypes.data, columns.topics, columns.data,
        columns.data_offsets.ctypes.data, scratch.ctypes.data, offsets.ctypes.data, bloom, root,
    ):
        raise MemoryError("no memory for the receipts trie")
    return Hash32(root.raw), bloom.raw


def encode_body(txs: Sequence[BodyFields]) -> bytes:
    """The stored body of ``txs``: the RLP list of [raw transaction, sender]."""
    raws = list(map(_RAW, txs))
    senders = b"".join(map(_SENDER, txs))
    if len(senders) != 20 * len(txs):
        raise ValueError("a sender is 20 bytes")
    offsets = np.fromiter(accumulate(map(len, raws), initial=0), dtype=np.uint64,
                          count=len(raws) + 1)
    out = _unfilled(9 + 39 * len(txs) + int(offsets[-1]))
    size = cpu_library().evm_encode_body(len(txs), b"".join(raws), offsets.ctypes.data, senders,
                                         out.ctypes.data)
    return out[:size].tobytes()


def body_raws(body: bytes) -> tuple[bytes, ...]:
    """The raw transactions of a stored body (``encode_body``'s form), without decoding their
    senders; ValueError when ``body`` is not of that form."""
    most = len(body) // 23 + 1  # an item takes 23 bytes at least: headers and the sender
    starts, ends = np.empty(most, dtype=np.uint64), np.empty(most, dtype=np.uint64)
    count = cpu_library().evm_body_raws(body, len(body), most, starts.ctypes.data, ends.ctypes.data)
    if count < 0:
        raise ValueError("not a stored body: an RLP list of [raw transaction, sender]")
    return tuple(map(body.__getitem__, map(slice, starts[:count].tolist(), ends[:count].tolist())))


def _unfilled(size: int) -> npt.NDArray[np.uint8]:
    """A buffer the C encoders write before they read it: not zero-filled first (ctypes'
    buffers are, holding the GIL: a block of 86,000 receipts zeroed 24 MB for its root)."""
    return np.empty(size, dtype=np.uint8)
