"""One validator's state machine, fed hand-made signed messages: the rules of Algorithm 1."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from p2p.types import Validation
from primitives.clock import ManualClock
from primitives.crypto import keccak256, private_key_to_address
from primitives.errors import InvalidInput
from primitives.types import Address, Hash32
from sequencer import wire
from sequencer.consensus import Consensus, verify_certificate
from sequencer.gates import check_consensus_message
from sequencer.leader import proposer
from sequencer.types import (
    NIL_ROUND,
    Action,
    Behind,
    Broadcast,
    CommitCertificate,
    ConsensusConfig,
    Decide,
    Disagree,
    Proposal,
    Step,
    ValidatorSet,
    Vote,
    VoteKind,
)

CHAIN_ID = 7331
SEED = b"unit seed"
HEIGHT = 7
KEYS = {private_key_to_address((i + 1).to_bytes(32, "big")): (i + 1).to_bytes(32, "big")
        for i in range(4)}
VALIDATORS = ValidatorSet.of(dict.fromkeys(KEYS, 1))
CONFIG = ConsensusConfig()


class App:
    """Values are accepted unless listed in ``invalid``, and endorsed unless listed in
    ``unendorsed``; counts validations."""

    def __init__(self) -> None:
        self.invalid: set[bytes] = set()
        self.unendorsed: set[bytes] = set()
        self.validations = 0
        self.built: list[tuple[int, int]] = []

    def build(self, height: int, round: int) -> tuple[bytes, Hash32]:
        self.built.append((height, round))
        value = f"own {height}/{round}".encode()
        return value, keccak256(value)

    def validate(self, height: int, value: bytes, value_id: Hash32) -> bool:
        self.validations += 1
        return keccak256(value) == value_id and value not in self.invalid

    def endorses(self, height: int, value: bytes, value_id: Hash32) -> bool:
        return value not in self.unendorsed


def proposer_of(round: int, height: int = HEIGHT) -> Address:
    return proposer(VALIDATORS, SEED, height, round)


def others(me: Address) -> list[Address]:
    return [a for a in KEYS if a != me]


def machine(who: Address, app: App | None = None, clock: ManualClock | None = None
            ) -> tuple[Consensus, App, ManualClock, list[Action]]:
    app = app or App()
    clock = clock or ManualClock()
    consensus = Consensus(chain_id=CHAIN_ID, app=app, clock=clock, private_key=KEYS[who],
                          config=CONFIG)
    return consensus, app, clock, consensus.start_height(HEIGHT, VALIDATORS, SEED)


def propose(round: int, value: bytes, pol_round: int = NIL_ROUND, height: int = HEIGHT) -> Proposal:
    who = proposer_of(round, height)
    return wire.sign_proposal(CHAIN_ID, KEYS[who], height, round, value, keccak256(value),
                              pol_round, who)


def vote(who: Address, kind: VoteKind, round: int, value: bytes | None,
         height: int = HEIGHT) -> Vote:
    value_id = keccak256(value) if value is not None else None
    return wire.sign_vote(CHAIN_ID, KEYS[who], kind, height, round, value_id, who)


def sent(actions: list[Action]) -> list[Proposal | Vote]:
    return [a.message for a in actions if isinstance(a, Broadcast)]


def own_votes(actions: list[Action], kind: VoteKind) -> list[Hash32 | None]:
    return [m.value_id for m in sent(actions) if isinstance(m, Vote) and m.kind is kind]


def feed(consensus: Consensus, messages: Sequence[Proposal | Vote]) -> list[Action]:
    actions: list[Action] = []
    for message in messages:
        actions += consensus.on_message(message)
    return actions


def a_follower(round: int = 0) -> Address:
    """A validator that is not the proposer of ``round``."""
    return next(a for a in KEYS if a != proposer_of(round))


# -- proposing and prevoting --------------------------------------------------------------------


def test_proposer_builds_proposes_and_prevotes_its_value() -> None:
    me = proposer_of(0)
    consensus, app, _, actions = machine(me)
    proposal, prevote = sent(actions)
    assert isinstance(proposal, Proposal) and proposal.pol_round == NIL_ROUND
    assert app.built == [(HEIGHT, 0)]
    assert isinstance(prevote, Vote) and prevote.kind is VoteKind.PREVOTE
    assert prevote.value_id == proposal.value_id
    assert consensus.step is Step.PREVOTE
    for message in (proposal, prevote):  # what it signs, peers decode and accept
        data = wire.encode_message(message)
        assert wire.decode_message(CHAIN_ID, data) == message
        assert check_consensus_message(
            data, chain_id=CHAIN_ID, height=HEIGHT, validators=VALIDATORS, seed=SEED
        ) is Validation.ACCEPT


def test_follower_prevotes_a_valid_proposal_once() -> None:
    consensus, app, _, actions = machine(a_follower())
    assert sent(actions) == [] and consensus.step is Step.PROPOSE
    proposal = propose(0, b"block")
    assert own_votes(consensus.on_message(proposal), VoteKind.PREVOTE) == [keccak256(b"block")]
    assert consensus.on_message(proposal) == []  # duplicates change nothing
    assert app.validations == 1


def test_invalid_proposal_gets_a_nil_prevote() -> None:
    app = App()
    app.invalid.add(b"bad root")
    consensus, _, _, _ = machine(a_follower(), app)
    assert own_votes(consensus.on_message(propose(0, b"bad root")), VoteKind.PREVOTE) == [None]


def test_late_proposal_gets_a_nil_prevote_after_the_propose_timeout() -> None:
    consensus, _, clock, _ = machine(a_follower())
    assert consensus.next_deadline() == clock.now() + CONFIG.propose
    clock.advance(CONFIG.propose - 0.01)
    assert consensus.tick() == []
    clock.advance(0.01)
    assert own_votes(consensus.tick(), VoteKind.PREVOTE) == [None]
    assert own_votes(consensus.on_message(propose(0, b"late")), VoteKind.PREVOTE) == []


def test_proposal_from_a_non_proposer_is_ignored_and_rejected_at_the_gate() -> None:
    me = a_follower()
    consensus, _, _, _ = machine(me)
    intruder = next(a for a in KEYS if a not in (me, proposer_of(0)))
    forged = wire.sign_proposal(CHAIN_ID, KEYS[intruder], HEIGHT, 0, b"x", keccak256(b"x"),
                                NIL_ROUND, intruder)
    assert consensus.on_message(forged) == []
    assert check_consensus_message(
        wire.encode_message(forged), chain_id=CHAIN_ID, height=HEIGHT, validators=VALIDATORS,
        seed=SEED,
    ) is Validation.REJECT


# -- quorums, locks, decisions ------------------------------------------------------------------


def test_polka_locks_precommits_and_decides_with_a_certificate() -> None:
    me = a_follower()
    consensus, _, _, _ = machine(me)
    feed(consensus, [propose(0, b"block")])
    peers = others(me)
    actions = feed(consensus, [vote(peers[0], VoteKind.PREVOTE, 0, b"block")])
    assert own_votes(actions, VoteKind.PRECOMMIT) == []  # 2 of 4 is no quorum
    actions = feed(consensus, [vote(peers[1], VoteKind.PREVOTE, 0, b"block")])
    assert own_votes(actions, VoteKind.PRECOMMIT) == [keccak256(b"block")]
    assert consensus.locked_round == 0 and consensus.valid_round == 0
    actions = feed(consensus, [vote(p, VoteKind.PRECOMMIT, 0, b"block") for p in peers[:2]])
    decisions = [a for a in actions if isinstance(a, Decide)]
    assert len(decisions) == 1 and decisions[0].value == b"block"
    certificate = decisions[0].certificate
    verify_certificate(certificate, VALIDATORS)
    assert {v.validator for v in certificate.votes} == {me, *peers[:2]}
    assert consensus.step is Step.DECIDED and consensus.next_deadline() is None
    assert feed(consensus, [vote(peers[2], VoteKind.PRECOMMIT, 0, b"block")]) == []


def lock_on_round_zero(me: Address) -> tuple[Consensus, ManualClock, list[Action]]:
    """``me`` locked on b"A" in round 0, then moved to round 1 (no decision); returns the
    actions of entering round 1."""
    consensus, _, clock, _ = machine(me)
    feed(consensus, [propose(0, b"A")])
    feed(consensus, [vote(p, VoteKind.PREVOTE, 0, b"A") for p in others(me)[:2]])
    assert consensus.locked_round == 0
    feed(consensus, [vote(p, VoteKind.PRECOMMIT, 0, None) for p in others(me)[:2]])
    clock.advance(CONFIG.timeout(Step.PRECOMMIT, 0))
    actions = consensus.tick()
    assert consensus.round == 1
    return consensus, clock, actions


def test_a_locked_validator_prevotes_nil_for_another_value() -> None:
    me = next(a for a in KEYS if a not in (proposer_of(0), proposer_of(1)))
    consensus, _, _ = lock_on_round_zero(me)
    assert own_votes(feed(consensus, [propose(1, b"B")]), VoteKind.PREVOTE) == [None]


def test_a_locked_validator_prevotes_its_locked_value_again() -> None:
    me = next(a for a in KEYS if a not in (proposer_of(0), proposer_of(1)))
    consensus, _, _ = lock_on_round_zero(me)
    actions = feed(consensus, [propose(1, b"A", pol_round=0)])
    assert own_votes(actions, VoteKind.PREVOTE) == [keccak256(b"A")]


def test_a_later_polka_unlocks() -> None:
    """Line 28: a proposal whose pol_round is at or after the lock, with that round's polka."""
    me = next(a for a in KEYS if a not in (proposer_of(0), proposer_of(1), proposer_of(2)))
    consensus, clock, _ = lock_on_round_zero(me)
    peers = others(me)
    feed(consensus, [vote(p, VoteKind.PREVOTE, 1, b"B") for p in peers])  # polka for B in round 1
    feed(consensus, [vote(p, VoteKind.PRECOMMIT, 1, None) for p in peers])
    clock.advance(CONFIG.timeout(Step.PRECOMMIT, 1))
    consensus.tick()
    assert consensus.round == 2 and consensus.locked_round == 0
    actions = feed(consensus, [propose(2, b"B", pol_round=1)])
    assert own_votes(actions, VoteKind.PREVOTE) == [keccak256(b"B")]


