"""Sender recovery in batches: the admission path's ``BatchRecover``, and its ``BatchDecode``
that also decodes and hashes the transactions in C.

On CPU threads the curve arithmetic is libsecp256k1's, from the build coincurve ships; the
loop, the address hashing and the threads are C in the interpreter's library
(``kernels/evm_recover.h``, ``kernels/evm_txdecode.h``), so a batch runs without the GIL on
every core. With a GPU, batches of ``GPU_MIN_BATCH`` or more are recovered by the
interpreter's own secp256k1 code (``tx_recover`` in ``kernels/evm_precompile.h``, which the
ecrecover precompile shares), one GPU thread per signature; the CPU build of the same code
(``KernelRecover("cpu")``) is what tests it without a GPU.
"""

from __future__ import annotations

import ctypes
import functools
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from itertools import accumulate, repeat
from typing import Literal

import coincurve
import numpy as np

from executor_gpu.native_abi import enum_members
from executor_gpu.native_build import (
    NativeUnavailable,
    cpu_library,
    cuda_available,
    cuda_recover_kernel,
)
from primitives.crypto import (
    BatchRecover,
    Signature,
    keccak256,
    private_key_to_address,
    recover_addresses,
    sign_hash,
)
from primitives.errors import InvalidTransaction
from primitives.transactions import BatchDecode, Transaction, decode_transactions
from primitives.types import Address, Hash32

_TXD = enum_members("evm_txdecode.h")
_ROW, _BIGS = _TXD["TXD_WORDS"], 32 * _TXD["TXD_BIGS"]

_CONTEXT_VERIFY = 0x0101
"""SECP256K1_CONTEXT_VERIFY: what recovery needs of a context."""

GPU_MIN_BATCH = 3072
"""The smallest batch recovered on the GPU. A GPU thread takes about 13 ms for one recovery,
so a batch takes 13 ms or more however small; 16 cores of libsecp256k1 recover about 200k/s,
so they finish first below about 2,600 (H100 host, ``bench/recover.py``: 0.43x at 1,000,
1.57x at 4,096, 9.9x at 60,000)."""

Recovered = tuple[bytes, bytes]
"""Addresses (20 bytes each) and flags (1 byte each: 1 where one was recovered) of a batch."""


def _word(value: int) -> bytes:
    # A value no 32-byte word holds is out of range anyway: zero breaks the rules just as well.
    return value.to_bytes(32, "big") if 0 <= value < 1 << 256 else bytes(32)


def pack_signatures(signatures: Sequence[Signature]) -> tuple[bytes, bytes]:
    """The C layout of signatures: message hashes (32 bytes each), then r, s and y parity (65
    bytes each); a y parity no byte holds becomes 2, which the rules refuse."""
    hashes = b"".join(message_hash for message_hash, _, _, _ in signatures)
    sigs = b"".join(
        _word(r) + _word(s) + bytes([y_parity if 0 <= y_parity < 256 else 2])
        for _, y_parity, r, s in signatures
    )
    return hashes, sigs


class PackedRecover(ABC):
    """A BatchRecover that recovers signatures in the C layout (``pack_signatures``)."""

    def __call__(self, signatures: Sequence[Signature]) -> list[Address | None]:
        found, flags = self.recover_packed(len(signatures), *pack_signatures(signatures))
        return [Address(found[20 * i : 20 * i + 20]) if flag else None
                for i, flag in enumerate(flags)]

    @abstractmethod
    def recover_packed(self, count: int, hashes: bytes, sigs: bytes) -> Recovered:
        """Recovers ``count`` signatures laid out as ``pack_signatures`` lays them out."""


class KernelRecover(PackedRecover):
    """A BatchRecover running the interpreter's own secp256k1 recovery (``tx_recover``): on
    the GPU ("cuda"), one thread per signature, or on the CPU build ("cpu") on ``threads``
    threads, where it checks the GPU's code without a GPU (libsecp256k1 is faster there)."""

    block = 128
    """GPU threads per block."""

    def __init__(self, device: str = "cuda", threads: int | None = None) -> None:
        self.device = device
        self._threads = threads or os.cpu_count() or 1
        if device == "cuda":
            import cupy

            self._cupy = cupy
            self._kernel = cuda_recover_kernel()
        elif device == "cpu":
            self._lib = cpu_library()
        else:
            raise NativeUnavailable(f"unknown device {device!r}: use cpu or cuda")

    def recover_packed(self, count: int, hashes: bytes, sigs: bytes) -> Recovered:
        if count == 0:
            return b"", b""
        if self.device == "cpu":
            addresses = ctypes.create_string_buffer(20 * count)
            ok = ctypes.create_string_buffer(count)
            self._lib.evm_recover_batch(None, None, None, None, count, hashes, sigs, addresses, ok,
                                        self._threads)
            return addresses.raw, ok.raw
        cp = self._cupy
        on_device = [cp.asarray(np.frombuffer(data, dtype=np.uint8)) for data in (hashes, sigs)]
        addresses, ok = cp.empty(20 * count, dtype=np.uint8), cp.empty(count, dtype=np.uint8)
        grid = (count + self.block - 1) // self.block
        self._kernel((grid,), (self.block,), (np.uint64(count), *on_device, addresses, ok))
        return cp.asnumpy(addresses).tobytes(), cp.asnumpy(ok).tobytes()


