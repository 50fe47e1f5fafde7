/* The EVM interpreter (Cancun rules, as py-evm applies them): one transaction per slot.
 *
 * Nested calls do not recurse: frames live in the slot's frame arena and the loop
 * switches between them, which keeps the device stack small. A callee's stack and
 * memory start right after its caller's, because a suspended caller cannot grow.
 */
#ifndef EVM_INTERP_H
#define EVM_INTERP_H

#include "evm_precompile.h"
#include "evm_blake2f.h"
#include "evm_bn254.h"
#include "evm_state.h"

#define EVM_STACK_LIMIT 1024
#define EVM_DEPTH_LIMIT 1024
#define EVM_MAX_CODE 24576
#define EVM_MAX_INITCODE 49152

EVM_FN u64 words_of(u64 len) { return len / 32 + (len % 32 != 0); }

/* The arithmetic opcodes of evm_arith too big to inline into the interpreter's loop. */
EVM_FN_BIG u256 evm_arith_big(u8 op, u256 a, u256 b, u256 n) {
    switch (op) {
    case 0x04: return evm_div(a, b);
    case 0x05: return evm_sdiv(a, b);
    case 0x06: return evm_mod(a, b);
    case 0x07: return evm_smod(a, b);
    case 0x08: return evm_addmod(a, b, n);
    case 0x09: return evm_mulmod(a, b, n);
    case 0x0a: return evm_exp(a, b);
    case 0x0b: return evm_signextend(a, b);
    case 0x1a: return evm_byte(a, b);
    case 0x1b: return evm_shl(a, b);
    case 0x1c: return evm_shr(a, b);
    case 0x1d: return evm_sar(a, b);
    }
    return u256_of(0);
}

/* Arithmetic, comparison and bitwise opcodes 0x01-0x1d on their stack arguments. */
EVM_FN u256 evm_arith(u8 op, u256 a, u256 b, u256 n) {
    switch (op) {
    case 0x01: return u256_add(a, b);
    case 0x02: return u256_mul(a, b);
    case 0x03: return u256_sub(a, b);
    case 0x10: return u256_of((u64)u256_lt(a, b));
    case 0x11: return u256_of((u64)u256_lt(b, a));
    case 0x12: return u256_of((u64)u256_slt(a, b));
    case 0x13: return u256_of((u64)u256_slt(b, a));
    case 0x14: return u256_of((u64)u256_eq(a, b));
    case 0x15: return u256_of((u64)u256_is_zero(a));
    case 0x16:
        for (int i = 0; i < 4; i++) a.w[i] &= b.w[i];
        return a;
    case 0x17:
        for (int i = 0; i < 4; i++) a.w[i] |= b.w[i];
        return a;
    case 0x18:
        for (int i = 0; i < 4; i++) a.w[i] ^= b.w[i];
        return a;
    case 0x19: return u256_not(a);
    }
    return evm_arith_big(op, a, b, n);
}

/* Per opcode: its class in the interpreter's inner loop, items popped, items pushed and
 * constant gas; 0 outside the Cancun set. A table rather than a switch: it is read on every
 * step, and the class is the loop's only dispatch. */
#define OPC_SLOW 0 /* leaves the inner loop for the switch, and the undefined opcodes */
#define OPC_ARITH 1
#define OPC_PUSH 2
#define OPC_DUP 3
#define OPC_SWAP 4
#define OPC_POP 5
#define OPC_JUMP 6
#define OPC_JUMPI 7
#define OPC_JUMPDEST 8
#define OP(cls, in, out, gas) ((u32)(cls) << 26 | (u32)(in) << 21 | (u32)(out) << 16 | (u32)(gas))
#define A(in, out, gas) OP(OPC_ARITH, in, out, gas)
#define P(in, out, gas) OP(OPC_PUSH, in, out, gas)
#define D(in, out, gas) OP(OPC_DUP, in, out, gas)
#define W(in, out, gas) OP(OPC_SWAP, in, out, gas)
#define O(in, out, gas) OP(OPC_POP, in, out, gas)
#define J(in, out, gas) OP(OPC_JUMP, in, out, gas)
#define I(in, out, gas) OP(OPC_JUMPI, in, out, gas)
#define T(in, out, gas) OP(OPC_JUMPDEST, in, out, gas)
#define S(in, out, gas) OP(OPC_SLOW, in, out, gas)
#define UNDEF 0u
EVM_TABLE u32 OP_INFO[256] = {
    /* 0x00 */ S(0, 0, 0), A(2, 1, 3), A(2, 1, 5), A(2, 1, 3), A(2, 1, 5), A(2, 1, 5), A(2, 1, 5), A(2, 1, 5),
    /* 0x08 */ A(3, 1, 8), A(3, 1, 8), A(2, 1, 10), A(2, 1, 5), UNDEF, UNDEF, UNDEF, UNDEF,
    /* 0x10 */ A(2, 1, 3), A(2, 1, 3), A(2, 1, 3), A(2, 1, 3), A(2, 1, 3), A(1, 1, 3), A(2, 1, 3), A(2, 1, 3),
    /* 0x18 */ A(2, 1, 3), A(1, 1, 3), A(2, 1, 3), A(2, 1, 3), A(2, 1, 3), A(2, 1, 3), UNDEF, UNDEF,
    /* 0x20 */ S(2, 1, 30), UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF,
    /* 0x28 */ UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF,
    /* 0x30 */ S(0, 1, 2), S(1, 1, 0), S(0, 1, 2), S(0, 1, 2), S(0, 1, 2), S(1, 1, 3), S(0, 1, 2), S(3, 0, 3),
    /* 0x38 */ S(0, 1, 2), S(3, 0, 3), S(0, 1, 2), S(1, 1, 0), S(4, 0, 0), S(0, 1, 2), S(3, 0, 3), S(1, 1, 0),
    /* 0x40 */ S(1, 1, 20), S(0, 1, 2), S(0, 1, 2), S(0, 1, 2), S(0, 1, 2), S(0, 1, 2), S(0, 1, 2), S(0, 1, 5),
    /* 0x48 */ S(0, 1, 2), S(1, 1, 3), S(0, 1, 2), UNDEF, UNDEF, UNDEF, UNDEF, UNDEF,
    /* 0x50 */ O(1, 0, 2), S(1, 1, 3), S(2, 0, 3), S(2, 0, 3), S(1, 1, 0), S(2, 0, 0), J(1, 0, 8), I(2, 0, 10),
    /* 0x58 */ S(0, 1, 2), S(0, 1, 2), S(0, 1, 2), T(0, 0, 1), S(1, 1, 100), S(2, 0, 100), S(3, 0, 3), P(0, 1, 2),
    /* 0x60 */ P(0, 1, 3), P(0, 1, 3), P(0, 1, 3), P(0, 1, 3), P(0, 1, 3), P(0, 1, 3), P(0, 1, 3), P(0, 1, 3),
    /* 0x68 */ P(0, 1, 3), P(0, 1, 3), P(0, 1, 3), P(0, 1, 3), P(0, 1, 3), P(0, 1, 3), P(0, 1, 3), P(0, 1, 3),
    /* 0x70 */ P(0, 1, 3), P(0, 1, 3), P(0, 1, 3), P(0, 1, 3), P(0, 1, 3), P(0, 1, 3), P(0, 1, 3), P(0, 1, 3),
    /* 0x78 */ P(0, 1, 3), P(0, 1, 3), P(0, 1, 3), P(0, 1, 3), P(0, 1, 3), P(0, 1, 3), P(0, 1, 3), P(0, 1, 3),
    /* 0x80 */ D(1, 2, 3), D(2, 3, 3), D(3, 4, 3), D(4, 5, 3), D(5, 6, 3), D(6, 7, 3), D(7, 8, 3), D(8, 9, 3),
    /* 0x88 */ D(9, 10, 3), D(10, 11, 3), D(11, 12, 3), D(12, 13, 3), D(13, 14, 3), D(14, 15, 3), D(15, 16, 3), D(16, 17, 3),
    /* 0x90 */ W(2, 2, 3), W(3, 3, 3), W(4, 4, 3), W(5, 5, 3), W(6, 6, 3), W(7, 7, 3), W(8, 8, 3), W(9, 9, 3),
    /* 0x98 */ W(10, 10, 3), W(11, 11, 3), W(12, 12, 3), W(13, 13, 3), W(14, 14, 3), W(15, 15, 3), W(16, 16, 3), W(17, 17, 3),
    /* 0xa0 */ S(2, 0, 375), S(3, 0, 750), S(4, 0, 1125), S(5, 0, 1500), S(6, 0, 1875), UNDEF, UNDEF, UNDEF,
    /* 0xa8 */ UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF,
    /* 0xb0 */ UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF,
    /* 0xb8 */ UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF,
    /* 0xc0 */ UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF,
    /* 0xc8 */ UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF,
    /* 0xd0 */ UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF,
    /* 0xd8 */ UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF,
    /* 0xe0 */ UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF,
    /* 0xe8 */ UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF, UNDEF,
    /* 0xf0 */ S(3, 1, 32000), S(7, 1, 0), S(7, 1, 0), S(2, 0, 0), S(6, 1, 0), S(4, 1, 32000), UNDEF, UNDEF,
    /* 0xf8 */ UNDEF, UNDEF, S(6, 1, 0), UNDEF, UNDEF, S(2, 0, 0), UNDEF, S(1, 0, 5000),
};
#undef OP
#undef A
#undef P
#undef D
#undef W
#undef O
#undef J
#undef I
#undef T
#undef S
#undef UNDEF

