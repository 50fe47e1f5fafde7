"""The validator loop: runs this node's consensus state machine over the Gossip seam.

The consensus handler runs on the network's thread and only queues what it receives;
``step`` does all the work on one thread (the node's worker, or a test's), so the state
machine, block building and commits never run concurrently:

- consensus messages -> the state machine (sequencer/consensus.py); its actions are
  carried out here: Broadcast -> publish, Decide -> commit with the certificate, then
  the next height ``block_time`` after this one started, or when a proposal of it comes
  first; Behind -> sync finalized
  blocks from peers; Disagree -> Halt (the network finalized a block this node's
  execution rejects);
- transactions accepted over RPC -> gossiped in batches every ``tx_batch_interval``;
- ``l2/sync/1`` requests are answered from the finalized chain;
- GPU weights (node/epochs.py): at an epoch's first height this validator runs its
  challenge until the chain reaches the window's honest stop, and gossips the proof on
  ``l2/proofs/2``; its proposals carry the proofs it holds; from the cutoff it prevotes
  nil for a block that leaves out a proof it held at the cutoff (sequencer/election.py).

Transaction batches and weight proofs from peers never reach this loop, so consensus
messages never wait behind them: each topic's gate checks them on its own bounded worker
queue (p2p/checks.py) before they are forwarded, pooling the transactions and keeping the
proofs on the way; a full queue drops (IGNOREs) what comes next. The proofs held at an
epoch's cutoff are fixed on this loop's thread, under the lock the proofs are kept with.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from executor_gpu.challenge import fingerprints_of, run_challenge
from node.blocks import decode_block
from node.db import schema
from node.node import Node
from node.sync import catch_up, serve_blocks
from p2p.api import Gossip
from p2p.checks import CheckLimits, CheckQueue
from p2p.topics import CONSENSUS, PROOFS, SYNC, TXS
from p2p.txbatch import TxBatchGate, pack_tx_batches
from p2p.types import PeerId, Validation
from primitives.clock import Clock
from primitives.errors import Halt, InvalidInput, InvalidTransaction, RetryLater
from primitives.transactions import Transaction
from primitives.types import Address, Hash32
from sequencer import election, wire
from sequencer.consensus import Consensus, verify_certificate
from sequencer.gates import check_consensus_message
from sequencer.types import (
    Action,
    Behind,
    Broadcast,
    ConsensusConfig,
    ConsensusMessage,
    Decide,
    Disagree,
    Proposal,
    Step,
    ValidatorSet,
)
from sequencer.weights import Commitment, challenge_key, decode_proof, encode_proof, make_proof

log = logging.getLogger("l2node.validator")

TX_CHECKS = CheckLimits(workers=1, max_pending=64, max_pending_per_peer=16)
"""Gossiped transaction batches checked (decode, batch recovery, pooling) at once and queued.
One worker: the recovery runs natively on every core without the GIL; the decoding holds
the GIL, and more threads of it would take more of it from the consensus thread.
A peer relays a batch every ``tx_batch_interval`` (50 ms) while wallets send to it, and a
batch dropped for want of room is lost to this node's pool. With two per peer, 6,000
transfers sent to one of four validators (2-core box) reached the others' pools short of
about 2,500, their proposals were empty while it held them, and 650 tx/s were included;
with sixteen every pool held all of them and 1,570 tx/s were (one run each; 16,000 in turn
with two and sixteen: 794-805 against 1,873-2,627 tx/s). Sixteen hold 0.8 s of one
peer's relays; the whole queue holds at most 64 batches of ``MAX_BATCH_BYTES``."""

PROPOSE_BUILD_SHARE = 0.5
"""Part of a round's propose timeout a proposer's build may take (``Node.pace``)."""

GOSSIP_SAMPLE = 64
"""Transactions of a gossiped batch checked (decoded, recovered, their signers' funds read)
before the rest: enough for a majority verdict on junk."""

