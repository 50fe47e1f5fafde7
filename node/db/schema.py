"""The whole on-disk key schema: every key l2node writes is built here.

One byte of prefix per table; numbers are 8-byte big-endian so keys sort by height.
"""

from __future__ import annotations

from primitives.types import Hash32

# Chain data
HEAD = b"H"
"""-> 8-byte height of the latest finalized block."""
HEADER_PREFIX = b"h"
"""h + number -> RLP header."""
HASH_TO_NUMBER_PREFIX = b"n"
"""n + block hash -> 8-byte number."""
BODY_PREFIX = b"b"
"""b + number -> RLP list of stored transactions."""
RECEIPTS_PREFIX = b"r"
"""r + number -> RLP list of stored receipts."""
TX_INDEX_PREFIX = b"t"
"""t + tx hash -> number + 4-byte index."""

# GPU weights: proofs a block carries (its header's extra_data commits to them)
PROOFS_PREFIX = b"w"
"""w + number -> RLP list of encoded weight proofs (absent when the block carries none)."""

# Consensus: why each block is final, and misbehaviour seen
CERTIFICATE_PREFIX = b"f"
"""f + number -> commit certificate of that block (sequencer/wire.py encoding)."""
SIGNED_PREFIX = b"v"
"""v + height + 4-byte round + kind -> a consensus message of an undecided height, logged
before it is acted on: kind 0 proposal, 1 prevote, 2 precommit that this validator signed (it
never signs a conflicting one), 3 a proposal it accepted. After a restart they are replayed
into consensus, so the node resumes its round and its lock (sequencer/consensus.py)."""
SIGNED_PROPOSAL, SIGNED_PREVOTE, SIGNED_PRECOMMIT, SEEN_PROPOSAL = range(4)
"""The kinds of the ``v`` table."""
EVIDENCE_PREFIX = b"e"
"""e + keccak(evidence) -> encoded evidence of a validator's double signing."""

# State: trie nodes and contract code, content-addressed (never deleted: archive node)
STATE_NODE_PREFIX = b"s"
"""s + keccak(node or code) -> node or code. A LevelDB store keeps these in databases of their
own, written before the rest of a batch (node/db/leveldb.py)."""

# State, flat: the state at one root (FLAT_MARKER) for reads with one get, no trie walk. Keys
# are the trie's hashed keys, so the tables sort like the trie and can be rebuilt from it.
FLAT_ACCOUNT_PREFIX = b"a"
"""a + keccak(address) -> the account's state trie value, RLP [nonce, balance, storage root,
code hash]."""
FLAT_STORAGE_PREFIX = b"o"
"""o + keccak(address) + keccak(slot) -> the slot's value, big-endian without leading zeros
(slots holding zero are absent)."""
FLAT_MARKER = b"R"
"""-> the state root the flat tables hold (32 bytes) + 8-byte flat height (the block number:
one diff per block from genesis, height 0). Absent: the empty state, nothing applied yet."""
FLAT_CHANGES_PREFIX = b"u"
"""u + height -> what unwinding that height restores (node/db/state.py): the parent's state root
(32 bytes), then per flat key written, the key (its table fixes its length), the 2-byte length
of its previous value (0: absent) and that value. Height 0 (genesis) has none."""

# Pool: accepted transactions not yet in a block, so a crash loses none
POOL_PREFIX = b"p"
"""p + tx hash -> stored transaction."""

# L1 commitments
BATCH_PREFIX = b"c"
"""c + batch number -> RLP batch record (range, roots, data hash, L1 tx)."""
POSTER_META = b"P"
"""-> RLP poster state: the numbers of the signed batches not yet confirmed, and the head of the
L1 transactions in flight (node/poster_store.py)."""
POSTER_BATCH_PREFIX = b"q"
"""q + batch number -> RLP signed batch the poster holds (its data and signatures)."""
POSTER_TX_PREFIX = b"x"
"""x + index -> RLP L1 transaction of the poster's attempt in flight, in nonce order."""

# Node metadata
META_PREFIX = b"m"
"""m + name -> value (genesis hash, chain id, schema version)."""

# L1 watcher: batches whose blocks it re-executed and whose state root it confirmed
VERIFIED_BATCH_PREFIX = b"V"
"""V + batch number -> RLP batch as found on L1 (l1/watcher.py, node/watch.py)."""


def encode_number(number: int) -> bytes:
    """8-byte big-endian height, so that keys sort numerically."""
    return number.to_bytes(8, "big")


def decode_number(data: bytes) -> int:
    """Inverse of ``encode_number``."""
    return int.from_bytes(data, "big")


def header_key(number: int) -> bytes:
    return HEADER_PREFIX + encode_number(number)


def hash_to_number_key(block_hash: Hash32) -> bytes:
    return HASH_TO_NUMBER_PREFIX + block_hash


def body_key(number: int) -> bytes:
    return BODY_PREFIX + encode_number(number)


def receipts_key(number: int) -> bytes:
    return RECEIPTS_PREFIX + encode_number(number)


def tx_index_key(tx_hash: Hash32) -> bytes:
    return TX_INDEX_PREFIX + tx_hash


def proofs_key(number: int) -> bytes:
    return PROOFS_PREFIX + encode_number(number)


def certificate_key(number: int) -> bytes:
    return CERTIFICATE_PREFIX + encode_number(number)


def signed_key(height: int, round: int, kind: int) -> bytes:
    return SIGNED_PREFIX + encode_number(height) + round.to_bytes(4, "big") + bytes([kind])


def evidence_key(evidence_hash: Hash32) -> bytes:
    return EVIDENCE_PREFIX + evidence_hash


def state_node_key(node_hash: bytes) -> bytes:
    return STATE_NODE_PREFIX + node_hash


def flat_account_key(account_hash: Hash32) -> bytes:
    return FLAT_ACCOUNT_PREFIX + account_hash


def flat_storage_prefix(account_hash: Hash32) -> bytes:
    """Prefix of every flat slot of one account."""
    return FLAT_STORAGE_PREFIX + account_hash


def flat_storage_key(account_hash: Hash32, slot_hash: Hash32) -> bytes:
    return FLAT_STORAGE_PREFIX + account_hash + slot_hash


def flat_changes_key(height: int) -> bytes:
    return FLAT_CHANGES_PREFIX + encode_number(height)


def pool_key(tx_hash: Hash32) -> bytes:
    return POOL_PREFIX + tx_hash


def batch_key(batch_number: int) -> bytes:
    return BATCH_PREFIX + encode_number(batch_number)


def poster_batch_key(batch_number: int) -> bytes:
    return POSTER_BATCH_PREFIX + encode_number(batch_number)


def poster_tx_key(index: int) -> bytes:
    return POSTER_TX_PREFIX + encode_number(index)


def meta_key(name: str) -> bytes:
    return META_PREFIX + name.encode()


def verified_batch_key(batch_number: int) -> bytes:
    return VERIFIED_BATCH_PREFIX + encode_number(batch_number)