EVM_FN u256 pop(EvmCtx *c, EvmFrame *f) {
    f->sp--;
    return word_load(c->window + f->sp * 4);
}

EVM_FN void push(EvmCtx *c, EvmFrame *f, u256 v) {
    word_store(c->window + f->sp * 4, v);
    f->sp++;
}

/* Moves a suspended caller's stack between the window and its place in the arena. */
EVM_FN void stack_save(EvmCtx *c, const EvmFrame *f) {
    for (u64 i = 0; i < f->sp; i++) word_store(c->stack + (f->stack_base + i) * 4, word_load(c->window + i * 4));
}

EVM_FN void stack_restore(EvmCtx *c, const EvmFrame *f) {
    for (u64 i = 0; i < f->sp; i++) word_store(c->window + i * 4, word_load(c->stack + (f->stack_base + i) * 4));
}

EVM_FN int charge(EvmFrame *f, u64 gas) {
    if (f->gas < gas) return ST_OUT_OF_GAS;
    f->gas -= gas;
    return ST_SUCCESS;
}

/* Memory expansion cost (3 per word plus words^2 / 512) for a frame. */
EVM_FN u64 mem_cost(u64 words) { return 3 * words + words * words / 512; }

/* Grows the frame's memory to cover [off, off + len) and charges for it; returns a status,
 * or ST_SUCCESS with *at set to off. Zero-length ranges never expand memory. */
EVM_FN int mem_need(EvmCtx *c, EvmFrame *f, u256 off, u256 len, u64 *at) {
    *at = 0;
    if (u256_is_zero(len)) return ST_SUCCESS;
    if (!u256_fits64(off) || !u256_fits64(len)) return ST_OUT_OF_GAS;
    u64 end = off.w[0] + len.w[0];
    if (end < off.w[0]) return ST_OUT_OF_GAS;
    *at = off.w[0];
    if (end <= f->mem_size) return ST_SUCCESS;
    u64 words = words_of(end);
    if (words > (1ULL << 31)) {
        /* Would cost more than 2^53 gas: beyond any real gas limit. */
        if (f->gas < (1ULL << 53)) return ST_OUT_OF_GAS;
        unsupported(c, WHY_HUGE_MEMORY);
        return ST_UNSUPPORTED;
    }
    u64 cost = mem_cost(words) - mem_cost(f->mem_size / 32);
    if (f->gas < cost) return ST_OUT_OF_GAS;
    if (f->mem_base + words * 32 > c->cap_mem) {
        ctx_abort(c, ST_RESOURCE);
        return ST_RESOURCE;
    }
    f->gas -= cost;
    evm_zero(c->mem + f->mem_base + f->mem_size, words * 32 - f->mem_size);
    f->mem_size = words * 32;
    return ST_SUCCESS;
}

/* Copies len bytes of src from src_off to dst, with zeros past the end of src. */
EVM_FN void copy_padded(u8 *dst, u64 len, const u8 *src, u64 src_len, u256 src_off) {
    u64 start = (u256_fits64(src_off) && src_off.w[0] < src_len) ? src_off.w[0] : src_len;
    u64 n = src_len - start < len ? src_len - start : len;
    evm_copy(dst, src + start, n);
    evm_zero(dst + n, len - n);
}

EVM_FN void addr_bytes(u256 a, u8 *out20) {
    u8 be[32];
    u256_to_be(a, be);
    for (int i = 0; i < 20; i++) out20[i] = be[12 + i];
}