class NativeRecover(PackedRecover):
    """A BatchRecover running libsecp256k1 on ``threads`` threads (default: every core), or,
    given ``gpu``, batches of ``gpu_from`` signatures or more on it."""

    def __init__(self, threads: int | None = None, gpu: KernelRecover | None = None,
                 gpu_from: int = GPU_MIN_BATCH) -> None:
        self.gpu, self.gpu_from = gpu, gpu_from
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

    def gpu_for(self, count: int) -> KernelRecover | None:
        """The GPU's recovery when a batch of ``count`` goes there."""
        return self.gpu if self.gpu is not None and count >= self.gpu_from else None

    def recover_packed(self, count: int, hashes: bytes, sigs: bytes) -> Recovered:
        gpu = self.gpu_for(count)
        if gpu is not None:
            return gpu.recover_packed(count, hashes, sigs)
        addresses = ctypes.create_string_buffer(20 * count)
        ok = ctypes.create_string_buffer(count)
        self._lib.evm_recover_batch(
            self._context, *self._functions, count, hashes, sigs, addresses, ok, self._threads
        )
        return addresses.raw, ok.raw


class NativeDecode:
    """A BatchDecode: wallets' typed transactions decoded, hashed and recovered in C threads
    (recovered on the GPU where ``recover`` sends a batch this size there); whatever the C
    decoder does not take (legacy and access-list transactions, anything invalid) goes
    through ``decode_transactions``, which says what is wrong with it."""

    def __init__(self, recover: NativeRecover) -> None:
        self.recover = recover
        """Where the senders are recovered (and its GPU, if it has one)."""
        self.slow = 0
        """Transactions handed to the Python decoder so far."""

    def __call__(self, raws: Sequence[bytes]) -> list[Transaction | InvalidTransaction]:
        count = len(raws)
        if count == 0:
            return []
        recover = self.recover
        offsets = np.fromiter(accumulate(map(len, raws), initial=0), dtype=np.uint64,
                              count=count + 1)
        rows = np.empty((count, _ROW), dtype=np.uint64)
        bigs = ctypes.create_string_buffer(_BIGS * count)
        hashes = ctypes.create_string_buffer(32 * count)
        senders = ctypes.create_string_buffer(20 * count)
        signing_hashes = ctypes.create_string_buffer(32 * count)
        sigs = ctypes.create_string_buffer(65 * count)
        gpu = recover.gpu_for(count)
        recover._lib.evm_decode_transactions(
            recover._context, *recover._functions, count, b"".join(raws), offsets.ctypes.data,
            rows.ctypes.data, bigs, hashes, senders, signing_hashes, sigs,
            ctypes.create_string_buffer(count), recover._threads, gpu is not None,
        )
        sender = senders.raw
        if gpu is not None:
            # The GPU only takes rows out: one whose signature recovers nothing goes to the
            # Python decoder, which says so; rows the C decoder left out stay out.
            sender, flags = gpu.recover_packed(count, signing_hashes.raw, sigs.raw)
            rows[np.frombuffer(flags, dtype=np.uint8) == 0, _TXD["TXD_STATUS"]] = _TXD["TXD_SLOW"]
        # Each column split into Python values at once (C loops), so that the loop over the
        # rows only builds the transactions: senders, hashes, then the TXD_BIGS integers of
        # every row grouped by row.
        addresses: list[Address] = np.frombuffer(sender, dtype="V20").tolist()
        tx_hashes: list[Hash32] = np.frombuffer(hashes.raw, dtype="V32").tolist()
        big_endian: repeat[Literal["big"]] = repeat("big")
        numbers = map(int.from_bytes, np.frombuffer(bigs.raw, dtype="V32").tolist(), big_endian)
        integers = zip(*[numbers] * _TXD["TXD_BIGS"])
        decoded: list[Transaction | InvalidTransaction | None] = []
        for (slow, tx_type, chain_id, nonce, gas, y, to_at, to_size, data_at, data_size), (
            tip, fee_cap, value, r, s,
        ), tx_sender, tx_hash, raw in zip(rows.tolist(), integers, addresses, tx_hashes, raws):
            if slow:
                decoded.append(None)
                continue
            decoded.append(Transaction(
                tx_type, chain_id, nonce, tip, fee_cap, gas,
                Address(raw[to_at : to_at + 20]) if to_size else None, value,
                raw[data_at : data_at + data_size], (), y, r, s, tx_sender, tx_hash, bytes(raw),
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
def gpu_recover() -> KernelRecover | None:
    """The GPU's batch recovery where CuPy and a GPU are present and it recovers a known
    signer there (a guarded device call: CuPy imports without a working GPU); else None."""
    if not cuda_available():
        return None
    import cupy

    key = keccak256(b"gpu recovery probe")
    message = keccak256(b"probe message")
    try:
        gpu = KernelRecover("cuda")
        works = gpu([(message, *sign_hash(message, key))]) == [private_key_to_address(key)]
    except (NativeUnavailable, RuntimeError, OSError, cupy.cuda.compiler.CompileException):
        return None  # CUDA's errors are RuntimeErrors; NVRTC's are not
    return gpu if works else None


@functools.cache
def batch_recover(gpu: bool = False) -> BatchRecover:
    """The native batch where the C library builds and coincurve's libsecp256k1 loads (with
    ``gpu``, large batches on the GPU when one works); else one signature at a time."""
    try:
        return NativeRecover(gpu=gpu_recover() if gpu else None)
    except (NativeUnavailable, OSError, AttributeError):
        return recover_addresses


@functools.cache
def batch_decode(gpu: bool = False) -> BatchDecode:
    """The native decoder where the native recovery is available; else the Python one.
    ``gpu``: recover large batches on the GPU when one works (the node asks when its
    executor runs there)."""
    recover = batch_recover(gpu)
    if isinstance(recover, NativeRecover):
        return NativeDecode(recover)
    return functools.partial(decode_transactions, recover=recover)