def test_proposer_reproposes_its_valid_value_with_its_round() -> None:
    me = proposer_of(1)  # rounds rotate: not the proposer of round 0
    _, _, actions = lock_on_round_zero(me)
    proposals = [m for m in sent(actions) if isinstance(m, Proposal)]
    assert [(p.round, p.value, p.pol_round) for p in proposals] == [(1, b"A", 0)]
    prevotes = [m for m in sent(actions) if isinstance(m, Vote)]
    assert (1, keccak256(b"A")) in [(v.round, v.value_id) for v in prevotes if v.validator == me]
    # the round-0 polka travels with the re-proposal: peers that lost some prevotes need it
    polka = {v.validator for v in prevotes if v.round == 0 and v.value_id == keccak256(b"A")}
    assert polka == {me, *others(me)[:2]}


def test_nil_polka_precommits_nil_and_nil_precommits_end_the_round_at_once() -> None:
    me = a_follower()
    consensus, _, clock, _ = machine(me)
    clock.advance(CONFIG.timeout(Step.PROPOSE, 0))
    consensus.tick()
    actions = feed(consensus, [vote(p, VoteKind.PREVOTE, 0, None) for p in others(me)[:2]])
    assert own_votes(actions, VoteKind.PRECOMMIT) == [None]
    feed(consensus, [vote(p, VoteKind.PRECOMMIT, 0, None) for p in others(me)[:2]])
    assert consensus.round == 1  # nothing can be decided in round 0: no timeoutPrecommit
    assert consensus.next_deadline() == clock.now() + CONFIG.timeout(Step.PROPOSE, 1)


