"""Polling filters: eth_newFilter, eth_newBlockFilter, eth_newPendingTransactionFilter,
eth_getFilterChanges, eth_getFilterLogs, eth_uninstallFilter.

``FilterTable`` is the pure part (ids, cursors, pending queues, expiry on an injected clock);
``FilterMethods`` answers the calls from it and the NodeBackend. Block and log filters keep a
cursor (the next block to report) and read the chain when polled; pending-transaction filters
queue the hashes the node publishes (through ``EventHub``), bounded.
"""

from __future__ import annotations

import secrets
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from primitives.clock import Clock
from primitives.types import Hash32
from rpc import render
from rpc.api import NodeBackend
from rpc.codec import Args, LogQuery, data, parse_log_query, quantity
from rpc.errors import LIMIT_EXCEEDED, SERVER_ERROR, InvalidParams, RpcError
from rpc.tags import block_number
from rpc.types import LogFilter

FILTER_TIMEOUT = 300.0
"""Seconds a filter lives without being polled (go-ethereum: 5 minutes)."""
MAX_FILTERS = 10_000
"""Most filters installed at once, all callers together."""
MAX_PENDING_QUEUE = 10_000
"""Most pending transaction hashes one filter holds; older ones are dropped first."""
MAX_BLOCKS_PER_POLL = 10_000
"""Most blocks one eth_getFilterChanges reports (or scans for logs); the rest comes next poll."""

LOGS = "logs"
BLOCKS = "blocks"
PENDING = "pending"


@dataclass
class Filter:
    """One installed filter."""

    kind: str
    """LOGS, BLOCKS or PENDING."""
    next_block: int
    """First block not yet reported (LOGS and BLOCKS)."""
    last_poll: float
    """When it was created or last polled (clock seconds)."""
    query: LogQuery | None = None
    """The log criteria (LOGS)."""
    pending: deque[Hash32] = field(default_factory=lambda: deque(maxlen=MAX_PENDING_QUEUE))
    """Transaction hashes not yet reported (PENDING)."""


class FilterTable:
    """Installed filters; thread-safe (RPC calls run in a thread pool, hashes come from the node)."""

    def __init__(self, clock: Clock, timeout: float = FILTER_TIMEOUT,
                 limit: int = MAX_FILTERS) -> None:
        self._clock = clock
        self._timeout = timeout
        self._limit = limit
        self._filters: dict[str, Filter] = {}
        self._lock = threading.Lock()
        self.pending_filters = 0
        """How many PENDING filters are installed (read without the lock: a hint)."""

    def install(self, kind: str, next_block: int, query: LogQuery | None = None) -> str:
        """A new filter's id."""
        with self._lock:
            self._expire()
            if len(self._filters) >= self._limit:
                raise RpcError(LIMIT_EXCEEDED, f"too many filters installed (at most {self._limit})")
            # A quantity, no leading zeros (the spec's uint; go-ethereum trims them too).
            filter_id = quantity(secrets.randbits(128))
            self._filters[filter_id] = Filter(kind, next_block, self._clock.now(), query)
            self._count()
            return filter_id

    def uninstall(self, filter_id: str) -> bool:
        with self._lock:
            found = self._filters.pop(filter_id, None) is not None
            self._count()
            return found

    def poll(self, filter_id: str) -> Filter:
        """The filter, its poll time renewed; "filter not found" when unknown or expired."""
        with self._lock:
            self._expire()
            found = self._filters.get(filter_id)
            if found is None:
                raise RpcError(SERVER_ERROR, "filter not found")
            found.last_poll = self._clock.now()
            return found

    def advance(self, filter_id: str, next_block: int) -> None:
        """Record that blocks below ``next_block`` were reported."""
        with self._lock:
            found = self._filters.get(filter_id)
            if found is not None:
                found.next_block = max(found.next_block, next_block)

    def take_pending(self, filter_id: str) -> list[Hash32]:
        """The queued transaction hashes, removed from the queue."""
        with self._lock:
            found = self._filters.get(filter_id)
            if found is None:
                return []
            hashes = list(found.pending)
            found.pending.clear()
            return hashes

    def add_pending(self, hashes: Sequence[Hash32]) -> None:
        """Queue newly pooled transactions for every PENDING filter."""
        with self._lock:
            for found in self._filters.values():
                if found.kind == PENDING:
                    found.pending.extend(hashes)

    def __len__(self) -> int:
        return len(self._filters)

    def _expire(self) -> None:
        cutoff = self._clock.now() - self._timeout
        for filter_id in [i for i, f in self._filters.items() if f.last_poll < cutoff]:
            del self._filters[filter_id]
        self._count()

    def _count(self) -> None:
        self.pending_filters = sum(1 for f in self._filters.values() if f.kind == PENDING)


