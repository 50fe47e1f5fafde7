"""The node: wires storage, execution, the pool, block production and L1 posting together."""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from operator import attrgetter
from typing import TypeVar

from executor_gpu.api import Caller, Executor, Tracer
from executor_gpu.native_mpt import pack_changes, with_trie_keys
from executor_gpu.types import (
    BatchResult,
    BlockEnv,
    ExecutedTx,
    StateDiff,
)
from l1.types import L2BlockData
from node.admit import Admission
from node.blocks import Block, decode_block, encode_block, proofs_commitment, transactions_room
from node.calls import Calls
from node.db import schema
from node.db.api import KV, WriteBatch
from node.db.chain import ChainStore
from node.db.pending import PENDING_ROOT, PendingView
from node.db.state import GenesisAccount, StateDB, StateOptions
from node.epochs import MAX_PROOFS_PER_BLOCK, Epochs
from node.genesis import Genesis
from node.metrics import BlockReport, Metrics
from node.stages import StageTimes, format_stages
from primitives.blocks import (
    EMPTY_BLOOM,
    EMPTY_ROOT,
    Header,
    OrderedRoot,
    ReceiptsRoot,
    ordered_trie_root,
)
from primitives.blocks import receipts_root as python_receipts_root
from primitives.clock import Clock
from primitives.crypto import keccak256, private_key_to_address
from primitives.errors import (
    Halt,
    InvalidInput,
    InvalidTransaction,
    L2NodeError,
    RetryLater,
)
from primitives.transactions import BatchDecode, Transaction, decode_transactions
from primitives.types import ZERO_HASH, Address, Hash32
from rpc.api import ChainEvents
from sequencer.builder import BuildPace, block_body, execute_txs, make_header, next_block_env
from sequencer.types import BlockBody, PoolConfig
from sequencer.wire import certificate_round

log = logging.getLogger("l2node")
_T = TypeVar("_T")


@dataclass(frozen=True)
class ChainParams:
    """What the node needs to know about the chain it runs."""

    chain_id: int
    """L2 chain id."""
    gas_limit: int
    """Block gas limit."""
    initial_base_fee: int
    """Base fee of the genesis block; EIP-1559 moves it from there."""
    genesis_timestamp: int
    """Timestamp of block 0."""
    max_txs_per_block: int
    """Most transactions per block."""
    epoch_length: int = 0
    """Blocks per GPU-weight epoch; 0: the genesis weights hold forever (node/epochs.py)."""

    @classmethod
    def of(cls, genesis: Genesis, max_txs_per_block: int) -> ChainParams:
        """The parameters ``genesis`` fixes, with this node's block size limit."""
        return cls(
            chain_id=genesis.chain_id,
            gas_limit=genesis.gas_limit,
            initial_base_fee=genesis.base_fee_per_gas,
            genesis_timestamp=genesis.timestamp,
            max_txs_per_block=max_txs_per_block,
            epoch_length=genesis.epoch_length,
        )


MAX_CLOCK_DRIFT = 15
"""Seconds a block's timestamp may be ahead of this node's clock."""


def _touched(txs: Sequence[Transaction], coinbase: Address) -> set[Address]:
    """The accounts a block's transactions surely touch: senders, recipients, the coinbase
    (what the state prefetch reads ahead; contracts' own calls are found by executing)."""
    touched = set(map(attrgetter("sender"), txs))
    touched.update(map(attrgetter("to"), txs))
    touched.discard(None)  # creations have no recipient
    touched.add(coinbase)
    return touched


def _in_thread(work: Callable[[], _T], name: str) -> Callable[[], _T]:
    """Starts ``work`` in a thread of its own (C work, which runs without the GIL, beside the
    block path's); the wait returned returns its result once it is done. Its failure is a Halt
    (a block's write: the pool already moved past the block it could not write)."""
    done: Future[_T] = Future()

    def run() -> None:
        try:
            outcome = work()
        except BaseException as exc:  # noqa: BLE001  # the waiter raises it
            done.set_exception(exc)
        else:
            done.set_result(outcome)

    threading.Thread(target=run, name=name).start()

    def wait() -> _T:
        try:
            return done.result()
        except Halt:
            raise
        except Exception as exc:
            raise Halt(f"{name} failed: {exc}") from exc

    return wait


