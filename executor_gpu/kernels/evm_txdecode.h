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

/* Decodes transaction i into its row; TXD_OK only when its every field and signature check. */
static void txd_decode(const txd_job *job, u64 i) {
    u64 *row = job->rows + TXD_WORDS * i;
    u8 *big = job->bigs + 32 * TXD_BIGS * i;
    row[TXD_STATUS] = TXD_SLOW;
    const u8 *raw = job->blob + job->offsets[i];
    u64 len = job->offsets[i + 1] - job->offsets[i];
    if (len < 2 || (raw[0] != 1 && raw[0] != 2)) return;
    u64 type = raw[0], expected = type == 1 ? 11 : 12, off, size;
    const u8 *p = raw + 1;
    u64 plen = len - 1;
    if (txd_item(p, plen, &off, &size) != 1 || off + size != plen) return;
    u64 start[12], at_payload[12], n[12], count = 0, at = off;
    while (at < plen) {
        u64 o, s;
        if (count == expected) return;
        int kind = txd_item(p + at, plen - at, &o, &s);
        u64 access_list = expected - 4;
        /* Strings everywhere but the access list, which must be the empty list here. */
        if (kind != (count == access_list) || (count == access_list && s != 0)) return;
        start[count] = at;
        at_payload[count] = at + o;
        n[count] = s;
        count++;
        at += o + s;
    }
    if (count != expected) return;
#define TXD_FIELD(k) (p + at_payload[k]), n[k]
    u64 rest = type == 2 ? 4 : 3;
    if (!txd_u64(TXD_FIELD(0), &row[TXD_CHAIN_ID])) return;
    if (!txd_u64(TXD_FIELD(1), &row[TXD_NONCE]) || row[TXD_NONCE] == ~0ULL) return;
    if (!txd_uint(TXD_FIELD(2), 32, big + 32 * TXD_TIP)) return;
    if (type == 2) {
        if (!txd_uint(TXD_FIELD(3), 32, big + 32 * TXD_FEE)) return;
        if (txd_below(big + 32 * TXD_FEE, big + 32 * TXD_TIP)) return;
    } else {
        memcpy(big + 32 * TXD_FEE, big + 32 * TXD_TIP, 32);
    }
    if (!txd_u64(TXD_FIELD(rest), &row[TXD_GAS])) return;
    if (n[rest + 1] != 0 && n[rest + 1] != 20) return;
    if (!txd_uint(TXD_FIELD(rest + 2), 32, big + 32 * TXD_VALUE)) return;
    if (!txd_u64(TXD_FIELD(rest + 5), &row[TXD_Y]) || row[TXD_Y] > 1) return;
    u8 *r = big + 32 * TXD_R, *s = big + 32 * TXD_S;
    if (!txd_uint(TXD_FIELD(rest + 6), 32, r) || !txd_uint(TXD_FIELD(rest + 7), 32, s)) return;
    u8 *sig = job->sigs + 65 * i;
    memcpy(sig, r, 32);
    memcpy(sig + 32, s, 32);
    sig[64] = (u8)row[TXD_Y];
    if (!tx_signature_ok(sig)) return;
#undef TXD_FIELD
    row[TXD_TO_OFF] = 1 + at_payload[rest + 1];
    row[TXD_TO_LEN] = n[rest + 1];
    row[TXD_DATA_OFF] = 1 + at_payload[rest + 3];
    row[TXD_DATA_LEN] = n[rest + 3];
    row[TXD_TYPE] = type;
    u256_to_be(evm_keccak(raw, len), job->tx_hashes + 32 * i);
    /* The signed message: the type byte and the list of the fields before y parity. The bytes
     * are canonical, so they are the re-encoding of those fields; only the header changes. */
    u64 signed_len = start[rest + 5] - off;
    u8 stack[512], *message = stack;
    u64 total = 1 + 9 + signed_len;
    if (total > sizeof stack && !(message = (u8 *)malloc(total))) return;
    u64 h = 1;
    message[0] = (u8)type;
    if (signed_len < 56) {
        message[h++] = (u8)(0xC0 + signed_len);
    } else {
        u64 bytes = 0;
        for (u64 v = signed_len; v; v >>= 8) bytes++;
        message[h++] = (u8)(0xF7 + bytes);
        for (u64 b = bytes; b-- > 0;) message[h++] = (u8)(signed_len >> (8 * b));
    }
    memcpy(message + h, p + off, signed_len);
    u256_to_be(evm_keccak(message, h + signed_len), job->signing_hashes + 32 * i);
    if (message != stack) free(message);
    if (!job->defer) recover_one(&job->recover, i);
    if (job->defer || job->recover.ok[i]) row[TXD_STATUS] = TXD_OK;
}

static void txd_range(void *job, u64 first, u64 count) {
    for (u64 i = first; i < first + count; i++) txd_decode((const txd_job *)job, i);
}

#endif
