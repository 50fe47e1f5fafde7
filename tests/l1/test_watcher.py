"""The watcher's derivation over the embedded L1, against a chain built by a real Node.

A producer node (MemoryKV, reference executor) makes blocks of signed transfers;
batches of them are committed to a BatchInbox on the in-process L1, signed by the
validator key the contract was deployed with (honest batches and tampered ones).
A second node derives the chain from L1 alone through l1/watcher.py.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pytest
from eth_tester import EthereumTester

from l1.api import L1Client
from l1.client import Web3L1Client, deploy_batch_inbox
from l1.codec import (
    batch_data_hash,
    batch_digest,
    encode_batch_data,
    recover_batch_signer,
    sign_batch,
    validator_set_digest,
)
from l1.embedded import EmbeddedL1, start_embedded_l1
from l1.types import BatchCommitment, CommittedBatch, L2BlockData, ValidatorSet
from l1.watcher import BatchReport, Status, Unwound, Watcher
from node.db.memory import MemoryKV
from node.node import Node
from node.watch import NodeChain, WatchOptions, decode_verified, encode_verified, watch
from primitives.clock import ManualClock
from primitives.crypto import keccak256, private_key_to_address
from primitives.errors import InvalidInput
from primitives.types import Address, Hash32
from tests.node.helpers import CHAIN_ID, VALIDATOR_KEYS, WEIGHTS, make_node, transfer

KEY = VALIDATOR_KEYS[0]


@dataclass
class Setup:
    """A producer chain, its batch contract on an embedded L1, and a watcher over both."""

    clock: ManualClock
    producer: Node
    l1: EmbeddedL1
    poster: Web3L1Client
    reader: Web3L1Client
    follower: Node
    """The node under the watcher's chain."""
    chain: NodeChain
    watcher: Watcher

    def produce(self, txs_per_block: Sequence[int]) -> None:
        """Blocks of transfers (user i sends its next nonce), one per entry."""
        for count in txs_per_block:
            for user in range(count):
                nonce = self.producer.state.at(self.producer.head().state_root).get_account(
                    private_key_to_address((0x1000 + user).to_bytes(32, "big"))
                )
                self.producer.submit(transfer(user, 0 if nonce is None else nonce.nonce))
            self.clock.advance(1)
            self.producer.produce_block()

    def post(
        self,
        first: int,
        last: int,
        *,
        state_root: Hash32 | None = None,
        blocks: Sequence[L2BlockData] | None = None,
        data: bytes | None = None,
        signers: Sequence[bytes] = VALIDATOR_KEYS,
    ) -> CommittedBatch:
        """Commit blocks first..last (or tampered ``state_root`` / ``blocks`` / ``data``),
        signed by ``signers`` (default: all four validators)."""
        latest = self.poster.latest_batch()
        if data is None:
            data = encode_batch_data(
                blocks or [self.producer.block_data(n) for n in range(first, last + 1)]
            )
        commitment = BatchCommitment(
            batch_number=1 if latest is None else latest.batch_number + 1,
            prev_state_root=self.producer.state_root(0) if latest is None else latest.state_root,
            state_root=state_root or self.producer.state_root(last),
            first_block=first,
            last_block=last,
            data_hash=batch_data_hash(data),
        )
        self.poster.commit_batch(commitment, data, self.sign(commitment, signers))
        posted = self.poster.batch(commitment.batch_number)
        assert posted is not None
        return posted

    def sign(self, commitment: BatchCommitment, keys: Sequence[bytes]) -> list[bytes]:
        digest = batch_digest(self.poster.domain(), commitment)
        return sorted((sign_batch(digest, k) for k in keys),
                      key=lambda s: recover_batch_signer(digest, s))

    def steps(self) -> list[BatchReport | Unwound]:
        """Every step until the watcher is caught up."""
        events = []
        while (event := self.watcher.step()) is not None:
            events.append(event)
        return events

    def reports(self) -> list[BatchReport]:
        events = self.steps()
        assert all(isinstance(e, BatchReport) for e in events), events
        return [e for e in events if isinstance(e, BatchReport)]

    def assert_derived_up_to(self, block: int) -> None:
        """The watcher's chain is the producer's, header for header, up to ``block``."""
        assert self.follower.head_number() == block
        for number in range(block + 1):
            assert self.follower.chain.header(number) == self.producer.chain.header(number)

    def tester(self) -> EthereumTester:
        provider: Any = self.l1.w3.provider
        tester: EthereumTester = provider.ethereum_tester
        return tester


