"""`l2node run`: open the database, start the L1 side, serve RPC, produce blocks, post batches."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import math
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from executor_gpu.api import Caller, Executor
from executor_gpu.native_encode import receipts_root
from executor_gpu.ordered import ordered_root
from executor_gpu.recover import batch_decode
from executor_gpu.tracing import ReferenceTracer
from l1.api import BatchSignatures, L1Client
from l1.client import Web3L1Client, deploy_batch_inbox
from l1.poster import BatchPoster, LocalSignatures, PosterConfig
from node.backend import NodeRpcBackend
from node.batchsigs import GossipBatchSignatures
from node.config import NodeConfig, validator_key
from node.db.leveldb import LevelDBKV
from node.front import Fronts, PrivateSocket, front_count
from node.genesis import Genesis, chain_genesis, genesis_weights
from node.health import ReadinessCheck, ReadinessRules, quorum_peers
from node.metrics import Metrics, serve_metrics
from node.node import ChainParams, Node
from node.poster_store import KVPosterStore
from node.startup import DataDir, bind_tcp, check_listen_multiaddr, retry_bind
from node.validator import ValidatorLoop, ValidatorOptions
from node.version import version
from primitives.clock import SystemClock
from primitives.collector import CollectorTimes, tune_for_serving
from primitives.errors import Halt, InvalidInput, L2NodeError, RetryLater
from primitives.types import Address
from rpc.http import rpc_connection_cap, server_config
from rpc.server import create_app
from sequencer.types import PoolConfig

log = logging.getLogger("l2node")

MAX_VALIDATOR_PAUSE = 0.25
"""Longest wait between validator steps when nothing is due (also bounds shutdown time)."""
GIL_SWITCH_INTERVAL = 0.0005
"""Seconds a busy thread (an eth_call in py-evm) keeps the GIL while another waits for it
(Python's default: 0.005). A cheap request needs it dozens of times: under 45 looping
eth_calls, eth_blockNumber took 93 ms median (worst 1.4 s) with the default, 26 ms (worst
0.34 s) with this, and blocks came at 3.65/s and 4.05/s (of 4)."""
M_MMAP_THRESHOLD = -3
"""mallopt's parameter number (malloc.h)."""
MMAP_THRESHOLD = 1024 * 1024
"""Blocks this large and larger get their own mapping (glibc starts at 128 KiB: keeping that
made every 64-256 KiB chunk of a request body a fresh mapping, and page faults took the
event loop's time)."""
FRONT_CONNECTIONS = 64
"""Connections the private socket takes per front (each keeps one per busy worker thread)."""
FRONT_CHECK_S = 1.0
"""Seconds between checks that every front runs (a dead one is started again)."""
RPC_BACKLOG = 128
"""Connections the kernel queues for the RPC listener; asyncio also accepts at most this many
at once, each a file descriptor until the connection cap closes it (uvicorn's 2,048 ran a
1,024-file process out of descriptors under a connection flood)."""


def make_executor(kind: str) -> tuple[Executor, Caller]:
    """The configured executor, and the reference for unsigned calls."""
    from executor_gpu.reference import PyEvmExecutor

    reference = PyEvmExecutor()
    if kind == "reference":
        return reference, reference
    if kind in ("native-cpu", "native-cuda", "auto"):
        try:
            from executor_gpu.native import NativeExecutor
        except ImportError as exc:
            raise InvalidInput(f"executor {kind!r} is not available: {exc}") from exc
        device = {"native-cpu": "cpu", "native-cuda": "cuda", "auto": "auto"}[kind]
        return NativeExecutor(device=device), reference
    raise InvalidInput(f"unknown executor {kind!r}: use reference, native-cpu, native-cuda or auto")


@dataclass
class L1Side:
    """The L1 client in use and a line that says where it is."""

    client: L1Client
    """Binding to the batch contract."""
    description: str
    """For the start-up log."""
    stop: Callable[[], None] = lambda: None
    """Releases what the connection holds (the embedded L1's process)."""
    poster_balance: Callable[[], int] | None = None
    """Reads the poster account's balance on L1, in wei."""


def connect_l1(config: NodeConfig, node: Node, genesis: Genesis) -> L1Side:
    """The embedded L1 (contract deployed now) or the configured endpoint."""
    genesis_root = node.state_root(0)
    chain_id = genesis.chain_id
    signers = [v.address for v in genesis.validators]
    weights = [v.weight for v in genesis.validators]
    if not config.l1.rpc_url:
        from l1.embedded import start_embedded_l1

        embedded = start_embedded_l1(own_process=True)
        address = deploy_batch_inbox(
            embedded.w3, embedded.deployer_key, chain_id, genesis_root, signers, weights
        )
        return L1Side(
            Web3L1Client(
                embedded.w3, address, embedded.poster_key, max_part_bytes=config.l1.max_chunk_bytes
            ),
            f"embedded L1 (its own process), batch contract 0x{address.hex()}",
            embedded.stop,
            _balance_reader(embedded.w3, embedded.poster_key),
        )
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(config.l1.rpc_url, request_kwargs={"timeout": 30}))
    poster_key = poster_key_of(config)
    if config.l1.contract:
        address = contract_address(w3, config.l1.contract, "[l1] contract")
    else:
        address = deploy_batch_inbox(w3, poster_key, chain_id, genesis_root, signers, weights)
    return L1Side(
        Web3L1Client(w3, address, poster_key, max_part_bytes=config.l1.max_chunk_bytes),
        f"L1 {config.l1.rpc_url}, batch contract 0x{address.hex()}",
        poster_balance=_balance_reader(w3, poster_key),
    )


