"""The KV backends every storage test runs over."""

from __future__ import annotations

from pathlib import Path

from node.db.api import KV
from node.db.leveldb import NODE_SHARDS, LevelDBKV
from node.db.memory import MemoryKV

NAMES = ["memory", "leveldb", "leveldb-one-database"]
"""LevelDB with the state's nodes in databases of their own (a new store's layout), and in
its one database (a store made before them)."""


class Backend:
    """Opens one store, and reopens the same one where the backend persists."""

    def __init__(self, name: str, tmp_path: Path) -> None:
        self.name = name
        self.persistent = name.startswith("leveldb")
        self._path = tmp_path / "db"

    def open(self) -> KV:
        if not self.persistent:
            return MemoryKV()
        return LevelDBKV(self._path, node_shards=0 if self.name == "leveldb-one-database" else NODE_SHARDS)
