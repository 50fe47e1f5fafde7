"""What the host keeps of a launch: its per-slot buffers compacted to the parts in use.

A launch's buffers are sized for the worst transaction; the results of a whole wave
are kept until their turn to commit, so only the used entries, logs and bytes are kept,
in flat arrays that the commit can read a run of transactions from in one slice.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from executor_gpu.native_abi import ABI, from_words
from executor_gpu.native_launch import Outputs

U64Array = npt.NDArray[np.uint64]


def _flatten(per_slot: U64Array, counts: npt.NDArray[np.int64]) -> tuple[U64Array, npt.NDArray[np.int64]]:
    """The first counts[i] records of each slot, concatenated, and where each slot's start."""
    starts = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    used = np.arange(per_slot.shape[1]) < counts[:, None]
    return per_slot[used], starts


class LaunchResults:
    """The compacted results of one launch."""

    def __init__(self, out: Outputs, n: int, base: int) -> None:
        self.base = base
        """Transactions committed when the launch ran: every result read that state."""
        self.result: U64Array = out.result[:n].copy()
        """(n, RS_WORDS) result records."""
        self.entries, self.entry_starts = _flatten(
            out.entries[:n], self.result[:, ABI["RS_N_ENTRIES"]].astype(np.int64)
        )
        """Every slot's accessed state (E_* records), slot after slot."""
        self.logs, self.log_starts = _flatten(out.logs[:n], self.result[:, ABI["RS_N_LOGS"]].astype(np.int64))
        self.log_data = {
            slot: out.log_data[slot, :size].tobytes()
            for slot, size in enumerate(self.result[:, ABI["RS_LOG_DATA"]].tolist()) if size
        }
        self.new_code = {
            slot: out.new_code[slot, :size].tobytes()
            for slot, size in enumerate(self.result[:, ABI["RS_NEW_CODE"]].tolist()) if size
        }


class SlotResult:
    """One transaction's outcome in a launch."""

    __slots__ = ("launch", "slot")

    def __init__(self, launch: LaunchResults, slot: int) -> None:
        self.launch = launch
        self.slot = slot

    @property
    def base(self) -> int:
        return self.launch.base

    @property
    def status(self) -> int:
        return int(self.launch.result[self.slot, ABI["RS_STATUS"]])

    def field(self, name: str) -> int:
        """A 64-bit field of the RS_* record."""
        return int(self.launch.result[self.slot, ABI[name]])

    def word(self, name: str) -> int:
        """A 256-bit field of the RS_* record."""
        at = ABI[name]
        return from_words(self.launch.result[self.slot, at : at + 4])

    @property
    def entries(self) -> U64Array:
        starts = self.launch.entry_starts
        return self.launch.entries[starts[self.slot] : starts[self.slot + 1]]

    @property
    def logs(self) -> U64Array:
        starts = self.launch.log_starts
        return self.launch.logs[starts[self.slot] : starts[self.slot + 1]]

    @property
    def log_data(self) -> bytes:
        return self.launch.log_data.get(self.slot, b"")

    @property
    def new_code(self) -> bytes:
        return self.launch.new_code.get(self.slot, b"")
