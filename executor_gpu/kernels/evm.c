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

/* ---- Merkle-Patricia trie lookups for the host's state loading --------------------------- */

/* Header of the RLP item at p[0..len): sets its payload offset and length, returns 1 for a
 * list, 0 for a string, -1 when malformed. */
static int rlp_item(const u8 *p, u64 len, u64 *off, u64 *size) {
    if (len == 0) return -1;
    u8 b = p[0];
    u64 n = 0, head = 1;
    int list = b >= 0xC0;
    if (b < 0x80) {
        *off = 0;
        *size = 1;
        return 0;
    }
    if (b <= 0xB7 || (b >= 0xC0 && b <= 0xF7)) {
        n = b - (list ? 0xC0 : 0x80);
    } else {
        u64 k = b - (list ? 0xF7 : 0xB7);
        if (k > 8 || 1 + k > len) return -1;
        for (u64 i = 0; i < k; i++) n = (n << 8) | p[1 + i];
        head = 1 + k;
    }
    if (head + n > len || head + n < head) return -1;
    *off = head;
    *size = n;
    return list;
}

/* Nibble i of a 32-byte key. */
static u8 key_nibble(const u8 *key, u64 i) { return (i & 1) ? (key[i / 2] & 0x0F) : (key[i / 2] >> 4); }

/* One step of looking up the 32-byte key, from nibble pos on, in the RLP trie node. Returns
 * 0 when the key is absent, 1 when out = (offset, length) of the value, 2 when out[0] is the
 * offset of the 32-byte hash of the next node, 3 when out = (offset, length) of an embedded
 * next node; out[2] is the number of nibbles consumed. Offsets are into node; -1 means a
 * malformed node. */
EVM_EXPORT i64 evm_trie_step(const u8 *node, u64 len, const u8 *key, u64 pos, u64 *out) {
    u64 path_len = pos < 64 ? 64 - pos : 0;
    u64 off, size;
    if (rlp_item(node, len, &off, &size) != 1) return -1;
    const u8 *items = node + off;
    u64 at = 0, count = 0, starts[17], sizes[17], offs[17];
    int kinds[17];
    while (at < size) {
        if (count == 17) return -1;
        u64 o, n;
        int k = rlp_item(items + at, size - at, &o, &n);
        if (k < 0) return -1;
        starts[count] = at;
        offs[count] = o;
        sizes[count] = n;
        kinds[count] = k;
        count++;
        at += o + n;
    }
    u64 base = off;
    u64 child;
    out[2] = 0;
    if (count == 17) {
        if (path_len == 0) {
            if (sizes[16] == 0) return 0;
            out[0] = base + starts[16] + offs[16];
            out[1] = sizes[16];
            return 1;
        }
        child = key_nibble(key, pos);
        out[2] = 1;
    } else if (count == 2) {
        if (kinds[0] != 0 || sizes[0] == 0) return -1;
        const u8 *enc = items + starts[0] + offs[0]; /* hex-prefix encoded path of the node */
        int flag = enc[0] >> 4, leaf = flag >= 2, odd = flag & 1;
        u64 nibbles = 2 * sizes[0] - 2 + (u64)odd;
        if (nibbles > path_len) return 0;
        for (u64 i = 0; i < nibbles; i++) {
            if (key_nibble(enc, i + (odd ? 1 : 2)) != key_nibble(key, pos + i)) return 0;
        }
        if (leaf) {
            if (nibbles != path_len) return 0;
            out[0] = base + starts[1] + offs[1];
            out[1] = sizes[1];
            out[2] = nibbles;
            return 1;
        }
        child = 1;
        out[2] = nibbles;
    } else {
        return -1;
    }
    if (kinds[child] == 1) { /* an embedded node: the whole list item */
        out[0] = base + starts[child];
        out[1] = offs[child] + sizes[child];
        return 3;
    }
    if (sizes[child] == 0) return 0;
    if (sizes[child] != 32) return -1;
    out[0] = base + starts[child] + offs[child];
    return 2;
}

/* Test hooks: the interpreter's own arithmetic and hashing, for checks against Python. */
EVM_EXPORT void evm_test_arith(u64 op, const u64 *args, u64 *out) {
    u256_store(out, evm_arith((u8)op, u256_load(args), u256_load(args + 4), u256_load(args + 8)));
}

EVM_EXPORT void evm_test_keccak(const u8 *data, u64 len, u64 *out) { u256_store(out, evm_keccak(data, len)); }

#endif
