"""What the host keeps of a launch until its results commit.

The device compacts its per-slot buffers to the parts in use (flat arrays, slot after
slot), so that a run of consecutive transactions' entries is one slice.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from executor_gpu.native_abi import ABI
from executor_gpu.native_launch import Compacted
from executor_gpu.native_state import word_bytes
from primitives.blocks import Log

U64Array = npt.NDArray[np.uint64]


class LaunchResults:
    """The compacted results of one launch, and the state they read."""

    def __init__(self, compacted: Compacted, base: int, in_order: list[int] | None = None) -> None:
        self.base = base
        """Transactions committed when the launch ran: every result read that state."""
        self.in_order = in_order
        """For a sequential launch, the transaction each slot ran (all runnable ones from the
        first uncommitted on): a slot read the state after every transaction before its own."""
        c = compacted
        self.result = c.result
        self.entries, self.entry_starts = c.entries, c.entry_starts
        self.logs, self.log_starts = c.logs, c.log_starts
        self._log_data, self._log_data_starts = c.log_data, c.log_data_starts
        self._new_code, self._new_code_starts = c.new_code, c.new_code_starts

    def assumed(self, slots: npt.NDArray[np.bool_]) -> tuple[U64Array, npt.NDArray[np.intp]]:
        """The entries the marked slots took as absent (EF_ASSUMED): the keys they need, and
        the slot that needs each."""
        owners = np.repeat(np.arange(len(slots)), np.diff(self.entry_starts))
        flagged = (self.entries[:, ABI["E_FLAGS"]] & np.uint64(ABI["EF_ASSUMED"])) != 0
        chosen = slots[owners] & flagged
        entries: U64Array = self.entries[chosen]
        return entries, owners[chosen]

    def new_code(self, slot: int) -> bytes:
        return self._new_code[self._new_code_starts[slot] : self._new_code_starts[slot + 1]].tobytes()

    def receipt_logs(self, first: int, count: int) -> list[tuple[Log, ...]]:
        """The logs of slots ``first`` to ``first + count``, one tuple per slot, converted together."""
        starts = self.log_starts[first : first + count + 1]
        records = self.logs[starts[0] : starts[-1]]
        if not len(records):
            return [()] * count
        at = ABI["LG_ADDR"]
        addresses = word_bytes(records[:, at : at + 4])[:, 12:].view("V20").ravel().tolist()
        at = ABI["LG_TOPICS"]
        topics = word_bytes(records[:, at : at + 16].reshape(-1, 4)).view("V32").reshape(-1, 4).tolist()
        # Each log's data, as offsets into the slots' log data taken as one piece.
        data_starts = self._log_data_starts[first : first + count + 1]
        owners = np.repeat(np.arange(count), np.diff(starts))
        begins = data_starts[owners] - data_starts[0] + records[:, ABI["LG_DATA_OFF"]].astype(np.int64)
        ends = begins + records[:, ABI["LG_DATA_LEN"]].astype(np.int64)
        data = self._log_data[data_starts[0] : data_starts[-1]].tobytes()
        kept = [tuple(topic[:n]) for topic, n in zip(topics, records[:, ABI["LG_N_TOPICS"]].tolist())]
        datas = [data[begin:end] for begin, end in zip(begins.tolist(), ends.tolist())]
        logs = list(map(Log, addresses, kept, datas))
        bounds = (starts - starts[0]).tolist()
        return [tuple(logs[bounds[i] : bounds[i + 1]]) for i in range(count)]


class SlotResult:
    """One transaction's outcome in a launch."""

    __slots__ = ("launch", "slot")

    def __init__(self, launch: LaunchResults, slot: int) -> None:
        self.launch = launch
        self.slot = slot

    @property
    def base(self) -> int:
        """Transactions committed in the state it read."""
        in_order = self.launch.in_order
        return self.launch.base if in_order is None else in_order[self.slot]

    @property
    def status(self) -> int:
        return int(self.launch.result[self.slot, ABI["RS_STATUS"]])

    def field(self, name: str) -> int:
        """A 64-bit field of the RS_* record."""
        return int(self.launch.result[self.slot, ABI[name]])

    @property
    def entries(self) -> U64Array:
        starts = self.launch.entry_starts
        return self.launch.entries[starts[self.slot] : starts[self.slot + 1]]

    @property
    def new_code(self) -> bytes:
        return self.launch.new_code(self.slot)
