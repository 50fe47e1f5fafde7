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
from collections.abc import Iterator, Sequence
from itertools import accumulate, repeat
from operator import getitem
from typing import Literal

import coincurve
import numpy as np
import numpy.typing as npt

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
        joined = b"".join(raws)
        recover._lib.evm_decode_transactions(
            recover._context, *recover._functions, count, joined, offsets.ctypes.data,
            rows.ctypes.data, bigs, hashes, senders, signing_hashes, sigs,
            ctypes.create_string_buffer(count), recover._threads, gpu is not None,
        )
        sender = senders.raw
        if gpu is not None:
            # The GPU only takes rows out: one whose signature recovers nothing goes to the
            # Python decoder, which says so; rows the C decoder left out stay out.
            sender, flags = gpu.recover_packed(count, signing_hashes.raw, sigs.raw)
            rows[np.frombuffer(flags, dtype=np.uint8) == 0, _TXD["TXD_STATUS"]] = _TXD["TXD_SLOW"]
        fast = rows[:, _TXD["TXD_STATUS"]] == _TXD["TXD_OK"]
        decoded: list[Transaction | InvalidTransaction | None]
        if fast.all():
            decoded = list(_transactions(rows, bigs.raw, sender, hashes.raw, raws, joined, offsets))
        else:
            at = np.flatnonzero(fast)
            decoded = [None] * count
            built = _transactions(
                rows[at], _rows_of(bigs.raw, _BIGS, at), _rows_of(sender, 20, at),
                _rows_of(hashes.raw, 32, at), [raws[i] for i in at.tolist()], joined, offsets[at],
            )
            for i, made in zip(at.tolist(), built):
                decoded[i] = made
        slow_ones = [i for i, tx in enumerate(decoded) if tx is None]
        self.slow += len(slow_ones)
        if slow_ones:
            for i, tx in zip(slow_ones, decode_transactions([raws[i] for i in slow_ones], recover)):
                decoded[i] = tx
        return [tx for tx in decoded if tx is not None]


def _rows_of(data: bytes, width: int, at: npt.NDArray[np.intp]) -> bytes:
    """Rows ``at`` of ``data``, a table of ``width``-byte rows, together."""
    return np.frombuffer(data, dtype=np.uint8).reshape(-1, width)[at].tobytes()


def _transactions(
    rows: npt.NDArray[np.uint64], bigs: bytes, senders: bytes, hashes: bytes, raws: Sequence[bytes],
    joined: bytes, offsets: npt.NDArray[np.uint64],
) -> Iterator[Transaction]:
    """The transactions of rows the C decoder took (TXD_OK): each field a column of Python
    values made in C loops, then one constructor call per transaction (a Python loop over
    the rows unpacking them cost twice as much). ``joined``: every raw transaction of the
    call, at ``offsets``."""
    count = len(rows)
    tx_type, chain_id, nonce, gas, y = (rows[:, _TXD[name]].tolist() for name in (
        "TXD_TYPE", "TXD_CHAIN_ID", "TXD_NONCE", "TXD_GAS", "TXD_Y"))
    words = np.frombuffer(bigs, dtype=">u8").reshape(count, _TXD["TXD_BIGS"], 4)
    big_endian: repeat[Literal["big"]] = repeat("big")

    def integers(field: str) -> list[int]:
        column = words[:, _TXD[field]]
        if not column[:, :3].any():  # fees and values: one word, almost always
            return column[:, 3].tolist()  # type: ignore[no-any-return]
        return list(map(int.from_bytes, np.ascontiguousarray(column).view("V32").ravel().tolist(), big_endian))

    blob = np.frombuffer(joined, dtype=np.uint8)
    to_size = rows[:, _TXD["TXD_TO_LEN"]]
    to_at = (offsets[:count] + rows[:, _TXD["TXD_TO_OFF"]]) * (to_size != 0)
    tos: list[Address | None] = blob[to_at[:, None].astype(np.intp) + np.arange(20)].view("V20").ravel().tolist()
    for i in np.flatnonzero(to_size == 0).tolist():
        tos[i] = None  # a creation
    data_at = rows[:, _TXD["TXD_DATA_OFF"]]
    datas = map(getitem, raws, map(slice, data_at.tolist(), (data_at + rows[:, _TXD["TXD_DATA_LEN"]]).tolist()))
    senders_list: list[Address] = np.frombuffer(senders, dtype="V20").tolist()
    hashes_list: list[Hash32] = np.frombuffer(hashes, dtype="V32").tolist()
    return map(Transaction, tx_type, chain_id, nonce, integers("TXD_TIP"), integers("TXD_FEE"), gas, tos,
               integers("TXD_VALUE"), datas, repeat(()), y, integers("TXD_R"), integers("TXD_S"),
               senders_list, hashes_list, map(bytes, raws))


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