def make_setup(
    kv: MemoryKV | None = None, epoch_length: int = 0,
    deployed: Mapping[Address, int] = WEIGHTS,
) -> Setup:
    """``deployed``: the validator set the contract is deployed with (default: the genesis')."""
    clock = ManualClock()
    producer = make_node(clock, KEY, epoch_length=epoch_length)
    l1 = start_embedded_l1()
    address = deploy_batch_inbox(
        l1.w3, l1.deployer_key, CHAIN_ID, producer.state_root(0), sorted(deployed),
        [deployed[a] for a in sorted(deployed)],
    )
    reader = Web3L1Client(l1.w3, address)
    follower = make_node(clock, kv=kv, epoch_length=epoch_length)
    chain = NodeChain(follower)
    return Setup(
        clock, producer, l1, Web3L1Client(l1.w3, address, l1.poster_key), reader, follower,
        chain, Watcher(reader, chain),
    )


@pytest.fixture
def setup() -> Setup:
    return make_setup()


def test_every_honest_batch_verifies_and_the_chain_is_the_producers(setup: Setup) -> None:
    setup.watcher.check_genesis()
    setup.produce([2, 0, 3, 1, 4])
    for first, last in ((1, 2), (3, 4), (5, 5)):
        setup.post(first, last)
    reports = setup.reports()
    assert [(r.status, r.txs) for r in reports] == [(Status.OK, 2), (Status.OK, 4), (Status.OK, 4)]
    assert [r.derived_root for r in reports] == [setup.producer.state_root(n) for n in (2, 4, 5)]
    assert reports[0].line() == (
        f"batch 1 blocks 1-2 txs 2 OK root 0x{setup.producer.state_root(2).hex()}"
    )
    setup.assert_derived_up_to(5)
    assert setup.chain.last_verified() == reports[-1].batch
    # A new batch later: the same watcher picks it up.
    setup.produce([1])
    setup.post(6, 6)
    assert [r.status for r in setup.reports()] == [Status.OK]
    setup.assert_derived_up_to(6)


def install(setup: Setup, new_set: ValidatorSet) -> None:
    """updateValidators with ``new_set``, signed by all four validators."""
    digest = validator_set_digest(setup.poster.domain(), new_set)
    setup.poster.update_validators(new_set, sorted(
        (sign_batch(digest, k) for k in VALIDATOR_KEYS), key=lambda s: recover_batch_signer(digest, s)
    ))


def test_batches_verify_against_each_epochs_set_as_installed_on_l1() -> None:
    # Epochs of 3 blocks; no proofs, so every epoch keeps the genesis weights.
    setup = make_setup(epoch_length=3)
    setup.produce([1, 0, 1, 1, 0, 2, 1])
    setup.post(1, 3)
    install(setup, ValidatorSet.of(1, WEIGHTS))
    setup.post(4, 6, signers=VALIDATOR_KEYS[1:])  # three of four: a quorum
    install(setup, ValidatorSet.of(2, WEIGHTS))
    setup.post(7, 7)
    assert [r.status for r in setup.reports()] == [Status.OK] * 3
    assert [len(setup.reader.batch_signatures(b)) for b in
            (setup.reader.batch(n) for n in (1, 2, 3)) if b is not None] == [4, 3, 4]


def test_a_batch_posted_before_its_epochs_set_is_a_mismatch() -> None:
    setup = make_setup(epoch_length=3)
    setup.produce([1, 0, 1, 1])
    setup.post(1, 3)
    setup.post(4, 4)  # the contract still holds set 0, and takes it
    ok, bad = setup.reports()
    assert ok.status is Status.OK and bad.status is Status.MISMATCH
    assert "L1 checked its signatures against validator set 0" in bad.reason
    assert "not epoch 1's" in bad.reason


def test_an_installed_set_that_is_not_the_chains_weights_is_a_mismatch() -> None:
    setup = make_setup(epoch_length=3)
    setup.produce([1, 0, 1, 1])
    setup.post(1, 3)
    install(setup, ValidatorSet.of(1, {a: 2 for a in WEIGHTS}))  # the chain says 1 each
    setup.post(4, 4)
    _ok, bad = setup.reports()
    assert bad.status is Status.MISMATCH and "not epoch 1's" in bad.reason


