"""``l2/txs/1`` messages: many raw signed transactions per gossip message, and their gate.

A message is the RLP list of the transactions' raw bytes, exactly as sent to
``eth_sendRawTransaction``. The gate checks structure and caps on the network thread, and
hands the rest (decoding the fields, recovering the senders in one batch, pooling) to the
node's check on a bounded worker queue: a batch is forwarded only once its verdict is in.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future

import rlp

from p2p.checks import CheckQueue
from p2p.types import PeerId, Validation
from primitives.crypto import keccak256
from primitives.errors import InvalidInput
from primitives.types import Hash32

MAX_BATCH_BYTES = 1024 * 1024
"""Largest ``l2/txs/1`` message, in bytes."""

MAX_BATCH_TXS = 4096
"""Most transactions in one message."""

MAX_TX_BYTES = 128 * 1024
"""Largest raw transaction (go-ethereum's txMaxSize)."""

_TYPED = (0x01, 0x02)
"""EIP-2718 types this chain carries (access list, dynamic fee); legacy txs start >= 0xc0."""


def encode_tx_batch(raw_txs: Sequence[bytes]) -> bytes:
    """One message carrying ``raw_txs``; raises InvalidInput if it breaks a cap."""
    data: bytes = rlp.encode(list(raw_txs))
    _check(raw_txs, len(data))
    return data


def pack_tx_batches(raw_txs: Iterable[bytes]) -> list[bytes]:
    """``raw_txs`` (deduplicated, in order) as few messages as the caps allow."""
    batches: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for raw in dict.fromkeys(raw_txs):
        item = len(rlp.encode(raw))
        if current and (size + item + 9 > MAX_BATCH_BYTES or len(current) == MAX_BATCH_TXS):
            batches.append(encode_tx_batch(current))  # 9: the list header's worst case
            current, size = [], 0
        current.append(raw)
        size += item
    if current:
        batches.append(encode_tx_batch(current))
    return batches


def decode_tx_batch(data: bytes) -> tuple[bytes, ...]:
    """The raw transactions of one message; raises InvalidInput if it is malformed."""
    if len(data) > MAX_BATCH_BYTES:
        raise InvalidInput(f"tx batch of {len(data)} bytes exceeds {MAX_BATCH_BYTES}")
    try:
        items = rlp.decode(data)
    except rlp.DecodingError as exc:
        raise InvalidInput(f"tx batch is not RLP: {exc}") from None
    if not isinstance(items, list) or not all(isinstance(item, bytes) for item in items):
        raise InvalidInput("tx batch must be a list of byte strings")
    _check(items, len(data))
    return tuple(items)


def _check(raw_txs: Sequence[bytes], size: int) -> None:
    if size > MAX_BATCH_BYTES:
        raise InvalidInput(f"tx batch of {size} bytes exceeds {MAX_BATCH_BYTES}")
    if len(raw_txs) > MAX_BATCH_TXS:
        raise InvalidInput(f"tx batch of {len(raw_txs)} transactions exceeds {MAX_BATCH_TXS}")
    for raw in raw_txs:
        if not raw:
            raise InvalidInput("empty transaction in tx batch")
        if len(raw) > MAX_TX_BYTES:
            raise InvalidInput(f"transaction of {len(raw)} bytes exceeds {MAX_TX_BYTES}")
        if raw[0] < 0xC0 and raw[0] not in _TYPED:
            raise InvalidInput(f"transaction type {raw[0]} is not carried")
    if len(set(raw_txs)) != len(raw_txs):
        raise InvalidInput("tx batch repeats a transaction")


BatchCheck = Callable[[tuple[bytes, ...]], Validation]
"""The node's verdict on a well-formed batch (decode, recover, pool): runs on a worker."""


class TxBatchGate:
    """The ``l2/txs/1`` gate validator: caps here, then ``check`` on ``queue``.

    Remembers the last ``memory`` transactions of batches that ``check`` did not REJECT.
    Thread-safe: the network thread calls it, the queue's workers finish it.
    """

    def __init__(self, check: BatchCheck, queue: CheckQueue, memory: int = 100_000) -> None:
        self._check = check
        self._queue = queue
        self._memory = memory
        self._seen: OrderedDict[Hash32, None] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, peer: PeerId, data: bytes) -> Validation | Future[Validation]:
        # REJECT: malformed (not an RLP list of byte strings, over a cap, an empty or
        # unknown-type transaction, a transaction twice). An honest encoder never sends it.
        try:
            raw_txs = decode_tx_batch(data)
        except InvalidInput:
            return Validation.REJECT
        # IGNORE: nothing new (empty, or every transaction already checked here).
        hashes = [keccak256(raw) for raw in raw_txs]
        with self._lock:
            if all(h in self._seen for h in hashes):
                return Validation.IGNORE
        # The rest is the node's check on a worker (REJECT: a transaction that can never be
        # valid; IGNORE: nothing pooled; ACCEPT: pooled something). IGNORE if its queue is full.
        return self._queue.submit(peer, functools.partial(self._checked, raw_txs, hashes))

    def _checked(self, raw_txs: tuple[bytes, ...], hashes: list[Hash32]) -> Validation:
        verdict = self._check(raw_txs)
        if verdict is not Validation.REJECT:  # a REJECTed batch may hide honest transactions
            with self._lock:
                for h in hashes:
                    self._seen[h] = None
                    self._seen.move_to_end(h)
                while len(self._seen) > self._memory:
                    self._seen.popitem(last=False)
        return verdict
