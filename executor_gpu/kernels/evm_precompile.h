/* Precompiles 0x01-0x03 (ecrecover, SHA-256, RIPEMD-160), written from their specifications
 * (SEC 1 for secp256k1 recovery, FIPS 180-4, the RIPEMD-160 paper). */
#ifndef EVM_PRECOMPILE_H
#define EVM_PRECOMPILE_H

#include "evm_keccak.h"

/* ---- SHA-256 ---------------------------------------------------------------------------- */

EVM_TABLE u32 SHA256_K[64] = {
    0x428a2f98U, 0x71374491U, 0xb5c0fbcfU, 0xe9b5dba5U, 0x3956c25bU, 0x59f111f1U, 0x923f82a4U, 0xab1c5ed5U,
    0xd807aa98U, 0x12835b01U, 0x243185beU, 0x550c7dc3U, 0x72be5d74U, 0x80deb1feU, 0x9bdc06a7U, 0xc19bf174U,
    0xe49b69c1U, 0xefbe4786U, 0x0fc19dc6U, 0x240ca1ccU, 0x2de92c6fU, 0x4a7484aaU, 0x5cb0a9dcU, 0x76f988daU,
    0x983e5152U, 0xa831c66dU, 0xb00327c8U, 0xbf597fc7U, 0xc6e00bf3U, 0xd5a79147U, 0x06ca6351U, 0x14292967U,
    0x27b70a85U, 0x2e1b2138U, 0x4d2c6dfcU, 0x53380d13U, 0x650a7354U, 0x766a0abbU, 0x81c2c92eU, 0x92722c85U,
    0xa2bfe8a1U, 0xa81a664bU, 0xc24b8b70U, 0xc76c51a3U, 0xd192e819U, 0xd6990624U, 0xf40e3585U, 0x106aa070U,
    0x19a4c116U, 0x1e376c08U, 0x2748774cU, 0x34b0bcb5U, 0x391c0cb3U, 0x4ed8aa4aU, 0x5b9cca4fU, 0x682e6ff3U,
    0x748f82eeU, 0x78a5636fU, 0x84c87814U, 0x8cc70208U, 0x90befffaU, 0xa4506cebU, 0xbef9a3f7U, 0xc67178f2U,
};

EVM_TABLE u32 SHA256_H0[8] = {
    0x6a09e667U, 0xbb67ae85U, 0x3c6ef372U, 0xa54ff53aU, 0x510e527fU, 0x9b05688cU, 0x1f83d9abU, 0x5be0cd19U,
};

EVM_FN u32 ror32(u32 x, unsigned n) { return (x >> n) | (x << (32 - n)); }
EVM_FN u32 rol32(u32 x, unsigned n) { return n ? (x << n) | (x >> (32 - n)) : x; }

EVM_FN void sha256_block(u32 *h, const u8 *p) {
    u32 w[64];
    for (int i = 0; i < 16; i++)
        w[i] = ((u32)p[4 * i] << 24) | ((u32)p[4 * i + 1] << 16) | ((u32)p[4 * i + 2] << 8) | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        u32 s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        u32 s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    u32 a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        u32 t1 = k + (ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25)) + ((e & f) ^ (~e & g)) + SHA256_K[i] + w[i];
        u32 t2 = (ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
}

/* MD-style padding shared by SHA-256 (big-endian length) and RIPEMD-160 (little-endian):
 * feeds every 64-byte block of data, then the padded tail, to block(). */