def test_split_precommits_wait_for_the_growing_precommit_timeout() -> None:
    me = a_follower()
    consensus, _, clock, _ = machine(me)
    feed(consensus, [propose(0, b"A")])
    peers = others(me)
    feed(consensus, [vote(peers[0], VoteKind.PREVOTE, 0, b"A"),
                     vote(peers[1], VoteKind.PREVOTE, 0, b"A")])
    feed(consensus, [vote(peers[0], VoteKind.PRECOMMIT, 0, None),
                     vote(peers[1], VoteKind.PRECOMMIT, 0, b"B")])
    assert consensus.round == 0
    assert consensus.next_deadline() == clock.now() + CONFIG.timeout(Step.PRECOMMIT, 0)
    clock.advance(CONFIG.timeout(Step.PRECOMMIT, 0))
    consensus.tick()
    assert consensus.round == 1
    for step in (Step.PROPOSE, Step.PREVOTE, Step.PRECOMMIT):
        assert [CONFIG.timeout(step, r) for r in range(4)] == sorted(
            {CONFIG.timeout(step, r) for r in range(4)})


def test_split_prevotes_wait_for_the_prevote_timeout() -> None:
    me = a_follower()
    consensus, _, clock, _ = machine(me)
    feed(consensus, [propose(0, b"A")])
    peers = others(me)
    feed(consensus, [vote(peers[0], VoteKind.PREVOTE, 0, None),
                     vote(peers[1], VoteKind.PREVOTE, 0, b"B")])
    assert consensus.step is Step.PREVOTE
    assert consensus.next_deadline() == clock.now() + CONFIG.timeout(Step.PREVOTE, 0)
    clock.advance(CONFIG.timeout(Step.PREVOTE, 0))
    assert own_votes(consensus.tick(), VoteKind.PRECOMMIT) == [None]


