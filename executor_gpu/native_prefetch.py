"""Storage slots a transaction will read, guessed before it runs, so that it runs once.

A transaction that reads a slot the host has not loaded stops to ask for it and runs again; an
ERC-20 ``transfer`` asks twice (the sender's balance, then, once it no longer reverts, the
recipient's), so it ran three times. Solidity keeps a mapping entry at
keccak256(key . slot index), and the keys of a function's mappings are most often its caller
or its arguments: ``SlotPatterns`` learns, per contract and function selector, which of those
(and which index) the slots it asked for were, and loads them for later calls before they run.
A guess only loads pre-state values earlier: it never changes a result.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from executor_gpu.native_abi import ABI
from executor_gpu.native_build import HOST_THREADS
from executor_gpu.native_state import word_bytes
from primitives.crypto import keccak256
from primitives.transactions import Transaction

ARGUMENTS = 3
"""Call data words (after the selector) tried as mapping keys, besides the caller."""
INDEXES = 8
"""Mapping slot indexes tried: the first state variables of a contract."""
LESSONS = 16
"""Unexplained slots a function is studied on before its patterns are taken as known."""
FUNCTIONS = 4096
"""Functions whose patterns are kept, least recently used forgotten."""

Pattern = tuple[int, int]
"""(source, index): source 0 is the caller, 1 + j the j-th argument word."""


@dataclass
class _Function:
    patterns: set[Pattern] = field(default_factory=set)
    lessons: int = 0


class SlotPatterns:
    """What an executor learned of its contracts' mapping reads (kept across blocks)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib
        self._functions: OrderedDict[tuple[bytes, bytes], _Function] = OrderedDict()

    def learn(self, txs: Sequence[Transaction], keys: Sequence[bytes]) -> None:
        """``txs[i]`` asked for the slot ``keys[i]`` (contract address + 32-byte slot)."""
        for tx, key in zip(txs, keys):
            to = tx.to
            if to is None or len(tx.data) < 4 or key[:20] != to:
                continue
            name = (to, tx.data[:4])
            function = self._functions.get(name)
            if function is None:
                function = self._functions[name] = _Function()
                if len(self._functions) > FUNCTIONS:
                    self._functions.popitem(last=False)
            if function.lessons >= LESSONS:
                continue
            slot = key[20:]
            sources = _sources(tx)
            if any(_slot(sources[s], i) == slot for s, i in function.patterns if s < len(sources)):
                continue  # a slot of a pattern known since this transaction was packed
            function.lessons += 1
            function.patterns.update(
                (s, i) for s, word in enumerate(sources) for i in range(INDEXES)
                if _slot(word, i) == slot
            )

    def slots(self, records: npt.NDArray[np.uint64], data: npt.NDArray[np.uint8]) -> list[bytes]:
        """The slots (contract address + 32-byte slot) transactions are expected to read, given
        their TX_* records and the batch's call data; a function's callers together, in arrays."""
        length = records[:, ABI["TX_DATA_LEN"]].astype(np.int64)
        calls = (length >= 4) & (records[:, ABI["TX_FLAGS"]] & np.uint64(ABI["TXF_CREATE"]) == 0)
        if not self._functions or not calls.any():
            return []
        records, length = records[calls], length[calls]
        offset = records[:, ABI["TX_DATA_OFF"]].astype(np.int64)
        to = word_bytes(records[:, ABI["TX_TO"] : ABI["TX_TO"] + 4])[:, 12:]
        selector = data[offset[:, None] + np.arange(4)]
        names, function_of = np.unique(np.concatenate([to, selector], axis=1).view("V24").ravel(), return_inverse=True)
        owners: list[npt.NDArray[np.uint8]] = []
        preimages: list[npt.NDArray[np.uint8]] = []
        for at, name in enumerate(names.tolist()):
            function = self._functions.get((name[:20], name[20:]))
            if function is None or not function.patterns:
                continue
            for s, i in function.patterns:
                # Source s: the caller (0), else argument word s - 1 where the call data holds it.
                chosen = np.flatnonzero((function_of == at) & (length >= 4 + 32 * s))
                if s == 0:
                    words = word_bytes(records[chosen, ABI["TX_SENDER"] : ABI["TX_SENDER"] + 4])
                else:
                    words = data[offset[chosen, None] + (4 + 32 * (s - 1)) + np.arange(32)]
                preimage = np.empty((len(chosen), 64), dtype=np.uint8)
                preimage[:, :32] = words
                preimage[:, 32:] = np.frombuffer(i.to_bytes(32, "big"), dtype=np.uint8)
                owners.append(to[chosen])
                preimages.append(preimage)
        if not preimages:
            return []
        keys = np.concatenate(preimages)
        digests = np.empty((len(keys), 32), dtype=np.uint8)
        self._lib.evm_hash_keys(keys.ctypes.data, 64, len(keys), digests.ctypes.data, HOST_THREADS)
        slots: list[bytes] = np.concatenate([np.concatenate(owners), digests], axis=1).view("V52").ravel().tolist()
        return slots


def _sources(tx: Transaction) -> list[bytes]:
    """The 32-byte words a mapping key of ``tx`` may be: its sender, then its argument words."""
    data = tx.data
    words = [data[at : at + 32] for at in range(4, min(len(data), 4 + 32 * ARGUMENTS) - 31, 32)]
    return [tx.sender.rjust(32, b"\0"), *words]


def _slot(word: bytes, index: int) -> bytes:
    return keccak256(word + index.to_bytes(32, "big"))
