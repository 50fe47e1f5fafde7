"""Sender recovery in batches on CPU threads: the admission path's ``BatchRecover``, and its
``BatchDecode`` that also decodes and hashes the transactions in C.

The curve arithmetic is libsecp256k1's, from the build coincurve ships; the loop, the
address hashing and the threads are C in the interpreter's library
(``kernels/evm_recover.h``, ``kernels/evm_txdecode.h``), so a batch runs without the GIL on
every core.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Sequence
from itertools import accumulate

import coincurve
import numpy as np

from executor_gpu.native_abi import enum_members
from executor_gpu.native_build import NativeUnavailable, cpu_library
from primitives.crypto import BatchRecover, Signature, recover_addresses
from primitives.errors import InvalidTransaction
from primitives.transactions import BatchDecode, Transaction, decode_transactions
from primitives.types import Address, Hash32

_TXD = enum_members("evm_txdecode.h")
_ROW, _BIGS = _TXD["TXD_WORDS"], 32 * _TXD["TXD_BIGS"]

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


class NativeDecode:
    """A BatchDecode: wallets' typed transactions decoded, hashed and recovered in C threads;
    whatever the C decoder does not take (legacy and access-list transactions, anything
    invalid) goes through ``decode_transactions``, which says what is wrong with it."""

    def __init__(self, recover: NativeRecover) -> None:
        self._recover = recover
        self.slow = 0
        """Transactions handed to the Python decoder so far."""

    def __call__(self, raws: Sequence[bytes]) -> list[Transaction | InvalidTransaction]:
        count = len(raws)
        if count == 0:
            return []
        recover = self._recover
        offsets = np.fromiter(accumulate(map(len, raws), initial=0), dtype=np.uint64,
                              count=count + 1)
        rows = np.empty((count, _ROW), dtype=np.uint64)
        bigs = ctypes.create_string_buffer(_BIGS * count)
        hashes = ctypes.create_string_buffer(32 * count)
        senders = ctypes.create_string_buffer(20 * count)
        recover._lib.evm_decode_transactions(
            recover._context, *recover._functions, count, b"".join(raws), offsets.ctypes.data,
            rows.ctypes.data, bigs, hashes, senders, ctypes.create_string_buffer(32 * count),
            ctypes.create_string_buffer(65 * count), ctypes.create_string_buffer(count),
            recover._threads,
        )
        big, tx_hash, sender, number = bigs.raw, hashes.raw, senders.raw, int.from_bytes
        decoded: list[Transaction | InvalidTransaction | None] = []
        for i, (slow, tx_type, chain_id, nonce, gas, y, to_at, to_size, data_at, data_size) in (
            enumerate(rows.tolist())
        ):
            if slow:
                decoded.append(None)
                continue
            raw, at = raws[i], _BIGS * i
            decoded.append(Transaction(
                tx_type, chain_id, nonce, number(big[at : at + 32]),
                number(big[at + 32 : at + 64]), gas,
                Address(raw[to_at : to_at + 20]) if to_size else None,
                number(big[at + 64 : at + 96]), raw[data_at : data_at + data_size], (), y,
                number(big[at + 96 : at + 128]), number(big[at + 128 : at + 160]),
                Address(sender[20 * i : 20 * i + 20]), Hash32(tx_hash[32 * i : 32 * i + 32]),
                bytes(raw),
            ))
        slow_ones = [i for i, tx in enumerate(decoded) if tx is None]
        self.slow += len(slow_ones)
        if slow_ones:
            for i, tx in zip(slow_ones, decode_transactions([raws[i] for i in slow_ones], recover)):
                decoded[i] = tx
        return [tx for tx in decoded if tx is not None]


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


@functools.cache
def batch_decode() -> BatchDecode:
    """The native decoder where the native recovery is available; else the Python one."""
    recover = batch_recover()
    if isinstance(recover, NativeRecover):
        return NativeDecode(recover)
    return functools.partial(decode_transactions, recover=recover)