/* Address of a contract created by sender at nonce: keccak(rlp([sender, nonce]))[12:]. */
EVM_FN u256 create_address(u256 sender, u64 nonce) {
    u8 buf[32];
    int n = 0;
    u8 nb[8];
    int nlen = 0;
    for (int i = 7; i >= 0; i--) {
        u8 b = (u8)(nonce >> (8 * i));
        if (nlen || b) nb[nlen++] = b;
    }
    int nonce_bytes = (nonce == 0) ? 1 : (nonce < 0x80 ? 1 : 1 + nlen);
    buf[n++] = (u8)(0xC0 + 21 + nonce_bytes);
    buf[n++] = 0x94;
    addr_bytes(sender, buf + n);
    n += 20;
    if (nonce == 0) {
        buf[n++] = 0x80;
    } else if (nonce < 0x80) {
        buf[n++] = (u8)nonce;
    } else {
        buf[n++] = (u8)(0x80 + nlen);
        for (int i = 0; i < nlen; i++) buf[n++] = nb[i];
    }
    return evm_addr(evm_keccak(buf, (u64)n));
}

/* CREATE2 address: keccak(0xff ++ sender ++ salt ++ keccak(initcode))[12:]. */
EVM_FN u256 create2_address(u256 sender, u256 salt, const u8 *init, u64 len) {
    u8 buf[85];
    buf[0] = 0xFF;
    addr_bytes(sender, buf + 1);
    u256_to_be(salt, buf + 21);
    u256_to_be(evm_keccak(init, len), buf + 53);
    return evm_addr(evm_keccak(buf, 85));
}

/* EIP-7610 as the reference applies it: code, a nonce, or storage the account had when the
 * batch started (and kept) make the address unusable for a new contract. */
EVM_FN int creation_collision(EvmCtx *c, i64 e) {
    const u64 *p = ent_at(c, e);
    return p[E_NONCE] != 0 || p[E_CODE] != (u64)-1 || (p[E_FLAGS] & EF_HAS_STORAGE);
}

/* Opens a frame above the current one; 0 when the frame arena is full. */
EVM_FN EvmFrame *frame_open(EvmCtx *c) {
    if (c->depth + 1 >= c->cap_frames) {
        ctx_abort(c, ST_RESOURCE);
        return 0;
    }
    EvmFrame *caller = &c->frames[c->depth];
    EvmFrame *f = &c->frames[c->depth + 1];
    stack_save(c, caller);
    f->stack_base = caller->stack_base + caller->sp;
    f->sp = 0;
    f->mem_base = caller->mem_base + caller->mem_size;
    f->mem_size = 0;
    f->pc = 0;
    f->journal_mark = c->n_jrn;
    f->log_mark = c->n_logs;
    f->log_data_mark = c->n_log_data;
    f->new_code_mark = c->n_new_code;
    f->refund_mark = c->refund;
    f->ret_off = 0;
    f->ret_len = 0;
    f->create_entry = 0;
    f->calldata = 0;
    f->calldata_len = 0;
    c->ret_len = 0; /* a frame starts with no return data (EIP-211); its end sets the caller's */
    c->depth++;
    return f;
}

/* Gives a creation frame its init code: a jumpdest bitmap is built at the frame's memory base. */
EVM_FN int frame_set_initcode(EvmCtx *c, EvmFrame *f, const u8 *code, u64 len) {
    u64 bitmap = ((len + 7) / 8 + 31) & ~31ULL;
    if (f->mem_base + bitmap > c->cap_mem) {
        ctx_abort(c, ST_RESOURCE);
        return -1;
    }
    evm_analyze(code, len, c->mem + f->mem_base);
    f->jumpdest = c->mem + f->mem_base;
    f->mem_base += bitmap;
    f->code = code;
    f->code_len = len;
    return 0;
}

/* Stores deployed code as a D_NEW_CODE record; returns its code reference, or (u64)-1. */
EVM_FN u64 store_new_code(EvmCtx *c, const u8 *code, u64 len) {
    u64 padded = (len + 7) & ~7ULL;
    u64 bitmap = (((len + 7) / 8) + 7) & ~7ULL;
    u64 need = 8 + padded + bitmap;
    if (c->n_new_code + need > c->cap_new_code) {
        ctx_abort(c, ST_RESOURCE);
        return (u64)-1;
    }
    u8 *rec = c->new_code + c->n_new_code;
    *(u64 *)rec = len;
    evm_copy(rec + 8, code, len);
    evm_analyze(code, len, rec + 8 + padded);
    u64 ref = (u64)CODE_NEW + c->n_new_code;
    c->n_new_code += need;
    return ref;
}

/* Ends the current frame with status and output; resumes the caller or ends the
 * transaction (returns 1). Output lives in the ending frame's memory. */
EVM_FN_BIG int frame_end(EvmCtx *c, int status, const u8 *output, u64 out_len) {
    EvmFrame *f = &c->frames[c->depth];
    int is_create = f->kind == 0xf0 || f->kind == 0xf5;
    if (status == ST_SUCCESS && is_create) {
        if (out_len > EVM_MAX_CODE) {
            status = ST_OUT_OF_GAS;
        } else if (out_len > 0 && output[0] == 0xEF) {
            status = ST_CODE_EF;
        } else if (f->gas < 200 * out_len) {
            status = ST_OUT_OF_GAS;
        } else {
            f->gas -= 200 * out_len;
            if (out_len > 0) {
                u64 ref = store_new_code(c, output, out_len);
                if (ref == (u64)-1 || set_code(c, (i64)f->create_entry, ref, evm_keccak(output, out_len)))
                    return 1;
            }
        }
        out_len = 0; /* a successful creation returns no data */
    }
    if (c->abort) return 1;
    u64 gas_left = f->gas;
    if (status != ST_SUCCESS) {
        if (status != ST_REVERT) {
            gas_left = 0;
            out_len = 0;
        }
        jrn_revert(c, f->journal_mark);
        c->n_logs = f->log_mark;
        c->n_log_data = f->log_data_mark;
        c->n_new_code = f->new_code_mark;
        c->refund = f->refund_mark;
    }
    if (out_len > c->cap_ret) {
        ctx_abort(c, ST_RESOURCE);
        return 1;
    }
    evm_copy(c->ret, output, out_len);
    c->ret_len = out_len;
    if (c->depth == 0) {
        if (out_len > c->cap_out) {
            ctx_abort(c, ST_RESOURCE);
            return 1;
        }
        evm_copy(c->out, output, out_len);
        c->res[RS_OUT_LEN] = out_len;
        c->res[RS_STATUS] = (u64)status;
        f->gas = gas_left;
        return 1;
    }
    c->depth--;
    EvmFrame *caller = &c->frames[c->depth];
    stack_restore(c, caller);
    caller->gas += gas_left;
    if (is_create) {
        u256 created = u256_load(ent_at(c, (i64)f->create_entry) + E_ADDR);
        push(c, caller, status == ST_SUCCESS ? created : u256_of(0));
    } else {
        u64 n = out_len < f->ret_len ? out_len : f->ret_len;
        evm_copy(c->mem + caller->mem_base + f->ret_off, c->ret, n);
        push(c, caller, u256_of(status == ST_SUCCESS));
    }
    return 0;
}