#define EVM_MD_PAD(block, state, data, len, big_endian)                                     \
    do {                                                                                   \
        u64 full_ = (len) / 64;                                                            \
        for (u64 i_ = 0; i_ < full_; i_++) block(state, (data) + 64 * i_);                 \
        u8 tail_[128];                                                                     \
        u64 rest_ = (len) - 64 * full_;                                                    \
        u64 tail_len_ = rest_ + 9 <= 64 ? 64 : 128;                                        \
        for (u64 i_ = 0; i_ < tail_len_; i_++) tail_[i_] = 0;                              \
        for (u64 i_ = 0; i_ < rest_; i_++) tail_[i_] = (data)[64 * full_ + i_];            \
        tail_[rest_] = 0x80;                                                               \
        u64 bits_ = (u64)(len) * 8;                                                        \
        for (int i_ = 0; i_ < 8; i_++)                                                     \
            tail_[tail_len_ - 8 + i_] = (u8)(bits_ >> (8 * ((big_endian) ? 7 - i_ : i_))); \
        for (u64 i_ = 0; i_ < tail_len_; i_ += 64) block(state, tail_ + i_);               \
    } while (0)

EVM_FN_BIG void evm_sha256(const u8 *data, u64 len, u8 *out) {
    u32 h[8];
    for (int i = 0; i < 8; i++) h[i] = SHA256_H0[i];
    EVM_MD_PAD(sha256_block, h, data, len, 1);
    for (int i = 0; i < 32; i++) out[i] = (u8)(h[i / 4] >> (24 - 8 * (i % 4)));
}

/* ---- RIPEMD-160 ------------------------------------------------------------------------- */

EVM_TABLE u8 RMD_R[80] = {
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 7, 4, 13, 1, 10, 6, 15, 3, 12, 0, 9, 5,
    2, 14, 11, 8, 3, 10, 14, 4, 9, 15, 8, 1, 2, 7, 0, 6, 13, 11, 5, 12, 1, 9, 11, 10, 0, 8, 12, 4,
    13, 3, 7, 15, 14, 5, 6, 2, 4, 0, 5, 9, 7, 12, 2, 10, 14, 1, 3, 8, 11, 6, 15, 13,
};
EVM_TABLE u8 RMD_RP[80] = {
    5, 14, 7, 0, 9, 2, 11, 4, 13, 6, 15, 8, 1, 10, 3, 12, 6, 11, 3, 7, 0, 13, 5, 10, 14, 15, 8, 12,
    4, 9, 1, 2, 15, 5, 1, 3, 7, 14, 6, 9, 11, 8, 12, 2, 10, 0, 4, 13, 8, 6, 4, 1, 3, 11, 15, 0,
    5, 12, 2, 13, 9, 7, 10, 14, 12, 15, 10, 4, 1, 5, 8, 7, 6, 2, 13, 14, 0, 3, 9, 11,
};
EVM_TABLE u8 RMD_S[80] = {
    11, 14, 15, 12, 5, 8, 7, 9, 11, 13, 14, 15, 6, 7, 9, 8, 7, 6, 8, 13, 11, 9, 7, 15, 7, 12, 15, 9,
    11, 7, 13, 12, 11, 13, 6, 7, 14, 9, 13, 15, 14, 8, 13, 6, 5, 12, 7, 5, 11, 12, 14, 15, 14, 15,
    9, 8, 9, 14, 5, 6, 8, 6, 5, 12, 9, 15, 5, 11, 6, 8, 13, 12, 5, 12, 13, 14, 11, 8, 5, 6,
};
EVM_TABLE u8 RMD_SP[80] = {
    8, 9, 9, 11, 13, 15, 15, 5, 7, 7, 8, 11, 14, 14, 12, 6, 9, 13, 15, 7, 12, 8, 9, 11, 7, 7, 12, 7,
    6, 15, 13, 11, 9, 7, 15, 11, 8, 6, 6, 14, 12, 13, 5, 14, 13, 13, 7, 5, 15, 5, 8, 11, 14, 14,
    6, 14, 6, 9, 12, 9, 12, 5, 15, 8, 8, 5, 12, 9, 12, 5, 14, 6, 8, 13, 6, 5, 15, 13, 11, 11,
};
EVM_TABLE u32 RMD_K[5] = {0x00000000U, 0x5A827999U, 0x6ED9EBA1U, 0x8F1BBCDCU, 0xA953FD4EU};
EVM_TABLE u32 RMD_KP[5] = {0x50A28BE6U, 0x5C4DD124U, 0x6D703EF3U, 0x7A6D76E9U, 0x00000000U};

