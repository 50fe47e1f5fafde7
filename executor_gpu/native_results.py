"""What the host keeps of a launch until its results commit.

The device compacts its per-slot buffers to the parts in use (flat arrays, slot after
slot), so that a run of consecutive transactions' entries is one slice.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from executor_gpu.native_abi import ABI, from_words
from executor_gpu.native_launch import Compacted

U64Array = npt.NDArray[np.uint64]


class LaunchResults:
    """The compacted results of one launch, and the state they read."""

    def __init__(self, compacted: Compacted, base: int) -> None:
        self.base = base
        """Transactions committed when the launch ran: every result read that state."""
        c = compacted
        self.result = c.result
        self.entries, self.entry_starts = c.entries, c.entry_starts
        self.logs, self.log_starts = c.logs, c.log_starts
        self._log_data, self._log_data_starts = c.log_data, c.log_data_starts
        self._new_code, self._new_code_starts = c.new_code, c.new_code_starts

    def log_data(self, slot: int) -> bytes:
        return self._log_data[self._log_data_starts[slot] : self._log_data_starts[slot + 1]].tobytes()

    def new_code(self, slot: int) -> bytes:
        return self._new_code[self._new_code_starts[slot] : self._new_code_starts[slot + 1]].tobytes()


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
        return self.launch.log_data(self.slot)

    @property
    def new_code(self) -> bytes:
        return self.launch.new_code(self.slot)