/* A call or creation that fails before it starts: the caller keeps the gas. */
EVM_FN void call_refused(EvmCtx *c, EvmFrame *f, u64 gas) {
    f->gas += gas;
    c->ret_len = 0;
    push(c, f, u256_of(0));
}

/* Scratch bytes for a precompile: the slot's memory arena above the frame's memory (a
 * precompile's frame has none), 8-byte aligned; 0 after asking the host for larger buffers. */
EVM_FN u8 *precompile_scratch(EvmCtx *c, EvmFrame *f, u64 bytes) {
    u64 at = (f->mem_base + f->mem_size + 7) & ~7ULL;
    if (at > c->cap_mem || bytes > c->cap_mem - at) {
        ctx_abort(c, ST_RESOURCE);
        return 0;
    }
    return c->mem + at;
}

/* c-kzg-4844's verify_kzg_proof: 0 (C_KZG_OK) and *ok set, or an error for a malformed input. */
typedef int (*kzg_verify_fn)(u8 *ok, const u8 *commitment, const u8 *z, const u8 *y, const u8 *proof,
                             const void *settings);

/* The point evaluation (EIP-4844) on its 192-byte input (versioned hash, z, y, commitment,
 * proof): 1 when the commitment matches the hash and the proof holds. The proof is checked by
 * the host's c-kzg-4844 (CPU build only: the caller makes sure c->kzg_verify is set). */
EVM_FN_BIG int evm_point_evaluation(EvmCtx *c, const u8 *in, u64 len) {
    if (len != 192) return 0;
    u8 hash[32];
    evm_sha256(in + 96, 48, hash);
    hash[0] = 0x01; /* VERSIONED_HASH_VERSION_KZG */
    for (int i = 0; i < 32; i++)
        if (hash[i] != in[i]) return 0;
#if defined(__CUDACC__)
    (void)c;
    return 0;
#else
    u8 ok = 0;
    int ret = ((kzg_verify_fn)c->kzg_verify)(&ok, in + 96, in + 32, in + 64, in + 144, c->kzg_settings);
    return ret == 0 && ok;
#endif
}

/* The point evaluation's output: FIELD_ELEMENTS_PER_BLOB (4096) and BLS_MODULUS, 32 bytes each. */
EVM_TABLE u8 KZG_OUTPUT[64] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0,
    0x73, 0xed, 0xa7, 0x53, 0x29, 0x9d, 0x7d, 0x48, 0x33, 0x39, 0xd8, 0x08, 0x09, 0xa1, 0xd8, 0x05,
    0x53, 0xbd, 0xa4, 0x02, 0xff, 0xfe, 0x5b, 0xfe, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01,
};

/* Runs a precompile in frame f. Each checks what it checks before its price first, as the
 * reference does (the order decides the error a transaction calling it directly reports).
 * Where no KZG verifier is given (the GPU), the point evaluation (0x0a) goes to the host. */
EVM_FN_BIG int run_precompile(EvmCtx *c, EvmFrame *f, u256 addr) {
    u64 id = addr.w[0], len = f->calldata_len, words = words_of(len), cost;
    const u8 *in = f->calldata;
    ModexpLengths lengths = {0, 0, 0};
    switch (id) {
    case 1: cost = 3000; break;
    case 2: cost = 60 + 12 * words; break;
    case 3: cost = 600 + 120 * words; break;
    case 4: cost = 15 + 3 * words; break;
    case 5:
        lengths = modexp_lengths(in, len);
        cost = modexp_gas(in, len, lengths);
        break;
    case 6: cost = 150; break;
    case 7: cost = 6000; break;
    case 8:
        if (len % 192) return frame_end(c, ST_PRECOMPILE_FAILURE, 0, 0);
        cost = 45000 + 34000 * (len / 192); /* len fits the caller's memory: no overflow */
        break;
    case 9:
        if (len != BLAKE2F_INPUT || in[BLAKE2F_INPUT - 1] > 1) return frame_end(c, ST_PRECOMPILE_FAILURE, 0, 0);
        cost = blake2f_rounds(in);
        break;
    case 10:
        if (!c->kzg_verify) {
            unsupported(c, id);
            return 1;
        }
        cost = 50000;
        break;
    default: unsupported(c, id); return 1;
    }
    if (f->gas < cost) return frame_end(c, ST_OUT_OF_GAS, 0, 0);
    f->gas -= cost;
    u8 out[64];
    switch (id) {
    case 1: {
        u8 buf[128];
        copy_padded(buf, 128, in, len, u256_of(0));
        return frame_end(c, ST_SUCCESS, out, evm_ecrecover(buf, out) ? 32 : 0);
    }
    case 2: evm_sha256(in, len, out); return frame_end(c, ST_SUCCESS, out, 32);
    case 3: evm_ripemd160(in, len, out); return frame_end(c, ST_SUCCESS, out, 32);
    case 5: {
        if (lengths.mod == 0) return frame_end(c, ST_SUCCESS, 0, 0);
        /* Paid for, so the lengths are small: the result goes after the work area. */
        u64 work = modexp_layout(lengths).end;
        u8 *scratch = precompile_scratch(c, f, work + lengths.mod);
        if (!scratch) return 1;
        evm_modexp(in, len, lengths, scratch, scratch + work);
        return frame_end(c, ST_SUCCESS, scratch + work, lengths.mod);
    }
    case 6:
    case 7: {
        u8 buf[128];
        copy_padded(buf, 128, in, len, u256_of(0));
        if (!(id == 6 ? evm_bn_add(buf, out) : evm_bn_mul(buf, out))) return frame_end(c, ST_PRECOMPILE_FAILURE, 0, 0);
        return frame_end(c, ST_SUCCESS, out, 64);
    }
    case 8: {
        bnf12 *work = (bnf12 *)precompile_scratch(c, f, BN_FINAL_EXP_WORK * sizeof(bnf12));
        if (!work) return 1;
        int ok = evm_bn_pairing(in, len, work);
        if (ok < 0) return frame_end(c, ST_PRECOMPILE_FAILURE, 0, 0);
        evm_zero(out, 32);
        out[31] = (u8)ok;
        return frame_end(c, ST_SUCCESS, out, 32);
    }
    case 9: evm_blake2f(in, out); return frame_end(c, ST_SUCCESS, out, 64);
    case 10:
        if (!evm_point_evaluation(c, in, len)) return frame_end(c, ST_PRECOMPILE_FAILURE, 0, 0);
        for (int i = 0; i < 64; i++) out[i] = KZG_OUTPUT[i];
        return frame_end(c, ST_SUCCESS, out, 64);
    }
    return frame_end(c, ST_SUCCESS, in, len);
}

