/* Per-transaction view of the state: the host's read-only tables plus a journaled overlay.
 *
 * Every account or slot a transaction touches becomes an entry; entries loaded from the
 * host's tables form the read set, and their final values (compared by the host with the
 * table) the write set. Changes are journaled so that a failed call frame is undone.
 */
#ifndef EVM_STATE_H
#define EVM_STATE_H

#include "evm_abi.h"
#include "evm_keccak.h"

/* Journal fields (internal: the host never reads the journal). */
enum { JF_VALUE = 1, JF_NONCE = 2, JF_CODE = 3, JF_CODE_HASH = 4, JF_FLAGS = 5, JF_WARM = 6 };

/* Flags that change with the state and are journaled by JF_FLAGS. */
#define EF_STATE_MASK ((u64)(EF_EXISTS | EF_CREATED | EF_DESTROYED | EF_TOUCHED))

typedef struct {
    u256 address; /* account whose storage and balance the code acts on */
    u256 caller;
    u256 value;
    const u8 *code;
    const u8 *jumpdest;
    const u8 *calldata;
    u64 code_len;
    u64 calldata_len;
    u64 pc;
    u64 gas;
    u64 stack_base; /* first stack word of this frame in the slot's stack arena */
    u64 sp;         /* words on this frame's stack */
    u64 mem_base;   /* first byte of this frame's memory in the slot's memory arena */
    u64 mem_size;   /* bytes, a multiple of 32 */
    u64 ret_off;    /* caller memory receiving the output of a CALL */
    u64 ret_len;
    u64 journal_mark;
    u64 log_mark;
    u64 log_data_mark;
    u64 new_code_mark;
    i64 refund_mark;
    u64 kind;         /* opcode that opened the frame; 0 for a call transaction, CREATE for a creation */
    u64 is_static;
    u64 create_entry; /* entry of the account a creation deploys to */
} EvmFrame;

/* The host sizes the frame arena with FRAME_WORDS. */
typedef char evm_frame_size_check[sizeof(EvmFrame) == FRAME_WORDS * 8 ? 1 : -1];

typedef struct {
    const u64 *tx;
    const u64 *env;
    const u64 *acc;
    const u64 *slot;
    const u64 *codes;
    const u64 *access;
    const i32 *acc_index;
    const i32 *slot_index;
    u64 acc_mask;
    u64 slot_mask;
    const u8 *tx_data;
    const u8 *code_bytes;
    const u8 *jumpdest;
    u64 *res;
    u64 *ent;
    i32 *ent_index;
    u64 n_ent, cap_ent;
    u64 *jrn;
    u64 n_jrn, cap_jrn;
    u64 *stack;     /* the slot's arena, where suspended callers' stacks wait */
    u64 cap_stack;
    u64 *window;    /* the running frame's stack: see evm_interpret */
    u8 *mem;
    u64 cap_mem;
    u8 *ret;
    u64 ret_len, cap_ret;
    EvmFrame *frames;
    u64 depth, cap_frames;
    u64 *logs;
    u64 n_logs, cap_logs;
    u8 *log_data;
    u64 n_log_data, cap_log_data;
    u8 *out;
    u64 cap_out;
    u8 *new_code;
    u64 n_new_code, cap_new_code;
    i64 refund;
    u64 kzg_verify;          /* D_KZG_VERIFY */
    const void *kzg_settings; /* D_KZG_SETTINGS */
    int abort; /* a control status (ST_NEEDS_KEY, ST_RESOURCE, ST_UNSUPPORTED) that stops the slot */
    u64 n_assumed; /* entries taken as absent: see assume_absent */
    u256 origin;
    u256 gas_price;
    u256 coinbase;
} EvmCtx;

EVM_FN void ctx_abort(EvmCtx *c, int status) {
    if (!c->abort) c->abort = status;
}

/* Hands the transaction to the reference executor; why is recorded for the host's metrics. */
EVM_FN void unsupported(EvmCtx *c, u64 why) {
    if (c->abort) return;
    c->abort = ST_UNSUPPORTED;
    c->res[RS_WHY] = why;
}

EVM_FN u256 evm_addr(u256 a) {
    a.w[2] &= 0xFFFFFFFFULL;
    a.w[3] = 0;
    return a;
}

