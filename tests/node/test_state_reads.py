"""The node reads its head from the flat state, keeps the state cache on the committed head,
rebuilds the flat tables of a data dir written before them, and proves state (eth_getProof)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
import rlp
from trie.exceptions import BadTrieProof
from trie.hexary import HexaryTrie

from executor_gpu.reference import PyEvmExecutor
from node.backend import NodeRpcBackend
from node.db import schema
from node.db.api import WriteBatch
from node.db.memory import MemoryKV
from node.db.state import GenesisAccount, StateView
from node.node import Node
from primitives.clock import ManualClock
from primitives.crypto import keccak256
from primitives.transactions import Transaction
from primitives.types import Address
from rpc.methods import RpcMethods
from rpc.types import TxLocation
from sequencer.types import PoolConfig
from tests.db.test_flat_state import flat_tables
from tests.node.helpers import (
    PARAMS,
    RECIPIENT,
    USERS,
    VALIDATOR_KEYS,
    WEIGHTS,
    make_node,
    transfer,
)


def test_the_head_is_read_from_the_flat_state_and_the_cache_follows_commits() -> None:
    clock = ManualClock()
    proposer, peer = make_node(clock, VALIDATOR_KEYS[0]), make_node(clock, VALIDATOR_KEYS[1])
    for block in range(1, 4):
        proposer.submit(transfer(0, block - 1))
        clock.advance(1)
        value = proposer.propose(block)
        assert peer.verify(value)
        before = peer.state.at(peer.head().state_root)
        assert before.get_account(USERS[0]).nonce == block - 1  # type: ignore[union-attr]
        head = peer.commit(value, None)
        assert proposer.commit(value, None) == head
        assert peer.state.cache.root == head.state_root
        # A view of the old head, opened before the commit, still reads the old head.
        assert before.get_account(USERS[0]).nonce == block - 1  # type: ignore[union-attr]
        assert not before.reads_flat
        view = peer.state.at(head.state_root)
        assert view.reads_flat
        for address in (USERS[0], RECIPIENT, head.coinbase):
            assert view.get_account(address) == StateView(peer.kv, head.state_root).get_account(
                address
            )
        assert view.get_account(USERS[0]).nonce == block  # type: ignore[union-attr]
        assert view.get_account(RECIPIENT).balance == block  # type: ignore[union-attr]


def test_a_data_dir_without_flat_tables_gets_them_rebuilt_on_resume() -> None:
    clock = ManualClock()
    kv = MemoryKV()
    node = make_node(clock, kv=kv)
    node.submit(transfer(1, 0))
    clock.advance(1)
    head = node.produce_block()
    flat = flat_tables(kv)
    for prefix in (schema.FLAT_ACCOUNT_PREFIX, schema.FLAT_STORAGE_PREFIX,
                   schema.FLAT_CHANGES_PREFIX, schema.FLAT_MARKER):
        for key, _ in kv.iterate(prefix):
            kv.delete(key)
    resumed = make_node(clock, kv=kv)
    assert flat_tables(kv) == flat
    view = resumed.state.at(head.state_root)
    assert view.reads_flat
    assert view.get_account(RECIPIENT).balance == 1  # type: ignore[union-attr]


CONTRACT = Address(bytes.fromhex("c0" * 20))
ABSENT = Address(bytes.fromhex("ab" * 20))


def _nodes(hex_nodes: object) -> list[object]:
    assert isinstance(hex_nodes, list)
    return [rlp.decode(bytes.fromhex(node[2:])) for node in hex_nodes]


def _proven(root: bytes, key: bytes, hex_nodes: object) -> bytes:
    """The value under ``key`` that the proof shows, checked by py-trie (not our trie code)."""
    prove = HexaryTrie.get_from_proof  # untyped in py-trie
    value: bytes = prove(root, keccak256(key), _nodes(hex_nodes))  # type: ignore[no-untyped-call]
    return value


def test_eth_get_proof_answers_proofs_that_verify_against_the_block_state_root() -> None:
    clock = ManualClock()
    reference = PyEvmExecutor()
    node = Node(MemoryKV(), PARAMS, PoolConfig(), reference, reference, VALIDATOR_KEYS[0], clock,
                WEIGHTS)
    storage = {slot: slot * 7 + 1 for slot in range(40)}
    node.init_or_resume({
        **{user: GenesisAccount(balance=10**21) for user in USERS},
        CONTRACT: GenesisAccount(balance=5, nonce=1, code=b"\x60\x00", storage=storage),
    })
    node.submit(transfer(0, 0))
    clock.advance(1)
    node.produce_block()
    methods = RpcMethods(NodeRpcBackend(node, None))
    slots = [0, 39, 1000]  # the last one is unset: a proof of absence
    for number in (0, 1):  # block 0 from the trie alone (the flat state is at block 1)
        root = node.state_root(number)
        answer = methods.dispatch(
            "eth_getProof", ["0x" + CONTRACT.hex(), [hex(s) for s in slots], hex(number)]
        )
        assert isinstance(answer, dict)
        account = rlp.decode(_proven(root, CONTRACT, answer["accountProof"]))
        assert [int.from_bytes(account[0], "big"), int.from_bytes(account[1], "big"),
                "0x" + account[2].hex(), "0x" + account[3].hex()] == [
            int(answer["nonce"], 16), int(answer["balance"], 16),
            answer["storageHash"], answer["codeHash"],
        ] == [1, 5, answer["storageHash"], "0x" + keccak256(b"\x60\x00").hex()]
        storage_root = bytes.fromhex(answer["storageHash"][2:])
        for slot, entry in zip(slots, answer["storageProof"], strict=True):
            assert entry["key"] == "0x" + slot.to_bytes(32, "big").hex()
            value = _proven(storage_root, slot.to_bytes(32, "big"), entry["proof"])
            assert int(entry["value"], 16) == storage.get(slot, 0)
            proven = int.from_bytes(rlp.decode(value), "big") if value else 0
            assert proven == storage.get(slot, 0)
    absent = methods.dispatch("eth_getProof", ["0x" + ABSENT.hex(), [], "latest"])
    assert isinstance(absent, dict)
    assert _proven(node.head().state_root, ABSENT, absent["accountProof"]) == b""
    assert (absent["balance"], absent["nonce"], absent["storageProof"]) == ("0x0", "0x0", [])
    # A proof altered in its last byte (the account's code hash) no longer verifies.
    latest = methods.dispatch("eth_getProof", ["0x" + CONTRACT.hex(), [], "latest"])
    assert isinstance(latest, dict)
    altered = list(latest["accountProof"])
    leaf = bytes.fromhex(altered[-1][2:])
    altered[-1] = "0x" + (leaf[:-1] + bytes([leaf[-1] ^ 1])).hex()
    with pytest.raises(BadTrieProof):
        _proven(node.head().state_root, CONTRACT, altered)


class CountingKV(MemoryKV):
    """Counts gets by table: flat accounts, the flat marker, trie nodes, the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.gets: Counter[str] = Counter()

    def get(self, key: bytes) -> bytes | None:
        table = ("flat account" if key.startswith(schema.FLAT_ACCOUNT_PREFIX)
                 else "marker" if key == schema.FLAT_MARKER
                 else "trie node" if key.startswith(schema.STATE_NODE_PREFIX) else "other")
        self.gets[table] += 1
        return super().get(key)


