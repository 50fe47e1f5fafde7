"""Sender recovery in batches on CPU threads: the admission path's ``BatchRecover``.

The curve arithmetic is libsecp256k1's, from the build coincurve ships; the loop, the
address hashing and the threads are C in the interpreter's library
(``kernels/evm_recover.h``), so a batch runs without the GIL on every core.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Sequence

import coincurve

from executor_gpu.native_build import NativeUnavailable, cpu_library
from primitives.crypto import BatchRecover, Signature, recover_addresses
from primitives.types import Address

_CONTEXT_VERIFY = 0x0101
"""SECP256K1_CONTEXT_VERIFY: what recovery needs of a context."""


class NativeRecover:
    """A BatchRecover running libsecp256k1 on ``threads`` threads (default: every core)."""

    def __init__(self, threads: int | None = None) -> None:
        self._lib = cpu_library()
        secp = _libsecp256k1()
        self._threads = threads or os.cpu_count() or 1
        create = secp.secp256k1_context_create
        create.restype, create.argtypes = ctypes.c_void_p, [ctypes.c_uint]
        self._context = create(_CONTEXT_VERIFY)
        if not self._context:
            raise NativeUnavailable("libsecp256k1 could not create a context")
        self._functions = [
            ctypes.cast(getattr(secp, name), ctypes.c_void_p)
            for name in (
                "secp256k1_ecdsa_recoverable_signature_parse_compact",
                "secp256k1_ecdsa_recover",
                "secp256k1_ec_pubkey_serialize",
            )
        ]

    def __call__(self, signatures: Sequence[Signature]) -> list[Address | None]:
        count = len(signatures)
        if count == 0:
            return []
        hashes = b"".join(message_hash for message_hash, _, _, _ in signatures)
        packed = b"".join(
            r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([y_parity])
            for _, y_parity, r, s in signatures
        )
        addresses = ctypes.create_string_buffer(20 * count)
        ok = ctypes.create_string_buffer(count)
        self._lib.evm_recover_batch(
            self._context, *self._functions, count, hashes, packed, addresses, ok, self._threads
        )
        found, flags = addresses.raw, ok.raw
        return [
            Address(found[20 * i : 20 * i + 20]) if flags[i] else None for i in range(count)
        ]


def _libsecp256k1() -> ctypes.CDLL:
    from coincurve import _libsecp256k1 as bundled

    path = getattr(bundled, "__file__", None)
    if not path:
        raise NativeUnavailable(f"coincurve {coincurve.__version__} ships no libsecp256k1 module")
    return ctypes.CDLL(path)


@functools.cache
def batch_recover() -> BatchRecover:
    """The native batch where the C library builds and coincurve's libsecp256k1 loads; else
    one signature at a time."""
    try:
        return NativeRecover()
    except (NativeUnavailable, OSError, AttributeError):
        return recover_addresses
