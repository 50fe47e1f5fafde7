"""Consensus wire format: round trips, signatures bound to chain and kind, hostile bytes."""

from __future__ import annotations

import pytest
import rlp
from hypothesis import given, settings
from hypothesis import strategies as st

from primitives.crypto import keccak256, private_key_to_address
from primitives.errors import InvalidInput
from primitives.types import Hash32
from sequencer import wire
from sequencer.types import NIL_ROUND, CommitCertificate, Evidence, Proposal, Vote, VoteKind

CHAIN_ID = 7331
KEY = (1).to_bytes(32, "big")
OTHER_KEY = (2).to_bytes(32, "big")
ADDRESS = private_key_to_address(KEY)
VALUE = b"a block"
VALUE_ID = keccak256(VALUE)


def proposal(round: int = 1, pol_round: int = NIL_ROUND, value: bytes = VALUE) -> Proposal:
    return wire.sign_proposal(
        CHAIN_ID, KEY, 5, round, value, keccak256(value), pol_round, ADDRESS
    )


def vote(kind: VoteKind = VoteKind.PREVOTE, value_id: Hash32 | None = VALUE_ID,
         key: bytes = KEY, round: int = 1) -> Vote:
    return wire.sign_vote(CHAIN_ID, key, kind, 5, round, value_id, private_key_to_address(key))


@pytest.mark.parametrize(
    "message",
    [
        proposal(),
        proposal(round=3, pol_round=2),
        proposal(value=b""),
        vote(),
        vote(VoteKind.PRECOMMIT),
        vote(value_id=None),
        vote(VoteKind.PRECOMMIT, None, round=0),
    ],
    ids=["proposal", "proposal-pol", "empty-value", "prevote", "precommit", "nil", "nil-r0"],
)
def test_message_round_trip(message: Proposal | Vote) -> None:
    assert wire.decode_message(CHAIN_ID, wire.encode_message(message)) == message


def test_signature_binds_chain_id() -> None:
    with pytest.raises(InvalidInput, match="signed by"):
        wire.decode_message(CHAIN_ID + 1, wire.encode_message(vote()))


def test_signature_binds_kind_and_value() -> None:
    prevote = vote()
    as_precommit = Vote(VoteKind.PRECOMMIT, 5, 1, VALUE_ID, ADDRESS, prevote.signature)
    as_nil = Vote(VoteKind.PREVOTE, 5, 1, None, ADDRESS, prevote.signature)
    for forged in (as_precommit, as_nil):
        with pytest.raises(InvalidInput, match="signed by"):
            wire.decode_message(CHAIN_ID, wire.encode_message(forged))


def test_proposal_signature_covers_the_value_not_only_its_id() -> None:
    signed = proposal()
    swapped = Proposal(5, 1, b"another block", VALUE_ID, NIL_ROUND, ADDRESS, signed.signature)
    with pytest.raises(InvalidInput, match="signed by"):
        wire.decode_message(CHAIN_ID, wire.encode_message(swapped))


def test_claimed_signer_must_match() -> None:
    signed = vote()
    impostor = Vote(VoteKind.PREVOTE, 5, 1, VALUE_ID, private_key_to_address(OTHER_KEY),
                    signed.signature)
    with pytest.raises(InvalidInput, match="signed by"):
        wire.decode_message(CHAIN_ID, wire.encode_message(impostor))


def test_pol_round_must_precede_round() -> None:
    bad = Proposal(5, 1, VALUE, VALUE_ID, 1, ADDRESS, proposal().signature)
    with pytest.raises(InvalidInput, match="pol_round"):
        wire.decode_message(CHAIN_ID, wire.encode_message(bad))


