/* Entry points of the interpreter. Compiled twice from this one source:
 * - by CuPy/NVRTC as CUDA C++: the kernel evm_kernel, one thread per slot, and the batch
 *   sender recovery evm_recover_kernel, one thread per signature;
 * - by the system C compiler as a shared library for the CPU, loaded with ctypes.
 */
#include "evm_tx.h"

#if defined(__CUDACC__)

extern "C" __global__ void evm_kernel(const u64 *desc) {
    u64 slot = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (slot < desc[D_N_RUN]) evm_run_slot(desc, slot, slot);
}

/* Senders of n transaction signatures (tx_recover): hashes 32 bytes each, sigs r s y (65),
 * addresses (20) and ok (1: recovered) written. */
extern "C" __global__ void evm_recover_kernel(u64 n, const u8 *hashes, const u8 *sigs, u8 *addresses, u8 *ok) {
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) ok[i] = (u8)tx_recover(hashes + 32 * i, sigs + 65 * i, addresses + 20 * i);
}

#else

#define EVM_EXPORT __attribute__((visibility("default")))

#include "evm_host.h"
#include "evm_ordered.h"
#include "evm_encode.h"
#include "evm_recover.h"
#include "evm_txdecode.h"
#include "evm_mpt.h"
#include "evm_kv.h"

/* Runs slots [first, first + count) of a launch with the scratch arenas of worker. */
EVM_EXPORT void evm_run(const u64 *desc, u64 first, u64 count, u64 worker) {
    for (u64 slot = first; slot < first + count; slot++) evm_run_slot(desc, slot, worker);
}

/* Puts the effects of slot s of a sequential launch into the launch's tables: the final values
 * of what it touched, then its fee to the coinbase (as the host commits them); gas_left loses
 * its gas. Returns 0, changing nothing, when the tables cannot hold its effects: it is not
 * decided, or it deployed code, wrote storage no row holds, or deleted an account. */
static int seq_apply(const u64 *desc, u64 s, u64 *gas_left) {
    u64 *res = (u64 *)desc[D_RESULT] + s * RS_WORDS;
    u64 status = res[RS_STATUS];
    if (status >= ST_CONTROL_FIRST || res[RS_NEW_CODE]) return 0;
    if (status >= ST_REJECT_FIRST) return 1; /* not included: changes nothing */
    u64 *acc = (u64 *)desc[D_ACC];
    u64 *slots = (u64 *)desc[D_SLOT];
    const u64 *ent = (const u64 *)desc[D_ENTRIES] + s * desc[D_CAP_ENTRIES] * E_WORDS;
    u64 n_ent = res[RS_N_ENTRIES];
    for (int apply = 0; apply < 2; apply++) {
        for (u64 i = 0; i < n_ent; i++) {
            const u64 *p = ent + i * E_WORDS;
            if (p[E_KIND] == EK_TSLOT || !(p[E_FLAGS] & EF_KNOWN)) continue;
            u64 row = p[E_ROW];
            if (row == (u64)-1) return 0;
            if (p[E_KIND] == EK_SLOT) {
                if (apply) u256_store(slots + row * SL_WORDS + SL_VALUE, u256_load(p + E_VALUE));
                continue;
            }
            u64 *a = acc + row * ACC_WORDS;
            int exists = (p[E_FLAGS] & EF_EXISTS) != 0;
            if (!exists && (a[ACC_FLAGS] & AF_EXISTS)) return 0; /* a deletion also drops storage */
            if (!apply) continue;
            a[ACC_NONCE] = p[E_NONCE];
            a[ACC_CODE] = p[E_CODE];
            u256_store(a + ACC_BALANCE, u256_load(p + E_VALUE));
            u256_store(a + ACC_CODE_HASH, u256_load(p + E_ORIG));
            a[ACC_FLAGS] = exists ? (a[ACC_FLAGS] | AF_EXISTS) : (a[ACC_FLAGS] & ~(u64)AF_EXISTS);
        }
    }
    /* The fee, then EIP-161: the coinbase counts as touched by every transaction. */
    const u64 *tx = (const u64 *)desc[D_TX] + ((const u64 *)desc[D_RUN])[s] * TX_WORDS;
    const u64 *env = (const u64 *)desc[D_ENV];
    u256 tip = u256_sub(u256_load(tx + TX_PRICE), u256_load(env + ENV_BASE_FEE));
    u256 fee = u256_mul(u256_of(res[RS_GAS_USED]), tip);
    i64 row = tbl_find(acc, ACC_WORDS, (const i32 *)desc[D_ACC_INDEX], desc[D_ACC_MASK], env + ENV_COINBASE, 4);
    if (row < 0) return 0; /* the host always loads the coinbase */
    u64 *a = acc + (u64)row * ACC_WORDS;
    if ((a[ACC_FLAGS] & AF_EXISTS) || !u256_is_zero(fee)) {
        u256 balance = u256_add(u256_load(a + ACC_BALANCE), fee);
        u256_store(a + ACC_BALANCE, balance);
        int empty = a[ACC_NONCE] == 0 && u256_is_zero(balance) && a[ACC_CODE] == (u64)-1;
        a[ACC_FLAGS] = empty ? (a[ACC_FLAGS] & ~(u64)AF_EXISTS) : (a[ACC_FLAGS] | AF_EXISTS);
    }
    *gas_left -= res[RS_GAS_USED];
    return 1;
}