def contract_address(w3: Any, text: str, what: str) -> Address:
    """The address ``text`` names, checked to hold code on the L1 behind ``w3``: InvalidInput
    (one line) for a malformed address or one without code; RetryLater when L1 is down."""
    try:
        value = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        value = b""
    if len(value) != 20:
        raise InvalidInput(f"{what} {text!r} is not a 20-byte hex address")
    try:
        code = w3.eth.get_code(w3.to_checksum_address(value))
    except Exception as exc:
        raise RetryLater(f"cannot read the code at {text} on L1: {exc}") from exc
    if not code:
        raise InvalidInput(
            f"{what} 0x{value.hex()} has no contract code on L1 (chain id {w3.eth.chain_id}): "
            "is it the BatchInbox address, on this L1?"
        )
    return Address(value)


def _balance_reader(w3: Any, key: bytes) -> Callable[[], int]:
    from primitives.crypto import private_key_to_address

    poster = w3.to_checksum_address(private_key_to_address(key))
    return lambda: int(w3.eth.get_balance(poster))


def poster_key_of(config: NodeConfig) -> bytes:
    """The L1 poster key from ``[l1] poster_keystore``; a raw key in the config is refused."""
    from l1.keystore import read_keystore, read_password

    refuse_raw_poster_key(config)
    if not config.l1.poster_keystore:
        raise InvalidInput("an L1 endpoint needs [l1] poster_keystore (l2node keys new)")
    password_file = config.l1.poster_password_file
    password = read_password(Path(password_file) if password_file else None)
    return read_keystore(Path(config.l1.poster_keystore), password)


def refuse_raw_poster_key(config: NodeConfig) -> None:
    """A raw ``[l1] poster_key`` with a real L1 is a config mistake: InvalidInput."""
    if config.l1.rpc_url and config.l1.poster_key:
        raise InvalidInput(
            "[l1] poster_key: raw keys are refused for a real L1; "
            "put it in a keystore (l2node keys import) and set [l1] poster_keystore"
        )