/* Starts the code of the account at code_addr in frame f; runs precompiles at once.
 * Returns 1 when the transaction ended. */
EVM_FN int frame_start_code(EvmCtx *c, EvmFrame *f, u256 code_addr, i64 code_entry) {
    if (is_precompile(code_addr)) return run_precompile(c, f, code_addr);
    code_of(c, ent_at(c, code_entry)[E_CODE], &f->code, &f->code_len, &f->jumpdest);
    return 0;
}

/* Message start common to calls and creations: value transfer, then EIP-161 touch. */
EVM_FN int message_begin(EvmCtx *c, i64 from, i64 to, u256 value, int transfer_value, int touch) {
    if (transfer_value && transfer(c, from, to, value)) return -1;
    if (!touch) return 0;
    u64 *p = ent_at(c, to);
    /* A call to RIPEMD-160 touches it even when the call fails (go-ethereum and Parity kept
     * this bug of 2016, EIP-716): that touch escapes the journal. */
    if (u256_eq(u256_load(p + E_ADDR), u256_of(3))) p[E_FLAGS] |= EF_TOUCH_KEPT;
    return add_flags(c, to, EF_TOUCHED | EF_EXISTS);
}

EVM_FN_BIG int op_call(EvmCtx *c, EvmFrame *f, u8 op) {
    u256 gas_req = pop(c, f);
    u256 to = evm_addr(pop(c, f));
    u256 value = u256_of(0);
    if (op == 0xf1 || op == 0xf2) value = pop(c, f);
    u256 in_off = pop(c, f), in_len = pop(c, f), out_off = pop(c, f), out_len = pop(c, f);
    if (op == 0xf1 && f->is_static && !u256_is_zero(value)) return ST_STATIC_WRITE;
    u64 in_at, out_at;
    int st = mem_need(c, f, in_off, in_len, &in_at);
    if (st) return st;
    st = mem_need(c, f, out_off, out_len, &out_at);
    if (st) return st;
    i64 access = account_access_gas(c, to);
    if (access < 0) return ST_UNSUPPORTED;
    if ((st = charge(f, (u64)access))) return st;
    i64 code_e = ent_account(c, to);
    if (code_e < 0) return ST_UNSUPPORTED;
    int has_value = !u256_is_zero(value) && (op == 0xf1 || op == 0xf2);
    u64 extra = has_value ? 9000 : 0;
    if (op == 0xf1 && has_value && account_empty(c, code_e)) extra += 25000;
    if (f->gas < extra) return ST_OUT_OF_GAS;
    u64 avail = f->gas - extra;
    u64 child = avail - avail / 64;
    if (u256_fits64(gas_req) && gas_req.w[0] < child) child = gas_req.w[0];
    f->gas -= child + extra;
    if (has_value) child += 2300;
    i64 self = ent_account(c, f->address);
    if (self < 0) return ST_UNSUPPORTED;
    int poor = has_value && u256_lt(u256_load(ent_at(c, self) + E_VALUE), value);
    if (poor || c->depth + 1 > EVM_DEPTH_LIMIT) {
        call_refused(c, f, child);
        return ST_SUCCESS;
    }
    u256 caller_addr = f->address, ctx_addr = to, ctx_value = value;
    if (op == 0xf2) ctx_addr = f->address;
    if (op == 0xf4) {
        ctx_addr = f->address;
        caller_addr = f->caller;
        ctx_value = f->value;
    }
    i64 target = op == 0xf1 || op == 0xfa ? code_e : self;
    EvmFrame *g = frame_open(c);
    if (!g) return ST_UNSUPPORTED;
    g->address = ctx_addr;
    g->caller = caller_addr;
    g->value = ctx_value;
    g->gas = child;
    g->kind = op;
    g->is_static = f->is_static || op == 0xfa;
    g->calldata = c->mem + f->mem_base + in_at;
    g->calldata_len = in_len.w[0];
    g->ret_off = out_at;
    g->ret_len = u256_is_zero(out_len) ? 0 : out_len.w[0];
    if (message_begin(c, self, target, value, has_value, 1)) return ST_UNSUPPORTED;
    frame_start_code(c, g, to, code_e);
    return ST_SUCCESS;
}

EVM_FN_BIG int op_create(EvmCtx *c, EvmFrame *f, u8 op) {
    u256 value = pop(c, f), off = pop(c, f), len = pop(c, f);
    u256 salt = op == 0xf5 ? pop(c, f) : u256_of(0);
    if (f->is_static) return ST_STATIC_WRITE;
    int st;
    if (u256_fits64(len)) {
        u64 words = words_of(len.w[0]);
        if ((st = charge(f, 2 * words + (op == 0xf5 ? 6 * words : 0)))) return st;
    }
    u64 at;
    if ((st = mem_need(c, f, off, len, &at))) return st;
    u64 n = u256_is_zero(len) ? 0 : len.w[0];
    i64 self = ent_account(c, f->address);
    if (self < 0) return ST_UNSUPPORTED;
    u64 *sp = ent_at(c, self);
    if (u256_lt(u256_load(sp + E_VALUE), value) || c->depth + 1 > EVM_DEPTH_LIMIT ||
        sp[E_NONCE] == 0xFFFFFFFFFFFFFFFFULL) {
        call_refused(c, f, 0);
        return ST_SUCCESS;
    }
    u64 child = f->gas - f->gas / 64;
    f->gas -= child;
    const u8 *init = c->mem + f->mem_base + at;
    u64 nonce = sp[E_NONCE];
    u256 addr = op == 0xf5 ? create2_address(f->address, salt, init, n) : create_address(f->address, nonce);
    if (set_nonce(c, self, nonce + 1)) return ST_UNSUPPORTED;
    i64 t = ent_account(c, addr);
    if (t < 0 || warm_entry(c, t) < 0) return ST_UNSUPPORTED;
    if (creation_collision(c, t)) {
        c->ret_len = 0;
        push(c, f, u256_of(0));
        return ST_SUCCESS;
    }
    if (n > EVM_MAX_INITCODE) return ST_OUT_OF_GAS;
    EvmFrame *g = frame_open(c);
    if (!g || frame_set_initcode(c, g, init, n)) return ST_UNSUPPORTED;
    g->address = addr;
    g->caller = f->address;
    g->value = value;
    g->gas = child;
    g->kind = op;
    g->is_static = 0;
    g->create_entry = (u64)t;
    if (set_nonce(c, t, 1) || add_flags(c, t, EF_CREATED | EF_EXISTS) ||
        message_begin(c, self, t, value, 1, 0))
        return ST_UNSUPPORTED;
    return ST_SUCCESS;
}

