/* A block's stored body and receipts (node/db/chain.py's stored formats), and its receipts
 * root and logs bloom, in one call each per block, for the host.
 * Only the CPU library includes this (evm.c).
 *
 * Every encoder first sizes a list's payload, then writes its header and the payload: the
 * caller's buffers are sized by the upper bounds in executor_gpu/native_encode.py. */
#ifndef EVM_ENCODE_H
#define EVM_ENCODE_H

#include <string.h>

#include "evm_keccak.h"
#include "evm_ordered.h"

/* Bytes in the big-endian form of n (0 for 0). */
static u64 enc_width(u64 n) {
    u64 size = 0;
    for (; n; n >>= 8) size++;
    return size;
}

/* Size of an RLP header for a payload of n bytes. */
static u64 enc_header_size(u64 n) { return n < 56 ? 1 : 1 + enc_width(n); }

/* Writes the RLP header of a payload of n bytes (offset 0x80: string, 0xc0: list). */
static u8 *enc_header(u8 *out, u64 n, u8 offset) {
    if (n < 56) {
        *out++ = (u8)(offset + n);
        return out;
    }
    u64 size = enc_width(n);
    *out++ = (u8)(offset + 55 + size);
    for (u64 i = 0; i < size; i++) *out++ = (u8)(n >> (8 * (size - 1 - i)));
    return out;
}

static u64 enc_string_size(const u8 *p, u64 n) {
    return (n == 1 && p[0] < 0x80) ? 1 : enc_header_size(n) + n;
}

static u8 *enc_string(u8 *out, const u8 *p, u64 n) {
    if (!(n == 1 && p[0] < 0x80)) out = enc_header(out, n, 0x80);
    memcpy(out, p, n);
    return out + n;
}

/* A big-endian number of n bytes as an RLP integer: leading zeros dropped (zero is empty). */
static u64 enc_be_size(const u8 *p, u64 n) {
    while (n && !*p) p++, n--;
    return enc_string_size(p, n);
}

static u8 *enc_be(u8 *out, const u8 *p, u64 n) {
    while (n && !*p) p++, n--;
    return enc_string(out, p, n);
}

static u64 enc_uint_size(u64 v) {
    u8 be[8];
    for (int i = 0; i < 8; i++) be[i] = (u8)(v >> (8 * (7 - i)));
    return enc_be_size(be, 8);
}

static u8 *enc_uint(u8 *out, u64 v) {
    u8 be[8];
    for (int i = 0; i < 8; i++) be[i] = (u8)(v >> (8 * (7 - i)));
    return enc_be(out, be, 8);
}

/* The logs of one receipt: count of them; per log its address (20 bytes), topic count,
 * topics (32 bytes each) and data (data[offsets[i]..offsets[i + 1]) for log i). Pointers
 * are the first log's. */
typedef struct {
    u64 count;
    const u8 *addresses, *topic_counts, *topics, *data;
    const u64 *data_offsets;
} enc_logs;

static u64 enc_log_payload(const enc_logs *l, u64 i, u64 *topics_at) {
    u64 topics = 33 * (u64)l->topic_counts[i];
    const u8 *data = l->data + l->data_offsets[i];
    u64 data_len = l->data_offsets[i + 1] - l->data_offsets[i];
    *topics_at += l->topic_counts[i];
    return 21 + enc_header_size(topics) + topics + enc_string_size(data, data_len);
}

/* Size of the RLP list of the logs. */
static u64 enc_logs_size(const enc_logs *l) {
    u64 payload = 0, topics_at = 0;
    for (u64 i = 0; i < l->count; i++) {
        u64 log = enc_log_payload(l, i, &topics_at);
        payload += enc_header_size(log) + log;
    }
    return enc_header_size(payload) + payload;
}