def _round_of(certificate: bytes | None) -> int:
    """The consensus round a commit certificate was cast in, for the block's log line and
    metrics (0 without one). The certificate is opaque to the commit itself, which does not
    check it: one that does not decode reads as round 0."""
    if certificate is None:
        return 0
    try:
        return certificate_round(certificate)
    except InvalidInput:
        return 0


@dataclass
class _Staged:
    """An executed block staged in a write batch, not yet committed."""

    header: Header
    """Its header (hash = the value's id)."""
    executed: tuple[ExecutedTx, ...]
    """Its transactions' outcomes."""
    batch: WriteBatch
    """State, block and indexes, staged; committing it makes the block the head."""
    diff: StateDiff
    """The accounts it changes (to update the in-memory head view on commit)."""
    proofs: tuple[bytes, ...] = ()
    """The GPU weight proofs it carries."""
    dropped: tuple[Hash32, ...] = ()
    """Pool transactions the proposer found invalid: removed from the pool on commit."""
    stages: StageTimes = field(default_factory=StageTimes)
    """Seconds each stage of the block path took for it, for the block's log line."""
    started: float = 0.0
    """time.monotonic() when this node began building or re-executing it (its proposal, as
    seen here): time to finality counts from there."""
    value: bytes = b""
    """Its encoding (``encode_block``) as proposed or verified here: committing these bytes
    needs no decode (empty: not known)."""

    @functools.cached_property
    def tx_hashes(self) -> list[Hash32]:
        """Its transactions' hashes, in order (the commit's pool deletes and advance each
        want them: one pass over a block's tens of thousands of transactions)."""
        return [e.tx.hash for e in self.executed]


@dataclass(frozen=True)
class _Flight:
    """A block executed on the head whose state root, write and publication run in a thread
    of their own (``Node.produce_pipelined``)."""

    header: Header
    """Its header with ``PENDING_ROOT`` for the state root: what the next block's env reads."""
    view: PendingView
    """The state after it, which the next block executes on."""
    finish: Callable[[], Header]
    """Waits for its thread: its final header (raises what failed there)."""


