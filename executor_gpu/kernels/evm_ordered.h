/* Roots of ordered tries (key rlp(i) -> the i-th value): a block's transactions and receipts
 * roots, for the host. Only the CPU library includes this (evm.c).
 *
 * The keys are the RLP encodings of 0..n-1, which no key prefixes: every value sits in a
 * leaf, branches carry none. Nodes are built bottom up over the keys in sorted order; a child
 * whose encoding is under 32 bytes is embedded, any other referred to by its Keccak-256. */
#ifndef EVM_ORDERED_H
#define EVM_ORDERED_H

#include <stdlib.h>
#include <string.h>

#include "evm_keccak.h"

typedef struct {
    u8 nib[18]; /* the key's nibbles: rlp(i) is at most 9 bytes */
    u8 len;
    u64 index;
} ordered_key;

/* A growable byte buffer; every node encoding is appended to one. */
typedef struct {
    u8 *data;
    u64 len, cap;
    int failed;
} ordered_buf;

static void obuf_reserve(ordered_buf *b, u64 more) {
    if (b->failed || b->len + more <= b->cap) return;
    u64 cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more) cap *= 2;
    u8 *grown = (u8 *)realloc(b->data, cap);
    if (!grown) {
        b->failed = 1;
        return;
    }
    b->data = grown;
    b->cap = cap;
}

static void obuf_put(ordered_buf *b, const u8 *p, u64 n) {
    obuf_reserve(b, n);
    if (b->failed) return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

/* RLP header of a payload of n bytes: offset 0x80 for a string, 0xc0 for a list. */
static u64 ordered_header(u8 *out, u64 n, u8 offset) {
    if (n < 56) {
        out[0] = (u8)(offset + n);
        return 1;
    }
    u64 size = 0;
    for (u64 v = n; v; v >>= 8) size++;
    out[0] = (u8)(offset + 55 + size);
    for (u64 i = 0; i < size; i++) out[1 + i] = (u8)(n >> (8 * (size - 1 - i)));
    return 1 + size;
}

static void obuf_string(ordered_buf *b, const u8 *p, u64 n) {
    u8 head[9];
    if (n == 1 && p[0] < 0x80) {
        obuf_put(b, p, 1);
        return;
    }
    obuf_put(b, head, ordered_header(head, n, 0x80));
    obuf_put(b, p, n);
}

/* Hex-prefix encoding of nibbles (leaf flag set for leaves), as an RLP string. */
static void obuf_path(ordered_buf *b, const u8 *nib, u64 n, int leaf) {
    u8 packed[10];
    u64 at = 0, i = 0;
    u8 flag = (u8)((leaf ? 2 : 0) + (n & 1));
    if (n & 1) {
        packed[at++] = (u8)((flag << 4) | nib[0]);
        i = 1;
    } else {
        packed[at++] = (u8)(flag << 4);
    }
    for (; i < n; i += 2) packed[at++] = (u8)((nib[i] << 4) | nib[i + 1]);
    obuf_string(b, packed, at);
}

/* Appends how a parent refers to the node encoded at b->data[start..b->len): itself when
 * under 32 bytes, else its hash as a string. */
static void ordered_ref(ordered_buf *b, u64 start) {
    u64 n = b->len - start;
    if (n < 32) return; /* the encoding stays where it is: embedded */
    u8 digest[33];
    digest[0] = 0xA0;
    u256_to_be(evm_keccak(b->data + start, n), digest + 1);
    b->len = start;
    obuf_put(b, digest, 33);
}

/* Wraps the items appended since `start` in a list header. */
static void ordered_list(ordered_buf *b, u64 start) {
    u8 head[9];
    u64 n = b->len - start, h = ordered_header(head, n, 0xC0);
    obuf_reserve(b, h);
    if (b->failed) return;
    memmove(b->data + start + h, b->data + start, n);
    memcpy(b->data + start, head, h);
    b->len += h;
}

/* Appends the encoding of the node over keys[0..n) (sorted) from nibble `depth`. */
static void ordered_node(ordered_buf *b, const ordered_key *keys, u64 n, u64 depth,
                         const u8 *values, const u64 *offsets) {
    u64 start = b->len;
    if (n == 1) {
        const ordered_key *k = keys;
        obuf_path(b, k->nib + depth, k->len - depth, 1);
        obuf_string(b, values + offsets[k->index], offsets[k->index + 1] - offsets[k->index]);
        ordered_list(b, start);
        return;
    }
    u64 shared = 0;
    while (depth + shared < keys[0].len && depth + shared < keys[n - 1].len &&
           keys[0].nib[depth + shared] == keys[n - 1].nib[depth + shared])
        shared++;
    if (shared) {
        obuf_path(b, keys[0].nib + depth, shared, 0);
        u64 child = b->len;
        ordered_node(b, keys, n, depth + shared, values, offsets);
        ordered_ref(b, child);
        ordered_list(b, start);
        return;
    }
    u64 i = 0;
    for (u8 nibble = 0; nibble < 16; nibble++) {
        u64 j = i;
        while (j < n && keys[j].nib[depth] == nibble) j++;
        if (j == i) {
            obuf_put(b, (const u8 *)"\x80", 1);
            continue;
        }
        u64 child = b->len;
        ordered_node(b, keys + i, j - i, depth + 1, values, offsets);
        ordered_ref(b, child);
        i = j;
    }
    obuf_put(b, (const u8 *)"\x80", 1); /* no value in a branch: no key ends there */
    ordered_list(b, start);
}

static int ordered_cmp(const void *a, const void *b) {
    const ordered_key *x = (const ordered_key *)a, *y = (const ordered_key *)b;
    u8 n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->nib, y->nib, n);
    return c ? c : (int)x->len - (int)y->len;
}

/* The root of the ordered trie of n values (value i is values[offsets[i]..offsets[i+1])),
 * written to root (32 bytes); n > 0. Returns 0 when memory ran out. */
static int host_ordered_root(u64 n, const u8 *values, const u64 *offsets, u8 *root) {
    ordered_key *keys = (ordered_key *)malloc(n * sizeof(ordered_key));
    if (!keys) return 0;
    for (u64 i = 0; i < n; i++) {
        u8 raw[9];
        u64 len = 1;
        if (i == 0) {
            raw[0] = 0x80;
        } else if (i < 0x80) {
            raw[0] = (u8)i;
        } else {
            u64 size = 0;
            for (u64 v = i; v; v >>= 8) size++;
            raw[0] = (u8)(0x80 + size);
            for (u64 k = 0; k < size; k++) raw[1 + k] = (u8)(i >> (8 * (size - 1 - k)));
            len = 1 + size;
        }
        for (u64 k = 0; k < len; k++) {
            keys[i].nib[2 * k] = raw[k] >> 4;
            keys[i].nib[2 * k + 1] = raw[k] & 0x0F;
        }
        keys[i].len = (u8)(2 * len);
        keys[i].index = i;
    }
    qsort(keys, n, sizeof(ordered_key), ordered_cmp);
    ordered_buf b = {0, 0, 0, 0};
    ordered_node(&b, keys, n, 0, values, offsets);
    free(keys);
    if (b.failed) {
        free(b.data);
        return 0;
    }
    /* The root is hashed whatever its size. */
    u256_to_be(evm_keccak(b.data, b.len), root);
    free(b.data);
    return 1;
}

#endif