EVM_FN u32 rmd_f(int j, u32 x, u32 y, u32 z) {
    switch (j / 16) {
    case 0: return x ^ y ^ z;
    case 1: return (x & y) | (~x & z);
    case 2: return (x | ~y) ^ z;
    case 3: return (x & z) | (y & ~z);
    }
    return x ^ (y | ~z);
}

EVM_FN void rmd_block(u32 *h, const u8 *p) {
    u32 x[16];
    for (int i = 0; i < 16; i++)
        x[i] = (u32)p[4 * i] | ((u32)p[4 * i + 1] << 8) | ((u32)p[4 * i + 2] << 16) | ((u32)p[4 * i + 3] << 24);
    u32 a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    u32 ap = a, bp = b, cp = c, dp = d, ep = e;
    for (int j = 0; j < 80; j++) {
        u32 t = rol32(a + rmd_f(j, b, c, d) + x[RMD_R[j]] + RMD_K[j / 16], RMD_S[j]) + e;
        a = e; e = d; d = rol32(c, 10); c = b; b = t;
        t = rol32(ap + rmd_f(79 - j, bp, cp, dp) + x[RMD_RP[j]] + RMD_KP[j / 16], RMD_SP[j]) + ep;
        ap = ep; ep = dp; dp = rol32(cp, 10); cp = bp; bp = t;
    }
    u32 t = h[1] + c + dp;
    h[1] = h[2] + d + ep;
    h[2] = h[3] + e + ap;
    h[3] = h[4] + a + bp;
    h[4] = h[0] + b + cp;
    h[0] = t;
}

/* RIPEMD-160 of data as the precompile returns it: 12 zero bytes, then the 20-byte digest. */
EVM_FN_BIG void evm_ripemd160(const u8 *data, u64 len, u8 *out) {
    u32 h[5] = {0x67452301U, 0xEFCDAB89U, 0x98BADCFEU, 0x10325476U, 0xC3D2E1F0U};
    EVM_MD_PAD(rmd_block, h, data, len, 0);
    for (int i = 0; i < 12; i++) out[i] = 0;
    for (int i = 0; i < 20; i++) out[12 + i] = (u8)(h[i / 4] >> (8 * (i % 4)));
}

/* ---- secp256k1 public key recovery ------------------------------------------------------ */

/* Field prime p = 2^256 - 2^32 - 977 and group order n. */
EVM_FN u256 secp_p(void) {
    u256 p;
    p.w[0] = 0xFFFFFFFEFFFFFC2FULL;
    p.w[1] = p.w[2] = p.w[3] = 0xFFFFFFFFFFFFFFFFULL;
    return p;
}

EVM_FN u256 secp_n(void) {
    u256 n;
    n.w[0] = 0xBFD25E8CD0364141ULL;
    n.w[1] = 0xBAAEDCE6AF48A03BULL;
    n.w[2] = 0xFFFFFFFFFFFFFFFEULL;
    n.w[3] = 0xFFFFFFFFFFFFFFFFULL;
    return n;
}

/* x mod p for x < 2^256 (at most one subtraction). */
EVM_FN u256 fp_norm(u256 x) { return u256_lt(x, secp_p()) ? x : u256_sub(x, secp_p()); }

EVM_FN u256 fp_add(u256 a, u256 b) {
    u256 s = u256_add(a, b);
    if (u256_lt(s, a)) s = u256_add(s, u256_of(0x1000003D1ULL)); /* 2^256 = 2^32 + 977 (mod p) */
    return fp_norm(s);
}