def test_decides_a_value_of_an_earlier_round() -> None:
    """Line 49 holds for any round: late precommits of round 0 decide in round 1."""
    me = a_follower()
    consensus, _, clock, _ = machine(me)
    feed(consensus, [propose(0, b"A")])
    clock.advance(60)
    consensus.tick()
    feed(consensus, [vote(p, VoteKind.PREVOTE, 1, None) for p in others(me)[:2]])
    assert consensus.round >= 1
    actions = feed(consensus, [vote(p, VoteKind.PRECOMMIT, 0, b"A") for p in others(me)])
    assert [a.value for a in actions if isinstance(a, Decide)] == [b"A"]


def test_more_than_one_third_in_a_later_round_skips_to_it() -> None:
    me = a_follower()
    consensus, _, _, _ = machine(me)
    peers = others(me)
    feed(consensus, [vote(peers[0], VoteKind.PREVOTE, 5, None)])
    assert consensus.round == 0  # one of four may be byzantine
    feed(consensus, [vote(peers[1], VoteKind.PRECOMMIT, 5, None)])
    assert consensus.round == 5


# -- bounds, evidence, restarts -----------------------------------------------------------------


def test_messages_far_ahead_or_behind_are_dropped() -> None:
    me = a_follower()
    consensus, _, _, _ = machine(me)
    peers = others(me)
    far = CONFIG.max_rounds_ahead + 1
    feed(consensus, [vote(p, VoteKind.PREVOTE, far, None) for p in peers])
    assert consensus.round == 0 and consensus._votes == {}
    feed(consensus, [vote(p, VoteKind.PREVOTE, 0, None, height=HEIGHT - 1) for p in peers])
    assert consensus._votes == {}


def test_next_height_is_buffered_within_a_bound_then_replayed() -> None:
    me = a_follower()
    consensus, _, _, _ = machine(me)
    peers = others(me)
    many = [vote(p, kind, r, None, height=HEIGHT + 1)
            for r in range(40) for p in peers for kind in VoteKind]
    feed(consensus, many)
    assert len(consensus._buffer) <= 3 * 4 * (CONFIG.max_rounds_ahead + 1)
    consensus.start_height(HEIGHT + 1, VALIDATORS, SEED)
    assert consensus.round >= 1  # replayed votes of later rounds moved it on


def test_equivocation_is_recorded_once_and_the_first_vote_counts() -> None:
    me = a_follower()
    consensus, _, _, _ = machine(me)
    liar = others(me)[0]
    first, second = vote(liar, VoteKind.PREVOTE, 0, b"A"), vote(liar, VoteKind.PREVOTE, 0, b"B")
    feed(consensus, [first, second, vote(liar, VoteKind.PREVOTE, 0, None), second])
    evidence = consensus.take_evidence()
    assert len(evidence) == 1
    assert (evidence[0].first, evidence[0].second, evidence[0].offender) == (first, second, liar)
    assert consensus._votes[(VoteKind.PREVOTE, 0)][liar] == first
    assert consensus.take_evidence() == []