def test_a_batch_across_an_epoch_boundary_is_a_mismatch() -> None:
    setup = make_setup(epoch_length=3)
    setup.produce([1, 0, 1, 1])
    setup.post(1, 4)
    (bad,) = setup.reports()
    assert bad.status is Status.MISMATCH and "span epochs 0-1" in bad.reason


def test_a_contract_deployed_with_another_set_is_a_mismatch() -> None:
    # The contract trusts validator 0 alone; the chain's genesis names four validators.
    setup = make_setup(deployed={private_key_to_address(KEY): 1})
    setup.produce([1])
    setup.post(1, 1, signers=[KEY])
    (bad,) = setup.reports()
    assert bad.status is Status.MISMATCH
    assert "validator set 0 {0x" in bad.reason and "not epoch 0's" in bad.reason


@dataclass
class LaxContract:
    """The reader's L1 as a contract that checked signatures differently would leave it:
    ``keep`` picks which of each batch's signatures were on L1."""

    inner: Web3L1Client
    keep: Callable[[tuple[bytes, ...]], tuple[bytes, ...]]

    def batch_signatures(self, batch: CommittedBatch) -> tuple[bytes, ...]:
        return self.keep(self.inner.batch_signatures(batch))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize(("keep", "reason"), [
    (lambda sigs: sigs[:2], "signatures hold 2 of 4 weight: not more than 2/3"),
    (lambda sigs: sigs[::-1], "not in strictly ascending address order"),
    (lambda sigs: (*sigs[:3], sigs[2]), "not in strictly ascending address order"),
    (lambda sigs: (sigs[0][:64] + b"\x05",), "signatures: batch signature v must be 27 or 28"),
])
def test_signatures_that_do_not_hold_the_contracts_quorum_rule_are_a_mismatch(
    setup: Setup, keep: Callable[[tuple[bytes, ...]], tuple[bytes, ...]], reason: str
) -> None:
    setup.produce([1])
    setup.post(1, 1)
    watcher = Watcher(cast(L1Client, LaxContract(setup.reader, keep)), setup.chain)
    report = watcher.step()
    assert isinstance(report, BatchReport) and report.status is Status.MISMATCH
    assert reason in report.reason


def test_a_stranger_among_the_signers_is_a_mismatch(setup: Setup) -> None:
    setup.produce([1])
    batch = setup.post(1, 1)
    stranger = b"\x09" * 32
    digest = batch_digest(setup.reader.domain(), batch.commitment)
    extra = sign_batch(digest, stranger)
    watcher = Watcher(cast(L1Client, LaxContract(setup.reader, lambda sigs: tuple(
        sorted((*sigs, extra), key=lambda s: recover_batch_signer(digest, s))))), setup.chain)
    report = watcher.step()
    assert isinstance(report, BatchReport) and report.status is Status.MISMATCH
    assert report.reason == (f"0x{private_key_to_address(stranger).hex()} signed but is not in "
                             "epoch 0's set")


def test_a_second_watcher_resumes_where_the_first_stopped() -> None:
    kv = MemoryKV()
    setup = make_setup(kv)
    setup.produce([1, 1, 1])
    setup.post(1, 2)
    assert len(setup.reports()) == 1
    setup.post(3, 3)
    resumed = Watcher(setup.reader, NodeChain(make_node(setup.clock, kv=kv)))
    assert resumed.next_batch() == 2
    event = resumed.step()
    assert isinstance(event, BatchReport) and event.batch.batch_number == 2
    assert event.status is Status.OK and resumed.step() is None


def test_blocks_replayed_past_the_last_verified_batch_are_dropped(setup: Setup) -> None:
    """A crash in the middle of a batch leaves blocks without a record: they go first."""
    setup.produce([1, 2])
    setup.post(1, 2)
    setup.chain.replay(setup.producer.block_data(1))
    assert setup.chain.head_block() == 1 and setup.chain.last_verified() is None
    assert [r.status for r in setup.reports()] == [Status.OK]
    setup.assert_derived_up_to(2)


