"""The Tendermint state machine: propose, prevote, precommit, rounds with growing timeouts.

A faithful rendering of Algorithm 1 of "The latest gossip on BFT consensus" (Buchman,
Kwon, Milosevic; arXiv 1807.04938); comments cite its line numbers. Pure: no I/O, no
threads, no randomness; time comes from the injected clock. The node feeds it decoded
messages (``on_message``, signatures checked by wire.decode_message) and calls ``tick``
at ``next_deadline``; every call returns the actions to carry out (Broadcast, Decide,
Behind). After a Decide the machine waits until the node has committed the value and
calls ``start_height`` for the next height, with that height's validators and seed.

Additions to the paper, each needed because real gossip loses messages:
- a step that makes no progress for ``config.rebroadcast`` seconds resends this node's own
  messages of the current, valid and locked rounds, the prevotes that made its valid value
  valid (sent with a re-proposal too: the proposal's pol_round needs them), and the
  precommits that decided the previous height (for peers still deciding it); peers drop
  exact duplicates;
- at that moment, if validators with more than 1/3 of the weight were seen at a later
  height, or more than 2/3 precommitted a value whose proposal never arrived, the machine
  returns Behind so that the node syncs finalized blocks.
Memory is bounded: messages of past heights are dropped, of the next height buffered,
of later heights only noted (signer and height); rounds more than
``config.max_rounds_ahead`` past the current one are dropped; one message per signer,
height, round and kind is kept, a conflicting second one becomes Evidence.
"""

from __future__ import annotations

from collections.abc import Iterable

from primitives.clock import Clock
from primitives.crypto import keccak256, private_key_to_address
from primitives.errors import InvalidInput
from primitives.types import Address, Hash32
from sequencer import leader, wire
from sequencer.api import ConsensusApp
from sequencer.types import (
    NIL_ROUND,
    Action,
    Behind,
    Broadcast,
    CommitCertificate,
    ConsensusConfig,
    ConsensusMessage,
    Decide,
    Disagree,
    Evidence,
    Proposal,
    Step,
    ValidatorSet,
    Vote,
    VoteKind,
)

_Slot = tuple[VoteKind, int]
"""(kind, round): where a validator may cast one vote per height."""


def _signer(message: ConsensusMessage) -> Address:
    return message.proposer if isinstance(message, Proposal) else message.validator


def verify_certificate(certificate: CommitCertificate, validators: ValidatorSet) -> None:
    """Raise InvalidInput unless ``certificate`` holds precommits for its value, one per
    member, from more than 2/3 of the weight. Signatures are checked when decoding
    (wire.decode_certificate) and by the machine that made it."""
    signers = [vote.validator for vote in certificate.votes]
    if len(set(signers)) != len(signers):
        raise InvalidInput("certificate: a validator signed twice")
    for vote in certificate.votes:
        if (vote.kind, vote.height, vote.round, vote.value_id) != (
            VoteKind.PRECOMMIT, certificate.height, certificate.round, certificate.value_id
        ):
            raise InvalidInput("certificate: a vote is not a precommit for the certified value")
        if vote.validator not in validators:
            raise InvalidInput(f"certificate: 0x{vote.validator.hex()} is not a validator")
    if not validators.is_quorum(validators.weight_of_all(signers)):
        raise InvalidInput("certificate: precommits hold no more than 2/3 of the weight")


