"""Gossip vocabulary shared by the network and the rules that judge its messages.

The verdict and the size limit live here, below both ``p2p/`` (which enforces them) and
``sequencer/`` (whose pure gate rules decide them), so neither imports the other.
"""

from __future__ import annotations

from enum import Enum

MAX_MESSAGE = 4 * 1024 * 1024
"""Largest gossip message a node publishes or accepts, in bytes."""


class Validation(Enum):
    """A gate validator's verdict on one gossip message (libp2p's and op-node's three outcomes)."""

    ACCEPT = "accept"
    """Valid: deliver it to the handler and forward it to the mesh."""
    IGNORE = "ignore"
    """Not useful (duplicate, stale, for a height we are past): drop it, no penalty."""
    REJECT = "reject"
    """Invalid (malformed, bad signature, not from a validator): drop it and penalize the sender."""