PROOF_CHECKS = CheckLimits(workers=1, max_pending=16, max_pending_per_peer=2)
"""Gossiped weight proofs verified (sampled products recomputed, about a second) at once."""


@dataclass(frozen=True)
class ValidatorOptions:
    """Timing of the validator loop and of its GPU challenge."""

    block_time: float = 1.0
    """Seconds from the start of a height to the start of the next (at its commit, when the
    height took longer)."""
    tx_batch_interval: float = 0.05
    """Seconds between gossip messages carrying the transactions accepted over RPC."""
    consensus: ConsensusConfig = field(default_factory=ConsensusConfig)
    """Timeouts of the state machine."""
    challenge_seconds: float = float("inf")
    """Longest this validator computes its GPU challenge each epoch; it stops earlier at the
    chain's honest stop (sequencer.election), which alone bounds what a proof may earn."""
    challenge_device: str = "auto"
    """Where: "cuda", "cpu" or "auto" (a GPU when there is one)."""
    challenge_max_products: int = 1 << 40
    """Stop the challenge after this many products even before the deadline."""
    background: bool = True
    """Prove weight proofs, and check gossiped transactions and proofs, in worker threads;
    False does it inside ``step`` and the gates (deterministic tests)."""


class ValidatorLoop:
    """One validator (or a follower, without a key in the set) of a network of nodes."""

    def __init__(
        self,
        node: Node,
        gossip: Gossip,
        clock: Clock,
        options: ValidatorOptions = ValidatorOptions(),
    ) -> None:
        """The validator set of each height comes from ``node.epochs`` (genesis weights, then
        GPU weights)."""
        self.node = node
        self.gossip = gossip
        self.clock = clock
        self.options = options
        self.epochs = node.epochs
        self.chain_id = node.params.chain_id
        self.consensus = Consensus(
            chain_id=self.chain_id, app=self, clock=clock, private_key=node.validator_key,
            config=options.consensus,
        )
        self._inbox: queue.SimpleQueue[bytes] = queue.SimpleQueue()  # consensus messages
        self._wakeup = threading.Event()
        self._relay: list[bytes] = []
        self._relay_lock = threading.Lock()
        self._relay_due: float | None = None
        self._next_height_at: float | None = None
        self._height_started = clock.now()
        self._started = False
        self._proofs_lock = threading.Lock()
        self._proofs: dict[int, dict[Address, bytes]] = {}  # epoch -> validator -> verified proof
        self._proving: set[int] = set()
        self._due: dict[int, frozenset[Address]] = {}  # epoch -> proofs held at its cutoff
        inline = not options.background
        self._proof_checks = CheckQueue("l2node-proofs", PROOF_CHECKS, inline)
        gossip.subscribe(CONSENSUS, self._gate_consensus, self._receive_consensus)
        # The gate's check pools the transactions: nothing is left for the handler.
        self._tx_checks = CheckQueue("l2node-txs", TX_CHECKS, inline)
        gossip.subscribe(TXS, TxBatchGate(self._check_txs, self._tx_checks), lambda _peer, _data: None)
        gossip.subscribe(PROOFS, self._gate_proof, lambda _peer, data: self._admit_proof(data))
        gossip.serve(SYNC, lambda _peer, data: serve_blocks(node, data))

    # -- consensus.api.ConsensusApp ------------------------------------------------------------

    def build(self, height: int, round: int) -> tuple[bytes, Hash32]:
        epoch = self.epochs.epoch_of(height)
        with self._proofs_lock:
            held = dict(self._proofs.get(epoch, {}))
        # Every proof held; past the cutoff only those held at it (the rest came too late).
        due = self._due.get(epoch) if self.epochs.window.must_carry(height) else None
        # Built in half its round's propose timeout: the rest is for gossip to the others.
        within = PROPOSE_BUILD_SHARE * self.options.consensus.timeout(Step.PROPOSE, round)
        value = self.node.propose(height, election.carry(held, (), due), within)
        log.debug("proposing block %d round %d", height, round)
        return value, decode_block(value).header.hash

    def validate(self, height: int, value: bytes, value_id: Hash32) -> bool:
        try:
            header = decode_block(value).header
        except InvalidInput:
            return False
        # Rule: the value is the block it claims to be, at this height, and re-executes here.
        return header.hash == value_id and header.number == height and self.node.verify(value)

    def endorses(self, height: int, value: bytes, value_id: Hash32) -> bool:
        # Rule: from the cutoff, it carries the proofs this validator held at the cutoff. What
        # a validator held is its own view: a block the others decide is still followed.
        return not self._censors(height, value)

    def _censors(self, height: int, value: bytes) -> bool:
        """Whether block ``height`` leaves out a proof that sequencer.election requires."""
        epoch = self.epochs.epoch_of(height)
        due = self._due.get(epoch, frozenset())
        if not due or not self.epochs.window.must_carry(height):
            return False
        carried = {decode_proof(p).validator for p in decode_block(value).proofs}
        left_out = election.missing(height, self.epochs.window, due,
                                    self.epochs.included(epoch, height), carried,
                                    self.consensus.round, len(self.validators_at(height).validators))
        if left_out:
            log.info("block %d leaves out the proofs of %s: prevoting nil", height,
                     ", ".join(f"0x{v.hex()}" for v in sorted(left_out)))
        return bool(left_out)

    def dropped_checks(self) -> dict[str, int]:
        """Gossiped messages dropped unchecked for want of room in their topic's check queue
        (their senders are told IGNORE), by topic, since the start."""
        return {TXS: self._tx_checks.dropped, PROOFS: self._proof_checks.dropped}

    # -- inputs from other threads ---------------------------------------------------------------

    def relay(self, raw_tx: bytes) -> None:
        """Gossip a transaction this node accepted over RPC (batched)."""
        with self._relay_lock:
            self._relay.append(raw_tx)
            if self._relay_due is None:
                self._relay_due = self.clock.now() + self.options.tx_batch_interval
        self._wakeup.set()

    def _receive_consensus(self, _peer: PeerId, data: bytes) -> None:
        self._inbox.put(data)
        self._wakeup.set()

    def _gate_consensus(self, _peer: PeerId, data: bytes) -> Validation:
        # The rules live in sequencer/gates.py; this node's view is its current height.
        height = (self.node.chain.head_number() or 0) + 1
        return check_consensus_message(
            data, chain_id=self.chain_id, height=height, validators=self.validators_at(height),
            seed=self._seed(height),
        )

    def _gate_proof(self, peer: PeerId, data: bytes) -> Validation | Future[Validation]:
        # REJECT: not a proof, or not by a validator of the genesis set (who alone earn weight).
        try:
            proof = decode_proof(data)
        except InvalidInput:
            return Validation.REJECT
        if proof.validator not in self.epochs.genesis_weights:
            return Validation.REJECT
        # IGNORE: another epoch's than the one being carried or proved (late, or from a node
        # ahead of us).
        height = (self.node.chain.head_number() or 0) + 1
        if proof.epoch not in (self.epochs.epoch_of(height), self.epochs.window.proving_epoch(height)):
            return Validation.IGNORE
        # The rest on the proofs' worker (a second or so): IGNORE if its queue is full.
        return self._proof_checks.submit(peer, functools.partial(self._check_proof, data, proof.epoch))

    def _check_proof(self, data: bytes, epoch: int) -> Validation:
        try:
            self.epochs.verified(data, epoch)  # kept: the handler's _admit_proof finds it
        except InvalidInput:
            # REJECT: its sampled products do not check out; an honest node never sends it.
            return Validation.REJECT
        except Halt:
            # IGNORE: the epoch's seed is not final here yet (this node is behind).
            return Validation.IGNORE
        # ACCEPT: verified; kept for this node's proposals, and forwarded.
        return Validation.ACCEPT

    def _check_txs(self, raws: tuple[bytes, ...]) -> Validation:
        """The worker's half of the ``l2/txs/1`` gate: batch decode and sender recovery,
        then the pool (durably, as for RPC). A sample first: junk is refused for the price
        of its first ``GOSSIP_SAMPLE`` transactions, not of 4,096."""
        admission = self.node.admission
        txs: list[Transaction] = []
        for part in (raws[:GOSSIP_SAMPLE], raws[GOSSIP_SAMPLE:]):
            checked = admission.check(part)
            # REJECT: a transaction that can never be valid (undecodable, a bad signature,
            # another chain). Honest peers forward only batches that passed this check.
            if any(isinstance(tx, InvalidTransaction) for tx in checked):
                return Validation.REJECT
            txs += [tx for tx in checked if isinstance(tx, Transaction)]
            # REJECT: mostly signers who cannot pay at this node's head. Any signature
            # "recovers" someone (random r and s do, half the time): that is what a junk
            # batch looks like, while an honest peer pooled each of them against a head at
            # most a block or so apart from ours.
            if 2 * admission.unpayable(txs) > len(txs):
                return Validation.REJECT
        # ACCEPT: something new pooled, worth forwarding. IGNORE: nothing new (known
        # already, or included since it was sent: no fault of the peer).
        pooled = any(isinstance(outcome, Transaction) for outcome in admission.add(txs))
        return Validation.ACCEPT if pooled else Validation.IGNORE

    def validators_at(self, height: int) -> ValidatorSet:
        """The validator set deciding ``height`` (its epoch's weights)."""
        return ValidatorSet.of(self.epochs.weights(self.epochs.epoch_of(height)))

    # -- the loop ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Catch up with peers, then start deciding the height after our head."""
        self._sync()
        self._started = True
        self._start_next_height()

    def step(self) -> None:
        """Do everything that is due now: messages, timeouts, the next height, tx relay."""
        if not self._started:
            self.start()
        while True:
            try:
                data = self._inbox.get_nowait()
            except queue.Empty:
                break
            self._on_consensus(data)
        now = self.clock.now()
        if self._next_height_at is not None and now >= self._next_height_at:
            self._start_next_height()
        self._run(self.consensus.tick())
        self._flush_relay(now)

    def next_wakeup(self) -> float | None:
        """When ``step`` has timed work next (messages wake it earlier through ``wait``)."""
        times = [self.consensus.next_deadline(), self._next_height_at, self._relay_due]
        return min((t for t in times if t is not None), default=None)

    def wait(self, timeout: float) -> None:
        """Block until a message or relayed tx arrives, or ``timeout`` seconds pass."""
        self._wakeup.wait(timeout)
        self._wakeup.clear()

    # -- internals ---------------------------------------------------------------------------------

    def _seed(self, height: int) -> bytes:
        """Leader seed of ``height``: its epoch's seed (the last block of the epoch before; the
        genesis hash without epochs). One seed per epoch, not the parent's hash: a proposer
        could grind its block's hash to pick the next height's proposer."""
        return self.epochs.seed(self.epochs.epoch_of(height))

    def _start_next_height(self) -> None:
        self._next_height_at = None
        height = self.node.head().number + 1
        if height <= self.consensus.height:
            return
        self._height_started = self.clock.now()
        self._fix_due(height)
        self._start_challenge(height)
        self._run(self.consensus.start_height(height, self.validators_at(height),
                                              self._seed(height), self._logged(height)))

    def _on_consensus(self, data: bytes) -> None:
        try:
            message = wire.decode_message(self.chain_id, data)
        except InvalidInput:
            return  # the gate let it through for an older view; it is no longer valid
        if (isinstance(message, Proposal) and self._next_height_at is not None
                and message.height == self.node.head().number + 1):
            # A proposer started the next height: this validator starts it now. Each starts a
            # height block_time after it started the last, so one that once decided late
            # (slow messages or commit) would otherwise stay that far behind, and the others
            # would wait that long for every proposal of its.
            self._start_next_height()
        if (isinstance(message, Proposal) and message.height == self.consensus.height
                and message.proposer == self.consensus.proposer(message.round)):
            # Logged before consensus acts on it: a lock taken on it survives a restart.
            self._log(schema.signed_key(message.height, message.round, schema.SEEN_PROPOSAL),
                      message)
        self._run(self.consensus.on_message(message))

    def _run(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Broadcast):
                if self._first_signature(action.message):
                    self.gossip.publish(CONSENSUS, wire.encode_message(action.message))
            elif isinstance(action, Decide):
                if not self._commit(action):
                    continue
                self._forget_signed_below(action.height)
                now = self.clock.now()
                log.info("height %d final in round %d, %.0f ms after it started", action.height,
                         action.certificate.round, (now - self._height_started) * 1000)
                # A block every block_time, as a single validator makes them: a height that
                # took longer (a backlog's large blocks) is followed at once.
                self._next_height_at = max(now, self._height_started + self.options.block_time)
            elif isinstance(action, Behind):
                log.info("validators are at height %d: syncing", action.height)
                if self._sync():
                    self._start_next_height()
            elif isinstance(action, Disagree):
                raise Halt(
                    f"validators holding more than 2/3 of the weight precommitted block "
                    f"0x{action.value_id.hex()} at height {action.height} (round {action.round}), "
                    f"and this node's re-execution rejects it: its executor or state differs "
                    f"from the network's. Check the node's version and executor (compare with "
                    f"--executor reference) before restarting it"
                )
        for evidence in self.consensus.take_evidence():
            if self.node.chain.add_evidence(wire.encode_evidence(evidence)):
                log.warning("double signing by 0x%s kept as evidence", evidence.offender.hex())

    def _first_signature(self, message: ConsensusMessage) -> bool:
        """Record what this validator signs for a height, round and step before it is sent
        (durably); False for a message that conflicts with one signed before a restart,
        which is then never sent: double signing is what BFT safety cannot survive."""
        signer = message.proposer if isinstance(message, Proposal) else message.validator
        if signer != self.node.coinbase:
            return True
        kind = schema.SIGNED_PROPOSAL if isinstance(message, Proposal) else int(message.kind)
        key = schema.signed_key(message.height, message.round, kind)
        signed = self._log(key, message)
        if wire.message_digest(self.chain_id, signed) != wire.message_digest(self.chain_id,
                                                                             message):
            log.warning("not sending a second, different message for height %d round %d "
                        "step %d (signed another before a restart)", message.height,
                        message.round, kind)
            return False
        return True

    def _log(self, key: bytes, message: ConsensusMessage) -> ConsensusMessage:
        """Durably keep ``message`` under ``key`` unless one is there; returns the kept one."""
        stored = self.node.kv.get(key)
        if stored is not None:
            return wire.decode_message(self.chain_id, stored)
        self.node.kv.put(key, wire.encode_message(message))
        return message

    def _logged(self, height: int) -> list[ConsensusMessage]:
        """What was logged at ``height`` before a restart: replayed into consensus."""
        prefix = schema.SIGNED_PREFIX + schema.encode_number(height)
        return [
            wire.decode_message(self.chain_id, value)
            for _key, value in self.node.kv.iterate(prefix)
        ]

    def _forget_signed_below(self, height: int) -> None:
        """Drop the records of heights below ``height`` (decided: nothing to conflict with)."""
        end = schema.SIGNED_PREFIX + schema.encode_number(height)
        batch = self.node.kv.write_batch()
        for key, _value in self.node.kv.iterate(schema.SIGNED_PREFIX):
            if key >= end:
                break
            batch.delete(key)
        batch.commit()

    def _commit(self, decision: Decide) -> bool:
        """Commit a decided block; False when sync brought it in already."""
        have = self.node.chain.header(decision.height)
        if have is None:
            self.node.commit(decision.value, wire.encode_certificate(decision.certificate))
            return True
        if have.hash != decision.certificate.value_id:
            raise Halt(f"consensus decided another block {decision.height} than the one stored")
        return False

    def _sync(self) -> int:
        try:
            return catch_up(self.node, self.gossip, self._certificate_valid)
        except RetryLater as exc:
            log.info("sync: %s", exc)
            return 0

    def _certificate_valid(self, height: int, block_hash: Hash32, data: bytes) -> bool:
        try:
            certificate = wire.decode_certificate(self.chain_id, data)
            verify_certificate(certificate, self.validators_at(height))
        except InvalidInput as exc:
            log.info("block %d: bad certificate: %s", height, exc)
            return False
        return certificate.height == height and certificate.value_id == block_hash

    # -- GPU weights -------------------------------------------------------------------------------

    def _background(self, job: Callable[[], None]) -> None:
        if self.options.background:
            threading.Thread(target=job, daemon=True, name="l2node-weights").start()
        else:
            job()

    def _fix_due(self, height: int) -> None:
        """At its epoch's cutoff height, fix the proofs this validator holds: from here to
        the deadline, blocks must carry them."""
        epoch = self.epochs.epoch_of(height)
        if self.epochs.enabled and height == self.epochs.window.cutoff_height(epoch):
            with self._proofs_lock:
                self._due = {epoch: frozenset(self._proofs.get(epoch, {}))}

    def _start_challenge(self, height: int) -> None:
        """Prove an epoch's work once its seed is final (the height after its seed block, or
        at start)."""
        epoch = self.epochs.window.proving_epoch(height)
        me = self.node.coinbase
        if (
            not self.epochs.enabled
            or epoch in self._proving
            or me not in self.epochs.genesis_weights
            or me in self.epochs.included(epoch, height)
        ):
            return
        self._proving = {e for e in self._proving if e >= epoch} | {epoch}
        with self._proofs_lock:
            self._proofs = {e: p for e, p in self._proofs.items() if e >= epoch}
        seed = self.epochs.seed(epoch)
        self._background(lambda: self._prove(epoch, seed))

    def _prove(self, epoch: int, seed: Hash32) -> None:
        """Run the challenge until the deadline, then keep and gossip the proof."""
        options = self.options
        key = challenge_key(self.chain_id, epoch, seed, self.node.coinbase)
        commitment = Commitment()
        stop = self.epochs.window.stop_height(epoch)
        work = run_challenge(
            key, self.clock.now() + options.challenge_seconds, self.clock,
            device=options.challenge_device, on_batch=commitment.add,
            max_products=options.challenge_max_products,
            stop=lambda: (self.node.chain.head_number() or 0) + 1 >= stop,
        )
        if work.products == 0:
            log.warning("epoch %d: the challenge computed nothing in time", epoch)
            return
        proof = make_proof(
            commitment, key, self.chain_id, epoch, seed, self.node.validator_key,
            recompute=functools.partial(fingerprints_of, key, device=work.device),
        )
        log.info("epoch %d: proved %d products on %s in %.1f s", epoch, work.products,
                 work.device, work.seconds)
        data = encode_proof(proof)
        self.epochs.add_own(data, epoch, work.products)
        self._admit_proof(data)
        self.gossip.publish(PROOFS, data)

    def _admit_proof(self, data: bytes) -> None:
        """Keep a proof for inclusion once it verifies (sampled products recomputed)."""
        try:
            proof = decode_proof(data)
            self.epochs.verified(data, proof.epoch)
        except (InvalidInput, Halt) as exc:  # Halt: its epoch's seed is not final here yet
            log.info("weight proof not kept: %s", exc)
            return
        with self._proofs_lock:
            self._proofs.setdefault(proof.epoch, {}).setdefault(proof.validator, data)

    def _flush_relay(self, now: float) -> None:
        with self._relay_lock:
            if self._relay_due is None or now < self._relay_due:
                return
            raws, self._relay, self._relay_due = self._relay, [], None
        for message in pack_tx_batches(raws):
            self.gossip.publish(TXS, message)