EVM_FN_BIG int op_selfdestruct(EvmCtx *c, EvmFrame *f) {
    u256 ben = evm_addr(pop(c, f));
    if (f->is_static) return ST_STATIC_WRITE;
    i64 access = account_access_gas(c, ben);
    if (access < 0) return ST_UNSUPPORTED;
    int st;
    if (access == 2600 && (st = charge(f, 2600))) return st;
    i64 self = ent_account(c, f->address);
    i64 b = ent_account(c, ben);
    if (self < 0 || b < 0) return ST_UNSUPPORTED;
    u256 balance = u256_load(ent_at(c, self) + E_VALUE);
    if (account_empty(c, b) && !u256_is_zero(balance) && (st = charge(f, 25000))) return st;
    if (ent_at(c, self)[E_FLAGS] & EF_CREATED) {
        /* EIP-6780: only a contract created in this transaction is deleted; the balance
         * moves first, so naming itself as beneficiary burns it. */
        if (set_value(c, b, u256_add(u256_load(ent_at(c, b) + E_VALUE), balance)) ||
            add_flags(c, b, EF_EXISTS) || set_value(c, self, u256_of(0)) ||
            add_flags(c, self, EF_DESTROYED))
            return ST_UNSUPPORTED;
    } else if (!u256_eq(ben, f->address)) {
        if (transfer(c, self, b, balance)) return ST_UNSUPPORTED;
    }
    if (add_flags(c, b, EF_TOUCHED | EF_EXISTS)) return ST_UNSUPPORTED;
    return ST_SUCCESS;
}

EVM_FN int op_log(EvmCtx *c, EvmFrame *f, u8 op) {
    u256 off = pop(c, f), len = pop(c, f);
    if (f->is_static) return ST_STATIC_WRITE;
    u64 at;
    int st = mem_need(c, f, off, len, &at);
    if (st) return st;
    u64 n = u256_is_zero(len) ? 0 : len.w[0];
    if ((st = charge(f, 8 * n))) return st;
    if (c->n_logs == c->cap_logs || c->n_log_data + n > c->cap_log_data) {
        ctx_abort(c, ST_RESOURCE);
        return ST_RESOURCE;
    }
    u64 *lg = c->logs + c->n_logs++ * LG_WORDS;
    u256_store(lg + LG_ADDR, f->address);
    lg[LG_N_TOPICS] = (u64)(op - 0xA0);
    for (int i = 0; i < op - 0xA0; i++) u256_store(lg + LG_TOPICS + 4 * i, pop(c, f));
    lg[LG_DATA_OFF] = c->n_log_data;
    lg[LG_DATA_LEN] = n;
    evm_copy(c->log_data + c->n_log_data, c->mem + f->mem_base + at, n);
    c->n_log_data += n;
    return ST_SUCCESS;
}

EVM_FN_BIG int op_sstore(EvmCtx *c, EvmFrame *f) {
    u256 key = pop(c, f), v = pop(c, f);
    if (f->is_static) return ST_STATIC_WRITE;
    if (f->gas <= 2300) return ST_OUT_OF_GAS;
    i64 self = ent_account(c, f->address);
    if (self < 0) return ST_UNSUPPORTED;
    i64 e = ent_storage(c, self, key);
    if (e < 0) return ST_UNSUPPORTED;
    u256 cur = u256_load(ent_at(c, e) + E_VALUE), orig = u256_load(ent_at(c, e) + E_ORIG);
    u64 gas;
    i64 refund = 0;
    const i64 clears = 4800; /* EIP-3529: SSTORE_RESET 2900 + ACCESS_LIST_STORAGE_KEY 1900 */
    if (u256_eq(cur, v)) {
        gas = 100;
    } else if (u256_eq(orig, cur)) {
        if (u256_is_zero(orig)) {
            gas = 20000;
        } else {
            gas = 2900;
            if (u256_is_zero(v)) refund += clears;
        }
    } else {
        gas = 100;
        if (!u256_is_zero(orig)) {
            if (u256_is_zero(cur)) refund -= clears;
            if (u256_is_zero(v)) refund += clears;
        }
        if (u256_eq(orig, v)) refund += u256_is_zero(orig) ? 20000 - 100 : 2900 - 100;
    }
    int cold = warm_entry(c, e);
    if (cold < 0) return ST_UNSUPPORTED;
    if (cold) gas += 2100;
    int st = charge(f, gas);
    if (st) return st;
    c->refund += refund;
    if (set_value(c, e, v)) return ST_UNSUPPORTED;
    return ST_SUCCESS;
}

/* The value of PUSH5-PUSH32, or of a PUSH cut off by the end of the code (zeros on the right):
 * out of line, since inlined its byte loops would be most of the inner loop's code. */
EVM_FN_BIG u256 push_wide(const u8 *p, u64 n, u64 avail) { return u256_from_be_cut(p, n, avail); }

/* The status of an opcode whose constant gas or stack room the inner loop found lacking. */
EVM_FN int step_fault(u64 gas, u32 cost, u32 sp, u32 in, u32 outn) {
    if (gas < cost) return ST_OUT_OF_GAS;
    if (sp < in) return ST_STACK_UNDERFLOW;
    if (sp - in + outn > EVM_STACK_LIMIT) return ST_STACK_OVERFLOW;
    return ST_RESOURCE; /* the slot's stack arena is full */
}

/* Result of evm_slow_step for an opcode after which the frame runs on. */
#define STEP_NEXT (-1)

/* Runs an opcode the interpreter's inner loop leaves for (its constant gas and stack room are
 * checked): STEP_NEXT, or the status the frame ends with, and for RETURN and REVERT its output.
 * STEP_NEXT also when the slot aborted (c->abort). Kept out of the loop's function, so that the
 * loop stays compact in the instruction cache. */
