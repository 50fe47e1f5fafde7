"""The CUDA build compiles: NVRTC (a pip wheel, no GPU or driver needed) turns ``kernels/evm.c``
into PTX for the device machines' architecture, with the options CuPy gets at run time."""

from __future__ import annotations

import ctypes
import importlib.resources
import platform
import sys

import pytest

from executor_gpu.native_abi import KERNEL_DIR
from executor_gpu.native_build import NVRTC_OPTIONS

# The test extra installs the wheel where one exists (pyproject.toml's marker says the same).
pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"),
    reason="NVRTC wheels exist for x86-64 and aarch64 Linux only",
)


def nvrtc() -> ctypes.CDLL:
    lib = importlib.resources.files("nvidia.cuda_nvrtc") / "lib"
    builtins = next(p for p in lib.iterdir() if p.name.startswith("libnvrtc-builtins.so"))
    ctypes.CDLL(str(builtins), mode=ctypes.RTLD_GLOBAL)
    return ctypes.CDLL(str(lib / "libnvrtc.so.12"))


def compile_ptx(source: bytes, options: tuple[str, ...]) -> tuple[int, str, bytes]:
    """NVRTC's result code, log and PTX for ``source``."""
    lib = nvrtc()
    program = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(program), source, b"evm.c", 0, None, None) == 0
    try:
        args = [option.encode() for option in options]
        code = lib.nvrtcCompileProgram(program, len(args), (ctypes.c_char_p * len(args))(*args))
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(program, log)
        ptx = b""
        if code == 0:
            lib.nvrtcGetPTXSize(program, ctypes.byref(size))
            buffer = ctypes.create_string_buffer(size.value)
            lib.nvrtcGetPTX(program, buffer)
            ptx = buffer.raw
        return code, log.value.decode(errors="replace"), ptx
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(program))


def test_the_interpreter_compiles_for_the_gpu() -> None:
    code, log, ptx = compile_ptx((KERNEL_DIR / "evm.c").read_bytes(), (*NVRTC_OPTIONS, "-arch=compute_90"))
    assert code == 0, log
    assert b".entry evm_kernel" in ptx
    assert b".entry evm_recover_kernel" in ptx


def test_a_broken_source_is_reported() -> None:
    code, log, _ = compile_ptx(b'#include "evm_tx.h"\nnot C at all;\n', (*NVRTC_OPTIONS, "-arch=compute_90"))
    assert code != 0 and "error" in log
