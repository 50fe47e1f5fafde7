"""Batch data encoding, its data hash, and the digests validators sign; mirrors contracts/BatchInbox.sol.

Batch data format (the payload posted to L1 for one batch), version 2::

    payload = 0x02 ++ RLP([block, ...])
    block   = [number, timestamp, coinbase (20 bytes), gas_limit, base_fee_per_gas, [raw_tx, ...],
               [proof, ...]]

The payload is the canonical RLP itself, uncompressed, so its data hash (what validators sign
and the contract checks) is a function of the blocks alone. Version 1 (``0x01 ++ zlib(RLP)``,
still decoded for batches already on L1) hashed the deflate output, which differs between
zlib builds (zlib, zlib-ng, other levels or versions): validators that recompress to decide
whether to sign could never agree with a poster on another build. What compression saved
(about 19% on transfers to random recipients, much less on the random amounts and distinct
senders of ``bench.l1_gas``) is the price.

Integers are RLP big-endian without leading zeros; raw_tx is a signed transaction as
sent to eth_sendRawTransaction; proof is an encoded GPU weight proof the block carries
(sequencer/weights.py), so a watcher derives the same block hashes and epoch weights as
the validators. A decoder refuses other versions, data that inflates
past MAX_DECODED_SIZE, truncated or trailing bytes, and non-canonical RLP.

On L1 the payload is cut into parts of at most a few hundred kB (one L1 transaction
each, see ``split_batch_data``); the data hash is computed over fixed 4 KiB pieces,
so it does not depend on how the payload was cut::

    h_0 = 0x00 * 32;  h_{i+1} = keccak256(h_i ++ keccak256(piece_i));  data_hash = h_last
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence

import rlp
from eth_abi.abi import encode as abi_encode
from rlp.sedes import Binary, CountableList, List, big_endian_int, binary

from l1.types import BatchCommitment, BatchDomain, L2BlockData, ValidatorSet
from primitives import rlp as rlp_encoding
from primitives.crypto import InvalidSignature, keccak256, recover_address, sign_hash
from primitives.errors import InvalidInput
from primitives.types import Address, Hash32

BATCH_DATA_VERSION = 2
"""Version byte of the encoding above; a new encoding gets a new byte."""
ZLIB_VERSION = 1
"""Version byte of the former, compressed encoding (decoded, never written)."""
MAX_DECODED_SIZE = 64 * 1024 * 1024
"""Bound on the decompressed RLP, so hostile data cannot exhaust memory."""
DIGEST_DOMAIN = "l2node.batch.v1"
"""First field of the signed encoding: separates batch signatures from any other."""
VALIDATORS_DOMAIN = "l2node.validators.v1"
"""First field of the encoding signed for a validator set update."""
DATA_PIECE_BYTES = 4096
"""Piece size of the data hash (BatchInbox.DATA_PIECE_BYTES); parts but the last are multiples."""
SIGNATURE_SIZE = 65
"""r (32) || s (32) || v (1, 27 or 28)."""

_BLOCK = List(
    [
        big_endian_int,
        big_endian_int,
        Binary.fixed_length(20),
        big_endian_int,
        big_endian_int,
        CountableList(binary),
        CountableList(binary),
    ]
)
_BATCH = CountableList(_BLOCK)


def encode_batch_data(blocks: Iterable[L2BlockData]) -> bytes:
    """Versioned encoding of ``blocks`` (the calldata of a batch). Built with the hot path's
    encoder, not pyrlp's (about 2 us an item): a poster and every signing validator encode
    each block's tens of thousands of transactions, in the node's process."""
    return bytes([BATCH_DATA_VERSION]) + rlp_encoding.encode_list_payload(
        b"".join(map(_encode_block, blocks))
    )


def _encode_block(block: L2BlockData) -> bytes:
    if len(block.coinbase) != 20:
        raise ValueError(f"a block's coinbase is 20 bytes, not {len(block.coinbase)}")
    string, uint = rlp_encoding.encode_string, rlp_encoding.encode_uint
    return rlp_encoding.encode_list_payload(b"".join((
        uint(block.number), uint(block.timestamp), string(block.coinbase), uint(block.gas_limit),
        uint(block.base_fee_per_gas),
        rlp_encoding.encode_list_payload(b"".join(map(string, block.transactions))),
        rlp_encoding.encode_list_payload(b"".join(map(string, block.proofs))),
    )))


def decode_batch_data(data: bytes) -> tuple[L2BlockData, ...]:
    """Inverse of ``encode_batch_data``; raises InvalidInput on anything else."""
    if not data:
        raise InvalidInput("empty batch data")
    if data[0] == BATCH_DATA_VERSION:
        if len(data) - 1 > MAX_DECODED_SIZE:
            raise InvalidInput(f"batch data exceeds {MAX_DECODED_SIZE} bytes")
        return _blocks(data[1:])
    if data[0] != ZLIB_VERSION:
        raise InvalidInput(f"unknown batch data version {data[0]}")
    inflater = zlib.decompressobj()
    try:
        encoded = inflater.decompress(data[1:], MAX_DECODED_SIZE)
    except zlib.error as exc:
        raise InvalidInput(f"batch data is not zlib: {exc}") from None
    if inflater.unconsumed_tail:
        raise InvalidInput(f"batch data inflates past {MAX_DECODED_SIZE} bytes")
    if not inflater.eof or inflater.unused_data:
        raise InvalidInput("batch data is truncated or has trailing bytes")
    return _blocks(encoded)


def _blocks(encoded: bytes) -> tuple[L2BlockData, ...]:
    """The blocks of a batch's RLP; InvalidInput when it is not canonical or not blocks."""
    try:
        items = rlp.decode(encoded, sedes=_BATCH, strict=True)
    except rlp.exceptions.DecodingError as exc:
        raise InvalidInput(f"batch data RLP: {exc}") from None
    except rlp.exceptions.DeserializationError as exc:
        raise InvalidInput(f"batch data layout: {exc}") from None
    return tuple(
        L2BlockData(
            number=number,
            timestamp=timestamp,
            coinbase=Address(coinbase),
            gas_limit=gas_limit,
            base_fee_per_gas=base_fee,
            transactions=tuple(txs),
            proofs=tuple(proofs),
        )
        for number, timestamp, coinbase, gas_limit, base_fee, txs, proofs in items
    )