EVM_FN_BIG int evm_slow_step(EvmCtx *c, EvmFrame *f, u8 op, const u8 **out, u64 *out_len) {
    int st = ST_SUCCESS;
    if (op >= 0xa0 && op <= 0xa4) return (st = op_log(c, f, op)) ? st : STEP_NEXT;
    switch (op) {
    case 0x00: return ST_SUCCESS;
    case 0x20: {
        u256 off = pop(c, f), len = pop(c, f);
        u64 at;
        if ((st = mem_need(c, f, off, len, &at))) return st;
        u64 n = u256_is_zero(len) ? 0 : len.w[0];
        if ((st = charge(f, 6 * words_of(n)))) return st;
        push(c, f, evm_keccak(c->mem + f->mem_base + at, n));
        break;
    }
    case 0x30: push(c, f, f->address); break;
    case 0x31: case 0x3b: case 0x3f: {
        u256 a = evm_addr(pop(c, f));
        i64 g = account_access_gas(c, a);
        if (g < 0) return STEP_NEXT;
        if ((st = charge(f, (u64)g))) return st;
        i64 e = ent_account(c, a);
        if (e < 0) return STEP_NEXT;
        const u64 *p = ent_at(c, e);
        if (op == 0x31) {
            push(c, f, u256_load(p + E_VALUE));
        } else if (op == 0x3b) {
            const u8 *code, *jd;
            u64 len;
            code_of(c, p[E_CODE], &code, &len, &jd);
            push(c, f, u256_of(len));
        } else {
            push(c, f, account_empty(c, e) ? u256_of(0) : u256_load(p + E_ORIG));
        }
        break;
    }
    case 0x32: push(c, f, c->origin); break;
    case 0x33: push(c, f, f->caller); break;
    case 0x34: push(c, f, f->value); break;
    case 0x35: {
        u8 word[32];
        copy_padded(word, 32, f->calldata, f->calldata_len, pop(c, f));
        push(c, f, u256_from_be(word, 32));
        break;
    }
    case 0x36: push(c, f, u256_of(f->calldata_len)); break;
    case 0x37: case 0x39: case 0x3e: {
        u256 moff = pop(c, f), soff = pop(c, f), len = pop(c, f);
        if (op == 0x3e) {
            u256 end = u256_add(soff, len);
            if (u256_lt(end, soff) || u256_lt(u256_of(c->ret_len), end)) {
                return ST_RETURNDATA_OOB;
            }
        }
        u64 at;
        if ((st = mem_need(c, f, moff, len, &at))) return st;
        u64 n = u256_is_zero(len) ? 0 : len.w[0];
        if ((st = charge(f, 3 * words_of(n)))) return st;
        u8 *dst = c->mem + f->mem_base + at;
        if (op == 0x37) copy_padded(dst, n, f->calldata, f->calldata_len, soff);
        else if (op == 0x39) copy_padded(dst, n, f->code, f->code_len, soff);
        else copy_padded(dst, n, c->ret, c->ret_len, soff);
        break;
    }
    case 0x38: push(c, f, u256_of(f->code_len)); break;
    case 0x3a: push(c, f, c->gas_price); break;
    case 0x3c: {
        u256 a = evm_addr(pop(c, f)), moff = pop(c, f), soff = pop(c, f), len = pop(c, f);
        u64 at;
        if ((st = mem_need(c, f, moff, len, &at))) return st;
        u64 n = u256_is_zero(len) ? 0 : len.w[0];
        if ((st = charge(f, 3 * words_of(n)))) return st;
        i64 g = account_access_gas(c, a);
        if (g < 0) return STEP_NEXT;
        if ((st = charge(f, (u64)g))) return st;
        i64 e = ent_account(c, a);
        if (e < 0) return STEP_NEXT;
        const u8 *code, *jd;
        u64 len_code;
        code_of(c, ent_at(c, e)[E_CODE], &code, &len_code, &jd);
        copy_padded(c->mem + f->mem_base + at, n, code, len_code, soff);
        break;
    }
    case 0x3d: push(c, f, u256_of(c->ret_len)); break;
    case 0x40: {
        u256 num = pop(c, f);
        u64 cur = c->env[ENV_NUMBER];
        u64 nh = c->env[ENV_N_HASHES];
        u256 h = u256_of(0);
        if (u256_fits64(num) && num.w[0] < cur) {
            u64 depth = cur - 1 - num.w[0];
            if (depth < 256 && depth < nh) h = u256_load(c->env + ENV_HASHES + 4 * depth);
        }
        push(c, f, h);
        break;
    }
    case 0x41: push(c, f, c->coinbase); break;
    case 0x42: push(c, f, u256_load(c->env + ENV_TIMESTAMP)); break;
    case 0x43: push(c, f, u256_load(c->env + ENV_NUMBER)); break;
    case 0x44: push(c, f, u256_load(c->env + ENV_PREVRANDAO)); break;
    case 0x45: push(c, f, u256_load(c->env + ENV_GAS_LIMIT)); break;
    case 0x46: push(c, f, u256_load(c->env + ENV_CHAIN_ID)); break;
    case 0x47: {
        i64 e = ent_account(c, f->address);
        if (e < 0) return STEP_NEXT;
        push(c, f, u256_load(ent_at(c, e) + E_VALUE));
        break;
    }
    case 0x48: push(c, f, u256_load(c->env + ENV_BASE_FEE)); break;
    case 0x49: /* no blob transactions on this chain: every index is out of range */
        pop(c, f);
        push(c, f, u256_of(0));
        break;
    case 0x4a: push(c, f, u256_load(c->env + ENV_BLOB_BASE_FEE)); break;
    case 0x51: {
        u64 at;
        if ((st = mem_need(c, f, pop(c, f), u256_of(32), &at))) return st;
        push(c, f, u256_from_be(c->mem + f->mem_base + at, 32));
        break;
    }
    case 0x52: case 0x53: {
        u256 off = pop(c, f), v = pop(c, f);
        u64 at;
        if ((st = mem_need(c, f, off, u256_of(op == 0x52 ? 32 : 1), &at))) return st;
        if (op == 0x52) u256_to_be(v, c->mem + f->mem_base + at);
        else c->mem[f->mem_base + at] = (u8)v.w[0];
        break;
    }
    case 0x54: {
        u256 key = pop(c, f);
        i64 self = ent_account(c, f->address);
        if (self < 0) return STEP_NEXT;
        i64 e = ent_storage(c, self, key);
        if (e < 0) return STEP_NEXT;
        int cold = warm_entry(c, e);
        if (cold < 0) return STEP_NEXT;
        if ((st = charge(f, cold ? 2100 : 100))) return st;
        push(c, f, u256_load(ent_at(c, e) + E_VALUE));
        break;
    }
    case 0x55:
        if ((st = op_sstore(c, f))) return st;
        break;
    case 0x58: push(c, f, u256_of(f->pc - 1)); break;
    case 0x59: push(c, f, u256_of(f->mem_size)); break;
    case 0x5a: push(c, f, u256_of(f->gas)); break;
    case 0x5c: case 0x5d: {
        u256 key = pop(c, f);
        if (op == 0x5d && f->is_static) return ST_STATIC_WRITE;
        i64 e = ent_transient(c, f->address, key);
        if (e < 0) return STEP_NEXT;
        if (op == 0x5c) {
            push(c, f, u256_load(ent_at(c, e) + E_VALUE));
        } else if (set_value(c, e, pop(c, f))) {
            return STEP_NEXT;
        }
        break;
    }
    case 0x5e: {
        u256 dst = pop(c, f), src = pop(c, f), len = pop(c, f);
        u64 at;
        if ((st = mem_need(c, f, u256_lt(dst, src) ? src : dst, len, &at))) return st;
        u64 n = u256_is_zero(len) ? 0 : len.w[0];
        if ((st = charge(f, 3 * words_of(n)))) return st;
        if (n) evm_move(c->mem + f->mem_base + dst.w[0], c->mem + f->mem_base + src.w[0], n);
        break;
    }
    case 0xf0: case 0xf5:
        if ((st = op_create(c, f, op))) return st;
        break;
    case 0xf1: case 0xf2: case 0xf4: case 0xfa:
        if ((st = op_call(c, f, op))) return st;
        break;
    case 0xf3: case 0xfd: {
        u256 off = pop(c, f), len = pop(c, f);
        u64 at;
        if ((st = mem_need(c, f, off, len, &at))) return st;
        *out_len = u256_is_zero(len) ? 0 : len.w[0];
        *out = c->mem + f->mem_base + at;
        return op == 0xf3 ? ST_SUCCESS : ST_REVERT;
    }
    case 0xff: return op_selfdestruct(c, f);
    default: return ST_INVALID_OPCODE;
    }
    return STEP_NEXT;
}

