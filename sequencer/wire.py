"""Canonical encoding and signing of consensus messages (pure: RLP, keccak, secp256k1).

Every message is an RLP list whose first item is its type::

    proposal:    [1, height, round, pol_round + 1, value_id, value, proposer, signature]
    vote:        [2, kind, height, round, value_id or b"", validator, signature]
    certificate: [height, round, value_id, [[validator, signature], ...]]
    evidence:    [first message, second message]

Integers are canonical big-endian (no leading zeros); ``pol_round`` is shifted by one
because RLP has no -1. A signature is 65 bytes r || s || y_parity over a digest that
starts with a domain tag and the chain id, so a signature is valid for one message kind
on one chain only. Decoding hostile bytes raises InvalidInput and never anything else;
a decoded message's signature has been checked against its claimed signer.
"""

from __future__ import annotations

from typing import Any

import rlp

from primitives.crypto import InvalidSignature, keccak256, recover_address, sign_hash
from primitives.errors import InvalidInput
from primitives.types import UINT64_MAX, Address, Hash32
from sequencer.types import (
    NIL_ROUND,
    CommitCertificate,
    ConsensusMessage,
    Evidence,
    Proposal,
    Vote,
    VoteKind,
)

PROPOSAL_TAG = b"l2node/consensus/proposal/1"
VOTE_TAG = b"l2node/consensus/vote/1"

PROPOSAL_TYPE = 1
VOTE_TYPE = 2

MAX_ROUND = 2**32 - 1
"""Rounds beyond this are hostile: honest rounds grow by one per timeout."""


# -- digests and signing --------------------------------------------------------------------


def proposal_digest(
    chain_id: int, height: int, round: int, pol_round: int, value_id: Hash32, value: bytes
) -> Hash32:
    """What a proposer signs: the value itself too, so no relay can swap it under the id."""
    return keccak256(
        rlp.encode([PROPOSAL_TAG, chain_id, height, round, pol_round + 1, value_id, keccak256(value)])
    )


def vote_digest(
    chain_id: int, kind: VoteKind, height: int, round: int, value_id: Hash32 | None
) -> Hash32:
    """What a validator signs for a prevote or precommit (nil as empty bytes)."""
    return keccak256(rlp.encode([VOTE_TAG, chain_id, int(kind), height, round, value_id or b""]))


def _sign(digest: Hash32, private_key: bytes) -> bytes:
    y_parity, r, s = sign_hash(digest, private_key)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([y_parity])


def _recover(digest: Hash32, signature: bytes) -> Address:
    if len(signature) != 65:
        raise InvalidInput(f"a signature is 65 bytes, got {len(signature)}")
    try:
        return recover_address(
            digest,
            signature[64],
            int.from_bytes(signature[:32], "big"),
            int.from_bytes(signature[32:64], "big"),
        )
    except InvalidSignature as exc:
        raise InvalidInput(f"bad signature: {exc}") from exc


def sign_proposal(
    chain_id: int,
    private_key: bytes,
    height: int,
    round: int,
    value: bytes,
    value_id: Hash32,
    pol_round: int,
    proposer: Address,
) -> Proposal:
    """A proposal signed with ``private_key`` (whose address is ``proposer``)."""
    digest = proposal_digest(chain_id, height, round, pol_round, value_id, value)
    return Proposal(height, round, value, value_id, pol_round, proposer, _sign(digest, private_key))


def sign_vote(
    chain_id: int,
    private_key: bytes,
    kind: VoteKind,
    height: int,
    round: int,
    value_id: Hash32 | None,
    validator: Address,
) -> Vote:
    """A vote signed with ``private_key`` (whose address is ``validator``)."""
    digest = vote_digest(chain_id, kind, height, round, value_id)
    return Vote(kind, height, round, value_id, validator, _sign(digest, private_key))


def message_digest(chain_id: int, message: ConsensusMessage) -> Hash32:
    """The digest ``message`` is signed over; equal digests mean the same signed content."""
    if isinstance(message, Proposal):
        return proposal_digest(
            chain_id, message.height, message.round, message.pol_round, message.value_id,
            message.value,
        )
    return vote_digest(chain_id, message.kind, message.height, message.round, message.value_id)


