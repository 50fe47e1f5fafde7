/* BLAKE2b's compression function F with a caller-chosen number of rounds: the BLAKE2F
 * precompile (0x09) of EIP-152, written from RFC 7693. */
#ifndef EVM_BLAKE2F_H
#define EVM_BLAKE2F_H

#include "evm_base.h"

EVM_TABLE u64 BLAKE2B_IV[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

EVM_TABLE u8 BLAKE2B_SIGMA[10][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
};

/* Input layout (EIP-152): rounds (4 bytes, big-endian), h (8 x 8 bytes), m (16 x 8 bytes),
 * t (2 x 8 bytes), all little-endian words, then the final-block flag byte. */
#define BLAKE2F_INPUT 213

EVM_FN u64 ror64(u64 x, unsigned n) { return (x >> n) | (x << (64 - n)); }

EVM_FN u64 le64(const u8 *p) {
    u64 v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

EVM_FN u32 blake2f_rounds(const u8 *in) {
    return (u32)in[0] << 24 | (u32)in[1] << 16 | (u32)in[2] << 8 | in[3];
}

EVM_FN void blake2b_g(u64 *v, int a, int b, int c, int d, u64 x, u64 y) {
    v[a] = v[a] + v[b] + x;
    v[d] = ror64(v[d] ^ v[a], 32);
    v[c] = v[c] + v[d];
    v[b] = ror64(v[b] ^ v[c], 24);
    v[a] = v[a] + v[b] + y;
    v[d] = ror64(v[d] ^ v[a], 16);
    v[c] = v[c] + v[d];
    v[b] = ror64(v[b] ^ v[c], 63);
}

/* F on a valid 213-byte input (final flag 0 or 1): writes the 64-byte new state h. */
EVM_FN_BIG void evm_blake2f(const u8 *in, u8 *out) {
    u64 h[8], m[16], v[16];
    for (int i = 0; i < 8; i++) h[i] = le64(in + 4 + 8 * i);
    for (int i = 0; i < 16; i++) m[i] = le64(in + 68 + 8 * i);
    for (int i = 0; i < 8; i++) {
        v[i] = h[i];
        v[8 + i] = BLAKE2B_IV[i];
    }
    v[12] ^= le64(in + 196);
    v[13] ^= le64(in + 204);
    if (in[212]) v[14] = ~v[14];
    u32 rounds = blake2f_rounds(in);
    for (u32 r = 0; r < rounds; r++) {
        const u8 *s = BLAKE2B_SIGMA[r % 10];
        blake2b_g(v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
        blake2b_g(v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
        blake2b_g(v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
        blake2b_g(v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
        blake2b_g(v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
        blake2b_g(v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
        blake2b_g(v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
        blake2b_g(v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
    for (int i = 0; i < 8; i++) {
        u64 w = h[i] ^ v[i] ^ v[8 + i];
        for (int j = 0; j < 8; j++) out[8 * i + j] = (u8)(w >> (8 * j));
    }
}

#endif