/* Runs frames until the transaction's frame ends (or the slot aborts).
 *
 * The common opcodes (arithmetic, PUSH, DUP, SWAP, POP, jumps) run in an inner loop that
 * keeps pc, gas and the stack height in locals (registers on the GPU, where the frame
 * lives in global memory), 32 bits wide where that suffices; any other opcode writes them
 * back and runs in the switch. One GPU thread runs a long transaction alone, so the loop
 * is kept to few instructions: one table read, one combined check, one dispatch. */
EVM_FN_BIG void evm_interpret(EvmCtx *c) {
    /* The running frame's stack lives here, in thread-local memory, and a call saves the
     * caller's part in the arena. Nearly every step reads a word the step before wrote: on
     * the GPU that is an L1 hit in local memory, but a trip to L2 in global memory. */
    u64 window[EVM_STACK_LIMIT * 4] __attribute__((aligned(32)));
    c->window = window;
    for (;;) {
        EvmFrame *f = &c->frames[c->depth];
        int st = ST_SUCCESS;
        const u8 *out = 0;
        u64 out_len = 0;
        if (c->abort) return;
        const u8 *code = f->code;
        const u8 *jumpdest = f->jumpdest;
        u32 code_len = (u32)f->code_len; /* at most EVM_MAX_INITCODE */
        u64 room = c->cap_stack - f->stack_base; /* stack words the arena has left for it */
        u32 limit = room < EVM_STACK_LIMIT ? (u32)room : EVM_STACK_LIMIT;
        u32 pc = (u32)f->pc, sp = (u32)f->sp;
        u64 gas = f->gas;
        u8 op = 0;
        for (;;) {
            if (pc >= code_len) {
                op = 0x00; /* running off the end of the code is STOP */
                break;
            }
            op = code[pc];
            u32 info = OP_INFO[op];
            u32 cls = info >> 26, in = (info >> 21) & 31, outn = (info >> 16) & 31, cost = info & 0xffff;
            /* sp - in wraps when sp < in, which the same comparison catches */
            if ((gas < cost) | (sp - in + outn > limit) | (sp < in)) {
                st = step_fault(gas, cost, sp, in, outn);
                if (st == ST_RESOURCE) {
                    ctx_abort(c, ST_RESOURCE);
                    return;
                }
                break;
            }
            gas -= cost;
            pc++;
            u64 *top = window + (u64)sp * 4; /* one past the top item */
            if (cls == OPC_PUSH) {
                /* PUSH data cut off by the end of code reads as zeros on the right. */
                u32 n = op - 0x5fu;
                if (n <= 4 && n <= code_len - pc) { /* PUSH0-PUSH4: most of them */
                    const u8 *p = code + pc;
                    u32 v = 0;
                    for (u32 i = 0; i < 4; i++) {
                        if (i < n) v = v << 8 | p[i];
                    }
                    word_store(top, u256_of(v));
                } else {
                    word_store(top, push_wide(code + pc, n, code_len - pc));
                }
                sp++;
                pc += n;
            } else if (cls == OPC_DUP) {
                word_store(top, word_load(top - 4 * (op - 0x7fu)));
                sp++;
            } else if (cls == OPC_SWAP) {
                u64 *x = top - 4, *y = top - 4 * (op - 0x8eu);
                u256 t = word_load(x);
                word_store(x, word_load(y));
                word_store(y, t);
            } else if (cls == OPC_ARITH) {
                u256 a = word_load(top - 4);
                u256 b = in >= 2 ? word_load(top - 8) : u256_of(0);
                u256 n = in >= 3 ? word_load(top - 12) : u256_of(0);
                if (op == 0x0a) {
                    u64 exp_gas = 50 * ((u256_bitlen(b) + 7) / 8);
                    if (gas < exp_gas) {
                        st = ST_OUT_OF_GAS;
                        break;
                    }
                    gas -= exp_gas;
                }
                sp -= in - 1;
                word_store(top - 4 * in, evm_arith(op, a, b, n));
            } else if (cls == OPC_POP) {
                sp--;
            } else if (cls == OPC_JUMP || cls == OPC_JUMPI) {
                u256 dest = word_load(top - 4);
                int taken = cls == OPC_JUMP || !u256_is_zero(word_load(top - 8));
                sp -= cls == OPC_JUMP ? 1 : 2;
                if (taken) {
                    if (!u256_fits64(dest) || dest.w[0] >= code_len ||
                        !((jumpdest[dest.w[0] / 8] >> (dest.w[0] % 8)) & 1)) {
                        st = ST_BAD_JUMP;
                        break;
                    }
                    pc = (u32)dest.w[0];
                }
            } else if (cls != OPC_JUMPDEST) { /* JUMPDEST: its gas is all it does */
                break;
            }
        }
        f->pc = pc;
        f->gas = gas;
        f->sp = sp;
        if (!st) {
            st = evm_slow_step(c, f, op, &out, &out_len);
            if (st == STEP_NEXT) continue;
        }
        if (c->abort) return;
        if (frame_end(c, st, out, out_len)) return;
    }
}

#endif