def test_behind_is_reported_when_a_third_is_at_later_heights() -> None:
    me = a_follower()
    consensus, _, clock, _ = machine(me)
    peers = others(me)
    feed(consensus, [vote(peers[0], VoteKind.PRECOMMIT, 0, None, height=HEIGHT + 9)])
    clock.advance(CONFIG.rebroadcast + 0.01)
    assert not any(isinstance(a, Behind) for a in consensus.tick())
    feed(consensus, [vote(peers[1], VoteKind.PREVOTE, 3, None, height=HEIGHT + 5)])
    clock.advance(CONFIG.rebroadcast + 0.01)
    assert [a.height for a in consensus.tick() if isinstance(a, Behind)] == [HEIGHT + 5]


def test_stuck_step_rebroadcasts_own_messages() -> None:
    me = a_follower()
    consensus, _, clock, _ = machine(me)
    mine = own_votes(feed(consensus, [propose(0, b"A")]), VoteKind.PREVOTE)
    clock.advance(CONFIG.rebroadcast)
    assert own_votes(consensus.tick(), VoteKind.PREVOTE) == mine


def test_replayed_log_keeps_the_lock_and_signs_nothing_conflicting() -> None:
    me = next(a for a in KEYS if a not in (proposer_of(0), proposer_of(1)))
    before, _, _ = lock_on_round_zero(me)
    before_nil = own_votes(feed(before, [propose(1, b"B")]), VoteKind.PREVOTE)
    assert before_nil == [None]
    log: list[Proposal | Vote] = [*before._proposals.values(),
           *(v for votes in before._votes.values() for v in votes.values())]
    fresh = Consensus(chain_id=CHAIN_ID, app=App(), clock=ManualClock(), private_key=KEYS[me])
    actions = fresh.start_height(HEIGHT, VALIDATORS, SEED, replay=log)
    assert fresh.round == 1 and fresh.locked_round == 0
    assert own_votes(actions + feed(fresh, [propose(1, b"B")]), VoteKind.PREVOTE) == before_nil
    assert fresh.take_evidence() == []


# -- certificates and the gate ------------------------------------------------------------------


def certificate_of(signers: list[Address], value: bytes = b"A") -> CommitCertificate:
    return CommitCertificate(HEIGHT, 0, keccak256(value), tuple(
        vote(a, VoteKind.PRECOMMIT, 0, value) for a in sorted(signers)))


def test_verify_certificate() -> None:
    signers = list(KEYS)
    verify_certificate(certificate_of(signers[:3]), VALIDATORS)
    with pytest.raises(InvalidInput, match="2/3"):
        verify_certificate(certificate_of(signers[:2]), VALIDATORS)
    twice = certificate_of(signers[:3])
    with pytest.raises(InvalidInput, match="twice"):
        verify_certificate(CommitCertificate(HEIGHT, 0, twice.value_id,
                                             twice.votes + twice.votes[:1]), VALIDATORS)
    mixed = CommitCertificate(HEIGHT, 0, keccak256(b"A"), certificate_of(signers[:2]).votes
                              + certificate_of(signers[2:3], b"B").votes)
    with pytest.raises(InvalidInput, match="not a precommit for the certified value"):
        verify_certificate(mixed, VALIDATORS)
    smaller = ValidatorSet.of(dict.fromkeys(signers[:2], 1))
    with pytest.raises(InvalidInput, match="not a validator"):
        verify_certificate(certificate_of(signers[:3]), smaller)


@pytest.mark.parametrize(
    "data, verdict",
    [
        (b"\xc0", Validation.REJECT),
        (b"\x00" * 10, Validation.REJECT),
        (wire.encode_message(vote(next(iter(KEYS)), VoteKind.PREVOTE, 0, None, HEIGHT - 1)),
         Validation.IGNORE),
        (wire.encode_message(vote(next(iter(KEYS)), VoteKind.PREVOTE, 0, None, HEIGHT + 50)),
         Validation.ACCEPT),
        (wire.encode_message(wire.sign_vote(CHAIN_ID, (9).to_bytes(32, "big"), VoteKind.PREVOTE,
                                            HEIGHT, 0, None,
                                            private_key_to_address((9).to_bytes(32, "big")))),
         Validation.REJECT),
        (wire.encode_message(wire.sign_vote(CHAIN_ID, (9).to_bytes(32, "big"), VoteKind.PREVOTE,
                                            HEIGHT + 1, 0, None,
                                            private_key_to_address((9).to_bytes(32, "big")))),
         Validation.IGNORE),
        (b"\x01" * (4 * 1024 * 1024 + 1), Validation.REJECT),
    ],
    ids=["empty-list", "garbage", "past-height", "later-height", "non-member",
         "non-member-later", "oversized"],
)
def test_gate_verdicts(data: bytes, verdict: Validation) -> None:
    assert check_consensus_message(
        data, chain_id=CHAIN_ID, height=HEIGHT, validators=VALIDATORS, seed=SEED
    ) is verdict


