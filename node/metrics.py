"""Prometheus metrics of a running node (``[metrics]`` port, GET /metrics), named in the style
of op-node and reth: ``l2node_<area>_<what>[_<unit>][_total]``.

Only node/ imports prometheus_client. Components report through what node/ already sees
(a committed block, admission outcomes, a poster step, a gate verdict) or expose their state
for reading at scrape time (the pool's size, the peers, the executor's fallback counters).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from l1.types import CommittedBatch
from p2p.api import GateValidator, Gossip, MessageHandler, RequestHandler
from p2p.types import PeerId, Validation
from primitives.blocks import Header
from primitives.collector import GENERATIONS, CollectorTimes
from primitives.errors import InvalidTransaction, L2NodeError, TransactionRejected
from primitives.transactions import Transaction
from primitives.types import Hash32
from sequencer import mempool

_REJECTION_REASONS = {
    reason: reason.replace(" ", "_").replace("*", "x").replace("+", "plus")
    for reason in (
        mempool.ALREADY_KNOWN, mempool.NONCE_TOO_LOW, mempool.NONCE_TOO_HIGH,
        mempool.INSUFFICIENT_FUNDS, mempool.FEE_CAP_TOO_LOW, mempool.UNDERPRICED,
        mempool.REPLACE_UNDERPRICED, mempool.GAS_LIMIT_EXCEEDED, mempool.INTRINSIC_GAS_TOO_LOW,
        mempool.INITCODE_TOO_LARGE, mempool.POOL_FULL,
    )
}
"""The pool's rejections (go-ethereum's wording) as metric labels."""

COMMIT_TIMES_KEPT = 100_000
"""Commit times kept for the L1 lag (a day of 1 s blocks)."""

# The *_created series only double what a scrape has to read.
disable_created_metrics()  # type: ignore[no-untyped-call]

_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class BlockReport:
    """What the node knows about a block when it commits it."""

    header: Header
    """The committed block's header."""
    transactions: int
    """How many transactions it holds."""
    round: int
    """Consensus round it was decided in (0 for a single validator)."""
    finality_s: float
    """Seconds from the block's proposal (built here, or received and re-executed) to its
    commit."""
    stages: Mapping[str, float]
    """Seconds per stage of the block path spent on it here (node.stages.StageTimes: select or
    decode, execute, state, write, advance)."""

    @property
    def hash(self) -> Hash32:
        """The block's hash."""
        return self.header.hash


def rejection_reason(error: L2NodeError) -> str:
    """A bounded label for why admission refused a transaction."""
    if isinstance(error, TransactionRejected):
        return _REJECTION_REASONS.get(str(error), "rejected_other")
    if isinstance(error, InvalidTransaction):
        return "invalid_transaction"
    return "other"


