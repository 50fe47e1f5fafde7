"""l2/txs/1 messages and their gate: REJECT malformed or oversized, IGNORE nothing new,
the rest by the node's check on a bounded queue."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest
import rlp

from p2p.checks import CheckLimits, CheckQueue
from p2p.txbatch import (
    MAX_BATCH_BYTES,
    MAX_BATCH_TXS,
    MAX_TX_BYTES,
    TxBatchGate,
    decode_tx_batch,
    encode_tx_batch,
    pack_tx_batches,
)
from p2p.types import PeerId, Validation
from primitives.errors import InvalidInput
from primitives.transactions import decode_transaction
from tests.primitives.test_transactions import access, dynamic, sign
from tests.primitives.test_transactions import legacy as legacy_fields

PEER = PeerId("peer")


def accept_all(_raws: tuple[bytes, ...]) -> Validation:
    return Validation.ACCEPT


def gate(memory: int = 100_000) -> TxBatchGate:
    """A gate whose node check ACCEPTs everything, run in the caller."""
    return TxBatchGate(accept_all, CheckQueue("test", inline=True), memory)


def legacy(i: int) -> bytes:
    return b"\xf8" + bytes([i % 256]) * 10  # structure only: the gate never decodes fields


def test_round_trip_of_real_signed_transactions() -> None:
    raws = [sign(**fields) for fields in (legacy_fields, access, dynamic)]
    batch = encode_tx_batch(raws)
    assert decode_tx_batch(batch) == tuple(raws)
    assert [decode_transaction(raw).raw for raw in decode_tx_batch(batch)] == raws
    assert gate()(PEER, batch) is Validation.ACCEPT


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01\x02",  # not RLP
        rlp.encode(b"not a list"),
        rlp.encode([b"\xf8ab", [b"nested"]]),
        rlp.encode([b""]),  # empty transaction
        rlp.encode([b"\x03" + b"blob"]),  # a type this chain does not carry
        rlp.encode([b"\x7f" + b"junk"]),
        rlp.encode([b"\xf8ab", b"\xf8ab"]),  # a transaction twice
        rlp.encode([b"\xf8" + b"x" * MAX_TX_BYTES]),
        rlp.encode([b"\xf8" + i.to_bytes(2, "big") for i in range(MAX_BATCH_TXS + 1)]),
        rlp.encode([b"\xf8" + bytes([i]) + b"x" * (MAX_TX_BYTES - 2) for i in range(9)]),
    ],
)
def test_gate_rejects_malformed_batches(data: bytes) -> None:
    assert gate()(PEER, data) is Validation.REJECT
    with pytest.raises(InvalidInput):
        decode_tx_batch(data)


def test_gate_ignores_empty_and_known_batches_and_forgets_old_ones() -> None:
    small = gate(memory=3)
    assert small(PEER, encode_tx_batch([])) is Validation.IGNORE
    assert small(PEER, encode_tx_batch([legacy(1), legacy(2)])) is Validation.ACCEPT
    assert small(PEER, encode_tx_batch([legacy(2), legacy(1)])) is Validation.IGNORE
    assert small(PEER, encode_tx_batch([legacy(1), legacy(3)])) is Validation.ACCEPT  # 3 is new
    assert small(PEER, encode_tx_batch([legacy(4)])) is Validation.ACCEPT  # pushes out 2
    assert small(PEER, encode_tx_batch([legacy(2)])) is Validation.ACCEPT


def test_the_node_check_decides_well_formed_batches_and_rejected_ones_are_not_remembered() -> None:
    verdicts = {legacy(1): Validation.REJECT, legacy(2): Validation.IGNORE}
    checked: list[tuple[bytes, ...]] = []

    def check(raws: tuple[bytes, ...]) -> Validation:
        checked.append(raws)
        return verdicts.get(raws[0], Validation.ACCEPT)

    node_gate = TxBatchGate(check, CheckQueue("test", inline=True))
    assert node_gate(PEER, encode_tx_batch([legacy(1), legacy(3)])) is Validation.REJECT
    # Its transactions may be honest ones a flooder copied: a later batch is checked again.
    assert node_gate(PEER, encode_tx_batch([legacy(3)])) is Validation.ACCEPT
    assert node_gate(PEER, encode_tx_batch([legacy(2)])) is Validation.IGNORE
    assert node_gate(PEER, encode_tx_batch([legacy(2)])) is Validation.IGNORE  # known: unchecked
    assert checked == [(legacy(1), legacy(3)), (legacy(3),), (legacy(2),)]


def test_a_full_check_queue_ignores_batches_without_checking_them() -> None:
    release = threading.Event()

    def slow(_raws: tuple[bytes, ...]) -> Validation:
        release.wait(10)
        return Validation.ACCEPT

    queue = CheckQueue("test", CheckLimits(workers=1, max_pending=2, max_pending_per_peer=2))
    node_gate = TxBatchGate(slow, queue)
    pending = [node_gate(PEER, encode_tx_batch([legacy(i)])) for i in range(3)]
    assert pending[2] is Validation.IGNORE and queue.dropped == 1
    release.set()
    assert [p.result(10) for p in pending[:2] if isinstance(p, Future)] == [Validation.ACCEPT] * 2
    # Dropped unchecked, so not remembered: offered again, it is checked.
    assert isinstance(retry := node_gate(PEER, encode_tx_batch([legacy(2)])), Future)
    assert retry.result(10) is Validation.ACCEPT


def test_encode_refuses_what_the_gate_would_reject() -> None:
    with pytest.raises(InvalidInput):
        encode_tx_batch([legacy(1), legacy(1)])
    with pytest.raises(InvalidInput):
        encode_tx_batch([b"\x05abc"])


def test_pack_splits_at_the_caps_and_drops_repeats() -> None:
    big = [b"\x02" + i.to_bytes(4, "big") + b"y" * (MAX_TX_BYTES - 10) for i in range(20)]
    small = [b"\xf8" + i.to_bytes(4, "big") for i in range(MAX_BATCH_TXS + 10)]
    for raws in (big, small):
        batches = pack_tx_batches(raws + raws[:3])
        assert len(batches) > 1
        assert all(len(batch) <= MAX_BATCH_BYTES for batch in batches)
        assert [tx for batch in batches for tx in decode_tx_batch(batch)] == raws
    assert pack_tx_batches([]) == []
