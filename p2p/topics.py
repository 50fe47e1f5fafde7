"""Names of the validator network's gossip topics and request/response protocols, and their limits.

Bump the trailing version when a message format changes incompatibly: nodes on
different versions then simply do not hear each other, instead of misreading.
"""

from __future__ import annotations

# Shared with sequencer/'s gate rules, so it lives in primitives/.
from primitives.gossip import MAX_MESSAGE

__all__ = [
    "BATCHSIGS", "CONSENSUS", "MAX_MESSAGE", "MAX_REQUEST", "MAX_RESPONSE", "PROOFS",
    "PROTOCOLS", "SYNC", "TOPICS", "TXS",
]

TXS = "l2/txs/1"
"""Batches of raw signed transactions (p2p/txbatch.py), many per message."""

CONSENSUS = "l2/consensus/1"
"""Consensus proposals and votes (sequencer/wire.py)."""

PROOFS = "l2/proofs/2"
"""Validators' GPU weight proofs for the coming epoch (2: 200 samples and the seed reveal)."""

BATCHSIGS = "l2/batchsigs/1"
"""Validators' signatures over finalized L1 batch digests."""

SYNC = "l2/sync/1"
"""Request/response: finalized blocks with their commit certificates, by height range."""

TOPICS = (TXS, CONSENSUS, PROOFS, BATCHSIGS)
PROTOCOLS = (SYNC,)

MAX_REQUEST = 1024 * 1024
"""Largest request body a node sends or serves, in bytes."""

MAX_RESPONSE = 16 * 1024 * 1024
"""Largest response body a node sends or accepts, in bytes."""
