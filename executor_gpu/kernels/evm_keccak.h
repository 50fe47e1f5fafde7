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
        /* rho and pi as one walk over the lanes: starting from lane (1, 0), each lane moves to
         * (y, 2x + 3y), and the t-th lane of the walk rotates by (t + 1)(t + 2) / 2 mod 64.
         * Literal lane numbers keep the state in registers (a table lookup would not). */
        u64 t = a[1], next;
#define RHO_PI(lane, rotation) next = a[lane], a[lane] = evm_rotl(t, rotation), t = next
        RHO_PI(10, 1); RHO_PI(7, 3); RHO_PI(11, 6); RHO_PI(17, 10); RHO_PI(18, 15); RHO_PI(3, 21);
        RHO_PI(5, 28); RHO_PI(16, 36); RHO_PI(8, 45); RHO_PI(21, 55); RHO_PI(24, 2); RHO_PI(4, 14);
        RHO_PI(15, 27); RHO_PI(23, 41); RHO_PI(19, 56); RHO_PI(13, 8); RHO_PI(12, 25); RHO_PI(2, 43);
        RHO_PI(20, 62); RHO_PI(14, 18); RHO_PI(22, 39); RHO_PI(9, 61); RHO_PI(6, 20); RHO_PI(1, 44);
#undef RHO_PI
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

/* The little-endian 64-bit word at p. */
EVM_FN u64 evm_le64(const u8 *p) {
    u64 v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

EVM_FN u64 evm_bswap64(u64 x) {
    u64 r = 0;
    for (int i = 0; i < 8; i++) r = (r << 8) | ((x >> (8 * i)) & 0xff);
    return r;
}

#define KECCAK_RATE 136

/* Absorbs one block of KECCAK_RATE bytes, a lane at a time. */
EVM_FN void keccak_absorb(u64 *state, const u8 *block) {
    EVM_UNROLL
    for (int i = 0; i < KECCAK_RATE / 8; i++) state[i] ^= evm_le64(block + 8 * i);
    keccak_f1600(state);
}

/* Keccak-256 of `data`, returned as the big-endian word the EVM pushes. */
EVM_FN_BIG u256 evm_keccak(const u8 *data, u64 len) {
    u64 st[25];
    EVM_UNROLL
    for (int i = 0; i < 25; i++) st[i] = 0;
    u64 off = 0;
    for (; len - off >= KECCAK_RATE; off += KECCAK_RATE) keccak_absorb(st, data + off);
    u8 last[KECCAK_RATE];
    u64 n = len - off;
    for (u64 i = 0; i < KECCAK_RATE; i++) last[i] = i < n ? data[off + i] : 0;
    last[n] ^= 0x01;
    last[KECCAK_RATE - 1] ^= 0x80;
    keccak_absorb(st, last);
    /* The digest is lanes 0-3 in little-endian order; the EVM reads it big-endian. */
    u256 r;
    r.w[3] = evm_bswap64(st[0]);
    r.w[2] = evm_bswap64(st[1]);
    r.w[1] = evm_bswap64(st[2]);
    r.w[0] = evm_bswap64(st[3]);
    return r;
}

#endif
