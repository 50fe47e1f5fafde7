"""Gate validators for consensus gossip: ACCEPT / IGNORE / REJECT before delivery and forwarding.

Pure functions over the bytes and the receiver's view of the chain (op-node's gate style:
each rule next to its verdict). The node wires them to the consensus topic.
"""

from __future__ import annotations

from primitives.errors import InvalidInput
from primitives.gossip import MAX_MESSAGE, Validation
from sequencer import leader, wire
from sequencer.types import Proposal, ValidatorSet


def check_consensus_message(
    data: bytes, *, chain_id: int, height: int, validators: ValidatorSet, seed: bytes
) -> Validation:
    """Verdict on a proposal or vote, for a receiver deciding ``height`` with ``validators``
    and leader ``seed`` (the same values its consensus.start_height got)."""
    # REJECT: larger than a node publishes (a 30M-gas block of calldata is under 2 MB).
    if len(data) > MAX_MESSAGE:
        return Validation.REJECT
    # REJECT: not a canonical message, or not signed by the signer it names.
    try:
        message = wire.decode_message(chain_id, data)
    except InvalidInput:
        return Validation.REJECT
    # IGNORE: a height this node has finalized already; nothing can change it.
    if message.height < height:
        return Validation.IGNORE
    signer = message.proposer if isinstance(message, Proposal) else message.validator
    if signer not in validators:
        # REJECT at this height: only its validators sign. IGNORE later: the set may change.
        return Validation.REJECT if message.height == height else Validation.IGNORE
    # REJECT: a proposal at this height from anyone but the round's scheduled proposer.
    if (
        isinstance(message, Proposal)
        and message.height == height
        and signer != leader.proposer(validators, seed, height, message.round)
    ):
        return Validation.REJECT
    # ACCEPT: current and later heights (later ones tell a node it is behind).
    return Validation.ACCEPT
