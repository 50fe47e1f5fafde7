"""Block tags resolved against the chain: latest, pending, earliest, safe and finalized.

On this L2, ``safe`` is the last block of the newest batch committed to L1 and ``finalized``
the last block of the newest batch whose L1 commitment is final (see NodeBackend).
"""

from __future__ import annotations

from rpc.api import NodeBackend
from rpc.codec import BlockId

SAFE = "safe"
FINALIZED = "finalized"


def block_number(backend: NodeBackend, block_id: BlockId) -> int:
    """The height ``block_id`` names (by number or tag; not by hash)."""
    if block_id.number is not None:
        return block_id.number
    if block_id.tag == SAFE:
        return backend.safe_number()
    if block_id.tag == FINALIZED:
        return backend.finalized_number()
    return backend.head_number()
