/* Keccak-256 (the original padding Ethereum uses, not NIST SHA3), written from FIPS 202. */
#ifndef EVM_KECCAK_H
#define EVM_KECCAK_H

#include "evm_u256.h"

EVM_TABLE u64 KECCAK_RC[24] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808AULL, 0x8000000080008000ULL,
    0x000000000000808BULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
    0x000000000000008AULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000AULL,
    0x000000008000808BULL, 0x800000000000008BULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
    0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800AULL, 0x800000008000000AULL,
    0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL,
};

/* Rotation offsets of rho, indexed by lane x + 5y. */
EVM_TABLE u8 KECCAK_ROT[25] = {
    0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14,
};

EVM_FN u64 evm_rotl(u64 x, unsigned n) { return n ? (x << n) | (x >> (64 - n)) : x; }

EVM_FN_BIG void keccak_f1600(u64 *a) {
    u64 b[25], c[5];
    for (int round = 0; round < 24; round++) {
        for (int x = 0; x < 5; x++) c[x] = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];
        for (int x = 0; x < 5; x++) {
            u64 d = c[(x + 4) % 5] ^ evm_rotl(c[(x + 1) % 5], 1);
            for (int y = 0; y < 25; y += 5) a[y + x] ^= d;
        }
        /* rho and pi: lane (x, y) moves to (y, 2x + 3y). */
        for (int x = 0; x < 5; x++) {
            for (int y = 0; y < 5; y++) {
                b[y + 5 * ((2 * x + 3 * y) % 5)] = evm_rotl(a[x + 5 * y], KECCAK_ROT[x + 5 * y]);
            }
        }
        for (int y = 0; y < 25; y += 5) {
            for (int x = 0; x < 5; x++) a[y + x] = b[y + x] ^ (~b[y + (x + 1) % 5] & b[y + (x + 2) % 5]);
        }
        a[0] ^= KECCAK_RC[round];
    }
}

/* Keccak-256 of `data`, returned as the big-endian word the EVM pushes. */
EVM_FN_BIG u256 evm_keccak(const u8 *data, u64 len) {
    const u64 rate = 136;
    u64 st[25];
    for (int i = 0; i < 25; i++) st[i] = 0;
    u64 off = 0;
    for (;;) {
        u64 n = len - off < rate ? len - off : rate;
        for (u64 i = 0; i < n; i++) st[i / 8] ^= (u64)data[off + i] << (8 * (i % 8));
        off += n;
        if (n < rate) {
            st[n / 8] ^= 0x01ULL << (8 * (n % 8));
            st[(rate - 1) / 8] ^= 0x80ULL << (8 * ((rate - 1) % 8));
            keccak_f1600(st);
            break;
        }
        keccak_f1600(st);
    }
    u8 out[32];
    for (int i = 0; i < 32; i++) out[i] = (u8)(st[i / 8] >> (8 * (i % 8)));
    return u256_from_be(out, 32);
}

#endif