class Node:
    """A validator node over a KV store: admission (node/admit.py), block building,
    re-execution and commits.

    Accepting transactions never waits for a block to execute: ``_chain_lock`` serialises
    the block path (propose, verify, commit, replay), and the admit stage has its own lock,
    held by the block path only to select transactions and to advance the head.
    """

    def __init__(
        self,
        kv: KV,
        params: ChainParams,
        pool_config: PoolConfig,
        executor: Executor,
        caller: Caller,
        validator_key: bytes,
        clock: Clock,
        genesis_weights: Mapping[Address, int] | None = None,
        decode: BatchDecode = decode_transactions,
        state_options: StateOptions | None = None,
        ordered_root: OrderedRoot = ordered_trie_root,
        receipts_root: ReceiptsRoot = python_receipts_root,
        tracer: Tracer | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """``genesis_weights``: the first validator set (default: this node alone);
        ``decode`` decodes a batch of transactions and finds their senders (native in
        production);
        ``state_options``: flat state cache, unwind depth and prefetch (default:
        StateOptions());
        ``ordered_root`` computes transactions roots, ``receipts_root`` receipts roots and
        blooms (native ones in production);
        ``tracer`` re-runs calls and blocks step by step (None: tracing is off);
        ``metrics`` receives blocks and admissions (default: a registry nobody serves)."""
        self.kv = kv
        self.metrics = metrics or Metrics()
        self._ordered_root = ordered_root
        self._receipts_root = receipts_root
        self.params = params
        self.clock = clock
        self.validator_key = validator_key
        self.coinbase = private_key_to_address(validator_key)
        self.chain = ChainStore(kv)
        self.epochs = Epochs(
            self.chain, params.chain_id, params.epoch_length, genesis_weights or {self.coinbase: 1},
        )
        state_options = state_options or StateOptions()
        self.state = StateDB(kv, state_options.node_cache_mib << 20, state_options)
        self._prefetch_on = (os.cpu_count() or 1) >= state_options.prefetch_min_cores
        self.admission = Admission(kv, self.chain, self.state, pool_config, params.chain_id,
                                   params.gas_limit, clock, decode)
        self.pool = self.admission.pool
        self.executor = executor
        self.pace = BuildPace()
        """How fast this node builds blocks: what a proposal may take (``propose``)."""
        self.calls = Calls(self.chain, self.state, caller, tracer, params.chain_id,
                           params.gas_limit, self._next_env, ordered_root)
        """Calls, simulations and traces on past states (RPC)."""
        self.events: ChainEvents | None = None
        """Told of new heads and admitted transactions (the RPC server's subscriptions)."""
        self._chain_lock = threading.RLock()
        # Executed candidates for the next block, by block hash, until one is committed.
        self._staged: dict[Hash32, _Staged] = {}
        self._flight: _Flight | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def init_or_resume(self, genesis_alloc: dict[Address, GenesisAccount]) -> Header:
        """Write genesis on an empty database; then reload the pool. Returns the head."""
        head = self.chain.head_number()
        if head is None:
            batch = self.kv.write_batch()
            root = self.state.genesis(genesis_alloc, batch)
            genesis = Header(
                parent_hash=ZERO_HASH,
                coinbase=Address(b"\x00" * 20),
                state_root=root,
                transactions_root=EMPTY_ROOT,
                receipts_root=EMPTY_ROOT,
                logs_bloom=EMPTY_BLOOM,
                number=0,
                gas_limit=self.params.gas_limit,
                gas_used=0,
                timestamp=self.params.genesis_timestamp,
                base_fee_per_gas=self.params.initial_base_fee,
            )
            self.chain.stage_block(batch, genesis, [])
            batch.put(schema.meta_key("chain_id"), self.params.chain_id.to_bytes(8, "big"))
            self.state.commit(batch)
            log.info("genesis %s state root %s", genesis.hash.hex(), root.hex())
        else:
            stored = self.kv.get(schema.meta_key("chain_id"))
            if stored is not None and int.from_bytes(stored, "big") != self.params.chain_id:
                raise Halt(
                    f"data dir holds chain {int.from_bytes(stored, 'big')}, "
                    f"config says {self.params.chain_id}: use another --data-dir"
                )
            header = self.head()
            if self.state.resume(header.state_root, header.number):
                log.info("rebuilt the flat state at block %d from its trie", header.number)
        self.admission.reload()
        self.metrics.head_loaded(self.head())
        return self.head()

    # -- reads ------------------------------------------------------------------------------

    def head(self) -> Header:
        """The latest block's header."""
        return self.admission.head

    def next_base_fee(self) -> int:
        return self.admission.next_base_fee()

    def pending_nonce(self, address: Address) -> int:
        """The nonce a sender's next transaction needs: head state plus its pooled run."""
        return self.admission.pending_nonce(address)

    def _next_env(self, parent: Header) -> BlockEnv:
        """The env of the block this node would build on ``parent`` now."""
        timestamp = max(parent.timestamp + 1, int(self.clock.now()))
        return next_block_env(
            parent, timestamp, self.coinbase, self.params.chain_id, self.params.gas_limit,
            self.chain.block_hashes(parent),
        )

    # -- writes -----------------------------------------------------------------------------

    def submit(self, raw: bytes) -> Transaction:
        """Validate and pool a wallet's transaction; durable before this returns."""
        (outcome,) = self.submit_many([raw])
        if isinstance(outcome, L2NodeError):
            raise outcome
        return outcome

    def submit_many(self, raws: Sequence[bytes]) -> list[Transaction | L2NodeError]:
        """Validate and pool transactions (see Admission.submit)."""
        outcomes = self.admission.submit(raws)
        events = self.events
        if events is not None and events.wants_pending():
            events.new_pending([tx for tx in outcomes if isinstance(tx, Transaction)])
        self.metrics.admitted(outcomes)
        return outcomes

    def produce_block(self) -> Header:
        """Build, execute and commit the next block from the pool (single validator: final)."""
        with self._chain_lock:
            self.drain()
            # Final at once: no peer needs its encoding, so it is never made (nor bounded).
            return self._commit_staged(self._build(self.head().number + 1, gossiped=False), None)

    def produce_pipelined(self) -> None:
        """``produce_block`` with each block's state root and write beside the selection and
        execution of the next (the single validator's loop; ``drain`` finishes the last).

        The next block executes on the state after the one in flight (``PendingView``), then
        waits for it; when what it did may depend on what that view cannot tell (see
        ``PendingView.exact``), it runs again on the final state. A block's transactions
        leave the pool once it executed, and the head moves once it is written: a crash
        before that loses none (their pool records go in the block's own write)."""
        with self._chain_lock:
            flight, times, started = self._flight, StageTimes(), time.monotonic()
            # In flight, the parent's hash is not final: a block that reads it runs again
            # (``exact``).
            parent = self.head() if flight is None else flight.header
            env = self._next_env(parent)
            with times.stage("select"):
                txs = self.admission.select(env.base_fee_per_gas, env.gas_limit,
                                            self.params.max_txs_per_block, sys.maxsize)
            if flight is None:
                view = self.state.at(parent.state_root)
                with self._prefetch(parent, txs, env.coinbase), times.stage("execute"):
                    result = execute_txs(self.executor, view, env, txs)
                known = view.bulk_reads()
            else:
                with times.stage("execute"):
                    result = execute_txs(self.executor, flight.view, env, txs)
                self._flight = None
                parent, known = flight.finish(), {}
                if not flight.view.exact(txs):
                    env = self._next_env(parent)
                    view = self.state.at(parent.state_root)
                    with times.stage("execute"):
                        result = execute_txs(self.executor, view, env, txs)
                    known = view.bulk_reads()
            for rejected in result.rejected:
                log.info("dropped tx %s: %s", rejected.tx.hash.hex(), rejected.reason)
            self._launch(parent, env, result, known, times, started)

    def _launch(
        self, parent: Header, env: BlockEnv, result: BatchResult,
        known: Mapping[bytes, bytes | None], times: StageTimes, started: float,
    ) -> None:
        """Move the pool past an executed block on ``parent`` and start its state root, write
        and publication in a thread: the block in flight. ``known``: flat rows of ``parent``
        its execution read."""
        diff = result.state_diff
        packed = with_trie_keys(diff.packed or pack_changes(diff))
        result = replace(result, state_diff=replace(diff, packed=packed))
        body = self._body(result)
        dropped = tuple(r.tx.hash for r in result.rejected)
        base = self.state.at(parent.state_root)
        if not base.reads_flat:
            # Without flat tables, the state after it can only be read once it is written.
            with times.stage("state"):
                staged = self._stage(parent, env, result, body, (), known)
            staged.dropped, staged.stages, staged.started = dropped, times, started
            self._commit_staged(staged, None)
            return
        header = make_header(parent, env, body(), PENDING_ROOT)
        on_disk: Future[Header] = Future()
        pending = PendingView(packed, base, lambda: self.state.at(on_disk.result().state_root))
        with times.stage("advance"):
            self.admission.advance(header, result.state_diff, [e.tx.hash for e in result.executed],
                                   dropped, on_disk.result, pending)
        finish = _in_thread(functools.partial(self._finish, parent, env, result, body, known,
                                              dropped, times, started, on_disk), "block-finish")
        self._flight = _Flight(header, pending, finish)

    def _finish(
        self, parent: Header, env: BlockEnv, result: BatchResult, body: Callable[[], BlockBody],
        known: Mapping[bytes, bytes | None], dropped: tuple[Hash32, ...], times: StageTimes,
        started: float, on_disk: Future[Header],
    ) -> Header:
        """A launched block's state root, write and publication (its own thread)."""
        try:
            with times.stage("state"):
                staged = self._stage(parent, env, result, body, (), known)
            staged.dropped, staged.stages, staged.started = dropped, times, started
            with times.stage("write"):
                self._sealed(staged)()
        except BaseException as exc:
            on_disk.set_exception(exc)
            raise
        on_disk.set_result(staged.header)
        self._committed(staged, None)
        return staged.header

    def drain(self) -> Header | None:
        """Finish the block in flight (``produce_pipelined``), if any: its header."""
        with self._chain_lock:
            flight, self._flight = self._flight, None
            return None if flight is None else flight.finish()

    def propose(self, height: int, proofs: Sequence[bytes] = (), within: float | None = None) -> bytes:
        """Build and execute block ``height`` from the pool, carrying those of ``proofs`` (GPU
        weight proofs) that it may carry; its encoding (see ``encode_block``). ``within``:
        seconds the build may take; it takes the gas ``pace`` says fits in them.

        The executed result is kept, so committing this value does not execute it again.
        Only the selection holds the pool: admission goes on while the block executes.
        """
        with self._chain_lock:
            staged = self._build(height, proofs, within=within)
            staged.value = encode_block(staged.header, [e.tx.raw for e in staged.executed],
                                        staged.proofs)
            return staged.value

    def _build(
        self, height: int, proofs: Sequence[bytes] = (), gossiped: bool = True,
        within: float | None = None,
    ) -> _Staged:
        """Build, execute and stage block ``height`` from the pool (see ``propose``); when
        ``gossiped``, small enough for a proposal (``MAX_BLOCK_BYTES``)."""
        with self._chain_lock:
            self.drain()
            parent = self.head()
            if height != parent.number + 1:
                raise RetryLater(f"cannot build block {height} on head {parent.number}")
            carried = self._carriable(height, proofs)
            env = self._next_env(parent)
            times, started = StageTimes(), time.monotonic()
            with times.stage("select"):
                gas = env.gas_limit if within is None else min(env.gas_limit,
                                                                 self.pace.gas_within(within))
                txs = self.admission.select(env.base_fee_per_gas, gas, self.params.max_txs_per_block,
                                            transactions_room(carried) if gossiped else sys.maxsize)
            with self._prefetch(parent, txs, env.coinbase):
                with times.stage("execute"):
                    view = self.state.at(parent.state_root)
                    result = execute_txs(self.executor, view, env, txs)
                    body = self._body(result)
                with times.stage("state"):
                    staged = self._stage(parent, env, result, body, carried, view.bulk_reads())
                    self._staged[staged.header.hash] = staged
            self._timed(staged, times, started)
            # The pool offered these but they failed against the state: forget them on commit.
            staged.dropped = tuple(r.tx.hash for r in result.rejected)
            for rejected in result.rejected:
                log.info("dropped tx %s: %s", rejected.tx.hash.hex(), rejected.reason)
            return staged

    def _carriable(self, height: int, proofs: Sequence[bytes]) -> tuple[bytes, ...]:
        """The proofs block ``height`` may carry: valid for its epoch, one per validator that
        has none in the epoch yet."""
        if not self.epochs.window.may_carry(height):
            return ()
        epoch = self.epochs.epoch_of(height)
        taken = self.epochs.included(epoch, height)
        carried: list[bytes] = []
        for data in proofs:
            try:
                validator = self.epochs.verified(data, epoch)
            except InvalidInput:
                continue
            if validator not in taken and len(carried) < MAX_PROOFS_PER_BLOCK:
                taken.add(validator)
                carried.append(data)
        return tuple(carried)

    def verify(self, value: bytes) -> bool:
        """True when ``value`` is a valid next block: it extends the head, and re-executing its
        transactions here reproduces its header exactly. Never raises on hostile bytes."""
        try:
            block = decode_block(value)
        except InvalidInput as exc:
            log.info("proposal rejected: %s", exc)
            return False
        header = block.header
        with self._chain_lock:
            cached = self._staged.get(header.hash)
            if cached is not None and cached.header.parent_hash == self.head().hash:
                return True
            try:
                staged = self._check_and_stage(block)
            except InvalidInput as exc:
                log.info("block %d %s rejected: %s", header.number, header.hash.hex()[:12], exc)
                return False
            staged.value = value
            return True

    def commit(self, value: bytes, certificate: bytes | None) -> Header:
        """Make ``value`` (a block agreed on) the new head, in one atomic write with its
        ``certificate``; prune the pool. Raises Halt when this node cannot reproduce it."""
        with self._chain_lock:
            staged = self._staged_value(value)
            if staged is None:
                block = decode_block(value)
                staged = self._staged.get(block.header.hash)
                if staged is None or staged.header.parent_hash != self.head().hash:
                    try:
                        staged = self._check_and_stage(block)
                    except InvalidInput as exc:
                        raise Halt(f"finalized block {block.header.number} does not verify "
                                   f"here: {exc}") from exc
            return self._commit_staged(staged, certificate)

    def _commit_staged(self, staged: _Staged, certificate: bytes | None) -> Header:
        """Commit ``staged`` (a candidate on the head) with ``certificate``; see ``commit``."""
        with self._chain_lock:
            header = staged.header
            batch = staged.batch
            if certificate is not None:
                self.chain.stage_certificate(batch, header.number, certificate)
            times = staged.stages
            with times.stage("write"):
                # Sealed here, the write (LevelDB's, without the GIL) runs beside the pool's advance.
                writing = _in_thread(self._sealed(staged), "block-write")
            try:
                with times.stage("advance"):
                    self._staged.clear()  # every other candidate was built on the old head
                    self.admission.advance(header, staged.diff, staged.tx_hashes, staged.dropped,
                                           writing)
            finally:
                with times.stage("write"):
                    writing()
            self._committed(staged, certificate)
        return header

    def _sealed(self, staged: _Staged) -> Callable[[], None]:
        """The write of ``staged``, sealed (``StateDB.sealed``), with its pool records' deletes."""
        batch = staged.batch
        # A block's tens of thousands of pool records go as one packed delete.
        batch.delete_packed(schema.POOL_PREFIX, b"".join(staged.tx_hashes), 32)
        batch.delete_many(map(schema.pool_key, staged.dropped))
        # Kept decoded before the block shows: a wallet polling for it reads it at once, and
        # would otherwise decode it from the store.
        self.chain.remember(staged.header, staged.executed)
        return self.state.sealed(batch)

    def _committed(self, staged: _Staged, certificate: bytes | None) -> None:
        """``staged`` is written: the head, then its subscribers, log line and metrics."""
        header = staged.header
        self.admission.written(header)
        self.state.resume_warm(header.state_root)
        self._published(header)
        self._report(BlockReport(
            header=header, transactions=len(staged.executed), round=_round_of(certificate),
            finality_s=time.monotonic() - staged.started, stages=staged.stages.seconds,
        ))

    def _staged_value(self, value: bytes) -> _Staged | None:
        """The candidate on the head whose encoding is ``value`` (our own proposal, or one
        verified here), if any: found without decoding the block again."""
        head = self.head().hash
        for staged in self._staged.values():
            if staged.value == value and staged.header.parent_hash == head:
                return staged
        return None

    def _report(self, report: BlockReport) -> None:
        """The block's log line (its fields also structured, for JSON logs) and metrics.

        key=value pairs; the stage times come last, after root= (bench.load reads them)."""
        header = report.header
        fields: dict[str, object] = {
            "height": header.number, "txs": report.transactions, "gas": header.gas_used,
            "hash": "0x" + header.hash.hex(), "round": report.round,
            "proposer": "0x" + header.coinbase.hex(),
            "finality_ms": round(report.finality_s * 1000),
            "root": header.state_root.hex()[:12],
        }
        fields.update({f"{name}_ms": round(seconds * 1000)
                       for name, seconds in report.stages.items()})
        log.info(
            "block %d txs=%d gas=%d hash=%s round=%d proposer=%s final=%dms root=%s %s",
            header.number, report.transactions, header.gas_used, fields["hash"], report.round,
            fields["proposer"], fields["finality_ms"], fields["root"],
            format_stages(report.stages),
            extra={"fields": fields},
        )
        self.metrics.block_committed(report)

    def _check_and_stage(self, block: Block) -> _Staged:
        """Re-execute a block received from a peer; InvalidInput says why it is not valid."""
        header, raws = block.header, block.transactions
        self.drain()
        parent = self.head()
        # Rule: a block extends our head.
        if header.number != parent.number + 1 or header.parent_hash != parent.hash:
            raise InvalidInput(f"does not extend head {parent.number} {parent.hash.hex()[:12]}")
        staged = self._execute_child(parent, header.timestamp, header.coinbase, raws,
                                     block.proofs)
        if staged.header != header:
            raise InvalidInput(
                f"re-execution gives header {staged.header.hash.hex()[:12]} "
                f"(state root {staged.header.state_root.hex()[:12]}), "
                f"proposed state root {header.state_root.hex()[:12]}"
            )
        return staged

    def replay(self, block: L2BlockData) -> Header:
        """Re-execute a block known by its data alone (an L1 batch) on the head and commit it.

        The rules are a peer's block's, with the header derived here instead of compared.
        Raises InvalidInput, committing nothing, when the block breaks one.
        """
        with self._chain_lock:
            self.drain()
            parent = self.head()
            if block.number != parent.number + 1:
                raise InvalidInput(f"block {block.number} does not follow head {parent.number}")
            staged = self._execute_child(parent, block.timestamp, block.coinbase,
                                         block.transactions, block.proofs)
            self._staged.clear()
            header = staged.header
            # Rule: the gas limit is the chain's, the base fee follows EIP-1559 from the parent.
            if (block.gas_limit, block.base_fee_per_gas) != (header.gas_limit,
                                                             header.base_fee_per_gas):
                raise InvalidInput(
                    f"gas limit {block.gas_limit} and base fee {block.base_fee_per_gas}, "
                    f"the chain has {header.gas_limit} and {header.base_fee_per_gas}"
                )
            self.chain.remember(staged.header, staged.executed)
            self.state.commit(staged.batch)
            self.admission.advance(staged.header, staged.diff, ())
            self.state.resume_warm(header.state_root)
        self._published(header)
        return header

    def _published(self, header: Header) -> None:
        if self.events is not None:
            self.events.new_head(header)

    def forget_head(self) -> None:
        """The database's head changed behind the node's back (an unwind): read it again."""
        with self._chain_lock:
            self.drain()
            self.admission.reset()
            self._staged.clear()
            self.epochs.forget_above(self.chain.head_number() or 0)

    def _execute_child(
        self, parent: Header, timestamp: int, coinbase: Address, raws: Sequence[bytes],
        proofs: Sequence[bytes] = (),
    ) -> _Staged:
        """Check a child of ``parent`` from its fields, transactions and weight proofs, and
        execute it."""
        # Rule: the timestamp moves forward but not into the future (parent + 1 is always
        # allowed: blocks faster than one a second run a little ahead).
        if timestamp <= parent.timestamp:
            raise InvalidInput("timestamp does not increase")
        if timestamp > max(self.clock.now() + MAX_CLOCK_DRIFT, parent.timestamp + 1):
            raise InvalidInput(f"timestamp {timestamp} is in the future")
        if len(raws) > self.params.max_txs_per_block:
            raise InvalidInput(f"{len(raws)} transactions, the limit is {self.params.max_txs_per_block}")
        # Rule: the proofs it carries earn weight in its epoch, one per validator and epoch.
        self.epochs.check_block_proofs(parent.number + 1, proofs)
        times, started = StageTimes(), time.monotonic()
        with times.stage("decode"):
            txs = self._decoded(raws)
        env = next_block_env(
            parent, timestamp, coinbase, self.params.chain_id,
            self.params.gas_limit, self.chain.block_hashes(parent),
        )
        with self._prefetch(parent, txs, coinbase):
            with times.stage("execute"):
                view = self.state.at(parent.state_root)
                result = execute_txs(self.executor, view, env, txs)
            # Rule: every transaction of a block executes; a proposer must not include invalid
            # ones.
            if result.rejected:
                first = result.rejected[0]
                raise InvalidInput(f"includes an invalid transaction {first.tx.hash.hex()}: {first.reason}")
            body = self._body(result)
            with times.stage("state"):
                staged = self._stage(parent, env, result, body, proofs, view.bulk_reads())
                self._staged[staged.header.hash] = staged
        return self._timed(staged, times, started)

    def _timed(self, staged: _Staged, times: StageTimes, started: float) -> _Staged:
        """``staged`` with the stage times its build or check took: the pace learns from them."""
        staged.stages, staged.started = times, started
        self.pace.observe(staged.header.gas_used, time.monotonic() - started)
        return staged

    def _prefetch(
        self, parent: Header, txs: Sequence[Transaction], coinbase: Address
    ) -> AbstractContextManager[object]:
        """While a block on ``parent`` executes: its accounts' trie paths read into the state
        committer's cache in a thread (when the host has the cores), stopped on exit."""
        if not self._prefetch_on:
            return nullcontext()
        return self.state.prefetch(parent.state_root, _touched(txs, coinbase))

    def _decoded(self, raws: Sequence[bytes]) -> list[Transaction]:
        """A block's transactions: the pool's decoded copies where it has them (their senders
        were recovered at admission), the others decoded and recovered now in one batch."""
        pooled = self.admission.pooled([keccak256(raw) for raw in raws])
        missing = [raw for raw, tx in zip(raws, pooled, strict=True) if tx is None]
        fresh = iter(self.admission.decode(missing))
        txs = [next(fresh) if tx is None else tx for tx in pooled]
        for tx in txs:
            if isinstance(tx, InvalidTransaction):
                raise tx
            if tx.chain_id != self.params.chain_id:
                raise InvalidTransaction(f"transaction {tx.hash.hex()} is not for this chain")
        return [tx for tx in txs if isinstance(tx, Transaction)]

    def _body(self, result: BatchResult) -> Callable[[], BlockBody]:
        """The block of ``result``, its roots computed in a thread (C, without the GIL) while
        the state root is."""
        return _in_thread(functools.partial(block_body, result, self._ordered_root,
                                            self._receipts_root), "block-roots")

    def _stage(
        self, parent: Header, env: BlockEnv, result: BatchResult, body: Callable[[], BlockBody],
        proofs: Sequence[bytes], known: Mapping[bytes, bytes | None],
    ) -> _Staged:
        """Stage state and block into a write batch, to commit once the block is; ``body``:
        waits for the block's roots (``_body``); ``known``: flat rows of the parent's state
        its execution read (``StateView.bulk_reads``), not read again."""
        batch = self.kv.write_batch()
        root = self.state.apply(parent.state_root, result.state_diff, batch, known)
        if result.state_root is not None and result.state_root != root:
            raise Halt(
                f"block {env.number}: executor root {result.state_root.hex()} != "
                f"state root {root.hex()}"
            )
        header = replace(make_header(parent, env, body(), root),
                         extra_data=proofs_commitment(proofs))
        self.chain.stage_block(batch, header, result.executed)
        self.chain.stage_proofs(batch, header.number, proofs)
        return _Staged(header, result.executed, batch, result.state_diff, tuple(proofs))

    # -- calls ------------------------------------------------------------------------------

    # -- L1 block source --------------------------------------------------------------------

    def head_number(self) -> int:
        return self.head().number

    def block_data(self, number: int) -> L2BlockData:
        header = self.chain.header(number)
        if header is None:
            raise Halt(f"block {number} missing")
        return L2BlockData(
            number=header.number,
            timestamp=header.timestamp,
            coinbase=header.coinbase,
            gas_limit=header.gas_limit,
            base_fee_per_gas=header.base_fee_per_gas,
            transactions=self.chain.raw_transactions(number),
            proofs=tuple(self.chain.proofs(number)),
        )

    def state_root(self, number: int) -> Hash32:
        header = self.chain.header(number)
        if header is None:
            raise Halt(f"block {number} missing")
        return header.state_root

    def epoch_of(self, number: int) -> int:
        return self.epochs.epoch_of(number)

    def validators(self, epoch: int) -> dict[Address, int] | None:
        """The weights of ``epoch`` (None until the window that fixes them is final here)."""
        if epoch > 0 and self.head_number() < self.epochs.window.last_height(epoch - 1):
            return None
        return self.epochs.weights(epoch)

