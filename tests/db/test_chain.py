"""ChainStore round trips over each KV backend, with real signed transactions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from executor_gpu.types import ExecutedTx
from node.db import schema
from node.db.api import KV
from node.db.chain import ChainStore
from node.db.memory import MemoryKV
from primitives.blocks import Header, Log, Receipt, bloom_contains, bloom_of, ordered_trie_root
from primitives.crypto import keccak256
from primitives.errors import Halt
from primitives.transactions import Transaction, decode_transaction
from primitives.types import ZERO_ADDRESS, ZERO_HASH, Address, Hash32
from rpc.types import BlockView, LogFilter, ReceiptView, TxLocation
from tests.db.backends import Backend

CHAIN_ID = 1337
BASE_FEE = 7
ALICE_KEY = b"\x01" * 32
BOB_KEY = b"\x02" * 32
TOKEN_A = Address(b"\xaa" * 20)
TOKEN_B = Address(b"\xbb" * 20)
TOKEN_C = Address(b"\xcc" * 20)  # emits nothing
CREATED = Address(b"\xdd" * 20)
TRANSFER = keccak256(b"Transfer(address,address,uint256)")
APPROVAL = keccak256(b"Approval(address,address,uint256)")
UNUSED_TOPIC = keccak256(b"Unused()")
ALICE_T = Hash32(b"\x00" * 31 + b"\x0a")
BOB_T = Hash32(b"\x00" * 31 + b"\x0b")


def sign(key: bytes, fields: dict[str, Any]) -> Transaction:
    signed = Account.sign_transaction({"chainId": CHAIN_ID, "value": 1, **fields}, key)
    return decode_transaction(bytes(signed.raw_transaction))


def legacy(key: bytes, nonce: int) -> Transaction:
    return sign(key, {"nonce": nonce, "gasPrice": 10, "gas": 60_000, "to": "0x" + "11" * 20})


def access_list_tx(key: bytes, nonce: int) -> Transaction:
    access = [{"address": "0x" + "aa" * 20, "storageKeys": ["0x" + "00" * 31 + "01"]}]
    return sign(
        key,
        {
            "type": 1,
            "nonce": nonce,
            "gasPrice": 9,
            "gas": 80_000,
            "to": "0x" + "22" * 20,
            "accessList": access,
        },
    )


def dynamic_fee(key: bytes, nonce: int, to: str | None = "0x" + "33" * 20) -> Transaction:
    fields: dict[str, Any] = {
        "type": 2,
        "nonce": nonce,
        "maxFeePerGas": 20,
        "maxPriorityFeePerGas": 2,
        "gas": 90_000,
    }
    if to is None:
        fields["data"] = "0x6000"
    else:
        fields["to"] = to
    return sign(key, fields)


@dataclass(frozen=True)
class Outcome:
    """What a test transaction did, before cumulative gas is known."""

    tx: Transaction
    """The transaction."""
    gas_used: int
    """Its own gas."""
    logs: tuple[Log, ...] = ()
    """Logs it emitted."""
    succeeded: bool = True
    """Status."""
    contract_address: Address | None = None
    """Created contract."""


def executed(outcomes: Sequence[Outcome]) -> list[ExecutedTx]:
    result = []
    cumulative = 0
    for o in outcomes:
        cumulative += o.gas_used
        receipt = Receipt(o.tx.tx_type, o.succeeded, cumulative, o.logs)
        result.append(
            ExecutedTx(
                o.tx, receipt, o.gas_used, o.tx.effective_gas_price(BASE_FEE), o.contract_address
            )
        )
    return result


def make_header(number: int, parent: Hash32, txs: Sequence[ExecutedTx]) -> Header:
    return Header(
        parent_hash=parent,
        coinbase=ZERO_ADDRESS,
        state_root=keccak256(b"state %d" % number),
        transactions_root=ordered_trie_root([e.tx.raw for e in txs]),
        receipts_root=ordered_trie_root([e.receipt.encode() for e in txs]),
        logs_bloom=bloom_of(log for e in txs for log in e.logs),
        number=number,
        gas_limit=30_000_000,
        gas_used=txs[-1].receipt.cumulative_gas_used if txs else 0,
        timestamp=1_700_000_000 + number,
        base_fee_per_gas=BASE_FEE,
    )


@lru_cache(maxsize=1)
def chain() -> tuple[tuple[Header, tuple[ExecutedTx, ...]], ...]:
    """Genesis (empty) and three blocks; see the log index comments for the log layout."""
    blocks = [
        [],
        executed(
            [
                # block 1, log 0
                Outcome(
                    legacy(ALICE_KEY, 0),
                    30_000,
                    (Log(TOKEN_A, (TRANSFER, ALICE_T, BOB_T), b"\x01"),),
                ),
                Outcome(dynamic_fee(ALICE_KEY, 1, to=None), 50_000, contract_address=CREATED),
                # block 1, logs 1 and 2
                Outcome(
                    access_list_tx(BOB_KEY, 0),
                    40_000,
                    (
                        Log(TOKEN_B, (APPROVAL, ALICE_T, BOB_T), b"\x02"),
                        Log(TOKEN_A, (TRANSFER, BOB_T, ALICE_T), b"\x03"),
                    ),
                ),
            ]
        ),
        executed(
            [
                Outcome(dynamic_fee(BOB_KEY, 1), 25_000, succeeded=False),
                # block 2, log 0 (anonymous: no topics) and log 1
                Outcome(
                    legacy(ALICE_KEY, 2),
                    35_000,
                    (Log(TOKEN_B, (), b"anon"), Log(TOKEN_B, (TRANSFER, BOB_T, ALICE_T), b"")),
                ),
            ]
        ),
        # block 3, log 0
        executed(
            [
                Outcome(
                    dynamic_fee(BOB_KEY, 2),
                    21_000,
                    (Log(TOKEN_A, (APPROVAL, BOB_T, ALICE_T), b"\x04"),),
                )
            ]
        ),
    ]
    result = []
    parent = ZERO_HASH
    for number, txs in enumerate(blocks):
        header = make_header(number, parent, txs)
        result.append((header, tuple(txs)))
        parent = header.hash
    return tuple(result)


def store_chain(kv: KV) -> ChainStore:
    store = ChainStore(kv)
    for header, txs in chain():
        batch = kv.write_batch()
        store.stage_block(batch, header, txs)
        batch.commit()
    return store


def expected_receipts(number: int, first_log_indexes: Sequence[int]) -> tuple[ReceiptView, ...]:
    header, txs = chain()[number]
    return tuple(
        ReceiptView(
            tx=e.tx,
            location=TxLocation(header.hash, number, index, header.timestamp),
            receipt=e.receipt,
            gas_used=e.gas_used,
            effective_gas_price=e.effective_gas_price,
            contract_address=e.contract_address,
            first_log_index=first,
        )
        for index, (e, first) in enumerate(zip(txs, first_log_indexes, strict=True))
    )


FIRST_LOG_INDEXES = {0: [], 1: [0, 1, 1], 2: [0, 0], 3: [0]}


def check_every_read(store: ChainStore) -> None:
    assert store.head_number() == 3
    for number, (header, txs) in enumerate(chain()):
        assert store.header(number) == header
        assert store.number_of(header.hash) == number
        assert store.transactions(number) == tuple(e.tx for e in txs)
        assert store.block(number) == BlockView(header, tuple(e.tx for e in txs))
        receipts = expected_receipts(number, FIRST_LOG_INDEXES[number])
        assert store.receipts(number) == receipts
        for index, e in enumerate(txs):
            location = TxLocation(header.hash, number, index, header.timestamp)
            assert store.tx_location(e.tx.hash) == location
            assert store.receipt(e.tx.hash) == receipts[index]


def test_empty_store(kv: KV) -> None:
    store = ChainStore(kv)
    header, txs = chain()[1]
    assert store.head_number() is None
    assert store.header(0) is None
    assert store.block(0) is None
    assert store.number_of(header.hash) is None
    assert store.transactions(1) == ()
    assert store.receipts(1) == ()
    assert store.tx_location(txs[0].tx.hash) is None
    assert store.receipt(txs[0].tx.hash) is None
    assert store.logs(LogFilter(0, 10)) == []


def test_round_trip(kv: KV) -> None:
    check_every_read(store_chain(kv))


def test_transactions_keep_type_sender_and_fields(kv: KV) -> None:
    store = store_chain(kv)
    alice = Account.from_key(ALICE_KEY).address
    bob = Account.from_key(BOB_KEY).address
    txs = store.transactions(1)
    assert [tx.tx_type for tx in txs] == [0, 2, 1]
    assert ["0x" + tx.sender.hex() for tx in txs] == [alice.lower(), alice.lower(), bob.lower()]
    assert txs[1].to is None
    assert txs[2].access_list[0].storage_keys == (1,)
    created = store.receipt(txs[1].hash)
    assert created is not None and created.contract_address == CREATED
    failed = store.receipt(store.transactions(2)[0].hash)
    assert failed is not None and not failed.receipt.succeeded
    assert failed.effective_gas_price == min(20, BASE_FEE + 2)


def test_unknown_numbers_and_hashes(kv: KV) -> None:
    store = store_chain(kv)
    for number in (4, -1, 2**64, 2**70):
        assert store.header(number) is None
        assert store.block(number) is None
        assert store.transactions(number) == ()
        assert store.receipts(number) == ()
    assert store.number_of(keccak256(b"no such block")) is None
    assert store.tx_location(keccak256(b"no such tx")) is None
    assert store.receipt(keccak256(b"no such tx")) is None


def test_nothing_visible_before_commit(kv: KV) -> None:
    store = ChainStore(kv)
    batch = kv.write_batch()
    for header, txs in chain():
        store.stage_block(batch, header, txs)  # one batch: each block extends the staged head
    assert store.head_number() is None
    assert store.header(0) is None
    assert store.tx_location(chain()[1][1][0].tx.hash) is None
    assert list(kv.iterate()) == []
    batch.commit()
    check_every_read(store)


def test_stage_block_rejects_a_block_that_does_not_extend_the_head(kv: KV) -> None:
    store = ChainStore(kv)
    (genesis, _), (first, first_txs), (second, second_txs), _ = chain()
    with pytest.raises(Halt, match="does not follow"):
        store.stage_block(kv.write_batch(), first, first_txs)
    batch = kv.write_batch()
    store.stage_block(batch, genesis, ())
    batch.commit()
    with pytest.raises(Halt, match="does not follow"):
        store.stage_block(kv.write_batch(), second, second_txs)
    orphan = replace(first, parent_hash=keccak256(b"other parent"))
    with pytest.raises(Halt, match="parent hash"):
        store.stage_block(kv.write_batch(), orphan, first_txs)
    assert store.head_number() == 0


def test_reopen_leveldb_and_read_again(tmp_path: Path) -> None:
    backend = Backend("leveldb", tmp_path)
    kv = backend.open()
    store_chain(kv)
    kv.close()
    reopened = backend.open()
    check_every_read(ChainStore(reopened))
    reopened.close()


def test_corrupt_data_halts(kv: KV) -> None:
    store = store_chain(kv)
    kv.put(schema.receipts_key(1), b"\xc1\x01")  # a list of one number: not a receipt list
    with pytest.raises(Halt, match="corrupt receipts 1"):
        store.receipts(1)
    kv.put(schema.body_key(2), b"\x00\x01")  # not RLP at all
    with pytest.raises(Halt, match="corrupt body 2"):
        store.transactions(2)
    with pytest.raises(Halt, match="corrupt body 2"):
        store.raw_transactions(2)
    kv.put(schema.receipts_key(3), b"\xc0")  # decodes, but one transaction has no receipt
    with pytest.raises(Halt, match="1 transactions but 0 receipts"):
        store.receipt(chain()[3][1][0].tx.hash)


# (block, log index) of every log in the chain, in order.
ALL_LOGS = [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (3, 0)]


@pytest.mark.parametrize(
    ("log_filter", "expected"),
    [
        (LogFilter(0, 3), ALL_LOGS),
        (LogFilter(0, 3, topics=()), ALL_LOGS),
        (LogFilter(0, 3, addresses=(TOKEN_A,)), [(1, 0), (1, 2), (3, 0)]),
        (LogFilter(0, 3, addresses=(TOKEN_A, TOKEN_B)), ALL_LOGS),
        (LogFilter(0, 3, addresses=(TOKEN_C,)), []),
        (LogFilter(0, 3, topics=((TRANSFER,),)), [(1, 0), (1, 2), (2, 1)]),
        (LogFilter(0, 3, topics=(None, (BOB_T,))), [(1, 2), (2, 1), (3, 0)]),
        (LogFilter(0, 3, topics=((TRANSFER, APPROVAL), (ALICE_T,))), [(1, 0), (1, 1)]),
        (LogFilter(0, 3, topics=(None, None, (ALICE_T, UNUSED_TOPIC))), [(1, 2), (2, 1), (3, 0)]),
        # A wildcard position still needs the log to have a topic there.
        (LogFilter(0, 3, topics=(None,)), [(1, 0), (1, 1), (1, 2), (2, 1), (3, 0)]),
        (LogFilter(0, 3, topics=((),)), [(1, 0), (1, 1), (1, 2), (2, 1), (3, 0)]),
        (LogFilter(0, 3, topics=(None, None, None, None)), []),
        (LogFilter(0, 3, topics=((UNUSED_TOPIC,),)), []),
        (LogFilter(0, 3, addresses=(TOKEN_B,), topics=((TRANSFER,),)), [(2, 1)]),
        (LogFilter(0, 3, addresses=(TOKEN_A,), topics=((TRANSFER,), (BOB_T,))), [(1, 2)]),
        (LogFilter(2, 2), [(2, 0), (2, 1)]),
        (LogFilter(2, 1_000), [(2, 0), (2, 1), (3, 0)]),
        (LogFilter(3, 2), []),
        (LogFilter(4, 9), []),
        (LogFilter(0, 0), []),
    ],
)
def test_logs(kv: KV, log_filter: LogFilter, expected: list[tuple[int, int]]) -> None:
    views = store_chain(kv).logs(log_filter)
    assert [(v.location.block_number, v.log_index) for v in views] == expected
    for view in views:
        header, txs = chain()[view.location.block_number]
        e = txs[view.location.index]
        assert view.location.block_hash == header.hash
        assert view.tx_hash == e.tx.hash
        assert view.log == [log for tx in txs for log in tx.logs][view.log_index]
        assert view.log in e.logs


def test_logs_skip_blocks_whose_bloom_excludes_the_filter(kv: KV) -> None:
    store = store_chain(kv)
    bloom = chain()[2][0].logs_bloom
    assert not bloom_contains(bloom, TOKEN_A)  # the premise: block 2 has no log of TOKEN_A
    kv.put(schema.receipts_key(2), b"garbage")
    assert [
        (v.location.block_number, v.log_index) for v in store.logs(LogFilter(0, 3, (TOKEN_A,)))
    ] == [
        (1, 0),
        (1, 2),
        (3, 0),
    ]
    with pytest.raises(Halt):  # block 2 is read when its bloom may match
        store.logs(LogFilter(0, 3, (TOKEN_B,)))


def test_unwind_removes_the_blocks_above_and_the_chain_grows_again(kv: KV) -> None:
    store = store_chain(kv)
    batch = kv.write_batch()
    for number in (1, 2, 3):  # what a validator's commit adds beside the block
        store.stage_proofs(batch, number, [b"proof %d" % number])
        batch.put(schema.certificate_key(number), b"certificate %d" % number)
    batch.commit()
    batch = kv.write_batch()
    store.stage_unwind(batch, 1)
    assert store.head_number() == 3  # nothing visible before commit
    batch.commit()
    assert store.head_number() == 1
    for number in (2, 3):
        header, txs = chain()[number]
        assert store.header(number) is None
        assert store.number_of(header.hash) is None
        assert store.transactions(number) == () and store.receipts(number) == ()
        assert all(store.tx_location(e.tx.hash) is None for e in txs)
        assert store.proofs(number) == () and store.certificate(number) is None
    assert store.proofs(1) == (b"proof 1",) and store.certificate(1) == b"certificate 1"
    assert store.header(1) == chain()[1][0]
    assert store.tx_location(chain()[1][1][0].tx.hash) is not None
    for header, txs in chain()[2:]:
        batch = kv.write_batch()
        store.stage_block(batch, header, txs)
        batch.commit()
    check_every_read(store)


def test_unwind_above_the_head_halts(kv: KV) -> None:
    store = store_chain(kv)
    with pytest.raises(Halt, match="cannot unwind to block 4"):
        store.stage_unwind(kv.write_batch(), 4)
    with pytest.raises(Halt, match="head is None"):
        ChainStore(MemoryKV()).stage_unwind(MemoryKV().write_batch(), 0)


def test_a_replaced_block_is_read_afresh(kv: KV) -> None:
    store = store_chain(kv)
    check_every_read(store)  # keeps the newest blocks decoded
    batch = kv.write_batch()
    store.stage_unwind(batch, 1)
    batch.commit()
    header, _ = chain()[2]
    _, other = chain()[3]
    replaced = replace(header, timestamp=header.timestamp + 7)
    batch = kv.write_batch()
    store.stage_block(batch, replaced, other)
    batch.commit()
    receipts = store.receipts(2)
    assert [r.tx for r in receipts] == [e.tx for e in other]
    assert {r.location.block_hash for r in receipts} == {replaced.hash}
    receipt = store.receipt(other[0].tx.hash)
    assert receipt is not None
    assert receipt.location == TxLocation(replaced.hash, 2, 0, replaced.timestamp)


def test_a_remembered_block_is_served_without_decoding(kv: KV) -> None:
    store = ChainStore(kv)
    for header, txs in chain():
        batch = kv.write_batch()
        store.stage_block(batch, header, txs)
        batch.commit()
        store.remember(header, txs)
    header, txs = chain()[1]
    # The committer's own transaction objects, not copies decoded from the stored body.
    view = store.block(1)
    assert view is not None and all(a is e.tx for a, e in zip(view.transactions, txs, strict=True))
    receipt = store.receipt(txs[0].tx.hash)
    assert receipt is not None and receipt.tx is txs[0].tx
    check_every_read(store)


def test_raw_transactions_of_a_remembered_block_come_from_memory(kv: KV) -> None:
    store = store_chain(kv)
    header, txs = chain()[1]
    raws = tuple(e.tx.raw for e in txs)
    assert store.raw_transactions(1) == raws  # from the stored body
    store.remember(header, txs)
    kv.delete(schema.body_key(1))
    assert store.raw_transactions(1) == raws  # the body is not read again
    assert ChainStore(kv).raw_transactions(1) == ()