EVM_FN u256 fp_sub(u256 a, u256 b) {
    u256 d = u256_sub(a, b);
    if (u256_lt(a, b)) d = u256_sub(d, u256_of(0x1000003D1ULL));
    return d;
}

/* Product mod p, folding the high half with 2^256 = 0x1000003D1 (mod p). */
EVM_FN u256 fp_mul(u256 a, u256 b) {
    u64 t[8];
    u256_mul_wide(a, b, t);
    const u64 c = 0x1000003D1ULL;
    u64 r[5];
    u64 carry = 0;
    for (int i = 0; i < 4; i++) {
        u64 lo = t[4 + i] * c, hi = EVM_MULHI(t[4 + i], c);
        u64 s = t[i] + lo;
        hi += s < lo;
        s += carry;
        hi += s < carry;
        r[i] = s;
        carry = hi;
    }
    r[4] = carry;
    /* r = r[0..3] + r[4] * 2^256: fold once more (r[4] * c fits in 98 bits). */
    u256 lo;
    for (int i = 0; i < 4; i++) lo.w[i] = r[i];
    u256 fold = u256_of(r[4] * c);
    fold.w[1] = EVM_MULHI(r[4], c);
    return fp_add(fp_norm(lo), fold);
}

EVM_FN_BIG u256 fp_pow(u256 a, u256 e) {
    u256 r = u256_of(1);
    for (int i = 255; i >= 0; i--) {
        r = fp_mul(r, r);
        if ((e.w[i / 64] >> (i % 64)) & 1) r = fp_mul(r, a);
    }
    return r;
}

/* x / 2 mod m for an odd m and x < m: x + m is even when x is odd (and may carry out). */
EVM_FN u256 mod_half(u256 x, u256 m) {
    if (!(x.w[0] & 1)) return u256_shr(x, 1);
    u256 sum = u256_add(x, m);
    u256 half = u256_shr(sum, 1);
    if (u256_lt(sum, x)) half.w[3] |= 1ULL << 63;
    return half;
}

/* a^-1 mod m for an odd prime m and 0 < a < m (else 0), by the binary extended Euclid algorithm: a few
 * hundred shifts and subtractions instead of Fermat's 256 multiplications mod m. Its time
 * depends on a, which is fine here: recovery works on public values only. */
EVM_FN_BIG u256 mod_inv(u256 a, u256 m) {
    u256 u = a, v = m, x1 = u256_of(1), x2 = u256_of(0), one = u256_of(1);
    if (u256_is_zero(a) || !u256_lt(a, m)) return x2; /* no inverse: never loop forever */
    while (!u256_eq(u, one) && !u256_eq(v, one)) {
        while (!(u.w[0] & 1)) {
            u = u256_shr(u, 1);
            x1 = mod_half(x1, m);
        }
        while (!(v.w[0] & 1)) {
            v = u256_shr(v, 1);
            x2 = mod_half(x2, m);
        }
        if (u256_lt(u, v)) {
            v = u256_sub(v, u);
            x2 = u256_lt(x2, x1) ? u256_sub(u256_add(x2, m), x1) : u256_sub(x2, x1);
        } else {
            u = u256_sub(u, v);
            x1 = u256_lt(x1, x2) ? u256_sub(u256_add(x1, m), x2) : u256_sub(x1, x2);
        }
    }
    return u256_eq(u, one) ? x1 : x2;
}

EVM_FN u256 fp_inv(u256 a) { return mod_inv(a, secp_p()); }

/* Jacobian point; z == 0 is the point at infinity. */
typedef struct {
    u256 x, y, z;
} JPoint;

EVM_FN u256 fp_dbl(u256 a) { return fp_add(a, a); }