/* Runs the slots of a launch one after another on worker 0's arenas, each on the state the ones
 * before it left (seq_apply puts each slot's effects into the account and slot tables, which the
 * host passes as copies): a chain of dependent transactions runs in one launch. Stops before a
 * slot whose gas limit is over gas_left, and after one seq_apply cannot follow; the slots after
 * the stop get ST_SKIPPED. Returns the slots run. */
EVM_EXPORT u64 evm_run_sequential(const u64 *desc, u64 gas_left) {
    u64 n = desc[D_N_RUN];
    u64 s = 0;
    while (s < n) {
        const u64 *tx = (const u64 *)desc[D_TX] + ((const u64 *)desc[D_RUN])[s] * TX_WORDS;
        if (tx[TX_GAS] > gas_left) break;
        evm_run_slot(desc, s, 0);
        if (!seq_apply(desc, s++, &gas_left)) break;
    }
    for (u64 rest = s; rest < n; rest++) {
        u64 *res = (u64 *)desc[D_RESULT] + rest * RS_WORDS;
        for (int i = 0; i < RS_WORDS; i++) res[i] = 0;
        res[RS_STATUS] = ST_SKIPPED;
    }
    return s;
}

/* Adds records [first, n) to the open-addressing index (mask + 1 entries, -1 where empty) over
 * records whose key is their first nkey words; the interpreter's tbl_find reads it, on the
 * CPU or the device. */