EVM_FN u256 evm_empty_code_hash(void) {
    u256 h; /* keccak256 of no bytes */
    h.w[3] = 0xc5d2460186f7233cULL;
    h.w[2] = 0x927e7db2dcc703c0ULL;
    h.w[1] = 0xe500b653ca82273bULL;
    h.w[0] = 0x7bfad8045d85a470ULL;
    return h;
}

EVM_FN u64 evm_hash_words(const u64 *k, int n) {
    u64 h = 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < n; i++) {
        h ^= k[i];
        h *= 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
    }
    return h;
}

/* Row of the record whose first nkey words equal key, in an index built by evm_build_index. */
EVM_FN i64 tbl_find(const u64 *recs, u64 words, const i32 *index, u64 mask, const u64 *key, int nkey) {
    u64 h = evm_hash_words(key, nkey) & mask;
    for (;;) {
        i32 r = index[h];
        if (r < 0) return -1;
        const u64 *rec = recs + (u64)r * words;
        int same = 1;
        for (int i = 0; i < nkey; i++) same &= rec[i] == key[i];
        if (same) return r;
        h = (h + 1) & mask;
    }
}

EVM_FN u64 *ent_at(EvmCtx *c, i64 e) { return c->ent + (u64)e * E_WORDS; }

/* Keys one run may take as absent before it stops. */
#define EVM_MAX_ASSUMED 256

/* State the host did not give (entry p): the run takes it as absent, zero, and goes on, so
 * that one run finds most of the keys a transaction needs (a loop creating or paying N new
 * accounts would otherwise run N + 1 times). Such a run only names its keys: it ends with
 * ST_NEEDS_KEY and the host loads its EF_ASSUMED entries. 0 when the slot must stop now. */
EVM_FN int assume_absent(EvmCtx *c, u64 *p) {
    if (c->abort) return 0;
    if (c->n_assumed == EVM_MAX_ASSUMED) {
        c->abort = ST_NEEDS_KEY;
        return 0;
    }
    c->n_assumed++;
    p[E_FLAGS] |= EF_KNOWN | EF_ASSUMED;
    return 1;
}

/* The entry for (kind, addr, key), created empty when new; -1 when the slot must stop. */
EVM_FN i64 ent_get(EvmCtx *c, u64 kind, u256 addr, u256 key) {
    u64 k[9];
    k[0] = kind;
    for (int i = 0; i < 4; i++) {
        k[1 + i] = addr.w[i];
        k[5 + i] = key.w[i];
    }
    u64 mask = 2 * c->cap_ent - 1;
    u64 h = evm_hash_words(k, 9) & mask;
    for (;;) {
        i32 e = c->ent_index[h];
        if (e < 0) break;
        const u64 *p = ent_at(c, e);
        if (p[E_KIND] == kind && u256_eq(u256_load(p + E_ADDR), addr) && u256_eq(u256_load(p + E_KEY), key))
            return e;
        h = (h + 1) & mask;
    }
    if (c->n_ent == c->cap_ent) {
        ctx_abort(c, ST_RESOURCE);
        return -1;
    }
    i64 e = (i64)c->n_ent++;
    c->ent_index[h] = (i32)e;
    u64 *p = ent_at(c, e);
    for (int i = 0; i < E_WORDS; i++) p[i] = 0;
    p[E_KIND] = kind;
    p[E_ROW] = (u64)-1;
    p[E_CODE] = (u64)-1;
    u256_store(p + E_ADDR, addr);
    u256_store(p + E_KEY, key);
    return e;
}

/* The account at addr with its values loaded; -1 when the slot must stop. */
EVM_FN i64 ent_account(EvmCtx *c, u256 addr) {
    i64 e = ent_get(c, EK_ACCOUNT, addr, u256_of(0));
    if (e < 0) return -1;
    u64 *p = ent_at(c, e);
    if (p[E_FLAGS] & EF_KNOWN) return e;
    i64 row = tbl_find(c->acc, ACC_WORDS, c->acc_index, c->acc_mask, addr.w, 4);
    if (row < 0) {
        if (!assume_absent(c, p)) return -1;
        u256_store(p + E_ORIG, evm_empty_code_hash());
        return e;
    }
    const u64 *a = c->acc + (u64)row * ACC_WORDS;
    p[E_ROW] = (u64)row;
    p[E_NONCE] = a[ACC_NONCE];
    p[E_CODE] = a[ACC_CODE];
    u256_store(p + E_VALUE, u256_load(a + ACC_BALANCE));
    u256_store(p + E_ORIG, u256_load(a + ACC_CODE_HASH));
    p[E_FLAGS] |= EF_KNOWN | EF_LOADED | ((a[ACC_FLAGS] & AF_EXISTS) ? (u64)EF_EXISTS : 0) |
                  ((a[ACC_FLAGS] & AF_HAS_STORAGE) ? (u64)EF_HAS_STORAGE : 0);
    return e;
}

