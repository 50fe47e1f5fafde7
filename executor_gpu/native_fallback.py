"""The committed state of a batch as a StateReader, so the reference executor can run one transaction on it.

The reference executor walks Merkle-Patricia tries, so the view is real: the pre-state's
trie nodes plus, in memory, the nodes of the batch's changes so far.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from eth.db.account import AccountDB
from eth.db.atomic import AtomicDB
from trie.hexary import HexaryTrie

from executor_gpu.api import StateReader
from executor_gpu.native_state import EMPTY_CODE_HASH, NO_CODE, StateTables
from executor_gpu.reference import OverlayDB, decode_account, slot_value
from executor_gpu.types import Account, StateDiff
from primitives.blocks import EMPTY_ROOT
from primitives.crypto import keccak256
from primitives.types import Address, Hash32


class CommittedState:
    """``pre`` with ``diff`` applied, with its own state root and trie nodes."""

    def __init__(self, pre: StateReader, diff: StateDiff) -> None:
        self._overlay = OverlayDB(pre.node_store)
        accounts = AccountDB(AtomicDB(self._overlay), pre.state_root)
        for address, change in diff.accounts.items():
            if change is None:
                accounts.delete_account(address)
                continue
            if change.storage_reset:
                accounts.delete_storage(address)
            accounts.set_nonce(address, change.nonce)
            accounts.set_balance(address, change.balance)
            if change.code is not None:
                accounts.set_code(address, change.code)
            for slot, value in change.storage.items():
                accounts.set_storage(address, slot, value)
        accounts.persist()
        self._root = Hash32(accounts.state_root)

    @property
    def state_root(self) -> Hash32:
        """Root of the committed state."""
        return self._root

    @property
    def node_store(self) -> Mapping[bytes, bytes]:
        """Trie nodes and code of the pre-state and of the changes."""
        return self._overlay

    @property
    def reads_flat(self) -> bool:
        """False: reads walk the trie."""
        return False

    def get_account(self, address: Address) -> Account | None:
        """The account, or None."""
        return decode_account(HexaryTrie(self._overlay, self._root).get(keccak256(address)))

    def get_code(self, address: Address) -> bytes:
        """Code of the account."""
        account = self.get_account(address)
        if account is None or account.code_hash == EMPTY_CODE_HASH:
            return b""
        return self._overlay[account.code_hash]

    def get_storage(self, address: Address, slot: int) -> int:
        """Value of a storage slot."""
        account = self.get_account(address)
        if account is None or account.storage_root == EMPTY_ROOT:
            return 0
        return int(slot_value(HexaryTrie(self._overlay, account.storage_root), slot))

    def flat_accounts(self, account_hashes: Sequence[bytes]) -> list[bytes | None] | None:
        """None: no flat tables (readers walk the trie)."""
        return None

    def flat_slots(self, slot_paths: Sequence[bytes]) -> list[bytes | None] | None:
        """None: no flat tables."""
        return None

    @staticmethod
    def apply(diff: StateDiff, tables: StateTables) -> Iterator[tuple[str, int]]:
        """Commits ``diff`` (relative to the committed state) to ``tables``; yields the rows written."""
        for address, change in diff.accounts.items():
            row = tables.account_row(address)
            if change is None:
                tables.write_account(row, 0, 0, NO_CODE, EMPTY_CODE_HASH, False)
                yield "account", row
                yield from (("slot", slot_row) for slot_row in tables.wipe_storage(address))
                continue
            if change.storage_reset:
                yield from (("slot", slot_row) for slot_row in tables.wipe_storage(address))
            code_index = tables.account(row)[2]
            if change.code is not None:
                code_index = tables.code_row(change.code) if change.code else NO_CODE
            code_hash = EMPTY_CODE_HASH if code_index == NO_CODE else keccak256(tables.code(code_index))
            tables.write_account(row, change.nonce, change.balance, code_index, code_hash, True)
            yield "account", row
            for slot, value in change.storage.items():
                slot_row = tables.slot_row(address, slot)
                tables.write_slot(slot_row, value)
                yield "slot", slot_row