def conflicts(chain_id: int, first: ConsensusMessage, second: ConsensusMessage) -> bool:
    """Whether two messages are an equivocation: same signer, height, round and kind, but
    different signed content."""
    if isinstance(first, Proposal) and isinstance(second, Proposal):
        same_slot = (first.proposer, first.height, first.round) == (
            second.proposer, second.height, second.round
        )
    elif isinstance(first, Vote) and isinstance(second, Vote):
        same_slot = (first.validator, first.kind, first.height, first.round) == (
            second.validator, second.kind, second.height, second.round
        )
    else:
        return False
    return same_slot and message_digest(chain_id, first) != message_digest(chain_id, second)


def verify_signature(chain_id: int, message: ConsensusMessage) -> None:
    """Raise InvalidInput unless ``message`` is signed by the signer it names."""
    signer = message.proposer if isinstance(message, Proposal) else message.validator
    recovered = _recover(message_digest(chain_id, message), message.signature)
    if recovered != signer:
        raise InvalidInput(f"signed by 0x{recovered.hex()}, not by 0x{signer.hex()} as claimed")


# -- encoding ---------------------------------------------------------------------------------


def _message_fields(message: ConsensusMessage) -> list[Any]:
    if isinstance(message, Proposal):
        return [
            PROPOSAL_TYPE, message.height, message.round, message.pol_round + 1,
            message.value_id, message.value, message.proposer, message.signature,
        ]
    return [
        VOTE_TYPE, int(message.kind), message.height, message.round,
        message.value_id or b"", message.validator, message.signature,
    ]


def encode_message(message: ConsensusMessage) -> bytes:
    """The bytes of a proposal or vote on the consensus topic."""
    return bytes(rlp.encode(_message_fields(message)))


def encode_certificate(certificate: CommitCertificate) -> bytes:
    """A commit certificate: the shared fields once, then each precommit's signer and signature."""
    fields = [
        certificate.height, certificate.round, certificate.value_id,
        [[vote.validator, vote.signature] for vote in certificate.votes],
    ]
    return bytes(rlp.encode(fields))


def encode_evidence(evidence: Evidence) -> bytes:
    """Two conflicting messages, for storage or reporting."""
    return bytes(rlp.encode([_message_fields(evidence.first), _message_fields(evidence.second)]))


# -- decoding (hostile input) -----------------------------------------------------------------


def _rlp(data: bytes, what: str) -> Any:
    try:
        return rlp.decode(data, strict=True)
    except rlp.exceptions.RLPException as exc:
        raise InvalidInput(f"{what}: not canonical RLP: {exc}") from exc


def _list(item: Any, length: int, what: str) -> list[Any]:
    if not isinstance(item, list) or len(item) != length:
        raise InvalidInput(f"{what}: expected a list of {length} items")
    return item


def _bytes(item: Any, what: str) -> bytes:
    if not isinstance(item, bytes):
        raise InvalidInput(f"{what}: expected bytes, got a list")
    return item


def _uint(item: Any, what: str, limit: int = UINT64_MAX) -> int:
    raw = _bytes(item, what)
    if raw[:1] == b"\x00":
        raise InvalidInput(f"{what}: integer with leading zero bytes")
    value = int.from_bytes(raw, "big")
    if value > limit:
        raise InvalidInput(f"{what}: {value} is out of range")
    return value


def _fixed(item: Any, size: int, what: str) -> bytes:
    raw = _bytes(item, what)
    if len(raw) != size:
        raise InvalidInput(f"{what}: expected {size} bytes, got {len(raw)}")
    return raw


def _hash(item: Any, what: str) -> Hash32:
    return Hash32(_fixed(item, 32, what))


def _address(item: Any, what: str) -> Address:
    return Address(_fixed(item, 20, what))