def test_a_flooding_validator_cannot_grow_memory_without_bound() -> None:
    me = a_follower()
    consensus, _, _, _ = machine(me)
    spammer = others(me)[0]
    for round in range(0, 2000, 7):
        feed(consensus, [vote(spammer, VoteKind.PREVOTE, round, None),
                         vote(spammer, VoteKind.PRECOMMIT, round, bytes([round % 256])),
                         vote(spammer, VoteKind.PREVOTE, round % 17, bytes([round % 256])),
                         vote(spammer, VoteKind.PREVOTE, 0, None, height=HEIGHT + round)])
    stored = sum(len(votes) for votes in consensus._votes.values())
    assert stored <= 2 * (CONFIG.max_rounds_ahead + 1)
    assert len(consensus._buffer) <= 1 and len(consensus._later) == 1
    assert len(consensus.take_evidence()) <= CONFIG.max_rounds_ahead + 1
    assert consensus.round == 0  # one validator of four cannot drag others to its rounds


def test_an_observer_without_a_key_follows_and_decides_silently() -> None:
    app = App()
    observer = Consensus(chain_id=CHAIN_ID, app=app, clock=ManualClock(), private_key=None)
    actions = observer.start_height(HEIGHT, VALIDATORS, SEED)
    actions += feed(observer, [propose(0, b"A")])
    voters = list(KEYS)[:3]
    actions += feed(observer, [vote(a, VoteKind.PREVOTE, 0, b"A") for a in voters])
    actions += feed(observer, [vote(a, VoteKind.PRECOMMIT, 0, b"A") for a in voters])
    assert sent(actions) == [] and app.built == []
    assert [a.value for a in actions if isinstance(a, Decide)] == [b"A"]


def test_a_quorum_for_a_value_this_node_rejects_is_reported_once_not_decided() -> None:
    me = a_follower()
    app = App()
    app.invalid.add(b"block")
    consensus, _, _, _ = machine(me, app)
    feed(consensus, [propose(0, b"block")])
    actions = feed(consensus, [vote(p, VoteKind.PRECOMMIT, 0, b"block") for p in others(me)])
    assert [a for a in actions if isinstance(a, Decide)] == []
    assert [a for a in actions if isinstance(a, Disagree)] == [
        Disagree(HEIGHT, 0, keccak256(b"block"))
    ]
    assert consensus.step is not Step.DECIDED
    assert not any(isinstance(a, Disagree) for a in consensus.tick())


def test_a_value_this_node_does_not_endorse_gets_its_nil_prevote_but_is_decided_by_the_rest() -> None:
    # Endorsement rests on this node's own view (the weight proofs it held at the cutoff):
    # it withholds the prevote, and a value the others decide is still followed, not a halt.
    me = a_follower()
    app = App()
    app.unendorsed.add(b"block")
    consensus, _, _, _ = machine(me, app)
    assert own_votes(consensus.on_message(propose(0, b"block")), VoteKind.PREVOTE) == [None]
    peers = others(me)
    actions = feed(consensus, [vote(p, VoteKind.PREVOTE, 0, b"block") for p in peers])
    assert own_votes(actions, VoteKind.PRECOMMIT) == [keccak256(b"block")]  # the polka counts
    actions = feed(consensus, [vote(p, VoteKind.PRECOMMIT, 0, b"block") for p in peers])
    assert not any(isinstance(a, Disagree) for a in actions)
    decisions = [a for a in actions if isinstance(a, Decide)]
    assert len(decisions) == 1 and decisions[0].value == b"block"