def _parse_id(value: object) -> str:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) > 66:
        raise InvalidParams("invalid filter id")
    return value


class FilterMethods:
    """The filter methods over one NodeBackend and one FilterTable."""

    def __init__(self, backend: NodeBackend, table: FilterTable) -> None:
        self._backend = backend
        self._table = table

    def methods(self) -> dict[str, tuple[int, Callable[[Args], object]]]:
        """name -> (most arguments, handler)."""
        return {
            "eth_newFilter": (1, self._new_filter),
            "eth_newBlockFilter": (0, self._new_block_filter),
            "eth_newPendingTransactionFilter": (1, self._new_pending_filter),
            "eth_getFilterChanges": (1, self._changes),
            "eth_getFilterLogs": (1, self._filter_logs),
            "eth_uninstallFilter": (1, self._uninstall),
        }

    def _next(self) -> int:
        return self._backend.head_number() + 1

    def _new_filter(self, args: Args) -> object:
        query = args.required(0, parse_log_query)
        if query.block_hash is not None:
            raise InvalidParams("a filter cannot name a block hash: use eth_getLogs")
        # As geth: changes are the logs of blocks after the filter was made (within its
        # range); eth_getFilterLogs reads the whole range.
        return self._table.install(LOGS, self._next(), query)

    def _new_block_filter(self, args: Args) -> object:
        return self._table.install(BLOCKS, self._next())

    def _new_pending_filter(self, args: Args) -> object:
        # geth's optional fullTx flag is not supported here (it is on eth_subscribe).
        return self._table.install(PENDING, self._next())

    def _uninstall(self, args: Args) -> object:
        return self._table.uninstall(args.required(0, _parse_id))

    def _changes(self, args: Args) -> object:
        filter_id = args.required(0, _parse_id)
        found = self._table.poll(filter_id)
        if found.kind == PENDING:
            return [data(tx_hash) for tx_hash in self._table.take_pending(filter_id)]
        head = self._backend.head_number()
        first = found.next_block
        last = min(head, first + MAX_BLOCKS_PER_POLL - 1)
        if found.kind == BLOCKS:
            hashes = []
            for number in range(first, last + 1):
                view = self._backend.block_by_number(number)
                if view is not None:
                    hashes.append(data(view.header.hash))
            self._table.advance(filter_id, last + 1)
            return hashes
        assert found.query is not None
        logs = self._logs(found.query, first, last)
        self._table.advance(filter_id, last + 1)
        return logs

    def _filter_logs(self, args: Args) -> object:
        found = self._table.poll(args.required(0, _parse_id))
        if found.kind != LOGS or found.query is None:
            raise RpcError(SERVER_ERROR, "filter not found")
        query = found.query
        first = block_number(self._backend, query.from_block)
        return self._logs(query, first, self._backend.head_number())

    def _logs(self, query: LogQuery, first: int, last: int) -> list[object]:
        """Logs matching ``query`` in blocks ``first``..``last`` within its own range."""
        if query.from_block.number is not None or query.from_block.tag is not None:
            first = max(first, block_number(self._backend, query.from_block))
        if query.to_block.number is not None or query.to_block.tag is not None:
            last = min(last, block_number(self._backend, query.to_block))
        if first > last:
            return []
        if last - first + 1 > MAX_BLOCKS_PER_POLL:
            raise RpcError(LIMIT_EXCEEDED, f"query exceeds max block range {MAX_BLOCKS_PER_POLL}")
        log_filter = LogFilter(first, last, query.addresses, query.topics)
        return [render.log(found) for found in self._backend.logs(log_filter)]
