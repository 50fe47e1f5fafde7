/* The host's state loading, in C over flat arrays: Merkle-Patricia lookups and the decoding
 * of the accounts and slots they find into the interpreter's table rows.
 *
 * Only the CPU library includes this (evm.c); the host calls it through ctypes
 * (executor_gpu/native_state.py). A batch of lookups walks the tries level by level: the
 * host fetches each distinct node a level needs once from its node store, and
 * host_trie_level moves every lookup down through it.
 */
#ifndef EVM_HOST_H
#define EVM_HOST_H

#include "evm_abi.h"
#include "evm_keccak.h"

/* Root of an empty trie: keccak256(rlp(b"")). */
static const u8 EMPTY_ROOT_BYTES[32] = {
    0x56, 0xe8, 0x1f, 0x17, 0x1b, 0xcc, 0x55, 0xa6, 0xff, 0x83, 0x45, 0xe6, 0x92, 0xc0, 0xf8, 0x6e,
    0x5b, 0x48, 0xe0, 0x1b, 0x99, 0x6c, 0xad, 0xc0, 0x01, 0x62, 0x2f, 0xb5, 0xe3, 0x63, 0xb4, 0x21,
};

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
static i64 trie_step(const u8 *node, u64 len, const u8 *key, u64 pos, u64 *out) {
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

/* A big-endian number of at most 32 bytes as four little-endian words. */
static void host_be_words(const u8 *p, u64 n, u64 *words) {
    for (int i = 0; i < 4; i++) words[i] = 0;
    for (u64 i = 0; i < n; i++) words[(n - 1 - i) / 8] |= (u64)p[i] << (8 * ((n - 1 - i) % 8));
}

/* The RLP string that is exactly p[0..len): sets its payload; 0 when p is anything else. */
static int host_rlp_string(const u8 *p, u64 len, const u8 **payload, u64 *size) {
    u64 off;
    if (rlp_item(p, len, &off, size) != 0 || off + *size != len) return 0;
    *payload = p + off;
    return 1;
}

/* Decodes an account, RLP [nonce, balance, storage root, code hash], into the fields of its
 * ACC_* row and its storage root; 0 when malformed. */
static int host_decode_account(const u8 *p, u64 len, u64 *row, u8 *root) {
    u64 off, size;
    if (rlp_item(p, len, &off, &size) != 1 || off + size != len) return 0;
    const u8 *item[4];
    u64 item_len[4], at = off;
    for (int i = 0; i < 4; i++) {
        u64 o, n;
        if (at >= len || rlp_item(p + at, len - at, &o, &n) != 0) return 0;
        item[i] = p + at + o;
        item_len[i] = n;
        at += o + n;
    }
    if (at != len || item_len[0] > 8 || item_len[1] > 32 || item_len[2] != 32 || item_len[3] != 32) return 0;
    u64 nonce[4];
    host_be_words(item[0], item_len[0], nonce);
    row[ACC_NONCE] = nonce[0];
    host_be_words(item[1], item_len[1], row + ACC_BALANCE);
    host_be_words(item[3], 32, row + ACC_CODE_HASH);
    for (int i = 0; i < 32; i++) root[i] = item[2][i];
    row[ACC_FLAGS] = AF_EXISTS;
    for (int i = 0; i < 32; i++) {
        if (root[i] != EMPTY_ROOT_BYTES[i]) {
            row[ACC_FLAGS] |= AF_HAS_STORAGE;
            break;
        }
    }
    return 1;
}

/* Moves lookups idx[0..m) of a batch one level down. Lookup i has walked pos[i] nibbles of
 * its path (paths + 32 i) and stands at node j = buf[off[j] .. off[j] + len[j]); it goes
 * through that node and the nodes embedded in it, and ends with state[i]:
 *  0 the key is absent; 1 found, its value decoded into row i of rows (width words: an
 *  ACC_* row plus roots + 32 i for accounts, SL_VALUE of an SL_* row for slots);
 *  2 it needs the node whose hash is now at next + 32 i; -1 a malformed node or value. */
static void host_trie_level(const u8 *buf, const u64 *off, const u64 *len, const u64 *idx, u64 m,
                            const u8 *paths, u64 *pos, i64 *state, u8 *next, int accounts, u64 *rows,
                            u64 width, u8 *roots) {
    for (u64 j = 0; j < m; j++) {
        u64 i = idx[j];
        const u8 *node = buf + off[j];
        u64 node_len = len[j];
        for (;;) {
            u64 out[3];
            i64 kind = trie_step(node, node_len, paths + 32 * i, pos[i], out);
            if (kind <= 0) {
                state[i] = kind;
                break;
            }
            pos[i] += out[2];
            if (kind == 1) {
                u64 *row = rows + i * width;
                const u8 *value;
                u64 size;
                int ok = accounts ? host_decode_account(node + out[0], out[1], row, roots + 32 * i)
                                  : host_rlp_string(node + out[0], out[1], &value, &size) && size <= 32;
                if (ok && !accounts) host_be_words(value, size, row + SL_VALUE);
                state[i] = ok ? 1 : -1;
                break;
            }
            if (kind == 2) {
                for (int b = 0; b < 32; b++) next[32 * i + b] = node[out[0] + b];
                state[i] = 2;
                break;
            }
            node += out[0]; /* an embedded node */
            node_len = out[1];
        }
    }
}

#endif
