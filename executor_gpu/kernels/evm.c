/* Entry points of the interpreter. Compiled twice from this one source:
 * - by CuPy/NVRTC as CUDA C++: the kernel evm_kernel, one thread per slot;
 * - by the system C compiler as a shared library for the CPU, loaded with ctypes.
 */
#include "evm_tx.h"

#if defined(__CUDACC__)

extern "C" __global__ void evm_kernel(const u64 *desc) {
    u64 slot = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (slot < desc[D_N_RUN]) evm_run_slot(desc, slot, slot);
}

#else

#define EVM_EXPORT __attribute__((visibility("default")))

/* Runs slots [first, first + count) of a launch with the scratch arenas of worker. */
EVM_EXPORT void evm_run(const u64 *desc, u64 first, u64 count, u64 worker) {
    for (u64 slot = first; slot < first + count; slot++) evm_run_slot(desc, slot, worker);
}

/* Builds the open-addressing index (mask + 1 entries) over n records whose key is their
 * first nkey words; the interpreter's tbl_find reads it, on the CPU or the device. */
EVM_EXPORT void evm_build_index(const u64 *recs, u64 words, u64 nkey, u64 n, i32 *index, u64 mask) {
    for (u64 i = 0; i <= mask; i++) index[i] = -1;
    for (u64 r = 0; r < n; r++) {
        const u64 *key = recs + r * words;
        u64 h = evm_hash_words(key, (int)nkey) & mask;
        while (index[h] >= 0) h = (h + 1) & mask;
        index[h] = (i32)r;
    }
}

/* Fills the jumpdest bitmaps of code records [first, n). */
EVM_EXPORT void evm_analyze_codes(const u64 *codes, u64 first, u64 n, const u8 *bytes, u8 *jumpdest) {
    for (u64 i = first; i < n; i++) {
        const u64 *cd = codes + i * CD_WORDS;
        evm_analyze(bytes + cd[CD_OFF], cd[CD_LEN], jumpdest + cd[CD_JUMPDEST_OFF]);
    }
}

/* Test hooks: the interpreter's own arithmetic and hashing, for checks against Python. */
EVM_EXPORT void evm_test_arith(u64 op, const u64 *args, u64 *out) {
    u256_store(out, evm_arith((u8)op, u256_load(args), u256_load(args + 4), u256_load(args + 8)));
}

EVM_EXPORT void evm_test_keccak(const u8 *data, u64 len, u64 *out) { u256_store(out, evm_keccak(data, len)); }

#endif
