/* Admission's fast path: typed transactions decoded, hashed and their senders recovered in C,
 * on CPU threads. Only the CPU library includes this (evm.c).
 *
 * It takes EIP-2930 and EIP-1559 transactions without an access list (what wallets send) and
 * only when every rule of primitives/transactions.py holds: canonical RLP, the field count,
 * integers without leading zeros and within their widths, a 20-byte or empty recipient, tip
 * at most the fee cap, y parity 0 or 1, r and s in range with EIP-2's low s, a recoverable
 * signature. Anything else is marked TXD_SLOW and the Python decoder, the reference, decodes
 * it and says what is wrong. Widths it does not take (a chain id over 8 bytes) are TXD_SLOW
 * too: slow, never wrong. With `defer` set it recovers nothing: a row is TXD_OK once its
 * signature's values pass, and the host recovers the senders of those (on the GPU) and hands
 * any that recovers no key to the Python decoder.
 */
#ifndef EVM_TXDECODE_H
#define EVM_TXDECODE_H

#include <stdlib.h>
#include <string.h>

#include "evm_host.h"
#include "evm_recover.h"

/* Per transaction, a row of TXD_WORDS words. Offsets are into the transaction's bytes. */
enum {
    TXD_STATUS = 0, /* TXD_OK or TXD_SLOW */
    TXD_TYPE = 1,
    TXD_CHAIN_ID = 2,
    TXD_NONCE = 3,
    TXD_GAS = 4,
    TXD_Y = 5,
    TXD_TO_OFF = 6,
    TXD_TO_LEN = 7, /* 0: a contract creation */
    TXD_DATA_OFF = 8,
    TXD_DATA_LEN = 9,
    TXD_WORDS = 10,
};
enum {
    TXD_OK = 0,
    TXD_SLOW = 1,
};
/* And five 32-byte big-endian integers, in this order. */
enum {
    TXD_TIP = 0,
    TXD_FEE = 1,
    TXD_VALUE = 2,
    TXD_R = 3,
    TXD_S = 4,
    TXD_BIGS = 5,
};

/* rlp_item, -1 also for any header that is not the shortest form (primitives/rlp.py's rules). */
static int txd_item(const u8 *p, u64 len, u64 *off, u64 *size) {
    int kind = rlp_item(p, len, off, size);
    if (kind < 0 || p[0] < 0x80) return kind;
    if (kind == 0 && *off == 1 && *size == 1 && p[1] < 0x80) return -1;
    if (*off > 1 && (*size < 56 || p[1] == 0)) return -1;
    return kind;
}

/* An integer field of at most max_bytes bytes, without leading zeros, as 32 big-endian bytes. */
static int txd_uint(const u8 *p, u64 n, u64 max_bytes, u8 *out) {
    if (n > max_bytes || (n > 0 && p[0] == 0)) return 0;
    memset(out, 0, 32 - n);
    memcpy(out + 32 - n, p, n);
    return 1;
}

/* An integer field of at most 8 bytes. */
static int txd_u64(const u8 *p, u64 n, u64 *out) {
    u8 word[32];
    if (!txd_uint(p, n, 8, word)) return 0;
    u64 v = 0;
    for (int i = 24; i < 32; i++) v = (v << 8) | word[i];
    *out = v;
    return 1;
}

static int txd_below(const u8 *a, const u8 *b) { return memcmp(a, b, 32) < 0; }

typedef struct {
    recover_job recover; /* its hashes and sigs are signing_hashes and sigs */
    u8 *signing_hashes;  /* 32 each, written */
    u8 *sigs;            /* r (32) s (32) y parity (1) each, written */
    const u8 *blob;
    const u64 *offsets;  /* transaction i is blob[offsets[i] .. offsets[i + 1]) */
    u64 *rows;           /* TXD_WORDS each */
    u8 *bigs;            /* 32 * TXD_BIGS each */
    u8 *tx_hashes;       /* 32 each */
    int defer;           /* leave the recovery to the host */
} txd_job;

/* The fields of a typed transaction without an access list (raw[0..len)) into its row and
 * bigs (all but TXD_STATUS), as the rules above take them; the signature's values are only
 * parsed. Returns 0 when it does not take the transaction, else 1 and sets *signed_at and
 * *signed_len: where the RLP items before y parity start in raw, and their length. */