def test_a_tampered_state_root_is_a_mismatch_and_what_follows_is_unverified(
    setup: Setup,
) -> None:
    setup.produce([1, 2, 1, 1])
    setup.post(1, 1)
    forged = keccak256(b"forged state")
    setup.post(2, 3, state_root=forged)
    setup.post(4, 4)  # the contract chains it onto the forged root
    ok, bad, after = setup.reports()
    assert ok.status is Status.OK
    assert bad.status is Status.MISMATCH and bad.txs == 3
    assert bad.derived_root == setup.producer.state_root(3)
    assert bad.line() == (
        f"batch 2 blocks 2-3 txs 3 MISMATCH expected 0x{setup.producer.state_root(3).hex()} "
        f"posted 0x{forged.hex()}: re-executing blocks 2-3 gives another root"
    )
    assert after.status is Status.UNVERIFIED and after.txs == 1
    assert "follows batch 2" in after.line()
    assert setup.watcher.diverged == bad.batch
    setup.assert_derived_up_to(1)  # the mismatched batch's blocks are not kept
    # A fresh run finds the same mismatch again.
    again = Watcher(setup.reader, setup.chain)
    event = again.step()
    assert isinstance(event, BatchReport) and event.status is Status.MISMATCH


def _with(block: L2BlockData, **changes: Any) -> L2BlockData:
    return dataclasses.replace(block, **changes)


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda s: {"data": b"\x01not zlib"}, "malformed data: batch data is not zlib"),
        (lambda s: {"data": b""}, "malformed data: empty batch data"),
        (
            lambda s: {"blocks": [s.producer.block_data(1)]},
            "data holds blocks 1-1 (1 blocks), not the batch's range",
        ),
        (
            lambda s: {"blocks": [s.producer.block_data(2), s.producer.block_data(1)]},
            "data holds blocks 2-1",
        ),
        (
            lambda s: {"blocks": [
                s.producer.block_data(1),
                _with(s.producer.block_data(2), transactions=(transfer(0, 7),)),
            ]},
            "block 2 is invalid: includes an invalid transaction",
        ),
        (
            lambda s: {"blocks": [
                _with(s.producer.block_data(1), transactions=(transfer(0, 0, chain_id=1),)),
                s.producer.block_data(2),
            ]},
            "block 1 is invalid: transaction",
        ),
        (
            lambda s: {"blocks": [
                _with(s.producer.block_data(1), transactions=(b"\x02junk",)),
                s.producer.block_data(2),
            ]},
            "block 1 is invalid:",
        ),
        (
            lambda s: {"blocks": [
                s.producer.block_data(1),
                _with(s.producer.block_data(2), base_fee_per_gas=1),
            ]},
            "block 2 is invalid: gas limit 30000000 and base fee 1",
        ),
        (
            lambda s: {"blocks": [
                s.producer.block_data(1),
                _with(s.producer.block_data(2), timestamp=s.producer.block_data(1).timestamp),
            ]},
            "block 2 is invalid: timestamp does not increase",
        ),
    ],
    ids=[
        "not-zlib", "empty", "missing-block", "out-of-order", "bad-nonce", "other-chain",
        "undecodable-tx", "base-fee", "timestamp",
    ],
)
def test_tampered_data_is_a_mismatch_with_a_reason(
    setup: Setup, tamper: Any, reason: str
) -> None:
    setup.produce([1, 1])
    setup.post(1, 2, **tamper(setup))
    report = setup.watcher.step()
    assert isinstance(report, BatchReport) and report.status is Status.MISMATCH
    assert reason in report.reason
    # Whatever was replayed of the batch is gone at once.
    assert setup.chain.head_block() == 0 and setup.chain.last_verified() is None
    assert setup.watcher.step() is None


def test_a_genesis_that_is_not_the_contracts_is_refused(setup: Setup) -> None:
    other = Watcher(setup.reader, NodeChain(make_node(setup.clock, kv=MemoryKV())))
    other.check_genesis()  # same genesis: fine
    setup.producer.submit(transfer(0, 0))
    setup.producer.produce_block()

    class ShiftedGenesis(NodeChain):
        def genesis_root(self) -> Hash32:
            return setup.producer.state_root(1)

    with pytest.raises(InvalidInput, match="wrong --genesis or --contract"):
        Watcher(setup.reader, ShiftedGenesis(make_node(setup.clock))).check_genesis()