@pytest.mark.parametrize(
    "fields, error",
    [
        ([], "non-empty"),
        ([3], "unknown message type"),
        ([1, 5], "list of 8"),
        ([2, 3, 5, 1, VALUE_ID, ADDRESS, b"\x01" * 65], "vote kind"),
        ([2, 1, b"\x00\x05", 1, VALUE_ID, ADDRESS, b"\x01" * 65], "leading zero"),
        ([2, 1, 2**64, 1, VALUE_ID, ADDRESS, b"\x01" * 65], "out of range"),
        ([2, 1, 5, 1, VALUE_ID[:31], ADDRESS, b"\x01" * 65], "32 bytes"),
        ([2, 1, 5, 1, VALUE_ID, ADDRESS[:19], b"\x01" * 65], "20 bytes"),
        ([2, 1, 5, 1, VALUE_ID, ADDRESS, b"\x01" * 64], "65 bytes"),
        ([2, 1, 5, 1, VALUE_ID, ADDRESS, b"\x00" * 65], "bad signature"),
        ([2, 1, [5], 1, VALUE_ID, ADDRESS, b"\x01" * 65], "expected bytes"),
    ],
)
def test_malformed_messages_are_invalid_input(fields: list[object], error: str) -> None:
    with pytest.raises(InvalidInput, match=error):
        wire.decode_message(CHAIN_ID, rlp.encode(fields))


def test_non_canonical_rlp_is_invalid_input() -> None:
    encoded = wire.encode_message(vote())
    with pytest.raises(InvalidInput, match="RLP"):
        wire.decode_message(CHAIN_ID, encoded + b"\x00")
    with pytest.raises(InvalidInput, match="RLP"):
        wire.decode_message(CHAIN_ID, encoded[:-1])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_hostile_bytes_raise_only_invalid_input(data: bytes) -> None:
    try:
        wire.decode_message(CHAIN_ID, data)
    except InvalidInput:
        pass


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 200), st.integers(0, 255))
def test_corrupted_valid_message_raises_only_invalid_input(index: int, byte: int) -> None:
    encoded = bytearray(wire.encode_message(proposal(round=3, pol_round=1)))
    encoded[index % len(encoded)] = byte
    try:
        decoded = wire.decode_message(CHAIN_ID, bytes(encoded))
    except InvalidInput:
        return
    assert decoded == proposal(round=3, pol_round=1)  # only an unchanged byte decodes


def test_certificate_round_trip_checks_every_signature() -> None:
    keys = [(i + 1).to_bytes(32, "big") for i in range(3)]
    votes = tuple(vote(VoteKind.PRECOMMIT, key=k) for k in keys)
    certificate = CommitCertificate(5, 1, VALUE_ID, votes)
    encoded = wire.encode_certificate(certificate)
    assert wire.decode_certificate(CHAIN_ID, encoded) == certificate
    with pytest.raises(InvalidInput, match="signed by"):
        wire.decode_certificate(CHAIN_ID + 1, encoded)
    other = CommitCertificate(5, 1, keccak256(b"other"), votes)
    with pytest.raises(InvalidInput, match="signed by"):
        wire.decode_certificate(CHAIN_ID, wire.encode_certificate(other))


def test_evidence_round_trip_and_conflict_check() -> None:
    evidence = Evidence(vote(), vote(value_id=None))
    assert evidence.offender == ADDRESS
    assert wire.decode_evidence(CHAIN_ID, wire.encode_evidence(evidence)) == evidence
    twins = Evidence(proposal(), proposal(value=b"twin"))
    assert wire.decode_evidence(CHAIN_ID, wire.encode_evidence(twins)) == twins
    for not_conflicting in (
        Evidence(vote(), vote()),
        Evidence(vote(), vote(VoteKind.PRECOMMIT, None)),
        Evidence(vote(), vote(key=OTHER_KEY, value_id=None)),
        Evidence(vote(), vote(round=2, value_id=None)),
    ):
        with pytest.raises(InvalidInput, match="do not conflict"):
            wire.decode_evidence(CHAIN_ID, wire.encode_evidence(not_conflicting))
