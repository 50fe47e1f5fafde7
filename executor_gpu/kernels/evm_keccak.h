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

/* rho and pi as one walk over the lanes: starting from lane (1, 0), each lane moves to
 * (y, 2x + 3y), and the t-th lane of the walk rotates by (t + 1)(t + 2) / 2 mod 64. */
EVM_TABLE u8 KECCAK_PI[24] = {10, 7, 11, 17, 18, 3, 5, 16, 8, 21, 24, 4, 15, 23, 19, 13, 12, 2, 20, 14, 22, 9, 6, 1};
EVM_TABLE u8 KECCAK_RHO[24] = {1, 3, 6, 10, 15, 21, 28, 36, 45, 55, 2, 14, 27, 41, 56, 8, 25, 43, 62, 18, 39, 61, 20, 44};

EVM_FN u64 evm_rotl(u64 x, unsigned n) { return (x << n) | (x >> (64 - n)); }

/* Loops over lanes are unrolled so that the state lives in registers. */
#if defined(__CUDACC__)
#define EVM_UNROLL _Pragma("unroll")
#elif defined(__clang__)
#define EVM_UNROLL _Pragma("unroll")
#else
#define EVM_UNROLL _Pragma("GCC unroll 25")
#endif

EVM_FN_BIG void keccak_f1600(u64 *state) {
    u64 a[25];
    EVM_UNROLL
    for (int i = 0; i < 25; i++) a[i] = state[i];
    for (int round = 0; round < 24; round++) {
        u64 c[5];
EVM_UNROLL
        for (int x = 0; x < 5; x++) c[x] = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];
EVM_UNROLL
        for (int x = 0; x < 5; x++) {
            u64 d = c[x == 0 ? 4 : x - 1] ^ evm_rotl(c[x == 4 ? 0 : x + 1], 1);
            a[x] ^= d;
            a[x + 5] ^= d;
            a[x + 10] ^= d;
            a[x + 15] ^= d;
            a[x + 20] ^= d;
        }
        u64 t = a[1];
EVM_UNROLL
        for (int i = 0; i < 24; i++) {
            u64 next = a[KECCAK_PI[i]];
            a[KECCAK_PI[i]] = evm_rotl(t, KECCAK_RHO[i]);
            t = next;
        }
EVM_UNROLL
        for (int y = 0; y < 25; y += 5) {
            u64 r0 = a[y], r1 = a[y + 1], r2 = a[y + 2], r3 = a[y + 3], r4 = a[y + 4];
            a[y] = r0 ^ (~r1 & r2);
            a[y + 1] = r1 ^ (~r2 & r3);
            a[y + 2] = r2 ^ (~r3 & r4);
            a[y + 3] = r3 ^ (~r4 & r0);
            a[y + 4] = r4 ^ (~r0 & r1);
        }
        a[0] ^= KECCAK_RC[round];
    }
    EVM_UNROLL
    for (int i = 0; i < 25; i++) state[i] = a[i];
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