def _fix_mmap_threshold() -> None:
    """Blocks of MMAP_THRESHOLD and more get their own mapping, given back when freed.

    glibc raises its threshold to the size of each such block freed (up to 32 MiB): after
    one 4.9 MB request body, the next ones came from its heaps and stayed there (200 at once
    left RSS 355 MB higher for good). A fixed threshold ends that. Other C libraries:
    nothing to do.
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the node decides how to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def run_node(config: NodeConfig) -> None:
    """Run until SIGINT or SIGTERM, then shut down cleanly.

    The data dir (created, writable, locked for this process) and the ports are checked
    before anything starts: each problem is one InvalidInput line.
    """
    refuse_raw_poster_key(config)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    _fix_mmap_threshold()
    with contextlib.ExitStack() as cleanup:
        data_dir = DataDir(config.data_dir)
        cleanup.callback(data_dir.close)
        # A port taken for a moment (a previous run just exiting) is waited for; one that
        # stays taken ends the node before it makes a block.
        rpc_socket = retry_bind("JSON-RPC", lambda: bind_tcp(
            "JSON-RPC", config.rpc.host, config.rpc.port, RPC_BACKLOG
        ), config.rpc.bind_retry)
        cleanup.callback(rpc_socket.close)
        if config.p2p.enabled:
            retry_bind("p2p", lambda: check_listen_multiaddr("p2p", config.p2p.listen),
                       config.rpc.bind_retry)
        metrics = Metrics()
        collector_times = CollectorTimes()
        cleanup.callback(collector_times.close)
        metrics.watch_collector(collector_times)
        if config.metrics.enabled:
            cleanup.callback(serve_metrics(metrics, config.metrics.host, config.metrics.port))
            log.info("metrics on http://%s:%d/metrics", config.metrics.host, config.metrics.port)
        kv = LevelDBKV(config.data_dir / "chain")
        try:
            asyncio.run(_serve(config, kv, metrics, rpc_socket))
        finally:
            kv.close()
            log.info("stopped")


async def _serve(
    config: NodeConfig, kv: LevelDBKV, metrics: Metrics, rpc_socket: socket.socket
) -> None:
    executor, caller = make_executor(config.executor.kind)
    genesis = chain_genesis(config)
    node = Node(
        kv,
        ChainParams.of(genesis, config.mempool.max_txs_per_block),
        PoolConfig(
            max_per_sender=config.mempool.max_per_sender,
            max_total=config.mempool.max_total,
            price_bump_percent=config.mempool.price_bump_percent,
            min_tip=config.mempool.min_tip,
            max_queued_per_sender=config.mempool.max_queued_per_sender,
            max_queued=config.mempool.max_queued,
            queued_lifetime=config.mempool.queued_lifetime,
        ),
        executor,
        caller,
        validator_key(config.validator),
        SystemClock(),
        genesis_weights(genesis),
        decode=batch_decode(gpu=executor.name == "native-cuda"),
        state_options=config.state,
        ordered_root=ordered_root(),
        receipts_root=receipts_root,
        tracer=ReferenceTracer(),
        metrics=metrics,
    )
    head = node.init_or_resume(dict(genesis.alloc))
    metrics.info.labels(version(), str(genesis.chain_id), executor.name,
                        "validator" if config.p2p.enabled else "sequencer").set(1)
    metrics.watch_pool(node.admission.pool_counts)
    metrics.watch_executor(executor)
    peers: Callable[[], int] = lambda: 0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.ExitStack() as cleanup:
        # The trie's top into the committer's cache while the node starts: a block's state
        # work stops it, and it goes on after the block's write until it is done.
        node.state.warm_top(head.state_root)
        cleanup.callback(node.state.stop_warm)
        cleanup.callback(node.drain)  # the block in flight, written before the store closes
        signatures: BatchSignatures
        l1: L1Side | None = None
        if config.p2p.enabled:
            validator = _start_validator(config, node, cleanup)
            metrics.watch_peers(validator.gossip)
            metrics.watch_dropped(validator.dropped_checks)
            peers = lambda: len(validator.gossip.peers())
            # Every validator answers the poster's requests for batch and validator-set
            # signatures; quorums count each epoch's weights, as the L1 contract does once
            # the poster installed that epoch's set.
            signatures = GossipBatchSignatures(node, validator.gossip, node.clock.now)
            tasks = [asyncio.create_task(_drive(validator, stop))]
            # The designated poster is the validator configured with an L1 endpoint.
            if config.l1.rpc_url:
                l1 = connect_l1(config, node, genesis)
                cleanup.callback(l1.stop)
            backend = NodeRpcBackend(node, None if l1 is None else l1.client,
                                     relay=validator.relay, peers=validator.gossip,
                                     l1_final_depth=config.l1.confirmations)
        else:
            signatures = LocalSignatures(node.validator_key)
            l1 = connect_l1(config, node, genesis)
            cleanup.callback(l1.stop)
            backend = NodeRpcBackend(node, l1.client, l1_final_depth=config.l1.confirmations)
            tasks = [
                asyncio.create_task(
                    _every(config.chain.block_time, node.produce_pipelined if config.executor.pipelined
                           else node.produce_block, stop, "block")
                ),
            ]
        if l1 is not None:
            poster = BatchPoster(
                l1.client,
                node,
                signatures,
                KVPosterStore(kv),
                SystemClock(),
                PosterConfig(
                    blocks_per_batch=config.l1.blocks_per_batch,
                    confirmations=config.l1.confirmations,
                    stuck_blocks=config.l1.stuck_blocks,
                ),
            )
            # L1 trouble must never stop the L2: the poster resumes from the contract's state.
            tasks.append(asyncio.create_task(_every(
                config.l1.poll_interval, _measured(poster, node, metrics, l1), stop, "poster",
                contain_bugs=True,
            )))
        where = "L1 posting off (no [l1] rpc_url)" if l1 is None else l1.description
        log.info(
            "chain %d head %d root %s executor %s; %s",
            genesis.chain_id, head.number, head.state_root.hex()[:12], executor.name, where,
        )
        rules = ReadinessRules(
            block_time=config.chain.block_time,
            bounds=config.health,
            peers_needed=quorum_peers(len(genesis.validators)) if config.p2p.enabled else 0,
            posts_to_l1=l1 is not None,
        )
        readiness = ReadinessCheck(metrics, rules, peers, time.monotonic)
        # What is alive now lives as long as the node: the collector's full passes skip it.
        tune_for_serving()
        await _serve_rpc(config, backend, readiness, rpc_socket, tasks, stop)


BALANCE_EVERY_S = 15.0
"""Seconds between reads of the poster's L1 balance (a metric)."""