def batch_data_hash(payload: bytes) -> Hash32:
    """The data hash BatchInbox computes over ``payload`` (see the module docstring)."""
    acc = bytes(32)
    for offset in range(0, len(payload), DATA_PIECE_BYTES):
        acc = keccak256(acc + keccak256(payload[offset : offset + DATA_PIECE_BYTES]))
    return Hash32(acc)


def split_batch_data(payload: bytes, max_part_bytes: int) -> tuple[bytes, ...]:
    """``payload`` cut into L1-sized parts: all but the last a multiple of DATA_PIECE_BYTES."""
    part_bytes = max_part_bytes - max_part_bytes % DATA_PIECE_BYTES
    if part_bytes < DATA_PIECE_BYTES:
        raise ValueError(f"max_part_bytes must be at least {DATA_PIECE_BYTES}, got {max_part_bytes}")
    parts = [payload[o : o + part_bytes] for o in range(0, len(payload), part_bytes)]
    return tuple(parts) or (b"",)


def batch_digest(domain: BatchDomain, commitment: BatchCommitment) -> Hash32:
    """The digest BatchInbox.batchDigest computes: what validators sign for ``commitment``."""
    encoded = abi_encode(
        [
            "string",
            "uint256",
            "address",
            "uint256",
            "uint256",
            "bytes32",
            "bytes32",
            "uint64",
            "uint64",
            "bytes32",
        ],
        [
            DIGEST_DOMAIN,
            domain.l1_chain_id,
            domain.contract,
            domain.l2_chain_id,
            commitment.batch_number,
            commitment.prev_state_root,
            commitment.state_root,
            commitment.first_block,
            commitment.last_block,
            commitment.data_hash,
        ],
    )
    return keccak256(encoded)


def validators_digest(
    domain: BatchDomain, epoch: int, signers: Sequence[Address], weights: Sequence[int]
) -> Hash32:
    """The digest BatchInbox.validatorsDigest computes: what the current set signs to install a new one."""
    encoded = abi_encode(
        ["string", "uint256", "address", "uint256", "uint256", "address[]", "uint64[]"],
        [
            VALIDATORS_DOMAIN,
            domain.l1_chain_id,
            domain.contract,
            domain.l2_chain_id,
            epoch,
            list(signers),
            list(weights),
        ],
    )
    return keccak256(encoded)


def validator_set_digest(domain: BatchDomain, new_set: ValidatorSet) -> Hash32:
    """``validators_digest`` of ``new_set``: what the current set signs to install it."""
    return validators_digest(
        domain, new_set.epoch, [a for a, _ in new_set.members], [w for _, w in new_set.members]
    )


def sign_batch(digest: Hash32, private_key: bytes) -> bytes:
    """65-byte signature r || s || v (v = 27 + y parity, low s) as the contract expects."""
    y_parity, r, s = sign_hash(digest, private_key)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([27 + y_parity])


def recover_batch_signer(digest: Hash32, signature: bytes) -> Address:
    """Address that produced ``signature`` over ``digest``, under the contract's rules."""
    if len(signature) != SIGNATURE_SIZE:
        raise InvalidInput(f"a batch signature is {SIGNATURE_SIZE} bytes, got {len(signature)}")
    if signature[64] not in (27, 28):
        raise InvalidInput(f"batch signature v must be 27 or 28, got {signature[64]}")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    try:
        return recover_address(digest, signature[64] - 27, r, s)
    except InvalidSignature as exc:
        raise InvalidInput(f"bad batch signature: {exc}") from None


def order_signatures(digest: Hash32, signatures: Sequence[bytes]) -> tuple[bytes, ...]:
    """``signatures`` sorted by signer address, the order commitBatch requires."""
    return tuple(sorted(signatures, key=lambda sig: recover_batch_signer(digest, sig)))