/* A storage slot of the (loaded) account entry acct; -1 when the slot must stop. */
EVM_FN i64 ent_storage(EvmCtx *c, i64 acct, u256 key) {
    u256 addr = u256_load(ent_at(c, acct) + E_ADDR);
    i64 e = ent_get(c, EK_SLOT, addr, key);
    if (e < 0) return -1;
    u64 *p = ent_at(c, e);
    if (p[E_FLAGS] & EF_KNOWN) return e;
    if ((ent_at(c, acct)[E_FLAGS] & (EF_CREATED | EF_HAS_STORAGE)) == EF_CREATED) {
        /* A contract this transaction created where no storage was starts empty. */
        p[E_FLAGS] |= EF_KNOWN;
        return e;
    }
    u64 k[8];
    for (int i = 0; i < 4; i++) {
        k[i] = addr.w[i];
        k[4 + i] = key.w[i];
    }
    i64 row = tbl_find(c->slot, SL_WORDS, c->slot_index, c->slot_mask, k, 8);
    if (row < 0) return assume_absent(c, p) ? e : -1;
    u256 v = u256_load(c->slot + (u64)row * SL_WORDS + SL_VALUE);
    p[E_ROW] = (u64)row;
    u256_store(p + E_VALUE, v);
    u256_store(p + E_ORIG, v);
    p[E_FLAGS] |= EF_KNOWN | EF_LOADED;
    return e;
}

/* A transient storage slot: starts at zero in every transaction and is never the host's. */
EVM_FN i64 ent_transient(EvmCtx *c, u256 addr, u256 key) {
    i64 e = ent_get(c, EK_TSLOT, addr, key);
    if (e >= 0) ent_at(c, e)[E_FLAGS] |= EF_KNOWN;
    return e;
}

EVM_FN int jrn_push(EvmCtx *c, i64 e, u64 field, const u64 *old, int n) {
    if (c->n_jrn == c->cap_jrn) {
        ctx_abort(c, ST_RESOURCE);
        return -1;
    }
    u64 *j = c->jrn + c->n_jrn++ * J_WORDS;
    j[J_ENTRY] = (u64)e;
    j[J_FIELD] = field;
    for (int i = 0; i < n; i++) j[J_OLD + i] = old[i];
    return 0;
}

EVM_FN void jrn_revert(EvmCtx *c, u64 mark) {
    while (c->n_jrn > mark) {
        const u64 *j = c->jrn + --c->n_jrn * J_WORDS;
        u64 *p = ent_at(c, (i64)j[J_ENTRY]);
        switch (j[J_FIELD]) {
        case JF_VALUE: u256_store(p + E_VALUE, u256_load(j + J_OLD)); break;
        case JF_NONCE: p[E_NONCE] = j[J_OLD]; break;
        case JF_CODE: p[E_CODE] = j[J_OLD]; break;
        case JF_CODE_HASH: u256_store(p + E_ORIG, u256_load(j + J_OLD)); break;
        case JF_FLAGS: p[E_FLAGS] = (p[E_FLAGS] & ~EF_STATE_MASK) | (j[J_OLD] & EF_STATE_MASK); break;
        case JF_WARM: p[E_FLAGS] = (p[E_FLAGS] & ~(u64)EF_WARM) | (j[J_OLD] & EF_WARM); break;
        }
    }
}

EVM_FN int set_value(EvmCtx *c, i64 e, u256 v) {
    u64 *p = ent_at(c, e);
    if (jrn_push(c, e, JF_VALUE, p + E_VALUE, 4)) return -1;
    u256_store(p + E_VALUE, v);
    return 0;
}

EVM_FN int set_nonce(EvmCtx *c, i64 e, u64 nonce) {
    u64 *p = ent_at(c, e);
    if (jrn_push(c, e, JF_NONCE, p + E_NONCE, 1)) return -1;
    p[E_NONCE] = nonce;
    return 0;
}

