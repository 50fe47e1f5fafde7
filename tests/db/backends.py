"""The KV backends every storage test runs over."""

from __future__ import annotations

from pathlib import Path

from node.db.api import KV
from node.db.leveldb import LevelDBKV
from node.db.memory import MemoryKV

NAMES = ["memory", "leveldb"]


class Backend:
    """Opens one store, and reopens the same one where the backend persists."""

    def __init__(self, name: str, tmp_path: Path) -> None:
        self.name = name
        self.persistent = name == "leveldb"
        self._path = tmp_path / "db"

    def open(self) -> KV:
        return LevelDBKV(self._path) if self.persistent else MemoryKV()