static u8 *enc_write_logs(u8 *out, const enc_logs *l) {
    u64 payload = 0, topics_at = 0;
    for (u64 i = 0; i < l->count; i++) {
        u64 log = enc_log_payload(l, i, &topics_at);
        payload += enc_header_size(log) + log;
    }
    out = enc_header(out, payload, 0xC0);
    topics_at = 0;
    for (u64 i = 0; i < l->count; i++) {
        u64 first_topic = topics_at;
        u64 log = enc_log_payload(l, i, &topics_at);
        out = enc_header(out, log, 0xC0);
        *out++ = 0x94;
        memcpy(out, l->addresses + 20 * i, 20);
        out += 20;
        u64 topics = 33 * (u64)l->topic_counts[i];
        out = enc_header(out, topics, 0xC0);
        for (u64 t = first_topic; t < topics_at; t++) {
            *out++ = 0xA0;
            memcpy(out, l->topics + 32 * t, 32);
            out += 32;
        }
        out = enc_string(out, l->data + l->data_offsets[i], l->data_offsets[i + 1] - l->data_offsets[i]);
    }
    return out;
}

/* Moves l from one receipt's logs (l->count of them) to the next receipt's (count of them). */
static void enc_logs_next(enc_logs *l, u64 count) {
    for (u64 k = 0; k < l->count; k++) l->topics += 32 * (u64)l->topic_counts[k];
    l->addresses += 20 * l->count;
    l->topic_counts += l->count;
    l->data_offsets += l->count;
    l->count = count;
}

/* Sets the three bloom bits of item (an address or topic) in a 256-byte bloom. */
static void enc_bloom_add(u8 *bloom, const u8 *item, u64 n) {
    u8 digest[32];
    u256_to_be(evm_keccak(item, n), digest);
    for (int i = 0; i < 6; i += 2) {
        u64 bit = (((u64)digest[i] << 8) | digest[i + 1]) & 2047;
        bloom[255 - bit / 8] |= (u8)(1u << (bit % 8));
    }
}

/* One transaction's receipt fields. */
typedef struct {
    u8 type, succeeded, has_contract;
    u64 cumulative, gas_used;
    const u8 *price; /* 32 bytes, big-endian */
    const u8 *contract; /* 20 bytes, when has_contract */
} enc_receipt;

/* The stored receipt: [type, status, cumulative gas, logs, gas used, price, contract or empty]. */
static u8 *enc_stored_receipt(u8 *out, const enc_receipt *r, const enc_logs *l) {
    u64 payload = enc_uint_size(r->type) + 1 + enc_uint_size(r->cumulative) + enc_logs_size(l) +
                  enc_uint_size(r->gas_used) + enc_be_size(r->price, 32) + (r->has_contract ? 21 : 1);
    out = enc_header(out, payload, 0xC0);
    out = enc_uint(out, r->type);
    *out++ = r->succeeded ? 0x01 : 0x80;
    out = enc_uint(out, r->cumulative);
    out = enc_write_logs(out, l);
    out = enc_uint(out, r->gas_used);
    out = enc_be(out, r->price, 32);
    if (r->has_contract) {
        *out++ = 0x94;
        memcpy(out, r->contract, 20);
        return out + 20;
    }
    *out++ = 0x80;
    return out;
}

/* The consensus receipt: [status, cumulative gas, bloom, logs], after the type byte of a typed
 * transaction. Its bloom is ORed into block_bloom. */
static u8 *enc_consensus_receipt(u8 *out, const enc_receipt *r, const enc_logs *l, u8 *block_bloom) {
    u8 bloom[256];
    memset(bloom, 0, sizeof bloom);
    u64 topics_at = 0;
    for (u64 i = 0; i < l->count; i++) {
        enc_bloom_add(bloom, l->addresses + 20 * i, 20);
        for (u64 t = 0; t < l->topic_counts[i]; t++) enc_bloom_add(bloom, l->topics + 32 * (topics_at + t), 32);
        topics_at += l->topic_counts[i];
    }
    for (int i = 0; i < 256; i++) block_bloom[i] |= bloom[i];
    if (r->type) *out++ = r->type;
    u64 payload = 1 + enc_uint_size(r->cumulative) + 259 + enc_logs_size(l);
    out = enc_header(out, payload, 0xC0);
    *out++ = r->succeeded ? 0x01 : 0x80;
    out = enc_uint(out, r->cumulative);
    *out++ = 0xB9;
    *out++ = 0x01;
    *out++ = 0x00;
    memcpy(out, bloom, 256);
    out += 256;
    return enc_write_logs(out, l);
}

