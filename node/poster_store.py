"""The poster's durable state in the node's KV store (keys in node/db/schema.py).

A save writes, in one atomic batch, only the records that changed: a batch's data is written
when it is queued, not again with every L1 transaction sent for it.

- POSTER_META: RLP [version, [batch_number, ...], attempt], attempt = [] (none) or
  [batch_number, transaction_count, validator_epoch];
- poster_batch_key(number): [number, prev_root, state_root, first_block, last_block, data_hash,
  data, [signature, ...]];
- poster_tx_key(index): [calldata, gas, what, nonce, max_fee_per_gas, max_priority_fee_per_gas,
  [tx_hash, ...], sent_at_l1_block], the attempt's transactions in nonce order.

Version 1 kept everything in POSTER_META: [1, [batch, ...], [] or [batch_number, [tx, ...]
(, validator_epoch)]] (records from before validator-set updates lack validator_epoch: 0, a
batch). It is still read; the next save writes version 2.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import rlp
from rlp.sedes import big_endian_int

from l1.types import (
    BatchCommitment,
    L1Call,
    L1Fees,
    PostAttempt,
    PosterState,
    SentTransaction,
    SignedBatch,
)
from node.db.api import KV
from node.db.schema import POSTER_META, poster_batch_key, poster_tx_key
from primitives.errors import Halt
from primitives.types import to_hash32

RECORD_VERSION = 2
"""Version of the layout above."""


class KVPosterStore:
    """PosterStore over the node's KV: each save is one atomic write of what changed."""

    def __init__(self, kv: KV) -> None:
        self._kv = kv
        self._saved: PosterState | None = None
        """What the records hold, once read or written."""

    def load(self) -> PosterState:
        raw = self._kv.get(POSTER_META)
        if raw is None:
            self._saved = PosterState()
            return self._saved
        try:
            version, batches, attempt = rlp.decode(raw)
            if _int(version) == 1:
                # Nothing is in the other records yet: the next save writes them all.
                self._saved = PosterState()
                return _state(batches, attempt)
            if _int(version) != RECORD_VERSION:
                raise ValueError(f"unknown poster record version {_int(version)}")
            if attempt:
                number, count, epoch = attempt
                attempt = [number, self._records(map(poster_tx_key, range(_int(count)))), epoch]
            self._saved = _state(self._records(poster_batch_key(_int(n)) for n in batches), attempt)
            return self._saved
        except (rlp.exceptions.RLPException, ValueError, TypeError) as exc:
            raise Halt(f"the poster record in the database is corrupt: {exc}") from exc

    def save(self, state: PosterState) -> None:
        saved = self._saved if self._saved is not None else self.load()
        batch = self._kv.write_batch()
        stale = {b.commitment.batch_number: b for b in saved.queue}
        for signed in state.queue:
            number = signed.commitment.batch_number
            if stale.pop(number, None) != signed:
                batch.put(poster_batch_key(number), rlp.encode(_batch_fields(signed)))
        batch.delete_many(map(poster_batch_key, stale))
        old, new = _transactions(saved), _transactions(state)
        for index, sent in enumerate(new):
            if index >= len(old) or old[index] != sent:
                batch.put(poster_tx_key(index), rlp.encode(_tx_fields(sent)))
        batch.delete_many(map(poster_tx_key, range(len(new), len(old))))
        attempt = state.attempt
        head = [] if attempt is None else [attempt.batch_number, len(new), attempt.validator_epoch]
        numbers = [b.commitment.batch_number for b in state.queue]
        batch.put(POSTER_META, rlp.encode([RECORD_VERSION, numbers, head]))
        batch.commit()
        self._saved = state

    def _records(self, keys: Iterable[bytes]) -> list[Any]:
        found = self._kv.get_many(list(keys))
        if None in found:
            raise ValueError("a batch or transaction record is missing")
        return [rlp.decode(record) for record in found]


def _transactions(state: PosterState) -> tuple[SentTransaction, ...]:
    return () if state.attempt is None else state.attempt.transactions


def _batch_fields(b: SignedBatch) -> list[Any]:
    c = b.commitment
    return [c.batch_number, c.prev_state_root, c.state_root, c.first_block, c.last_block,
            c.data_hash, b.data, list(b.signatures)]


def _tx_fields(t: SentTransaction) -> list[Any]:
    return [t.call.data, t.call.gas, t.call.what.encode(), t.nonce, t.fees.max_fee_per_gas,
            t.fees.max_priority_fee_per_gas, list(t.tx_hashes), t.sent_at_l1_block]


def _state(batches: Sequence[Any], attempt: Sequence[Any]) -> PosterState:
    """The state of decoded batch and attempt fields (the attempt's transactions decoded)."""
    queue = tuple(
        SignedBatch(
            BatchCommitment(
                batch_number=_int(number),
                prev_state_root=to_hash32(prev_root),
                state_root=to_hash32(state_root),
                first_block=_int(first),
                last_block=_int(last),
                data_hash=to_hash32(data_hash),
            ),
            bytes(data),
            tuple(bytes(s) for s in signatures),
        )
        for number, prev_root, state_root, first, last, data_hash, data, signatures in batches
    )
    if not attempt:
        return PosterState(queue, None)
    batch_number, transactions, *rest = attempt
    return PosterState(
        queue,
        PostAttempt(
            _int(batch_number),
            tuple(
                SentTransaction(
                    call=L1Call(data=bytes(data), gas=_int(gas), what=bytes(what).decode()),
                    nonce=_int(nonce),
                    fees=L1Fees(max_fee_per_gas=_int(max_fee), max_priority_fee_per_gas=_int(tip)),
                    tx_hashes=tuple(to_hash32(h) for h in hashes),
                    sent_at_l1_block=_int(sent_at),
                )
                for data, gas, what, nonce, max_fee, tip, hashes, sent_at in transactions
            ),
            _int(rest[0]) if rest else 0,
        ),
    )


def _int(value: bytes) -> int:
    return int(big_endian_int.deserialize(value))