class Metrics:
    """Every metric of one node, in its own registry (served by ``serve_metrics``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes
        self.info = Gauge("l2node_info", "Always 1; the labels describe this node",
                          ["version", "chain_id", "executor", "role"], registry=r)
        self.head_height = Gauge("l2node_head_height", "Number of the latest block", registry=r)
        self.head_timestamp = Gauge("l2node_head_timestamp_seconds",
                                    "Timestamp of the latest block", registry=r)
        self.finalized_height = Gauge(
            "l2node_finalized_height",
            "Number of the latest final block (BFT finality: every committed block)", registry=r)
        self.blocks = Counter("l2node_blocks", "Blocks committed by this node", registry=r)
        self.transactions = Counter("l2node_transactions",
                                    "Transactions in the blocks committed by this node", registry=r)
        self.gas_used = Counter("l2node_gas_used", "Gas used by the committed blocks", registry=r)
        self.gas_per_second = Gauge(
            "l2node_gas_per_second",
            "Gas of the latest block over the wall time since the block before", registry=r)
        self.block_stage = Histogram(
            "l2node_block_stage_seconds", "Time per block in each stage here", ["stage"],
            buckets=_SECONDS_BUCKETS, registry=r)
        self.finality = Histogram(
            "l2node_block_finality_seconds",
            "From a block's proposal (built or received here) to its commit",
            buckets=_SECONDS_BUCKETS, registry=r)
        self.consensus_round = Gauge("l2node_consensus_round",
                                     "Round in which the latest block was decided", registry=r)
        self.round_changes = Counter(
            "l2node_consensus_round_changes",
            "Rounds that ended without a decision (a missing or late proposer: a failover)",
            registry=r)
        self.txpool_accepted = Counter("l2node_txpool_accepted",
                                       "Transactions admitted to the pool", registry=r)
        self.txpool_rejected = Counter("l2node_txpool_rejected",
                                       "Transactions refused at admission", ["reason"], registry=r)
        self.txpool_size = Gauge(
            "l2node_txpool_transactions",
            "Pooled transactions: pending (executable next) and queued (behind a nonce gap)",
            ["state"], registry=r)
        self.peers = Gauge("l2node_p2p_peers", "Peers connected on the validator network",
                           registry=r)
        self.gossip = Counter("l2node_p2p_gossip_messages",
                              "Gossip messages by topic and gate verdict", ["topic", "result"],
                              registry=r)
        self.l1_latest_batch = Gauge("l2node_l1_latest_batch",
                                     "Number of the latest batch the L1 contract holds", registry=r)
        self.l1_batches_posted = Counter("l2node_l1_batches_posted",
                                         "Batches seen committed on L1 since start", registry=r)
        self.l1_committed_height = Gauge("l2node_l1_committed_height",
                                         "Last L2 block committed to L1", registry=r)
        self.l1_lag_blocks = Gauge("l2node_l1_lag_blocks",
                                   "Final L2 blocks not yet committed to L1", registry=r)
        self.l1_lag_seconds = Gauge(
            "l2node_l1_lag_seconds",
            "Age of the oldest final L2 block not yet committed to L1 (0: none)", registry=r)
        self.poster_balance = Gauge("l2node_l1_poster_balance_wei",
                                    "Balance of the L1 poster account", registry=r)
        self._lock = threading.Lock()
        self._last_block_at: float | None = None
        self.started_at = time.monotonic()
        """When this object was made (the node's start): readiness measures from it."""
        self.head_number = 0
        """The head's number (as the gauge says)."""
        self.l1_lag_s = 0.0
        """The latest L1 lag in seconds (0 before the first poster step)."""
        self._commits: deque[tuple[int, float]] = deque(maxlen=COMMIT_TIMES_KEPT)
        """(number, time.monotonic()) of the blocks committed here and not yet on L1."""
        self._l1_latest: CommittedBatch | None = None
        self._l1_number = 0
        self._l1_steps = 0

    # -- reports -------------------------------------------------------------------------------

    @property
    def last_block_at(self) -> float | None:
        """time.monotonic() of the latest commit, None before the first."""
        return self._last_block_at

    def block_committed(self, report: BlockReport) -> None:
        """A block became this node's head."""
        header = report.header
        now = time.monotonic()
        with self._lock:
            since, self._last_block_at = self._last_block_at, now
            self._commits.append((header.number, now))
        self._set_head(header)
        self.blocks.inc()
        self.transactions.inc(report.transactions)
        self.gas_used.inc(header.gas_used)
        if since is not None and now > since:
            self.gas_per_second.set(header.gas_used / (now - since))
        for stage, seconds in report.stages.items():
            self.block_stage.labels(stage).observe(seconds)
        self.finality.observe(report.finality_s)
        self.consensus_round.set(report.round)
        self.round_changes.inc(report.round)

    def head_loaded(self, header: Header) -> None:
        """The head found in the database at start."""
        self._set_head(header)

    def _set_head(self, header: Header) -> None:
        self.head_number = header.number
        self.head_height.set(header.number)
        self.finalized_height.set(header.number)
        self.head_timestamp.set(header.timestamp)

    def admitted(self, outcomes: Sequence[Transaction | L2NodeError]) -> None:
        """Admission's verdicts on a batch of transactions."""
        refused = [o for o in outcomes if isinstance(o, L2NodeError)]
        self.txpool_accepted.inc(len(outcomes) - len(refused))
        for error in refused:
            self.txpool_rejected.labels(rejection_reason(error)).inc()

    def l1_step(self, latest: CommittedBatch | None, head: int) -> None:
        """After a poster step: ``latest`` is L1's latest batch (None: none yet, or L1 did not
        answer: the last one seen stands), ``head`` this node's head."""
        if latest is None:
            latest = self._l1_latest
        number = 0 if latest is None else latest.batch_number
        # The first step sets the baseline: batches of an earlier run are not counted.
        if self._l1_steps and number > self._l1_number:
            self.l1_batches_posted.inc(number - self._l1_number)
        self._l1_latest, self._l1_number = latest, number
        self._l1_steps += 1
        committed = 0 if latest is None else latest.last_block
        self.l1_latest_batch.set(number)
        self.l1_committed_height.set(committed)
        self.l1_lag_blocks.set(max(0, head - committed))
        with self._lock:
            while self._commits and self._commits[0][0] <= committed:
                self._commits.popleft()
            oldest = self._commits[0] if self._commits else None
        if head <= committed:
            self.l1_lag_s = 0.0
        else:
            # A block committed before this start (or too long ago to be kept) counts from
            # the start.
            known = oldest is not None and oldest[0] == committed + 1
            since = oldest[1] if oldest is not None and known else self.started_at
            self.l1_lag_s = max(0.0, time.monotonic() - since)
        self.l1_lag_seconds.set(self.l1_lag_s)

    # -- live state, read at scrape time -------------------------------------------------------

    def watch_pool(self, counts: Callable[[], tuple[int, int]]) -> None:
        """``counts()`` gives (pending, queued)."""
        self.txpool_size.labels("pending").set_function(lambda: counts()[0])
        self.txpool_size.labels("queued").set_function(lambda: counts()[1])

    def watch_peers(self, gossip: Gossip) -> None:
        self.peers.set_function(lambda: len(gossip.peers()))

    def watch_poster_balance(self, balance: Callable[[], int]) -> None:
        """``balance()`` reads the poster's L1 balance (a failed read shows NaN)."""

        def read() -> float:
            try:
                return float(balance())
            except Exception:  # noqa: BLE001 -- L1 down: the scrape still answers
                return float("nan")

        self.poster_balance.set_function(read)

    def watch_executor(self, executor: object) -> None:
        """Native executors count their fallbacks to the reference and their runs on the host's
        CPU build, by reason, and the host's time per phase: exported as they stand at each
        scrape."""
        self.registry.register(_ExecutorCollector(executor))

    def watch_collector(self, times: CollectorTimes) -> None:
        """Python's cycle collector: its seconds and passes by generation (its full passes
        hold the GIL for the whole heap's walk), as they stand at each scrape."""
        self.registry.register(_CollectorCollector(times))

    def watch_dropped(self, dropped: Callable[[], Mapping[str, int]]) -> None:
        """``dropped()`` gives the gossip messages each topic's gate dropped unchecked for want
        of room (ValidatorLoop.dropped_checks), read at each scrape: a node that drops its
        peers' transactions proposes without them."""
        self.registry.register(_DroppedCollector(dropped))

    def counting(self, gossip: Gossip) -> Gossip:
        """``gossip`` whose gate verdicts are counted per topic."""
        return _CountingGossip(gossip, self.gossip)


class _ExecutorCollector(Collector):
    """Reads a native executor's ``fallback_reasons``, ``host_runs`` and ``host_time`` when
    scraped."""

    def __init__(self, executor: object) -> None:
        self._executor = executor

    def collect(self) -> Iterable[Metric]:
        fallbacks = CounterMetricFamily(
            "l2node_executor_fallbacks",
            "Transactions the native executor handed to the reference executor, by reason",
            labels=["reason"])
        reasons: Mapping[str, int] = getattr(self._executor, "fallback_reasons", {})
        for reason, count in sorted(reasons.items()):
            fallbacks.add_metric([reason], count)
        yield fallbacks
        on_host: Mapping[str, int] | None = getattr(self._executor, "host_runs", None)
        if on_host is not None:
            runs = CounterMetricFamily(
                "l2node_executor_host_runs",
                "Transactions the native executor's device left to the host's CPU build "
                "(the GPU's KZG point evaluations), by reason",
                labels=["reason"])
            for reason, count in sorted(on_host.items()):
                runs.add_metric([reason], count)
            yield runs
        host = getattr(self._executor, "host_time", None)
        if host is not None:
            phases = CounterMetricFamily(
                "l2node_executor_host_seconds",
                "Native executor host time by phase (load, pack, commit, diff)",
                labels=["phase"])
            for phase in ("load", "pack", "commit", "diff"):
                phases.add_metric([phase], float(getattr(host, phase, 0.0)))
            yield phases
        device = getattr(getattr(self._executor, "device", None), "time", None)
        if device is not None:
            spent = CounterMetricFamily(
                "l2node_executor_device_seconds",
                "Native executor device time by phase (upload, kernel, download; the CPU "
                "build's kernel is its interpreter)",
                labels=["phase"])
            for phase in ("upload", "kernel", "download"):
                spent.add_metric([phase], float(getattr(device, phase, 0.0)))
            yield spent


class _CollectorCollector(Collector):
    """Reads a ``CollectorTimes`` when scraped."""

    def __init__(self, times: CollectorTimes) -> None:
        self._times = times

    def collect(self) -> Iterable[Metric]:
        seconds = CounterMetricFamily(
            "l2node_gc_seconds", "Seconds Python's cycle collector ran, by generation "
            "(2: full passes, which walk every tracked object)", labels=["generation"])
        passes = CounterMetricFamily(
            "l2node_gc_collections", "Passes of Python's cycle collector, by generation",
            labels=["generation"])
        for generation in range(GENERATIONS):
            seconds.add_metric([str(generation)], self._times.seconds[generation])
            passes.add_metric([str(generation)], self._times.passes[generation])
        yield seconds
        yield passes


class _DroppedCollector(Collector):
    """Reads ``ValidatorLoop.dropped_checks`` when scraped."""

    def __init__(self, dropped: Callable[[], Mapping[str, int]]) -> None:
        self._dropped = dropped

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "l2node_p2p_gossip_dropped", "Gossip messages dropped unchecked for want of room in "
            "their topic's check queue (also counted as ignored)", labels=["topic"])
        for topic, count in self._dropped().items():
            family.add_metric([topic], count)
        yield family