EVM_EXPORT void evm_build_index(const u64 *recs, u64 words, u64 nkey, u64 first, u64 n, i32 *index, u64 mask) {
    for (u64 r = first; r < n; r++) {
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

/* ---- The host's state loading (evm_host.h) ------------------------------------------------ */

/* One step of a lookup in one trie node, for the host's single-key checks: see trie_step. */
EVM_EXPORT i64 evm_trie_step(const u8 *node, u64 len, const u8 *key, u64 pos, u64 *out) {
    return trie_step(node, len, key, pos, out);
}

typedef struct {
    const u8 *keys;
    u64 klen;
    u8 *digests;
} hash_keys_job;

static void hash_keys_range(void *job, u64 first, u64 count) {
    const hash_keys_job *j = (const hash_keys_job *)job;
    for (u64 i = first; i < first + count; i++) mpt_keccak(j->keys + i * j->klen, j->klen, j->digests + 32 * i);
}

/* Keccak-256 digests of n keys of klen bytes: the trie paths of accounts and slots (with
 * the committer's lane-wise Keccak, several times faster than the interpreter's), on up to
 * `threads` threads (a block's 20k keys took 7 ms on one). */
EVM_EXPORT void evm_hash_keys(const u8 *keys, u64 klen, u64 n, u8 *digests, u64 threads) {
    hash_keys_job job = {keys, klen, digests};
    host_parallel(n, threads, 2048, hash_keys_range, &job);
}

/* One level of a batch of trie lookups: see host_trie_level. */
EVM_EXPORT void evm_trie_level(const u8 *buf, const u64 *off, const u64 *len, const u64 *idx, u64 m,
                               const u8 *paths, u64 *pos, i64 *state, u8 *next, u64 accounts, u64 *rows,
                               u64 width, u8 *roots) {
    host_trie_level(buf, off, len, idx, m, paths, pos, state, next, (int)accounts, rows, width, roots);
}

/* Decodes n values of the flat state into rows: accounts (RLP, as the trie's leaves) into
 * ACC_* rows and their storage roots, or slots (minimal big-endian) into SL_VALUE. Value i is
 * values[offsets[i]..offsets[i + 1]); absent keys (present[i] == 0) leave their rows alone.
 * Returns 0, or 1 + the index of the first malformed value. */
EVM_EXPORT u64 evm_decode_flat(u64 n, const u8 *values, const u64 *offsets, const u8 *present,
                               u64 accounts, u64 *rows, u64 width, u8 *roots) {
    for (u64 i = 0; i < n; i++) {
        if (!present[i]) continue;
        const u8 *value = values + offsets[i];
        u64 size = offsets[i + 1] - offsets[i];
        u64 *row = rows + i * width;
        if (accounts) {
            if (!host_decode_account(value, size, row, roots + 32 * i)) return i + 1;
        } else {
            if (size > 32 || size == 0 || value[0] == 0) return i + 1;
            host_be_words(value, size, row + SL_VALUE);
        }
    }
    return 0;
}

/* Senders of n signatures (see evm_recover.h): libsecp256k1's context and functions (all 0:
 * the interpreter's curve code, as the GPU runs it), then the batch; addresses and per-item
 * success flags are written. */
EVM_EXPORT void evm_recover_batch(const void *ctx, void *parse, void *recover, void *serialize,
                                  u64 n, const u8 *hashes, const u8 *sigs, u8 *addresses, u8 *ok,
                                  u64 threads) {
    recover_job batch = {ctx, (secp_parse_fn)parse, (secp_recover_fn)recover,
                         (secp_serialize_fn)serialize, hashes, sigs, addresses, ok};
    host_recover_batch(&batch, n, threads);
}

/* Decodes n raw transactions (transaction i at blob[offsets[i]..offsets[i + 1])) and, unless
 * `defer`, recovers their senders, on up to `threads` threads; see evm_txdecode.h for what it
 * takes and what it writes. signing_hashes, sigs and ok are 32, 65 and 1 bytes a transaction:
 * scratch, or with `defer` what the host recovers from. */
EVM_EXPORT void evm_decode_transactions(const void *ctx, void *parse, void *recover, void *serialize,
                                        u64 n, const u8 *blob, const u64 *offsets, u64 *rows, u8 *bigs,
                                        u8 *tx_hashes, u8 *senders, u8 *signing_hashes, u8 *sigs, u8 *ok,
                                        u64 threads, u64 defer) {
    txd_job job = {{ctx, (secp_parse_fn)parse, (secp_recover_fn)recover, (secp_serialize_fn)serialize,
                    signing_hashes, sigs, senders, ok},
                   signing_hashes, sigs, blob, offsets, rows, bigs, tx_hashes, (int)defer};
    host_parallel(n, threads, 16, txd_range, &job);
}

/* Packs n transactions for the interpreter; see txd_pack in evm_txdecode.h. */
EVM_EXPORT u64 evm_pack_transactions(u64 n, const u8 *blob, const u64 *offsets, const u8 *senders,
                                     const u64 *base_fee, u64 chain_id, u64 *records, u8 *data,
                                     u64 *prices, u64 *tips, u8 *status) {
    return txd_pack(n, blob, offsets, senders, base_fee, chain_id, records, data, prices, tips, status);
}

/* Root of the ordered trie (keys rlp(i)) of n > 0 values, value i at
 * values[offsets[i]..offsets[i + 1]); 0 when memory ran out. See evm_ordered.h. */
EVM_EXPORT int evm_ordered_root(u64 n, const u8 *values, const u64 *offsets, u8 *root) {
    return host_ordered_root(n, values, offsets, root);
}

/* Test hooks: the interpreter's own arithmetic and hashing, for checks against Python. */
EVM_EXPORT u64 evm_encode_receipts(u64 n, const u8 *flags, const u64 *gas, const u8 *prices, const u8 *contracts,
                                   const u64 *log_counts, const u8 *addresses, const u8 *topic_counts,
                                   const u8 *topics, const u8 *data, const u64 *data_offsets, u8 *stored) {
    return host_encode_receipts(n, flags, gas, prices, contracts, log_counts, addresses, topic_counts, topics, data,
                                data_offsets, stored);
}

EVM_EXPORT int evm_receipts_root(u64 n, const u8 *flags, const u64 *gas, const u64 *log_counts, const u8 *addresses,
                                 const u8 *topic_counts, const u8 *topics, const u8 *data, const u64 *data_offsets,
                                 u8 *scratch, u64 *offsets, u8 *bloom, u8 *root) {
    return host_receipts_root(n, flags, gas, log_counts, addresses, topic_counts, topics, data, data_offsets, scratch,
                              offsets, bloom, root);
}

EVM_EXPORT u64 evm_encode_body(u64 n, const u8 *raws, const u64 *offsets, const u8 *senders, u8 *out) {
    return host_encode_body(n, raws, offsets, senders, out);
}

/* The raw transactions of a stored body (host_encode_body's form, [[raw, sender], ...], in
 * size bytes): raw i is body[starts[i]..ends[i]). Returns how many (at most max), or -1 when
 * the body is not of that form. */
EVM_EXPORT i64 evm_body_raws(const u8 *body, u64 size, u64 max, u64 *starts, u64 *ends) {
    u64 off, len;
    if (rlp_item(body, size, &off, &len) != 1 || off + len != size) return -1;
    u64 at = off, n = 0;
    while (at < size) {
        u64 item_off, item_len, raw_off, raw_len, sender_off, sender_len;
        if (n == max || rlp_item(body + at, size - at, &item_off, &item_len) != 1) return -1;
        const u8 *item = body + at + item_off;
        if (rlp_item(item, item_len, &raw_off, &raw_len) != 0) return -1;
        u64 rest = raw_off + raw_len;
        if (rlp_item(item + rest, item_len - rest, &sender_off, &sender_len) != 0 || sender_len != 20 ||
            rest + sender_off + sender_len != item_len)
            return -1;
        starts[n] = at + item_off + raw_off;
        ends[n] = starts[n] + raw_len;
        n++;
        at += item_off + item_len;
    }
    return (i64)n;
}

EVM_EXPORT void evm_test_arith(u64 op, const u64 *args, u64 *out) {
    u256_store(out, evm_arith((u8)op, u256_load(args), u256_load(args + 4), u256_load(args + 8)));
}

/* Runs precompile id on len bytes of input with gas, as a transaction calling it directly
 * would: mem is its scratch arena (cap_mem bytes), ret and out receive cap_out bytes of output.
 * res gets RS_STATUS (or the control status that stopped it) and RS_OUT_LEN; returns the gas
 * left. kzg_verify and kzg_settings as D_KZG_VERIFY and D_KZG_SETTINGS. */
EVM_EXPORT u64 evm_test_precompile(u64 id, const u8 *in, u64 len, u64 gas, u8 *mem, u64 cap_mem, u8 *ret,
                                   u8 *out, u64 cap_out, u64 *res, u64 kzg_verify, const void *kzg_settings) {
    EvmCtx c;
    EvmFrame frame;
    evm_zero((u8 *)&c, sizeof c);
    evm_zero((u8 *)&frame, sizeof frame);
    c.frames = &frame;
    c.cap_frames = 1;
    c.mem = mem;
    c.cap_mem = cap_mem;
    c.ret = ret;
    c.cap_ret = cap_out;
    c.out = out;
    c.cap_out = cap_out;
    c.res = res;
    c.kzg_verify = kzg_verify;
    c.kzg_settings = kzg_settings;
    frame.gas = gas;
    frame.calldata = in;
    frame.calldata_len = len;
    run_precompile(&c, &frame, u256_of(id));
    if (c.abort) res[RS_STATUS] = (u64)c.abort;
    return frame.gas;
}

EVM_EXPORT void evm_test_keccak(const u8 *data, u64 len, u64 *out) { u256_store(out, evm_keccak(data, len)); }

#endif
