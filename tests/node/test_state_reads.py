"""The node reads its head from the flat state, keeps the state cache on the committed head, and
rebuilds the flat tables of a data dir written before them."""

from __future__ import annotations

from node.db import schema
from node.db.memory import MemoryKV
from node.db.state import StateView
from primitives.clock import ManualClock
from tests.db.test_flat_state import flat_tables
from tests.node.helpers import RECIPIENT, USERS, VALIDATOR_KEYS, make_node, transfer


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
