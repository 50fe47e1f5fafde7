"""Metrics and readiness in process: what a node reports, and when /ready says no."""

from __future__ import annotations

import gc
from types import SimpleNamespace

from prometheus_client import generate_latest

from executor_gpu.native_launch import DeviceTime, HostTime
from l1.types import CommittedBatch
from node.config import HealthConfig
from node.health import ReadinessCheck, ReadinessRules, quorum_peers
from node.metrics import Metrics, rejection_reason
from p2p.memory import InProcessNetwork
from p2p.types import PeerId, Validation
from primitives.clock import ManualClock
from primitives.collector import CollectorTimes
from primitives.errors import InvalidTransaction, RetryLater, TransactionRejected
from primitives.types import Hash32
from sequencer import mempool
from tests.node.helpers import make_node, transfer


def value(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float:
    sample = metrics.registry.get_sample_value(name, labels or {})
    assert sample is not None, name
    return sample


def test_a_node_reports_its_blocks_and_admissions() -> None:
    metrics = Metrics()
    node = make_node(ManualClock(1_700_000_100.0))
    node.metrics = metrics
    outcomes = node.submit_many([transfer(0, 0), transfer(0, 1), transfer(1, 5), transfer(0, 0)])
    assert [type(o).__name__ for o in outcomes][-1] == "TransactionRejected"
    metrics.watch_pool(node.admission.pool_counts)
    # User 1's nonce 5 waits behind a gap: queued.
    assert value(metrics, "l2node_txpool_transactions", {"state": "pending"}) == 2
    assert value(metrics, "l2node_txpool_transactions", {"state": "queued"}) == 1
    header = node.produce_block()
    assert value(metrics, "l2node_head_height") == header.number == 1
    assert value(metrics, "l2node_transactions_total") == 2
    assert value(metrics, "l2node_gas_used_total") == 42_000
    assert value(metrics, "l2node_txpool_accepted_total") == 3
    assert value(metrics, "l2node_txpool_rejected_total", {"reason": "already_known"}) == 1
    for stage in ("select", "execute", "state", "write", "advance"):
        assert value(metrics, "l2node_block_stage_seconds_count", {"stage": stage}) == 1
    assert value(metrics, "l2node_txpool_transactions", {"state": "pending"}) == 0
    assert metrics.last_block_at is not None
    text = generate_latest(metrics.registry).decode()
    assert "l2node_executor_fallbacks" not in text  # not watched: the reference has none


def test_rejection_reasons_are_bounded_labels() -> None:
    assert rejection_reason(TransactionRejected(mempool.NONCE_TOO_LOW)) == "nonce_too_low"
    assert rejection_reason(TransactionRejected(mempool.INSUFFICIENT_FUNDS)) == (
        "insufficient_funds_for_gas_x_price_plus_value")
    assert rejection_reason(TransactionRejected("something new")) == "rejected_other"
    assert rejection_reason(InvalidTransaction("rlp: whatever 0x1234")) == "invalid_transaction"
    assert rejection_reason(RetryLater("busy")) == "other"


class Executor:
    name = "native-cuda"

    def __init__(self) -> None:
        self.fallback_reasons = {"deletion of an account with storage": 2}
        self.host_runs = {"precompile 0x0a": 1}
        self.host_time = HostTime(load=0.5, commit=0.25)
        self.device = SimpleNamespace(time=DeviceTime(upload=0.125, kernel=2.0))


def test_native_fallbacks_and_host_runs_are_read_at_each_scrape() -> None:
    metrics = Metrics()
    executor = Executor()
    metrics.watch_executor(executor)
    reason = {"reason": "deletion of an account with storage"}
    assert value(metrics, "l2node_executor_fallbacks_total", reason) == 2
    executor.fallback_reasons["deletion of an account with storage"] = 5
    assert value(metrics, "l2node_executor_fallbacks_total", reason) == 5
    assert value(metrics, "l2node_executor_host_runs_total", {"reason": "precompile 0x0a"}) == 1
    assert value(metrics, "l2node_executor_host_seconds_total", {"phase": "load"}) == 0.5
    assert value(metrics, "l2node_executor_host_seconds_total", {"phase": "commit"}) == 0.25
    executor.device.time.kernel += 1.0
    assert value(metrics, "l2node_executor_device_seconds_total", {"phase": "kernel"}) == 3.0
    assert value(metrics, "l2node_executor_device_seconds_total", {"phase": "upload"}) == 0.125


def test_the_cycle_collectors_time_is_read_at_each_scrape() -> None:
    metrics = Metrics()
    times = CollectorTimes()
    try:
        metrics.watch_collector(times)
        before = value(metrics, "l2node_gc_collections_total", {"generation": "2"})
        gc.collect()
        assert value(metrics, "l2node_gc_collections_total", {"generation": "2"}) == before + 1
        assert value(metrics, "l2node_gc_seconds_total", {"generation": "2"}) > 0
    finally:
        times.close()
    gc.collect()  # closed: no longer counted
    assert value(metrics, "l2node_gc_collections_total", {"generation": "2"}) == before + 1


def batch(number: int, last_block: int) -> CommittedBatch:
    return CommittedBatch(
        batch_number=number, prev_state_root=Hash32(b"\0" * 32), state_root=Hash32(b"\1" * 32),
        first_block=last_block - 3, last_block=last_block, data_hash=Hash32(b"\2" * 32),
        l1_tx_hash=Hash32(b"\3" * 32), l1_block_number=number,
    )


def test_l1_lag_and_batches_posted() -> None:
    metrics = Metrics()
    metrics.l1_step(batch(3, 12), head=12)  # the first step: a baseline, nothing counted
    assert value(metrics, "l2node_l1_batches_posted_total") == 0
    assert value(metrics, "l2node_l1_lag_blocks") == 0 and metrics.l1_lag_s == 0
    metrics.l1_step(None, head=14)  # L1 did not answer: batch 3 stands
    assert value(metrics, "l2node_l1_committed_height") == 12
    assert value(metrics, "l2node_l1_lag_blocks") == 2 and metrics.l1_lag_s > 0
    metrics.l1_step(batch(5, 20), head=20)
    assert value(metrics, "l2node_l1_batches_posted_total") == 2
    assert value(metrics, "l2node_l1_latest_batch") == 5 and metrics.l1_lag_s == 0


def test_gossip_verdicts_are_counted_per_topic() -> None:
    metrics = Metrics()
    network = InProcessNetwork(ManualClock(0.0))
    sender, receiver = network.join("a"), metrics.counting(network.join("b"))
    verdicts = iter([Validation.ACCEPT, Validation.REJECT, Validation.IGNORE, Validation.ACCEPT])
    received: list[bytes] = []
    receiver.subscribe("t", lambda _p, _d: next(verdicts), lambda _p, d: received.append(d))
    for data in (b"1", b"2", b"3", b"4"):
        sender.publish("t", data)
    network.deliver_due()
    assert received == [b"1", b"4"]
    for result, count in (("accept", 2), ("reject", 1), ("ignore", 1)):
        assert value(metrics, "l2node_p2p_gossip_messages_total",
                     {"topic": "t", "result": result}) == count
    assert receiver.peers() == (PeerId("a"),)


def test_gossip_dropped_for_want_of_room_is_read_at_each_scrape() -> None:
    metrics = Metrics()
    dropped = {"l2/txs/1": 3, "l2/proofs/2": 0}
    metrics.watch_dropped(lambda: dropped)
    assert value(metrics, "l2node_p2p_gossip_dropped_total", {"topic": "l2/txs/1"}) == 3
    dropped["l2/txs/1"] = 5
    assert value(metrics, "l2node_p2p_gossip_dropped_total", {"topic": "l2/txs/1"}) == 5
    assert value(metrics, "l2node_p2p_gossip_dropped_total", {"topic": "l2/proofs/2"}) == 0


def test_readiness_rules() -> None:
    assert [quorum_peers(n) for n in (1, 2, 3, 4, 7)] == [0, 1, 2, 2, 4]
    metrics = Metrics()
    now = metrics.started_at
    peers = 2
    rules = ReadinessRules(block_time=1.0, bounds=HealthConfig(5.0, 60.0), peers_needed=2,
                           posts_to_l1=True)
    check = ReadinessCheck(metrics, rules, lambda: peers, lambda: now)
    assert check().ready
    now += 6.0
    assert check().reasons == ("head 0 has not advanced for 6.0 s (limit 5.0 s, 5 block times)",)
    peers = 1
    assert check().reasons[1] == "1 peers connected, a quorum needs 2"
    metrics.l1_lag_s = 61.0
    assert check().reasons[2] == "L1 is 61 s behind (limit 60 s)"
    assert dict(check().details) == {"head": 0, "head_age_seconds": 6.0, "peers": 1,
                                     "l1_lag_seconds": 61.0}