EVM_FN_BIG JPoint jp_double(JPoint p) {
    if (u256_is_zero(p.z) || u256_is_zero(p.y)) {
        JPoint inf = {u256_of(0), u256_of(1), u256_of(0)};
        return inf;
    }
    /* Small multiples by additions: a multiplication costs several times more. */
    u256 yy = fp_mul(p.y, p.y);
    u256 s = fp_dbl(fp_dbl(fp_mul(p.x, yy)));
    u256 xx = fp_mul(p.x, p.x);
    u256 m = fp_add(fp_dbl(xx), xx); /* a = 0 */
    JPoint r;
    r.x = fp_sub(fp_mul(m, m), fp_dbl(s));
    r.y = fp_sub(fp_mul(m, fp_sub(s, r.x)), fp_dbl(fp_dbl(fp_dbl(fp_mul(yy, yy)))));
    r.z = fp_dbl(fp_mul(p.y, p.z));
    return r;
}

EVM_FN_BIG JPoint jp_add(JPoint p, JPoint q) {
    if (u256_is_zero(p.z)) return q;
    if (u256_is_zero(q.z)) return p;
    /* q with z = 1 (G and R in recovery) saves five multiplications. */
    int affine = u256_eq(q.z, u256_of(1));
    u256 z1z1 = fp_mul(p.z, p.z), z2z2 = affine ? q.z : fp_mul(q.z, q.z);
    u256 u1 = affine ? p.x : fp_mul(p.x, z2z2), u2 = fp_mul(q.x, z1z1);
    u256 s1 = affine ? p.y : fp_mul(p.y, fp_mul(q.z, z2z2)), s2 = fp_mul(q.y, fp_mul(p.z, z1z1));
    if (u256_eq(u1, u2)) {
        if (u256_eq(s1, s2)) return jp_double(p);
        JPoint inf = {u256_of(0), u256_of(1), u256_of(0)};
        return inf;
    }
    u256 h = fp_sub(u2, u1), r = fp_sub(s2, s1);
    u256 hh = fp_mul(h, h), hhh = fp_mul(h, hh), v = fp_mul(u1, hh);
    JPoint o;
    o.x = fp_sub(fp_sub(fp_mul(r, r), hhh), fp_add(v, v));
    o.y = fp_sub(fp_mul(r, fp_sub(v, o.x)), fp_mul(s1, hhh));
    o.z = fp_mul(h, affine ? p.z : fp_mul(p.z, q.z));
    return o;
}

/* a*P + b*Q by one double-and-add pass over both scalars (Shamir's trick). */
EVM_FN_BIG JPoint jp_mul2(u256 a, JPoint p, u256 b, JPoint q) {
    JPoint pq = jp_add(p, q);
    JPoint r = {u256_of(0), u256_of(1), u256_of(0)};
    for (int i = 255; i >= 0; i--) {
        r = jp_double(r);
        int ba = (a.w[i / 64] >> (i % 64)) & 1, bb = (b.w[i / 64] >> (i % 64)) & 1;
        /* One call whatever the addend: GPU threads of a warp with different bits run it
         * together instead of one after another. */
        if (ba | bb) r = jp_add(r, ba && bb ? pq : ba ? p : q);
    }
    return r;
}

EVM_FN u256 fn_inv(u256 a) { return mod_inv(a, secp_n()); }

/* The signer of message hash z under (r, s), R's y coordinate of the given parity: returns 1
 * and writes the address as 32 bytes (12 zero bytes, then 20), or returns 0 when r or s is not
 * in [1, n) or the signature recovers no key. The rules of the precompile and of transactions
 * (evm_ecrecover, tx_recover) narrow what reaches it. */