EVM_FN int set_code(EvmCtx *c, i64 e, u64 ref, u256 hash) {
    u64 *p = ent_at(c, e);
    if (jrn_push(c, e, JF_CODE, p + E_CODE, 1) || jrn_push(c, e, JF_CODE_HASH, p + E_ORIG, 4)) return -1;
    p[E_CODE] = ref;
    u256_store(p + E_ORIG, hash);
    return 0;
}

EVM_FN int add_flags(EvmCtx *c, i64 e, u64 flags) {
    u64 *p = ent_at(c, e);
    if ((p[E_FLAGS] & flags) == flags) return 0;
    if (jrn_push(c, e, JF_FLAGS, p + E_FLAGS, 1)) return -1;
    p[E_FLAGS] |= flags;
    return 0;
}

/* Marks an entry warm (EIP-2929); returns 1 when it was cold, -1 when the slot must stop. */
EVM_FN int warm_entry(EvmCtx *c, i64 e) {
    u64 *p = ent_at(c, e);
    if (p[E_FLAGS] & EF_WARM) return 0;
    if (jrn_push(c, e, JF_WARM, p + E_FLAGS, 1)) return -1;
    p[E_FLAGS] |= EF_WARM;
    return 1;
}

EVM_FN int is_precompile(u256 a) { return (a.w[1] | a.w[2] | a.w[3]) == 0 && a.w[0] >= 1 && a.w[0] <= 10; }

/* Gas for touching an account (EIP-2929) and marks it warm; -1 when the slot must stop.
 * Precompiles and the coinbase (EIP-3651) are warm from the start. */
EVM_FN i64 account_access_gas(EvmCtx *c, u256 addr) {
    if (is_precompile(addr) || u256_eq(addr, c->coinbase)) return 100;
    i64 e = ent_get(c, EK_ACCOUNT, addr, u256_of(0));
    if (e < 0) return -1;
    int cold = warm_entry(c, e);
    if (cold < 0) return -1;
    return cold ? 2600 : 100;
}

EVM_FN int add_balance(EvmCtx *c, i64 e, u256 v) {
    if (set_value(c, e, u256_add(u256_load(ent_at(c, e) + E_VALUE), v))) return -1;
    return add_flags(c, e, EF_EXISTS);
}

EVM_FN int sub_balance(EvmCtx *c, i64 e, u256 v) {
    return set_value(c, e, u256_sub(u256_load(ent_at(c, e) + E_VALUE), v));
}

/* Moves value between loaded accounts; the caller checked the sender's balance. */
EVM_FN int transfer(EvmCtx *c, i64 from, i64 to, u256 v) {
    if (u256_is_zero(v)) return 0;
    if (sub_balance(c, from, v)) return -1;
    return add_balance(c, to, v);
}

/* EIP-161: no code, zero nonce and zero balance. */
EVM_FN int account_empty(EvmCtx *c, i64 e) {
    const u64 *p = ent_at(c, e);
    return p[E_NONCE] == 0 && p[E_CODE] == (u64)-1 && u256_is_zero(u256_load(p + E_VALUE));
}

/* Code of a code reference (E_CODE) with its jumpdest bitmap. */
EVM_FN void code_of(EvmCtx *c, u64 ref, const u8 **code, u64 *len, const u8 **jumpdest) {
    if (ref == (u64)-1) {
        *code = 0;
        *len = 0;
        *jumpdest = 0;
    } else if (ref >= (u64)CODE_NEW) {
        const u8 *rec = c->new_code + (ref - (u64)CODE_NEW);
        *len = *(const u64 *)rec;
        *code = rec + 8;
        *jumpdest = rec + 8 + ((*len + 7) & ~7ULL);
    } else {
        const u64 *cd = c->codes + ref * CD_WORDS;
        *code = c->code_bytes + cd[CD_OFF];
        *len = cd[CD_LEN];
        *jumpdest = c->jumpdest + cd[CD_JUMPDEST_OFF];
    }
}

/* Marks the JUMPDEST bytes of code that are not PUSH data. */
EVM_FN void evm_analyze(const u8 *code, u64 len, u8 *bits) {
    for (u64 i = 0; i < (len + 7) / 8; i++) bits[i] = 0;
    for (u64 i = 0; i < len; i++) {
        u8 op = code[i];
        if (op == 0x5B) {
            bits[i / 8] |= (u8)(1 << (i % 8));
        } else if (op >= 0x60 && op <= 0x7F) {
            i += (u64)(op - 0x5F);
        }
    }
}

#endif
