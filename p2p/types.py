"""Values of the p2p seam: peer identities and gate verdicts."""

from __future__ import annotations

from typing import NewType

# The verdict is shared with sequencer/'s gate rules, so it lives in primitives/.
from primitives.gossip import Validation

__all__ = ["PeerId", "Validation"]

PeerId = NewType("PeerId", str)
"""A peer's network identity (a libp2p peer id in base58, or a twin's name)."""