static int txd_fields(const u8 *raw, u64 len, u64 *row, u8 *big, u64 *signed_at, u64 *signed_len) {
    if (len < 2 || (raw[0] != 1 && raw[0] != 2)) return 0;
    u64 type = raw[0], expected = type == 1 ? 11 : 12, off, size;
    const u8 *p = raw + 1;
    u64 plen = len - 1;
    if (txd_item(p, plen, &off, &size) != 1 || off + size != plen) return 0;
    u64 start[12], at_payload[12], n[12], count = 0, at = off;
    while (at < plen) {
        u64 o, s;
        if (count == expected) return 0;
        int kind = txd_item(p + at, plen - at, &o, &s);
        u64 access_list = expected - 4;
        /* Strings everywhere but the access list, which must be the empty list here. */
        if (kind != (count == access_list) || (count == access_list && s != 0)) return 0;
        start[count] = at;
        at_payload[count] = at + o;
        n[count] = s;
        count++;
        at += o + s;
    }
    if (count != expected) return 0;
#define TXD_FIELD(k) (p + at_payload[k]), n[k]
    u64 rest = type == 2 ? 4 : 3;
    if (!txd_u64(TXD_FIELD(0), &row[TXD_CHAIN_ID])) return 0;
    if (!txd_u64(TXD_FIELD(1), &row[TXD_NONCE]) || row[TXD_NONCE] == ~0ULL) return 0;
    if (!txd_uint(TXD_FIELD(2), 32, big + 32 * TXD_TIP)) return 0;
    if (type == 2) {
        if (!txd_uint(TXD_FIELD(3), 32, big + 32 * TXD_FEE)) return 0;
        if (txd_below(big + 32 * TXD_FEE, big + 32 * TXD_TIP)) return 0;
    } else {
        memcpy(big + 32 * TXD_FEE, big + 32 * TXD_TIP, 32);
    }
    if (!txd_u64(TXD_FIELD(rest), &row[TXD_GAS])) return 0;
    if (n[rest + 1] != 0 && n[rest + 1] != 20) return 0;
    if (!txd_uint(TXD_FIELD(rest + 2), 32, big + 32 * TXD_VALUE)) return 0;
    if (!txd_u64(TXD_FIELD(rest + 5), &row[TXD_Y]) || row[TXD_Y] > 1) return 0;
    if (!txd_uint(TXD_FIELD(rest + 6), 32, big + 32 * TXD_R)) return 0;
    if (!txd_uint(TXD_FIELD(rest + 7), 32, big + 32 * TXD_S)) return 0;
#undef TXD_FIELD
    row[TXD_TO_OFF] = 1 + at_payload[rest + 1];
    row[TXD_TO_LEN] = n[rest + 1];
    row[TXD_DATA_OFF] = 1 + at_payload[rest + 3];
    row[TXD_DATA_LEN] = n[rest + 3];
    row[TXD_TYPE] = type;
    *signed_at = 1 + off;
    *signed_len = start[rest + 5] - off;
    return 1;
}

/* Decodes transaction i into its row; TXD_OK only when its every field and signature check. */
static void txd_decode(const txd_job *job, u64 i) {
    u64 *row = job->rows + TXD_WORDS * i;
    u8 *big = job->bigs + 32 * TXD_BIGS * i;
    row[TXD_STATUS] = TXD_SLOW;
    const u8 *raw = job->blob + job->offsets[i];
    u64 len = job->offsets[i + 1] - job->offsets[i], signed_at, signed_len;
    if (!txd_fields(raw, len, row, big, &signed_at, &signed_len)) return;
    u8 *r = big + 32 * TXD_R, *s = big + 32 * TXD_S;
    u8 *sig = job->sigs + 65 * i;
    memcpy(sig, r, 32);
    memcpy(sig + 32, s, 32);
    sig[64] = (u8)row[TXD_Y];
    if (!tx_signature_ok(sig)) return;
    u256_to_be(evm_keccak(raw, len), job->tx_hashes + 32 * i);
    /* The signed message: the type byte and the list of the fields before y parity. The bytes
     * are canonical, so they are the re-encoding of those fields; only the header changes. */
    u8 stack[512], *message = stack;
    u64 total = 1 + 9 + signed_len;
    if (total > sizeof stack && !(message = (u8 *)malloc(total))) return;
    u64 h = 1;
    message[0] = raw[0];
    if (signed_len < 56) {
        message[h++] = (u8)(0xC0 + signed_len);
    } else {
        u64 bytes = 0;
        for (u64 v = signed_len; v; v >>= 8) bytes++;
        message[h++] = (u8)(0xF7 + bytes);
        for (u64 b = bytes; b-- > 0;) message[h++] = (u8)(signed_len >> (8 * b));
    }
    memcpy(message + h, raw + signed_at, signed_len);
    u256_to_be(evm_keccak(message, h + signed_len), job->signing_hashes + 32 * i);
    if (message != stack) free(message);
    if (!job->defer) recover_one(&job->recover, i);
    if (job->defer || job->recover.ok[i]) row[TXD_STATUS] = TXD_OK;
}

static void txd_range(void *job, u64 first, u64 count) {
    for (u64 i = first; i < first + count; i++) txd_decode((const txd_job *)job, i);
}

