"""The poster's durable state in the node's KV store (one record, schema.POSTER_META).

Record: RLP [version, [batch, ...], attempt] with
batch = [number, prev_root, state_root, first_block, last_block, data_hash, data, [signature, ...]],
attempt = [] (none) or [batch_number, [tx, ...], validator_epoch] (records written before
validator-set updates have no validator_epoch: 0, a batch),
tx = [calldata, gas, what, nonce, max_fee_per_gas, max_priority_fee_per_gas, [tx_hash, ...], sent_at_l1_block].
"""

from __future__ import annotations

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
from node.db.schema import POSTER_META
from primitives.errors import Halt
from primitives.types import to_hash32

RECORD_VERSION = 1
"""Version of the record layout above."""


class KVPosterStore:
    """PosterStore over the node's KV: each save is one atomic put."""

    def __init__(self, kv: KV) -> None:
        self._kv = kv

    def load(self) -> PosterState:
        raw = self._kv.get(POSTER_META)
        if raw is None:
            return PosterState()
        try:
            return decode_poster_state(raw)
        except (rlp.exceptions.RLPException, ValueError, TypeError) as exc:
            raise Halt(f"the poster record in the database is corrupt: {exc}") from exc

    def save(self, state: PosterState) -> None:
        self._kv.put(POSTER_META, encode_poster_state(state))


def encode_poster_state(state: PosterState) -> bytes:
    """The record for ``state`` (layout in the module docstring)."""
    attempt: list[Any] = []
    if state.attempt is not None:
        attempt = [
            state.attempt.batch_number,
            [
                [
                    t.call.data,
                    t.call.gas,
                    t.call.what.encode(),
                    t.nonce,
                    t.fees.max_fee_per_gas,
                    t.fees.max_priority_fee_per_gas,
                    list(t.tx_hashes),
                    t.sent_at_l1_block,
                ]
                for t in state.attempt.transactions
            ],
            state.attempt.validator_epoch,
        ]
    batches = [
        [
            b.commitment.batch_number,
            b.commitment.prev_state_root,
            b.commitment.state_root,
            b.commitment.first_block,
            b.commitment.last_block,
            b.commitment.data_hash,
            b.data,
            list(b.signatures),
        ]
        for b in state.queue
    ]
    return bytes(rlp.encode([RECORD_VERSION, batches, attempt]))


def decode_poster_state(raw: bytes) -> PosterState:
    """Inverse of ``encode_poster_state``."""
    version, batches, attempt = rlp.decode(raw)
    if _int(version) != RECORD_VERSION:
        raise ValueError(f"unknown poster record version {_int(version)}")
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