def _measured(poster: BatchPoster, node: Node, metrics: Metrics, l1: L1Side) -> Callable[[], None]:
    """``poster.step`` that reports L1's latest batch, the L1 lag and the poster's balance."""
    balance_due = 0.0

    def step() -> None:
        nonlocal balance_due
        latest = poster.step()
        metrics.l1_step(latest, node.head_number())
        if l1.poster_balance is not None and time.monotonic() >= balance_due:
            balance_due = time.monotonic() + BALANCE_EVERY_S
            with contextlib.suppress(Exception):  # L1 down: the poster reports it
                metrics.poster_balance.set(l1.poster_balance())

    return step


def _start_validator(
    config: NodeConfig, node: Node, cleanup: contextlib.ExitStack
) -> ValidatorLoop:
    """Join the validator network over libp2p; the host stops when ``cleanup`` closes."""
    from p2p.host import HostConfig, Libp2pGossip, load_or_create_identity

    identity = load_or_create_identity(
        Path(config.p2p.identity_file or config.data_dir / "p2p.key")
    )

    def started() -> Libp2pGossip:
        # A host whose start failed cannot start again: each attempt gets a new one.
        gossip = Libp2pGossip(
            identity, HostConfig(listen=(config.p2p.listen,), bootstrap=config.p2p.bootstrap)
        )
        gossip.start()
        return gossip

    gossip = retry_bind("libp2p", started, config.rpc.bind_retry)
    cleanup.callback(gossip.stop)
    log.info("p2p %s as %s", " ".join(gossip.addrs), gossip.peer_id)
    return ValidatorLoop(
        node,
        node.metrics.counting(gossip),
        node.clock,
        ValidatorOptions(
            block_time=config.chain.block_time,
            tx_batch_interval=config.p2p.tx_batch_interval,
            consensus=config.consensus,
            challenge_seconds=config.validator.challenge_seconds or float("inf"),
            challenge_device=config.validator.challenge_device,
        ),
    )


async def _drive(validator: ValidatorLoop, stop: asyncio.Event) -> None:
    """Step the validator whenever a message arrives or its next deadline passes."""
    while not stop.is_set():
        await _guarded(validator.step, stop, "validator")
        wake = validator.next_wakeup()
        pause = MAX_VALIDATOR_PAUSE if wake is None else wake - validator.clock.now()
        await asyncio.to_thread(validator.wait, min(max(pause, 0.0), MAX_VALIDATOR_PAUSE))