def _kind(item: Any, what: str) -> VoteKind:
    value = _uint(item, what)
    if value not in (VoteKind.PREVOTE, VoteKind.PRECOMMIT):
        raise InvalidInput(f"{what}: unknown vote kind {value}")
    return VoteKind(value)


def _message_from_fields(chain_id: int, item: Any, what: str) -> ConsensusMessage:
    if not isinstance(item, list) or not item:
        raise InvalidInput(f"{what}: expected a non-empty list")
    message_type = _uint(item[0], f"{what} type")
    message: ConsensusMessage
    if message_type == PROPOSAL_TYPE:
        fields = _list(item, 8, f"{what} (proposal)")
        pol_round = _uint(fields[3], f"{what} pol_round", MAX_ROUND) + NIL_ROUND
        round = _uint(fields[2], f"{what} round", MAX_ROUND)
        if pol_round >= round:
            raise InvalidInput(f"{what}: pol_round {pol_round} is not before round {round}")
        message = Proposal(
            height=_uint(fields[1], f"{what} height"),
            round=round,
            value=_bytes(fields[5], f"{what} value"),
            value_id=_hash(fields[4], f"{what} value_id"),
            pol_round=pol_round,
            proposer=_address(fields[6], f"{what} proposer"),
            signature=_fixed(fields[7], 65, f"{what} signature"),
        )
    elif message_type == VOTE_TYPE:
        fields = _list(item, 7, f"{what} (vote)")
        value_id = _bytes(fields[4], f"{what} value_id")
        message = Vote(
            kind=_kind(fields[1], f"{what} kind"),
            height=_uint(fields[2], f"{what} height"),
            round=_uint(fields[3], f"{what} round", MAX_ROUND),
            value_id=_hash(value_id, f"{what} value_id") if value_id else None,
            validator=_address(fields[5], f"{what} validator"),
            signature=_fixed(fields[6], 65, f"{what} signature"),
        )
    else:
        raise InvalidInput(f"{what}: unknown message type {message_type}")
    verify_signature(chain_id, message)
    return message


def decode_message(chain_id: int, data: bytes) -> ConsensusMessage:
    """A proposal or vote from the consensus topic, its signature checked; InvalidInput if not."""
    return _message_from_fields(chain_id, _rlp(data, "consensus message"), "consensus message")


def decode_certificate(chain_id: int, data: bytes) -> CommitCertificate:
    """A commit certificate with every precommit's signature checked (not yet its quorum:
    consensus.verify_certificate checks that against the height's validator set)."""
    fields = _list(_rlp(data, "certificate"), 4, "certificate")
    height = _uint(fields[0], "certificate height")
    round = _uint(fields[1], "certificate round", MAX_ROUND)
    value_id = _hash(fields[2], "certificate value_id")
    entries = fields[3]
    if not isinstance(entries, list):
        raise InvalidInput("certificate: votes must be a list")
    votes = []
    for index, entry in enumerate(entries):
        what = f"certificate vote {index}"
        signer, signature = _list(entry, 2, what)
        vote = Vote(
            VoteKind.PRECOMMIT, height, round, value_id,
            _address(signer, f"{what} validator"), _fixed(signature, 65, f"{what} signature"),
        )
        verify_signature(chain_id, vote)
        votes.append(vote)
    return CommitCertificate(height, round, value_id, tuple(votes))


def certificate_round(data: bytes) -> int:
    """The round of an encoded commit certificate, read without checking its signatures (for
    logs and metrics of a block already committed)."""
    fields = _list(_rlp(data, "certificate"), 4, "certificate")
    return _uint(fields[1], "certificate round", MAX_ROUND)


def decode_evidence(chain_id: int, data: bytes) -> Evidence:
    """Evidence as encoded by ``encode_evidence``: both signatures and the conflict checked."""
    first_fields, second_fields = _list(_rlp(data, "evidence"), 2, "evidence")
    first = _message_from_fields(chain_id, first_fields, "evidence first")
    second = _message_from_fields(chain_id, second_fields, "evidence second")
    if not conflicts(chain_id, first, second):
        raise InvalidInput("evidence: the two messages do not conflict")
    return Evidence(first, second)