class _CountingGossip:
    """A Gossip that counts each gate verdict (accept / ignore / reject) per topic."""

    def __init__(self, inner: Gossip, counter: Counter) -> None:
        self._inner = inner
        self._counter = counter

    @property
    def peer_id(self) -> PeerId:
        return self._inner.peer_id

    def subscribe(self, topic: str, validator: GateValidator, handler: MessageHandler) -> None:
        children = {v: self._counter.labels(topic, v.value) for v in Validation}

        def count(done: Future[Validation]) -> None:
            if done.exception() is None:
                children[done.result()].inc()

        def counted(peer: PeerId, data: bytes) -> Validation | Future[Validation]:
            verdict = validator(peer, data)
            if isinstance(verdict, Validation):
                children[verdict].inc()
            else:  # counted when a worker has decided it
                verdict.add_done_callback(count)
            return verdict

        self._inner.subscribe(topic, counted, handler)

    def publish(self, topic: str, data: bytes) -> None:
        self._inner.publish(topic, data)

    def peers(self) -> tuple[PeerId, ...]:
        return self._inner.peers()

    def serve(self, protocol: str, handler: RequestHandler) -> None:
        self._inner.serve(protocol, handler)

    def request(self, peer: PeerId, protocol: str, data: bytes, timeout: float) -> bytes:
        return self._inner.request(peer, protocol, data, timeout)


def serve_metrics(metrics: Metrics, host: str, port: int) -> Callable[[], None]:
    """Serve GET /metrics on ``host:port`` now, in a thread; returns the function that stops it.
    A port that cannot be bound is one InvalidInput line."""
    from prometheus_client import start_http_server

    from node.startup import port_error

    try:
        server, thread = start_http_server(port, host, registry=metrics.registry)
    except OSError as exc:
        raise port_error("metrics", host, port, exc) from None

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