async def _serve_rpc(
    config: NodeConfig, backend: NodeRpcBackend, readiness: ReadinessCheck,
    rpc_socket: socket.socket, tasks: list[asyncio.Task[None]], stop: asyncio.Event,
) -> None:
    """Serve JSON-RPC on ``rpc_socket`` (bound at start) until ``stop`` or until a task ends
    (a Halt), then stop everything. With fronts ([rpc] fronts), they serve ``rpc_socket``
    and the node serves them on its private socket."""
    limits = config.rpc
    stopping = threading.Event()
    fronts = front_count(limits.fronts)
    private = PrivateSocket(config.data_dir) if fronts else None
    if private is not None:
        # Origins and Host headers are the fronts' to check; the node sees only its fronts.
        app = create_app(backend, limits, stopping, readiness=readiness, private=True)
        sockets = [private.socket]
        connections = max(rpc_connection_cap(limits.max_connections), FRONT_CONNECTIONS * fronts)
    else:
        app = create_app(backend, limits, stopping, readiness=readiness, cors=limits.cors,
                         hosts=limits.hosts)
        sockets = [rpc_socket]
        connections = rpc_connection_cap(limits.max_connections)
    server = _Server(server_config(
        app, config.rpc.host, config.rpc.port, limits, connections, log_level="warning",
        lifespan="off",
        log_config=None,  # uvicorn's lines go through the node's handlers (and throttle)
        backlog=RPC_BACKLOG, ws_max_size=limits.max_body_bytes,
        # Running calls are stopped (``stopping``) and get their answer; a request whose
        # body still trickles in is cut off.
        timeout_graceful_shutdown=math.ceil(limits.evm_timeout + limits.busy_wait + 1),
    ))
    serving = asyncio.create_task(server.serve(sockets=sockets))
    while not server.started and not serving.done():
        await asyncio.sleep(0.05)
    if serving.done():
        stop.set()
        serving.result()  # re-raise why uvicorn could not start (e.g. port in use)
    front_processes = None
    if private is not None:
        front_processes = Fronts(fronts, rpc_socket, private.path, limits)
        front_processes.start()
        tasks = [*tasks, asyncio.create_task(_every(FRONT_CHECK_S, front_processes.start, stop, "fronts"))]
    log.info("JSON-RPC on http://%s:%d%s", config.rpc.host, config.rpc.port,
             f" ({fronts} front processes)" if fronts else "")
    waiting = asyncio.create_task(stop.wait())
    await asyncio.wait([waiting, *tasks], return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    log.info("shutting down")
    if front_processes is not None:
        await asyncio.to_thread(front_processes.stop)  # first: nobody new gets in
    stopping.set()
    server.should_exit = True
    await serving
    if private is not None:
        private.remove()
    for task in tasks:
        await task
    for task in tasks:
        if task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


async def _every(
    interval: float,
    step: Callable[[], Any],
    stop: asyncio.Event,
    what: str,
    contain_bugs: bool = False,
) -> None:
    """Call ``step`` in a worker thread every ``interval`` seconds until ``stop``."""
    loop = asyncio.get_running_loop()
    next_due = loop.time()
    while not stop.is_set():
        await _guarded(step, stop, what, contain_bugs)
        next_due = max(next_due + interval, loop.time())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=next_due - loop.time())


async def _guarded(
    step: Callable[[], Any], stop: asyncio.Event, what: str, contain_bugs: bool = False
) -> None:
    """Run ``step`` once in a worker thread.

    A Halt ends the node; transient errors are logged (the caller retries);
    unexpected exceptions end the node too unless ``contain_bugs``.
    """
    try:
        await asyncio.to_thread(step)
    except Halt:
        log.exception("%s: halting", what)
        stop.set()
        raise
    except RetryLater as exc:
        log.warning("%s: %s (will retry)", what, exc)
    except L2NodeError as exc:
        log.error("%s: %s", what, exc)
    except Exception:
        if not contain_bugs:
            raise
        log.exception("%s failed (will retry)", what)