def test_an_l1_reorg_unwinds_to_the_batch_l1_still_holds(setup: Setup) -> None:
    setup.produce([1, 1, 2, 1])
    setup.post(1, 2)
    snapshot = setup.tester().take_snapshot()
    setup.post(3, 4)
    assert [r.status for r in setup.reports()] == [Status.OK, Status.OK]
    setup.assert_derived_up_to(4)
    # L1 drops batch 2; it comes back split in two.
    setup.tester().revert_to_snapshot(snapshot)
    setup.poster = Web3L1Client(setup.l1.w3, setup.poster.contract_address, setup.l1.poster_key)
    setup.post(3, 3)
    setup.post(4, 4)
    events = setup.steps()
    assert events[0] == Unwound(2, 2)
    assert events[0].line() == (
        "reorg: L1 no longer holds batches 2-2 as verified; unwound to batch 1"
    )
    assert [(e.batch.first_block, e.status) for e in events[1:] if isinstance(e, BatchReport)] == [
        (3, Status.OK), (4, Status.OK)
    ]
    setup.assert_derived_up_to(4)
    # The flat state unwound with the blocks and followed the replayed ones.
    assert setup.follower.state.at(setup.follower.head().state_root).reads_flat


def test_a_reorg_that_replaces_a_bad_batch_resumes_verification(setup: Setup) -> None:
    setup.produce([1, 1])
    setup.post(1, 1)
    snapshot = setup.tester().take_snapshot()
    setup.post(2, 2, state_root=keccak256(b"forged"))
    assert [r.status for r in setup.reports()] == [Status.OK, Status.MISMATCH]
    setup.tester().revert_to_snapshot(snapshot)
    setup.poster = Web3L1Client(setup.l1.w3, setup.poster.contract_address, setup.l1.poster_key)
    setup.post(2, 2)
    assert [r.status for r in setup.reports()] == [Status.OK]
    assert setup.watcher.diverged is None
    setup.assert_derived_up_to(2)


def test_verified_records_round_trip(setup: Setup) -> None:
    setup.produce([1])
    batch = setup.post(1, 1)
    assert decode_verified(encode_verified(batch)) == batch


def _forged_chain(setup: Setup) -> None:
    """Batches 1 (honest), 2 (forged root), 3 (honest data on the forged root)."""
    setup.produce([1, 1, 1])
    setup.post(1, 1)
    setup.post(2, 2, state_root=keccak256(b"forged"))
    setup.post(3, 3)


def test_watch_reports_every_batch_and_fails_at_the_end(setup: Setup) -> None:
    _forged_chain(setup)
    out = io.StringIO()
    assert watch(setup.watcher, setup.reader, WatchOptions(), out, io.StringIO()) == 1
    assert [line.split()[6] for line in out.getvalue().splitlines()] == [
        "OK", "MISMATCH", "UNVERIFIED:"
    ]


def test_watch_strict_stops_at_the_first_mismatch(setup: Setup) -> None:
    _forged_chain(setup)
    out = io.StringIO()
    assert watch(setup.watcher, setup.reader, WatchOptions(strict=True), out, io.StringIO()) == 1
    assert [line.split()[6] for line in out.getvalue().splitlines()] == ["OK", "MISMATCH"]


def test_watch_from_batch_prints_only_later_verdicts_and_exits_0(setup: Setup) -> None:
    setup.produce([1, 1, 1])
    for n in (1, 2, 3):
        setup.post(n, n)
    out = io.StringIO()
    options = WatchOptions(strict=True, from_batch=3)
    assert watch(setup.watcher, setup.reader, options, out, io.StringIO()) == 0
    assert [line.split()[1] for line in out.getvalue().splitlines()] == ["3"]
    setup.assert_derived_up_to(3)


def test_watch_follow_picks_up_new_batches_until_interrupted(setup: Setup) -> None:
    setup.produce([1, 1])
    setup.post(1, 1)
    pauses: list[float] = []

    def sleep(seconds: float) -> None:  # L1 gets a new batch while the watcher waits
        pauses.append(seconds)
        if len(pauses) == 1:
            setup.post(2, 2)
        else:
            raise KeyboardInterrupt

    out = io.StringIO()
    options = WatchOptions(follow=True, poll_interval=0.5)
    assert watch(setup.watcher, setup.reader, options, out, io.StringIO(), sleep) == 0
    assert [line.split()[1] for line in out.getvalue().splitlines()] == ["1", "2"]
    assert pauses == [0.5, 0.5]