def test_admission_reads_each_new_sender_with_one_get() -> None:
    kv = CountingKV()
    node = make_node(ManualClock(), kv=kv)
    node.head()  # the head header is read once
    kv.gets.clear()
    for user in range(len(USERS)):
        node.submit(transfer(user, 0))
    # One flat row per sender, the head's flat marker once for all of them, no trie node.
    assert kv.gets["flat account"] == len(USERS)
    assert kv.gets["marker"] == 1 and kv.gets["trie node"] == 0


def test_a_transaction_is_found_while_its_block_is_being_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its block's write runs beside the pool's advance past it: a lookup in between finds it
    in that block once the write lands, never nowhere."""
    clock = ManualClock()
    node = make_node(clock)
    backend = NodeRpcBackend(node, None)
    tx = node.submit(transfer(0, 0))
    clock.advance(1)
    writing, release = threading.Event(), threading.Event()
    sealed = node.state.sealed

    def held_write(batch: WriteBatch) -> Callable[[], None]:
        write = sealed(batch)

        def held() -> None:
            writing.set()
            assert release.wait(10)
            write()

        return held

    monkeypatch.setattr(node.state, "sealed", held_write)
    producer = threading.Thread(target=node.produce_block)
    producer.start()
    assert writing.wait(10)
    deadline = time.monotonic() + 10
    while node.pool.get(tx.hash) is not None:  # the advance past the block lets it go
        assert time.monotonic() < deadline
        time.sleep(0.001)
    assert node.chain.tx_location(tx.hash) is None  # and the block is not on disk yet
    found: list[tuple[Transaction, TxLocation | None] | None] = []
    lookup = threading.Thread(target=lambda: found.append(backend.transaction(tx.hash)))
    lookup.start()
    time.sleep(0.05)
    release.set()
    lookup.join(10)
    producer.join(10)
    result = found[0] if found else None
    assert result is not None
    location = result[1]
    assert location is not None and location.block_number == 1