class Consensus:
    """One validator's (or an observer's) view of consensus, one height at a time.

    Not thread-safe: the node calls it from one loop (gossip handlers hand messages over).
    """

    def __init__(
        self,
        *,
        chain_id: int,
        app: ConsensusApp,
        clock: Clock,
        private_key: bytes | None,
        config: ConsensusConfig | None = None,
    ) -> None:
        """``private_key`` None (or a key outside the set) follows and decides without voting."""
        self.chain_id = chain_id
        self.app = app
        self.clock = clock
        self.config = config or ConsensusConfig()
        self._key = private_key
        self.address: Address | None = (
            private_key_to_address(private_key) if private_key is not None else None
        )
        self.height = -1
        """Height being decided (-1 before the first ``start_height``)."""
        self.round = 0
        self.step = Step.DECIDED
        self.validators: ValidatorSet | None = None
        self._order: tuple[Address, ...] = ()
        self._reset_height()
        self._buffer: list[ConsensusMessage] = []
        self._later: dict[Address, int] = {}
        self._evidence: list[Evidence] = []
        self._last_commit: CommitCertificate | None = None

    def _reset_height(self) -> None:
        self.locked_value: Proposal | None = None
        self.locked_round = NIL_ROUND
        self.valid_value: Proposal | None = None
        self.valid_round = NIL_ROUND
        self._proposals: dict[int, Proposal] = {}
        self._votes: dict[_Slot, dict[Address, Vote]] = {}
        self._conflicted: set[tuple[object, ...]] = set()
        self._valid: dict[tuple[Hash32, Hash32], bool] = {}
        self._endorsements: dict[tuple[Hash32, Hash32], bool] = {}
        self._timers: dict[tuple[Step, int], float] = {}
        self._done: set[tuple[str, int]] = set()
        self._rebroadcast_at: float | None = None

    # -- driving the machine ------------------------------------------------------------------

    def start_height(
        self,
        height: int,
        validators: ValidatorSet,
        seed: bytes,
        replay: Iterable[ConsensusMessage] = (),
    ) -> list[Action]:
        """Begin deciding ``height`` (the previous one is committed) with its validators and
        leader seed; takes in the messages that arrived early for it.

        After a restart, ``replay`` gives back the messages of ``height`` that the node
        logged before the crash: every message it broadcast (log it before sending) and the
        proposals and votes it accepted. The machine resumes in the last round it signed
        in, re-locks on the value of its latest precommit (whose proposal must be in the
        log), and re-sends rather than re-signs, so it never signs a conflicting message.
        """
        if height <= self.height:
            raise ValueError(f"height {height} is not after {self.height}")
        replay = tuple(m for m in replay if m.height == height)
        self.height = height
        self.validators = validators
        self._order = leader.proposer_order(validators, seed, height)
        self._reset_height()
        self._later = {a: h for a, h in self._later.items() if h > height}
        self.round = max((m.round for m in replay if _signer(m) == self.address), default=0)
        early, self._buffer = self._buffer, []
        for message in (*early, *replay):
            if message.height == height:
                self._receive(message)
        self._restore_lock()
        return self._start_round(self.round) + self._evaluate()

    def on_message(self, message: ConsensusMessage) -> list[Action]:
        """A decoded, signature-checked proposal or vote from a peer."""
        return self._receive(message) + self._evaluate()

    def on_timeout(self, step: Step, height: int, round: int) -> list[Action]:
        """A timeout scheduled by this machine expired (``tick`` calls this)."""
        if (height, round) != (self.height, self.round) or self.step is Step.DECIDED:
            return []
        if step is not Step.PRECOMMIT and self.step is not step:
            return []  # the step was left by a quorum before its timeout
        if step is Step.PROPOSE:  # line 57: no acceptable proposal in time
            actions = self._vote(VoteKind.PREVOTE, None)
            self._set_step(Step.PREVOTE)
        elif step is Step.PREVOTE:  # line 61: prevotes did not agree in time
            actions = self._vote(VoteKind.PRECOMMIT, None)
            self._set_step(Step.PRECOMMIT)
        else:  # line 65: no decision in this round
            actions = self._start_round(round + 1)
        return actions + self._evaluate()

    def tick(self) -> list[Action]:
        """Fire every timeout due by the clock's now."""
        actions: list[Action] = []
        now = self.clock.now()
        while True:
            due = [(at, key) for key, at in self._timers.items() if at <= now]
            if not due:
                break
            _, (step, round) = min(due)
            del self._timers[(step, round)]
            actions += self.on_timeout(step, self.height, round)
        if self._rebroadcast_at is not None and self._rebroadcast_at <= now:
            actions += self._rebroadcast()
        return actions

    def next_deadline(self) -> float | None:
        """When ``tick`` has work next; None while waiting for ``start_height``."""
        deadlines = list(self._timers.values())
        if self._rebroadcast_at is not None:
            deadlines.append(self._rebroadcast_at)
        return min(deadlines, default=None)

    def take_evidence(self) -> list[Evidence]:
        """Equivocations detected since the last call (for the node to store and report)."""
        evidence, self._evidence = self._evidence, []
        return evidence

    def proposer(self, round: int) -> Address:
        """The proposer of ``round`` at the current height."""
        return self._order[round % len(self._order)]

    # -- receiving ----------------------------------------------------------------------------

    def _receive(self, message: ConsensusMessage) -> list[Action]:
        signer = _signer(message)
        if message.height < self.height or self.validators is None:
            return []  # past heights are final; before start there is nothing to decide
        if message.height > self.height:
            if signer in self.validators:
                self._later[signer] = max(self._later.get(signer, 0), message.height)
                if message.height == self.height + 1 and self._room_for_early():
                    self._buffer.append(message)
            return []
        if signer not in self.validators or message.round > self.round + self.config.max_rounds_ahead:
            return []
        if isinstance(message, Proposal):
            if signer != self.proposer(message.round):
                return []  # only the scheduled proposer may propose (gate rejects it too)
            self._store(message, self._proposals.get(message.round), (message.round,))
        else:
            votes = self._votes.setdefault((message.kind, message.round), {})
            self._store(message, votes.get(signer), (message.kind, message.round, signer))
        return []

    def _restore_lock(self) -> None:
        """After a replay: lock on (and hold as valid) the value of our latest precommit."""
        if self.address is None:
            return
        for (kind, round), votes in sorted(self._votes.items()):
            own = votes.get(self.address)
            proposal = self._proposals.get(round)
            if kind is VoteKind.PRECOMMIT and own is not None and own.value_id is not None and (
                proposal is not None and proposal.value_id == own.value_id
            ):
                self.locked_value = self.valid_value = proposal
                self.locked_round = self.valid_round = round

    def _room_for_early(self) -> bool:
        # One proposal and two votes per validator for the first rounds of the next height.
        assert self.validators is not None
        limit = 3 * len(self.validators.validators) * (self.config.max_rounds_ahead + 1)
        return len(self._buffer) < limit

    def _store(self, message: ConsensusMessage, existing: ConsensusMessage | None,
               slot: tuple[object, ...]) -> None:
        if existing is None:
            if isinstance(message, Proposal):
                self._proposals[message.round] = message
            else:
                self._votes[(message.kind, message.round)][message.validator] = message
        elif wire.conflicts(self.chain_id, existing, message) and slot not in self._conflicted:
            self._conflicted.add(slot)  # one piece of evidence per slot bounds memory
            self._evidence.append(Evidence(existing, message))

    # -- the rules of Algorithm 1 -------------------------------------------------------------

    def _evaluate(self) -> list[Action]:
        """Apply the upon-rules until none fires (each fires at most once per round)."""
        actions: list[Action] = []
        while self.step is not Step.DECIDED and self.validators is not None:
            fired = self._apply_one_rule()
            if fired is None:
                break
            actions += fired
        return actions

    def _apply_one_rule(self) -> list[Action] | None:
        r = self.round
        proposal = self._proposals.get(r)
        decision = self._decision()
        if decision is not None:  # line 49
            return [decision]
        skip_to = self._round_to_skip_to()
        if skip_to is not None:  # line 55
            return self._start_round(skip_to)
        if self.step is Step.PROPOSE and proposal is not None:
            if proposal.pol_round == NIL_ROUND:  # line 22
                acceptable = self.locked_round == NIL_ROUND or self._same(self.locked_value, proposal)
                # Not in the paper: a new value also needs this node's own endorsement.
                return self._prevote_for(proposal, acceptable and self._endorsed(proposal))
            if self._has_quorum(VoteKind.PREVOTE, proposal.pol_round, proposal.value_id):  # line 28
                acceptable = self.locked_round <= proposal.pol_round or self._same(
                    self.locked_value, proposal
                )
                return self._prevote_for(proposal, acceptable)
        if (
            self.step is Step.PREVOTE
            and self._quorum_any(VoteKind.PREVOTE, r)
            and self._first("prevote-any", r)
        ):  # line 34
            self._timers[(Step.PREVOTE, r)] = self._deadline(Step.PREVOTE, r)
            return []
        if (
            self.step >= Step.PREVOTE
            and proposal is not None
            and self._has_quorum(VoteKind.PREVOTE, r, proposal.value_id)
            and self._is_valid(proposal)
            and self._first("polka", r)
        ):  # line 36
            actions: list[Action] = []
            if self.step is Step.PREVOTE:
                self.locked_value, self.locked_round = proposal, r
                actions = self._vote(VoteKind.PRECOMMIT, proposal.value_id)
                self._set_step(Step.PRECOMMIT)
            self.valid_value, self.valid_round = proposal, r
            return actions
        if self.step is Step.PREVOTE and self._has_quorum(VoteKind.PREVOTE, r, None):  # line 44
            actions = self._vote(VoteKind.PRECOMMIT, None)
            self._set_step(Step.PRECOMMIT)
            return actions
        if self._has_quorum(VoteKind.PRECOMMIT, r, None):
            # Not in the paper: > 2/3 precommitted nil, so nothing can be decided in this
            # round; skip timeoutPrecommit (leaving a round early never costs safety).
            return self._start_round(r + 1)
        if self._quorum_any(VoteKind.PRECOMMIT, r) and self._first("precommit-any", r):  # line 47
            self._timers[(Step.PRECOMMIT, r)] = self._deadline(Step.PRECOMMIT, r)
            return []
        return None

    def _prevote_for(self, proposal: Proposal, acceptable: bool) -> list[Action]:
        """Lines 23-27 and 29-33: prevote the proposal if valid and compatible with the lock."""
        value_id = proposal.value_id if acceptable and self._is_valid(proposal) else None
        actions = self._vote(VoteKind.PREVOTE, value_id)
        self._set_step(Step.PREVOTE)
        return actions

    def _decision(self) -> Decide | Disagree | None:
        """Line 49: a proposal of any round with > 2/3 precommits for it decides the height;
        one that this node finds invalid cannot be decided here (Disagree, once per round)."""
        for round, proposal in sorted(self._proposals.items()):
            if self._has_quorum(VoteKind.PRECOMMIT, round, proposal.value_id):
                if not self._is_valid(proposal):
                    if self._first("disagree", round):
                        return Disagree(self.height, round, proposal.value_id)
                    continue
                votes = self._votes[(VoteKind.PRECOMMIT, round)]
                certificate = CommitCertificate(
                    self.height, round, proposal.value_id,
                    tuple(v for _, v in sorted(votes.items()) if v.value_id == proposal.value_id),
                )
                self._set_step(Step.DECIDED)
                self._last_commit = certificate
                return Decide(self.height, proposal.value, certificate)
        return None

    def _round_to_skip_to(self) -> int | None:
        """Line 55: the highest later round in which signers hold more than 1/3 of the weight."""
        assert self.validators is not None
        later: dict[int, set[Address]] = {}
        for round, proposal in self._proposals.items():
            later.setdefault(round, set()).add(proposal.proposer)
        for (_, round), votes in self._votes.items():
            later.setdefault(round, set()).update(votes)
        rounds = [
            round for round, signers in later.items()
            if round > self.round and self.validators.exceeds_one_third(
                self.validators.weight_of_all(signers)
            )
        ]
        return max(rounds, default=None)

    def _start_round(self, round: int) -> list[Action]:
        """Line 11: enter ``round``; its proposer proposes, the others wait for a proposal."""
        self.round = round
        self._timers = {key: at for key, at in self._timers.items() if key[1] >= round}
        self._set_step(Step.PROPOSE)
        if self._signing() and self.proposer(round) == self.address:
            if round in self._proposals:  # replayed after a restart: never propose twice
                return [Broadcast(self._proposals[round])]
            if self.valid_value is not None:  # line 15: re-propose the value that got a polka
                value, value_id = self.valid_value.value, self.valid_value.value_id
            else:
                value, value_id = self.app.build(self.height, round)
            assert self._key is not None and self.address is not None
            proposal = wire.sign_proposal(
                self.chain_id, self._key, self.height, round, value, value_id, self.valid_round,
                self.address,
            )
            self._proposals[round] = proposal
            return [Broadcast(proposal), *self._valid_polka()]
        self._timers[(Step.PROPOSE, round)] = self._deadline(Step.PROPOSE, round)
        return []

    # -- helpers ------------------------------------------------------------------------------

    def _signing(self) -> bool:
        return self.address is not None and self.validators is not None and (
            self.address in self.validators
        )

    def _vote(self, kind: VoteKind, value_id: Hash32 | None) -> list[Action]:
        if not self._signing():
            return []
        assert self._key is not None and self.address is not None
        signed = self._votes.get((kind, self.round), {}).get(self.address)
        if signed is not None:  # replayed after a restart: never sign a second, different vote
            return [Broadcast(signed)]
        vote = wire.sign_vote(
            self.chain_id, self._key, kind, self.height, self.round, value_id, self.address
        )
        self._votes.setdefault((kind, self.round), {})[self.address] = vote
        return [Broadcast(vote)]

    def _set_step(self, step: Step) -> None:
        self.step = step
        self._rebroadcast_at = (
            None if step is Step.DECIDED else self.clock.now() + self.config.rebroadcast
        )
        if step is Step.DECIDED:
            self._timers.clear()

    def _deadline(self, step: Step, round: int) -> float:
        return self.clock.now() + self.config.timeout(step, round)

    def _first(self, rule: str, round: int) -> bool:
        """True the first time ``rule`` is asked about ``round`` ("for the first time" rules)."""
        if (rule, round) in self._done:
            return False
        self._done.add((rule, round))
        return True

    def _weight_for(self, kind: VoteKind, round: int, value_id: Hash32 | None) -> int:
        assert self.validators is not None
        votes = self._votes.get((kind, round), {})
        return self.validators.weight_of_all(a for a, v in votes.items() if v.value_id == value_id)

    def _has_quorum(self, kind: VoteKind, round: int, value_id: Hash32 | None) -> bool:
        assert self.validators is not None
        return self.validators.is_quorum(self._weight_for(kind, round, value_id))

    def _quorum_any(self, kind: VoteKind, round: int) -> bool:
        assert self.validators is not None
        return self.validators.is_quorum(
            self.validators.weight_of_all(self._votes.get((kind, round), {}))
        )

    def _is_valid(self, proposal: Proposal) -> bool:
        """The paper's valid(v), asked of the app once per distinct value."""
        key = (proposal.value_id, keccak256(proposal.value))
        if key not in self._valid:
            self._valid[key] = self.app.validate(self.height, proposal.value, proposal.value_id)
        return self._valid[key]

    def _endorsed(self, proposal: Proposal) -> bool:
        """The app's endorsement of a valid value, asked once per distinct value."""
        key = (proposal.value_id, keccak256(proposal.value))
        if key not in self._endorsements:
            self._endorsements[key] = self._is_valid(proposal) and self.app.endorses(
                self.height, proposal.value, proposal.value_id)
        return self._endorsements[key]

    @staticmethod
    def _same(locked: Proposal | None, proposal: Proposal) -> bool:
        return locked is not None and (locked.value_id, locked.value) == (
            proposal.value_id, proposal.value
        )

    def _rebroadcast(self) -> list[Action]:
        """Resend own messages of the rounds peers may still need, and the precommits that
        decided the previous height (a peer still deciding it may have lost some); report
        being behind."""
        assert self.validators is not None
        self._rebroadcast_at = self.clock.now() + self.config.rebroadcast
        actions: list[Action] = [Broadcast(m) for m in self._own_messages(
            {self.round, self.valid_round, self.locked_round} - {NIL_ROUND}
        )]
        actions += self._valid_polka()
        if self._last_commit is not None and self._last_commit.height == self.height - 1:
            actions += [Broadcast(vote) for vote in self._last_commit.votes]
        behind = self._behind_height()
        if behind is not None:
            actions.append(Behind(behind))
        return actions

    def _valid_polka(self) -> list[Action]:
        """The > 2/3 prevotes that made ``valid_value`` valid: a proposal that re-proposes it
        names their round, and peers that lost some cannot accept it without them."""
        if self.valid_value is None:
            return []
        value_id = self.valid_value.value_id
        votes = self._votes.get((VoteKind.PREVOTE, self.valid_round), {})
        return [Broadcast(v) for v in votes.values() if v.value_id == value_id]

    def _own_messages(self, rounds: Iterable[int]) -> list[ConsensusMessage]:
        if self.address is None:
            return []
        own: list[ConsensusMessage] = []
        for round in sorted(rounds):
            proposal = self._proposals.get(round)
            if proposal is not None and proposal.proposer == self.address:
                own.append(proposal)
            for kind in VoteKind:
                vote = self._votes.get((kind, round), {}).get(self.address)
                if vote is not None:
                    own.append(vote)
        return own

    def _behind_height(self) -> int | None:
        """The highest height reached by validators holding more than 1/3 of the weight, or
        the next one when > 2/3 precommitted a value whose proposal never reached us."""
        assert self.validators is not None
        for (kind, round), votes in self._votes.items():
            proposal = self._proposals.get(round)
            decided_elsewhere = {
                v.value_id for v in votes.values()
                if v.value_id is not None and (proposal is None or proposal.value_id != v.value_id)
            }
            if kind is VoteKind.PRECOMMIT and any(
                self._has_quorum(kind, round, value_id) for value_id in decided_elsewhere
            ):
                return self.height + 1
        weight = 0
        for address, height in sorted(self._later.items(), key=lambda item: -item[1]):
            weight += self.validators.weight_of(address)
            if self.validators.exceeds_one_third(weight):
                return height
        return None
