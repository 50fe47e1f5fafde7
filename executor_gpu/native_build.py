"""Builds the interpreter from ``kernels/``: a shared library for the CPU (with the host's state
loading and the Merkle-Patricia committer), a CUDA module for the GPU.

The CPU build runs the system C compiler once per source version and caches the
library outside the repository (``$XDG_CACHE_HOME/l2node`` or ``~/.cache/l2node``),
keyed by a hash of the sources. CuPy is imported only when the CUDA build is asked for.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from executor_gpu.native_abi import KERNEL_DIR, KERNEL_SOURCES
from primitives.errors import L2NodeError

CFLAGS = ("-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-pthread")
NVRTC_OPTIONS = (f"-I{KERNEL_DIR}", "--std=c++14")
"""How NVRTC compiles ``kernels/evm.c`` for the GPU (CuPy adds the target architecture)."""


HOST_THREADS = os.cpu_count() or 1
"""Threads the CPU build's batch helpers (key hashing) run on."""


class NativeUnavailable(L2NodeError):
    """The native interpreter cannot be built or run here (no compiler, no GPU, no CuPy)."""


def source_digest() -> str:
    """Hash of every kernel source and the build flags: the cache key."""
    digest = hashlib.sha256(" ".join(CFLAGS).encode())
    for name in KERNEL_SOURCES:
        digest.update(name.encode() + b"\0" + (KERNEL_DIR / name).read_bytes())
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    """Where built libraries are kept."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "l2node"


def _compile(target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    compiler = os.environ.get("CC", "cc")
    # Build next to the target and rename: concurrent builders never see a partial file.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        result = subprocess.run(
            [compiler, *CFLAGS, "-o", tmp, str(KERNEL_DIR / "evm.c")],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise NativeUnavailable(f"{compiler} failed to build the interpreter:\n{result.stderr}")
        os.replace(tmp, target)
    except FileNotFoundError as exc:
        raise NativeUnavailable(f"no C compiler ({compiler}): {exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@functools.cache
def cpu_library() -> ctypes.CDLL:
    """The CPU build, compiled on first use."""
    target = cache_dir() / f"evm-{source_digest()}.so"
    if not target.exists():
        _compile(target)
    lib = ctypes.CDLL(str(target))
    u64, ptr = ctypes.c_uint64, ctypes.c_void_p
    lib.evm_run.argtypes = [ptr, u64, u64, u64]
    lib.evm_run.restype = None
    lib.evm_run_sequential.argtypes = [ptr, u64]
    lib.evm_run_sequential.restype = u64
    lib.evm_build_index.argtypes = [ptr, u64, u64, u64, u64, ptr, u64]
    lib.evm_build_index.restype = None
    lib.evm_analyze_codes.argtypes = [ptr, u64, u64, ptr, ptr]
    lib.evm_analyze_codes.restype = None
    lib.evm_trie_step.argtypes = [ctypes.c_char_p, u64, ctypes.c_char_p, u64, ptr]
    lib.evm_trie_step.restype = ctypes.c_int64
    lib.evm_hash_keys.argtypes = [ptr, u64, u64, ptr, u64]
    lib.evm_hash_keys.restype = None
    lib.evm_trie_level.argtypes = [ptr, ptr, ptr, ptr, u64, ptr, ptr, ptr, ptr, u64, ptr, u64, ptr]
    lib.evm_trie_level.restype = None
    lib.evm_ordered_root.argtypes = [u64, ptr, ptr, ptr]
    lib.evm_ordered_root.restype = ctypes.c_int
    lib.evm_encode_receipts.argtypes = [u64] + [ptr] * 11
    lib.evm_encode_receipts.restype = u64
    lib.evm_receipts_root.argtypes = [u64] + [ptr] * 12
    lib.evm_receipts_root.restype = ctypes.c_int
    lib.evm_encode_body.argtypes = [u64, ptr, ptr, ptr, ptr]
    lib.evm_encode_body.restype = u64
    lib.evm_body_raws.argtypes = [ctypes.c_char_p, u64, u64, ptr, ptr]
    lib.evm_body_raws.restype = ctypes.c_int64
    lib.evm_recover_batch.argtypes = [ptr, ptr, ptr, ptr, u64, ptr, ptr, ptr, ptr, u64]
    lib.evm_recover_batch.restype = None
    lib.evm_decode_flat.argtypes = [u64, ptr, ptr, ptr, u64, ptr, u64, ptr]
    lib.evm_decode_flat.restype = u64
    lib.evm_decode_transactions.argtypes = [ptr, ptr, ptr, ptr, u64, ptr, ptr, ptr, ptr, ptr, ptr, ptr,
                                            ptr, ptr, u64, u64]
    lib.evm_decode_transactions.restype = None
    lib.evm_pack_transactions.argtypes = [u64, ptr, ptr, ptr, ptr, u64, ptr, ptr, ptr, ptr, ptr]
    lib.evm_pack_transactions.restype = u64
    lib.kv_get_many.argtypes = [ptr, ptr, ptr, ptr, u64, ptr, ptr, ptr, ptr, u64]
    lib.kv_get_many.restype = u64
    lib.kv_gather.argtypes = [ptr, u64, ptr, ptr, ptr]
    lib.kv_gather.restype = None
    lib.kv_write_many.argtypes = [ptr] * 8 + [u64, ptr, ptr, u64]
    lib.kv_write_many.restype = ctypes.c_int
    lib.mpt_open.argtypes = [u64, u64]
    lib.mpt_open.restype = ptr
    lib.mpt_close.argtypes = [ptr]
    lib.mpt_close.restype = None
    lib.mpt_begin_trie.argtypes = [ptr, ctypes.c_char_p, u64, ctypes.c_char_p, ctypes.c_char_p, ptr]
    lib.mpt_begin_trie.restype = None
    lib.mpt_begin_state.argtypes = [
        ptr, ctypes.c_char_p, u64, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ptr,
        ctypes.c_char_p, ptr, ctypes.c_char_p, ptr,
    ]
    lib.mpt_begin_state.restype = None
    lib.mpt_begin_warm.argtypes = [ptr, ctypes.c_char_p, u64, ctypes.c_char_p, u64]
    lib.mpt_begin_warm.restype = None
    lib.mpt_warm_tell.argtypes = [ptr, u64, ctypes.c_char_p, ctypes.c_char_p, ptr]
    lib.mpt_warm_tell.restype = None
    lib.mpt_warm_stop.argtypes = [ptr]
    lib.mpt_warm_stop.restype = None
    lib.mpt_step.argtypes = [ptr]
    lib.mpt_step.restype = ctypes.c_int64
    lib.mpt_missing.argtypes = [ptr]
    lib.mpt_missing.restype = ptr
    lib.mpt_error.argtypes = [ptr]
    lib.mpt_error.restype = ctypes.c_char_p
    lib.mpt_supply.argtypes = [ptr, ctypes.c_char_p, ptr]
    lib.mpt_supply.restype = None
    lib.mpt_account_values.argtypes = [ptr, ptr, ptr]
    lib.mpt_account_values.restype = None
    lib.mpt_account_rows.argtypes = [ctypes.c_char_p, u64, ctypes.c_char_p, ptr, ptr, ptr, ptr]
    lib.mpt_account_rows.restype = None
    lib.mpt_flat_changes.argtypes = [u64, ptr, ctypes.c_char_p, u64, ctypes.c_uint8, ctypes.c_char_p,
                                     ptr, ctypes.c_char_p, ptr, ptr, ptr, ptr, ptr, ptr, ptr]
    lib.mpt_flat_changes.restype = u64
    lib.mpt_root.argtypes = [ptr, ptr]
    lib.mpt_root.restype = None
    lib.mpt_output_size.argtypes = [ptr, ptr]
    lib.mpt_output_size.restype = u64
    lib.mpt_output.argtypes = [ptr, ptr, ptr, ptr]
    lib.mpt_output.restype = None
    lib.evm_test_arith.argtypes = [u64, ptr, ptr]
    lib.evm_test_arith.restype = None
    lib.evm_test_precompile.argtypes = [u64, ptr, u64, u64, ptr, u64, ptr, ptr, u64, ptr, u64, ptr]
    lib.evm_test_precompile.restype = u64
    lib.evm_test_keccak.argtypes = [ptr, u64, ptr]
    lib.evm_test_keccak.restype = None
    return lib


def cuda_available() -> bool:
    """True when CuPy is installed and a CUDA device answers."""
    try:
        import cupy
    except ImportError:
        return False
    try:
        return bool(cupy.is_available()) and cupy.cuda.runtime.getDeviceCount() > 0
    except (RuntimeError, OSError):  # CUDARuntimeError, or CUDA libraries that fail to load
        return False


@functools.cache
def cuda_module() -> Any:
    """The CUDA build of ``kernels/evm.c``, compiled by NVRTC on first use."""
    if not cuda_available():
        raise NativeUnavailable("the CUDA build needs CuPy and a CUDA device")
    import cupy

    # CuPy's kernel cache is keyed by this code, not by the headers it includes: the digest of
    # every kernel source in a comment keeps a header change from loading a stale build.
    code = f"// kernel sources {source_digest()}\n" + (KERNEL_DIR / "evm.c").read_text()
    return cupy.RawModule(code=code, options=NVRTC_OPTIONS)


def cuda_kernel() -> Any:
    """The CUDA build's ``evm_kernel``: the interpreter, one thread per slot."""
    return cuda_module().get_function("evm_kernel")


def cuda_recover_kernel() -> Any:
    """The CUDA build's ``evm_recover_kernel``: sender recovery, one thread per signature."""
    return cuda_module().get_function("evm_recover_kernel")
