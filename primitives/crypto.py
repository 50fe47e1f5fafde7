"""Keccak-256 and secp256k1 signing, the only cryptography the chain needs."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Sequence

# pysha3 is about 6x faster than the pycryptodome backend eth_hash picks by default.
if importlib.util.find_spec("sha3") is not None:
    os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")

import coincurve
from eth_hash.auto import keccak as _keccak

from primitives.types import Address, Hash32

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_HALF_N = SECP256K1_N // 2


class InvalidSignature(ValueError):
    """A signature that is malformed or recovers no public key."""


def keccak256(data: bytes) -> Hash32:
    """Keccak-256 of ``data`` (Ethereum's hash, not NIST SHA3)."""
    return Hash32(_keccak(data))


def public_key_to_address(uncompressed: bytes) -> Address:
    """Address of a 65-byte uncompressed public key (0x04 prefix)."""
    return Address(keccak256(uncompressed[1:])[12:])


Signature = tuple[bytes, int, int, int]
"""A signed message hash with the signature's y parity, r and s."""

BatchRecover = Callable[[Sequence[Signature]], list[Address | None]]
"""Signers of many signatures at once (None where one recovers no key); the values were
checked by ``check_signature_values``."""


def check_signature_values(y_parity: int, r: int, s: int) -> None:
    """Raise InvalidSignature unless the values are in range, with EIP-2's low s."""
    if y_parity not in (0, 1):
        raise InvalidSignature(f"y parity must be 0 or 1, got {y_parity}")
    if not (0 < r < SECP256K1_N) or not (0 < s <= SECP256K1_HALF_N):
        raise InvalidSignature("signature values r, s out of range")


def recover_address(message_hash: bytes, y_parity: int, r: int, s: int) -> Address:
    """Address that signed ``message_hash``; enforces EIP-2 low-s."""
    check_signature_values(y_parity, r, s)
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([y_parity])
    try:
        public_key = coincurve.PublicKey.from_signature_and_message(
            signature, message_hash, hasher=None
        )
    except Exception as exc:  # coincurve raises plain Exception subclasses
        raise InvalidSignature(f"signature recovers no public key: {exc}") from exc
    return public_key_to_address(public_key.format(compressed=False))


def recover_addresses(signatures: Sequence[Signature]) -> list[Address | None]:
    """A BatchRecover one signature at a time (the node uses a native batch where it can)."""
    signers: list[Address | None] = []
    for message_hash, y_parity, r, s in signatures:
        try:
            signers.append(recover_address(message_hash, y_parity, r, s))
        except InvalidSignature:
            signers.append(None)
    return signers


def sign_hash(message_hash: bytes, private_key: bytes) -> tuple[int, int, int]:
    """Sign a 32-byte hash; returns (y_parity, r, s) with low s."""
    signature = coincurve.PrivateKey(private_key).sign_recoverable(message_hash, hasher=None)
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    return signature[64], r, s


def private_key_to_address(private_key: bytes) -> Address:
    """Address controlled by a 32-byte private key."""
    return public_key_to_address(
        coincurve.PrivateKey(private_key).public_key.format(compressed=False)
    )
