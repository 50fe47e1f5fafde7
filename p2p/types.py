"""Values of the p2p seam: peer identities and gate verdicts."""

from __future__ import annotations

from enum import Enum
from typing import NewType

PeerId = NewType("PeerId", str)
"""A peer's network identity (a libp2p peer id in base58, or a twin's name)."""


class Validation(Enum):
    """A gate validator's verdict on one gossip message (libp2p's and op-node's three outcomes)."""

    ACCEPT = "accept"
    """Valid: deliver it to the handler and forward it to the mesh."""
    IGNORE = "ignore"
    """Not useful (duplicate, stale, for a height we are past): drop it, no penalty."""
    REJECT = "reject"
    """Invalid (malformed, bad signature, not from a validator): drop it and penalize the sender."""
