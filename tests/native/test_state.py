"""The host's state loading: trie lookups stepped in C against node/db's StateView."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from executor_gpu.native_build import cpu_library
from executor_gpu.native_state import EMPTY_CODE_HASH, NO_CODE, StateTables, TrieReader
from node.db.state import GenesisAccount
from primitives.types import Address
from tests.native.chain import make_state

ADDRESSES = st.binary(min_size=20, max_size=20).map(Address)


@settings(max_examples=25, deadline=None)
@given(
    accounts=st.dictionaries(
        ADDRESSES,
        st.tuples(st.integers(0, 2**256 - 1), st.integers(0, 2**64 - 2), st.binary(max_size=40),
                  st.dictionaries(st.integers(0, 2**256 - 1), st.integers(1, 2**256 - 1), max_size=6)),
        max_size=40,
    ),
    absent=st.lists(ADDRESSES, max_size=5),
    slots=st.lists(st.integers(0, 2**256 - 1), max_size=5),
)
def test_lookups_match_the_state_view(
    accounts: dict[Address, tuple[int, int, bytes, dict[int, int]]], absent: list[Address], slots: list[int]
) -> None:
    view = make_state({
        a: GenesisAccount(balance=b, nonce=n, code=code, storage=storage)
        for a, (b, n, code, storage) in accounts.items()
    })
    tables = StateTables(view, cpu_library())
    for address in [*accounts, *absent]:
        row = tables.account_row(address)
        want = view.get_account(address)
        nonce, balance, code, exists = tables.account(row)
        assert exists == (want is not None)
        if want is not None:
            assert (nonce, balance) == (want.nonce, want.balance)
            assert tables.code_hash(row) == want.code_hash
            if want.code_hash == EMPTY_CODE_HASH:
                assert code == NO_CODE
            else:
                assert tables.code(code) == view.get_code(address)
        storage = accounts.get(address, (0, 0, b"", {}))[3]
        for slot in [*storage, *slots]:
            assert tables.slot_value(tables.slot_row(address, slot)) == view.get_storage(address, slot)


def test_missing_keys_and_empty_trie() -> None:
    view = make_state({})
    reader = TrieReader(view.node_store, cpu_library())
    assert reader.get(view.state_root, b"\x01" * 20) is None
    view = make_state({Address(b"\x01" * 20): GenesisAccount(balance=5)})
    reader = TrieReader(view.node_store, cpu_library())
    assert reader.get(view.state_root, b"\x02" * 20) is None
    assert reader.get(view.state_root, b"\x01" * 20) is not None