EVM_FN_BIG int secp_recover(u256 z, u64 parity, u256 r, u256 s, u8 *out) {
    u256 n = secp_n();
    if (u256_is_zero(r) || u256_is_zero(s) || !u256_lt(r, n) || !u256_lt(s, n)) return 0;
    /* R = (r, y) with y^2 = r^3 + 7 and y's parity given. */
    u256 y2 = fp_add(fp_mul(r, fp_mul(r, r)), u256_of(7));
    u256 exp = u256_shr(u256_add(secp_p(), u256_of(1)), 2); /* p = 3 (mod 4) */
    u256 y = fp_pow(y2, exp);
    if (!u256_eq(fp_mul(y, y), y2)) return 0;
    if ((y.w[0] & 1) != parity) y = fp_sub(u256_of(0), y);
    JPoint R = {r, y, u256_of(1)};
    JPoint G;
    G.x.w[3] = 0x79BE667EF9DCBBACULL; G.x.w[2] = 0x55A06295CE870B07ULL;
    G.x.w[1] = 0x029BFCDB2DCE28D9ULL; G.x.w[0] = 0x59F2815B16F81798ULL;
    G.y.w[3] = 0x483ADA7726A3C465ULL; G.y.w[2] = 0x5DA4FBFC0E1108A8ULL;
    G.y.w[1] = 0xFD17B448A6855419ULL; G.y.w[0] = 0x9C47D08FFB10D4B8ULL;
    G.z = u256_of(1);
    /* Q = r^-1 (s R - z G) */
    u256 rinv = fn_inv(r);
    u256 zn = evm_mod(z, n);
    u256 u1 = evm_mulmod(u256_is_zero(zn) ? zn : u256_sub(n, zn), rinv, n);
    u256 u2 = evm_mulmod(s, rinv, n);
    JPoint q = jp_mul2(u1, G, u2, R);
    if (u256_is_zero(q.z)) return 0;
    u256 zi = fp_inv(q.z), zi2 = fp_mul(zi, zi);
    u8 pub[64];
    u256_to_be(fp_mul(q.x, zi2), pub);
    u256_to_be(fp_mul(q.y, fp_mul(zi2, zi)), pub + 32);
    u256 h = evm_keccak(pub, 64);
    h.w[2] &= 0xFFFFFFFFULL; /* the address: low 20 bytes */
    h.w[3] = 0;
    u256_to_be(h, out);
    return 1;
}

/* The ecrecover precompile on its 128-byte input (v is 27 or 28, s anywhere below n); writes
 * 32 bytes and returns 1, or returns 0 (no output) when the signature recovers no key. */
EVM_FN int evm_ecrecover(const u8 *in, u8 *out) {
    u256 v = u256_from_be(in + 32, 32);
    if (!u256_fits64(v) || (v.w[0] != 27 && v.w[0] != 28)) return 0;
    return secp_recover(u256_from_be(in, 32), v.w[0] - 27, u256_from_be(in + 64, 32),
                        u256_from_be(in + 96, 32), out);
}

/* A transaction signature as r (32 bytes) s (32) y parity (1): whether its values pass
 * Ethereum's rules (primitives/crypto.py check_signature_values): y parity 0 or 1,
 * 0 < r < n, and EIP-2's 0 < s <= n / 2. */
EVM_FN int tx_signature_ok(const u8 *sig) {
    u256 r = u256_from_be(sig, 32), s = u256_from_be(sig + 32, 32), n = secp_n();
    return sig[64] <= 1 && !u256_is_zero(r) && u256_lt(r, n) && !u256_is_zero(s) &&
           !u256_lt(u256_shr(n, 1), s);
}

/* The sender of a transaction signature (r, s, y parity as tx_signature_ok reads it) over its
 * 32-byte signing hash: writes the 20-byte address and returns 1, or returns 0 when the values
 * break the rules or recover no key. The batch recovery of the CPU build and of the GPU. */
EVM_FN_BIG int tx_recover(const u8 *hash, const u8 *sig, u8 *address) {
    u8 out[32];
    if (!tx_signature_ok(sig)) return 0;
    if (!secp_recover(u256_from_be(hash, 32), sig[64], u256_from_be(sig, 32), u256_from_be(sig + 32, 32), out))
        return 0;
    for (int b = 0; b < 20; b++) address[b] = out[12 + b];
    return 1;
}

#endif