/* ---- Packing a block's transactions for the interpreter (executor_gpu/native_tx.py) ---------- */

/* What txd_pack says of each transaction. */
enum {
    PACK_OK = 0,
    PACK_SLOW = 1,    /* txd_fields does not take it: the host packs it */
    PACK_SUSPECT = 2, /* packed, and a check that reads no state may fail: the host words why */
};
enum {
    PACK_MAX_INITCODE = 49152, /* EIP-3860 */
};

/* gas * fee + value, or 0 when it does not fit in 256 bits. */
static int pack_upfront(u64 gas, u256 fee, u256 value, u256 *out) {
    u64 carry = 0;
    for (int i = 0; i < 4; i++) {
        unsigned __int128 t = (unsigned __int128)gas * fee.w[i] + carry;
        out->w[i] = (u64)t;
        carry = (u64)(t >> 64);
    }
    if (carry) return 0;
    u256 sum = u256_add(*out, value);
    if (u256_lt(sum, value)) return 0;
    *out = sum;
    return 1;
}

/* Packs n transactions (transaction i at blob[offsets[i]..offsets[i + 1]), its sender at
 * senders[20 i]) into TX_* records, as native_tx.py packs them (access list fields zero): those
 * txd_fields takes (so the tip is at most the fee cap), the others get PACK_SLOW in status and
 * their records are left alone. The call data goes to data,
 * one after another (TX_DATA_OFF); prices and tips (4 words each) get the price per gas paid
 * and the tip per gas the coinbase earns at the block's base_fee (4 words). Returns the bytes
 * of data written. */
static u64 txd_pack(u64 n, const u8 *blob, const u64 *offsets, const u8 *senders, const u64 *base_fee,
                    u64 chain_id, u64 *records, u8 *data, u64 *prices, u64 *tips, u8 *status) {
    u256 base = u256_load(base_fee);
    u64 written = 0;
    for (u64 i = 0; i < n; i++) {
        const u8 *raw = blob + offsets[i];
        u64 row[TXD_WORDS], signed_at, signed_len;
        u8 big[32 * TXD_BIGS];
        status[i] = PACK_SLOW;
        if (!txd_fields(raw, offsets[i + 1] - offsets[i], row, big, &signed_at, &signed_len)) continue;
        u64 *rec = records + i * TX_WORDS;
        for (int w = 0; w < TX_WORDS; w++) rec[w] = 0;
        u256_store(rec + TX_SENDER, u256_from_be(senders + 20 * i, 20));
        if (row[TXD_TO_LEN]) u256_store(rec + TX_TO, u256_from_be(raw + row[TXD_TO_OFF], 20));
        u256 tip = u256_from_be(big + 32 * TXD_TIP, 32), fee = u256_from_be(big + 32 * TXD_FEE, 32);
        u256 value = u256_from_be(big + 32 * TXD_VALUE, 32);
        u256_store(rec + TX_VALUE, value);
        /* min(fee, base + tip), the sum exact; the tip min(tip, fee - base) (none below the base
         * fee, which is rejected). */
        u256 sum = u256_add(base, tip);
        int over = u256_lt(sum, base) || u256_lt(fee, sum);
        u256_store(prices + 4 * i, over ? fee : sum);
        int under = u256_lt(fee, base);
        u256 margin = u256_sub(fee, base);
        u256_store(tips + 4 * i, under ? u256_of(0) : (u256_lt(tip, margin) ? tip : margin));
        u256 upfront;
        int fits = pack_upfront(row[TXD_GAS], fee, value, &upfront);
        if (!fits) upfront = u256_not(u256_of(0));
        u256_store(rec + TX_UPFRONT, upfront);
        const u8 *call = raw + row[TXD_DATA_OFF];
        u64 size = row[TXD_DATA_LEN], zeros = 0;
        for (u64 b = 0; b < size; b++) zeros += call[b] == 0;
        int create = row[TXD_TO_LEN] == 0;
        u64 intrinsic = 21000 + 4 * zeros + 16 * (size - zeros) + (create ? 32000 : 0);
        rec[TX_NONCE] = row[TXD_NONCE];
        rec[TX_GAS] = row[TXD_GAS];
        rec[TX_INTRINSIC] = intrinsic < row[TXD_GAS] ? intrinsic : row[TXD_GAS];
        rec[TX_FLAGS] = create ? TXF_CREATE : 0;
        rec[TX_DATA_OFF] = written;
        rec[TX_DATA_LEN] = size;
        memcpy(data + written, call, size);
        written += size;
        int suspect = row[TXD_CHAIN_ID] != chain_id || under || !fits ||
                      row[TXD_GAS] < intrinsic || (create && size > PACK_MAX_INITCODE);
        status[i] = suspect ? PACK_SUSPECT : PACK_OK;
    }
    return written;
}

#endif