/* Writes the RLP list whose items were written at out + 9 up to end: its header at out, the
 * items moved up to it. Returns the list's size. */
static u64 enc_close_list(u8 *out, const u8 *end) {
    u64 payload = (u64)(end - (out + 9));
    u8 *items = enc_header(out, payload, 0xC0);
    memmove(items, out + 9, payload);
    return (u64)(items - out) + payload;
}

/* The stored receipts list of a block's n transactions, written to stored; its size returned.
 * flags: per transaction its type, status (1: succeeded) and whether it created a contract;
 * gas: per transaction its cumulative gas and its own gas used; prices: 32 bytes each;
 * contracts: 20 bytes each (read where created); log_counts: logs per transaction, the logs
 * themselves flattened in block order as enc_logs describes. */
static u64 host_encode_receipts(u64 n, const u8 *flags, const u64 *gas, const u8 *prices, const u8 *contracts,
                                const u64 *log_counts, const u8 *addresses, const u8 *topic_counts,
                                const u8 *topics, const u8 *data, const u64 *data_offsets, u8 *stored) {
    u8 *out = stored + 9;
    enc_logs l = {0, addresses, topic_counts, topics, data, data_offsets};
    for (u64 i = 0; i < n; i++) {
        enc_receipt r = {flags[3 * i], flags[3 * i + 1], flags[3 * i + 2], gas[2 * i], gas[2 * i + 1],
                         prices + 32 * i, contracts + 20 * i};
        enc_logs_next(&l, log_counts[i]);
        out = enc_stored_receipt(out, &r, &l);
    }
    return enc_close_list(stored, out);
}

/* The receipts root (to root) and the logs bloom (ORed into bloom) of n receipts (n > 0), their
 * fields as host_encode_receipts reads them (flags' creation byte and gas used unread); the
 * consensus encodings are written to scratch, receipt i at scratch[offsets[i]..offsets[i + 1]).
 * Returns 0 when memory for the trie ran out. */
static int host_receipts_root(u64 n, const u8 *flags, const u64 *gas, const u64 *log_counts,
                              const u8 *addresses, const u8 *topic_counts, const u8 *topics, const u8 *data,
                              const u64 *data_offsets, u8 *scratch, u64 *offsets, u8 *bloom, u8 *root) {
    u8 *out = scratch;
    enc_logs l = {0, addresses, topic_counts, topics, data, data_offsets};
    offsets[0] = 0;
    for (u64 i = 0; i < n; i++) {
        enc_receipt r = {flags[3 * i], flags[3 * i + 1], 0, gas[2 * i], 0, 0, 0};
        enc_logs_next(&l, log_counts[i]);
        out = enc_consensus_receipt(out, &r, &l, bloom);
        offsets[i + 1] = (u64)(out - scratch);
    }
    return host_ordered_root(n, scratch, offsets, root);
}

/* The stored body of n transactions, [[raw transaction, sender], ...], written to out; its size
 * returned. Transaction i is raws[offsets[i]..offsets[i + 1]), its sender senders[20 i..). */
static u64 host_encode_body(u64 n, const u8 *raws, const u64 *offsets, const u8 *senders, u8 *out) {
    u8 *at = out + 9;
    for (u64 i = 0; i < n; i++) {
        const u8 *raw = raws + offsets[i];
        u64 len = offsets[i + 1] - offsets[i];
        at = enc_header(at, enc_string_size(raw, len) + 21, 0xC0);
        at = enc_string(at, raw, len);
        *at++ = 0x94;
        memcpy(at, senders + 20 * i, 20);
        at += 20;
    }
    return enc_close_list(out, at);
}

#endif
