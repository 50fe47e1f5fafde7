/* BN254 (alt_bn128): the precompiles ECADD (0x06), ECMUL (0x07) and the pairing check (0x08)
 * of EIP-196/197 at EIP-1108's prices.
 *
 * Fp in Montgomery form on four 64-bit limbs; Fp2 = Fp[u]/(u^2 + 1); Fp12 = Fp2[w]/(w^6 - xi)
 * with xi = 9 + u, stored as six Fp2 coefficients of w^0..w^5 (py_ecc's FQ12 is the same field:
 * its w^6 - 9 is our u). G2 lives on the twist y^2 = x^3 + 3/xi over Fp2, mapped into E(Fp12)
 * by (x, y) -> (x w^2, y w^3). The pairing is the optimal ate pairing: a Miller loop over
 * 6t + 2 in affine twist coordinates whose lines are sparse in Fp12 (vertical lines lie in a
 * subfield the final exponentiation sends to 1, so they are left out), two more lines with the
 * Frobenius images of Q, then the final exponentiation f^((p^12 - 1) / r): its easy part by
 * conjugation, inversion and the p^2-Frobenius, its hard part (p^4 - p^2 + 1) / r by plain
 * square-and-multiply. Constants were computed with py_ecc (see the tests).
 */
#ifndef EVM_BN254_H
#define EVM_BN254_H

#include "evm_modexp.h"

/* ---- Fp ------------------------------------------------------------------------------------ */

typedef u256 bnf; /* an element of Fp in Montgomery form (times 2^256), fully reduced */

EVM_TABLE u64 BN_P[4] = {0x3c208c16d87cfd47ULL, 0x97816a916871ca8dULL, 0xb85045b68181585dULL,
                         0x30644e72e131a029ULL};
EVM_TABLE u64 BN_R2[4] = {0xf32cfc5b538afa89ULL, 0xb5e71911d44501fbULL, 0x47ab1eff0a417ff6ULL,
                          0x06d89f71cab8351fULL};
EVM_TABLE u64 BN_ONE[4] = {0xd35d438dc58f0d9dULL, 0x0a78eb28f5c70b3dULL, 0x666ea36f7879462cULL,
                           0x0e0a77c19a07df2fULL};
#define BN_INV 0x87d20782e4866389ULL /* -p^-1 mod 2^64 */

/* The group order r, big-endian. */
EVM_TABLE u8 BN_R_BE[32] = {
    0x30, 0x64, 0x4e, 0x72, 0xe1, 0x31, 0xa0, 0x29, 0xb8, 0x50, 0x45, 0xb6, 0x81, 0x81, 0x58, 0x5d,
    0x28, 0x33, 0xe8, 0x48, 0x79, 0xb9, 0x70, 0x91, 0x43, 0xe1, 0xf5, 0x93, 0xf0, 0x00, 0x00, 0x01,
};

EVM_FN bnf bn_p(void) { return u256_load(BN_P); }
EVM_FN bnf bn_zero(void) { return u256_of(0); }
EVM_FN bnf bn_one(void) { return u256_load(BN_ONE); }
EVM_FN int bn_is_zero(bnf a) { return u256_is_zero(a); }
EVM_FN int bn_eq(bnf a, bnf b) { return u256_eq(a, b); }

/* a + b mod p: p < 2^254, so the sum never carries out of 256 bits. */
EVM_FN bnf bn_add(bnf a, bnf b) {
    bnf s = u256_add(a, b);
    return u256_lt(s, bn_p()) ? s : u256_sub(s, bn_p());
}

EVM_FN bnf bn_sub(bnf a, bnf b) {
    bnf d = u256_sub(a, b);
    return u256_lt(a, b) ? u256_add(d, bn_p()) : d;
}

EVM_FN bnf bn_neg(bnf a) { return bn_sub(bn_zero(), a); }

/* a * b / 2^256 mod p (Montgomery, CIOS). */
EVM_FN_BIG bnf bn_mul(bnf a, bnf b) {
    u64 t[6] = {0, 0, 0, 0, 0, 0};
    for (int i = 0; i < 4; i++) {
        u64 c = 0, bi = b.w[i];
        for (int j = 0; j < 4; j++) c = mac64(t[j], a.w[j], bi, c, &t[j]);
        u64 s = t[4] + c;
        t[5] = s < c;
        t[4] = s;
        u64 q = t[0] * BN_INV, lo;
        c = mac64(t[0], q, BN_P[0], 0, &lo);
        for (int j = 1; j < 4; j++) c = mac64(t[j], q, BN_P[j], c, &t[j - 1]);
        s = t[4] + c;
        t[3] = s;
        t[4] = t[5] + (s < c);
    }
    bnf r;
    for (int j = 0; j < 4; j++) r.w[j] = t[j];
    /* t < 2p < 2^256 */
    return u256_lt(r, bn_p()) ? r : u256_sub(r, bn_p());
}

EVM_FN bnf bn_to_mont(u256 a) { return bn_mul(a, u256_load(BN_R2)); }
EVM_FN u256 bn_from_mont(bnf a) { return bn_mul(a, u256_of(1)); }

/* a^(p - 2): the inverse (0 for 0). */
EVM_FN_BIG bnf bn_inv(bnf a) {
    u256 e = u256_sub(bn_p(), u256_of(2));
    bnf r = bn_one();
    for (int i = 255; i >= 0; i--) {
        r = bn_mul(r, r);
        if ((e.w[i / 64] >> (i % 64)) & 1) r = bn_mul(r, a);
    }
    return r;
}

/* A field element from 32 big-endian bytes: 0 when it is not below p. */
EVM_FN int bn_read(const u8 *in, bnf *out) {
    u256 v = u256_from_be(in, 32);
    if (!u256_lt(v, bn_p())) return 0;
    *out = bn_to_mont(v);
    return 1;
}

/* ---- Fp2 = Fp[u] / (u^2 + 1) ---------------------------------------------------------------- */

typedef struct {
    bnf a, b; /* a + b u */
} bnf2;

EVM_FN bnf2 bn2_of(bnf a, bnf b) {
    bnf2 r = {a, b};
    return r;
}
EVM_FN bnf2 bn2_zero(void) { return bn2_of(bn_zero(), bn_zero()); }
EVM_FN bnf2 bn2_one(void) { return bn2_of(bn_one(), bn_zero()); }
EVM_FN int bn2_is_zero(bnf2 x) { return bn_is_zero(x.a) && bn_is_zero(x.b); }
EVM_FN int bn2_eq(bnf2 x, bnf2 y) { return bn_eq(x.a, y.a) && bn_eq(x.b, y.b); }
EVM_FN bnf2 bn2_add(bnf2 x, bnf2 y) { return bn2_of(bn_add(x.a, y.a), bn_add(x.b, y.b)); }
EVM_FN bnf2 bn2_sub(bnf2 x, bnf2 y) { return bn2_of(bn_sub(x.a, y.a), bn_sub(x.b, y.b)); }
EVM_FN bnf2 bn2_neg(bnf2 x) { return bn2_of(bn_neg(x.a), bn_neg(x.b)); }
EVM_FN bnf2 bn2_conj(bnf2 x) { return bn2_of(x.a, bn_neg(x.b)); }
EVM_FN bnf2 bn2_scale(bnf2 x, bnf k) { return bn2_of(bn_mul(x.a, k), bn_mul(x.b, k)); }

EVM_FN_BIG bnf2 bn2_mul(bnf2 x, bnf2 y) {
    bnf aa = bn_mul(x.a, y.a), bb = bn_mul(x.b, y.b);
    bnf cross = bn_mul(bn_add(x.a, x.b), bn_add(y.a, y.b));
    return bn2_of(bn_sub(aa, bb), bn_sub(bn_sub(cross, aa), bb));
}

/* x * xi = (9a - b) + (a + 9b) u */
EVM_FN bnf2 bn2_mul_xi(bnf2 x) {
    bnf a8 = bn_add(x.a, x.a), b8 = bn_add(x.b, x.b);
    a8 = bn_add(a8, a8);
    a8 = bn_add(a8, a8);
    b8 = bn_add(b8, b8);
    b8 = bn_add(b8, b8);
    return bn2_of(bn_sub(bn_add(a8, x.a), x.b), bn_add(bn_add(b8, x.b), x.a));
}

EVM_FN_BIG bnf2 bn2_inv(bnf2 x) {
    bnf d = bn_inv(bn_add(bn_mul(x.a, x.a), bn_mul(x.b, x.b)));
    return bn2_of(bn_mul(x.a, d), bn_neg(bn_mul(x.b, d)));
}

/* ---- Jacobian points on y^2 = x^3 + b over a field F (z = 0 is infinity) ---------------------- */

/* Defines type T with T##_double, T##_add and T##_mul (by a big-endian scalar) from F's
 * F##_add, F##_sub, F##_mul, F##_is_zero, F##_eq, F##_zero and F##_one. */
#define BN_JACOBIAN(T, F, FT)                                                                     \
    typedef struct {                                                                              \
        FT x, y, z;                                                                               \
    } T;                                                                                          \
    EVM_FN T T##_infinity(void) {                                                                 \
        T r = {F##_one(), F##_one(), F##_zero()};                                                 \
        return r;                                                                                 \
    }                                                                                             \
    EVM_FN_BIG T T##_double(T p) {                                                                \
        if (F##_is_zero(p.z) || F##_is_zero(p.y)) return T##_infinity();                          \
        FT yy = F##_mul(p.y, p.y), xy = F##_mul(p.x, yy), xx = F##_mul(p.x, p.x);                 \
        FT s = F##_add(xy, xy);                                                                   \
        s = F##_add(s, s);                                                                        \
        FT m = F##_add(F##_add(xx, xx), xx);                                                      \
        FT y4 = F##_mul(yy, yy);                                                                  \
        y4 = F##_add(y4, y4);                                                                     \
        y4 = F##_add(y4, y4);                                                                     \
        y4 = F##_add(y4, y4);                                                                     \
        T r;                                                                                      \
        r.x = F##_sub(F##_mul(m, m), F##_add(s, s));                                              \
        r.y = F##_sub(F##_mul(m, F##_sub(s, r.x)), y4);                                           \
        FT yz = F##_mul(p.y, p.z);                                                                \
        r.z = F##_add(yz, yz);                                                                    \
        return r;                                                                                 \
    }                                                                                             \
    EVM_FN_BIG T T##_add(T p, T q) {                                                              \
        if (F##_is_zero(p.z)) return q;                                                           \
        if (F##_is_zero(q.z)) return p;                                                           \
        FT z1z1 = F##_mul(p.z, p.z), z2z2 = F##_mul(q.z, q.z);                                    \
        FT u1 = F##_mul(p.x, z2z2), u2 = F##_mul(q.x, z1z1);                                      \
        FT s1 = F##_mul(p.y, F##_mul(q.z, z2z2)), s2 = F##_mul(q.y, F##_mul(p.z, z1z1));          \
        if (F##_eq(u1, u2)) return F##_eq(s1, s2) ? T##_double(p) : T##_infinity();               \
        FT h = F##_sub(u2, u1), r = F##_sub(s2, s1);                                              \
        FT hh = F##_mul(h, h), hhh = F##_mul(h, hh), v = F##_mul(u1, hh);                         \
        T o;                                                                                      \
        o.x = F##_sub(F##_sub(F##_mul(r, r), hhh), F##_add(v, v));                                \
        o.y = F##_sub(F##_mul(r, F##_sub(v, o.x)), F##_mul(s1, hhh));                             \
        o.z = F##_mul(h, F##_mul(p.z, q.z));                                                      \
        return o;                                                                                 \
    }                                                                                             \
    EVM_FN_BIG T T##_mul(T p, const u8 *scalar, int n) {                                          \
        T r = T##_infinity();                                                                     \
        for (int i = 0; i < 8 * n; i++) {                                                         \
            r = T##_double(r);                                                                    \
            if ((scalar[i / 8] >> (7 - i % 8)) & 1) r = T##_add(r, p);                            \
        }                                                                                         \
        return r;                                                                                 \
    }

BN_JACOBIAN(bn_g1, bn, bnf)
BN_JACOBIAN(bn_g2, bn2, bnf2)

/* A G1 point from 64 bytes (EIP-196): coordinates below p, (0, 0) the infinity, else on
 * y^2 = x^3 + 3. Returns 0 when invalid. */
EVM_FN_BIG int bn_g1_read(const u8 *in, bn_g1 *out) {
    bnf x, y;
    if (!bn_read(in, &x) || !bn_read(in + 32, &y)) return 0;
    if (bn_is_zero(x) && bn_is_zero(y)) {
        *out = bn_g1_infinity();
        return 1;
    }
    bnf three = bn_add(bn_add(bn_one(), bn_one()), bn_one());
    if (!bn_eq(bn_mul(y, y), bn_add(bn_mul(x, bn_mul(x, x)), three))) return 0;
    out->x = x;
    out->y = y;
    out->z = bn_one();
    return 1;
}

/* The point as 64 bytes, (0, 0) for the infinity. */
EVM_FN_BIG void bn_g1_write(bn_g1 p, u8 *out) {
    if (bn_is_zero(p.z)) {
        evm_zero(out, 64);
        return;
    }
    bnf zi = bn_inv(p.z), zi2 = bn_mul(zi, zi);
    u256_to_be(bn_from_mont(bn_mul(p.x, zi2)), out);
    u256_to_be(bn_from_mont(bn_mul(p.y, bn_mul(zi2, zi))), out + 32);
}

/* ECADD on 128 bytes of input (zero-padded by the caller); 0 when a point is invalid. */
EVM_FN_BIG int evm_bn_add(const u8 *in, u8 *out) {
    bn_g1 p, q;
    if (!bn_g1_read(in, &p) || !bn_g1_read(in + 64, &q)) return 0;
    bn_g1_write(bn_g1_add(p, q), out);
    return 1;
}

/* ECMUL on 96 bytes of input: the point times the 256-bit scalar (not reduced: r is the
 * point's order anyway). */
EVM_FN_BIG int evm_bn_mul(const u8 *in, u8 *out) {
    bn_g1 p;
    if (!bn_g1_read(in, &p)) return 0;
    bn_g1_write(bn_g1_mul(p, in + 64, 32), out);
    return 1;
}

/* ---- Fp12 = Fp2[w] / (w^6 - xi) ------------------------------------------------------------- */

typedef struct {
    bnf2 c[6]; /* coefficients of w^0..w^5 */
} bnf12;

EVM_FN bnf12 bn12_one(void) {
    bnf12 r;
    r.c[0] = bn2_one();
    for (int i = 1; i < 6; i++) r.c[i] = bn2_zero();
    return r;
}

EVM_FN int bn12_is_one(const bnf12 *x) {
    if (!bn2_eq(x->c[0], bn2_one())) return 0;
    for (int i = 1; i < 6; i++)
        if (!bn2_is_zero(x->c[i])) return 0;
    return 1;
}

/* t[0..10] (products of degree up to 10) folded by w^6 = xi into r. */
EVM_FN void bn12_fold(const bnf2 *t, bnf12 *r) {
    for (int k = 0; k < 5; k++) r->c[k] = bn2_add(t[k], bn2_mul_xi(t[k + 6]));
    r->c[5] = t[5];
}

EVM_FN_BIG void bn12_mul(const bnf12 *x, const bnf12 *y, bnf12 *r) {
    bnf2 t[11];
    for (int k = 0; k < 11; k++) t[k] = bn2_zero();
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++) t[i + j] = bn2_add(t[i + j], bn2_mul(x->c[i], y->c[j]));
    bn12_fold(t, r);
}

/* x *= l0 + l1 w + l3 w^3 (a line's value: l0 in Fp). */
EVM_FN_BIG void bn12_mul_line(bnf12 *x, bnf l0, bnf2 l1, bnf2 l3) {
    bnf2 t[11];
    for (int k = 0; k < 11; k++) t[k] = bn2_zero();
    for (int i = 0; i < 6; i++) {
        t[i] = bn2_add(t[i], bn2_scale(x->c[i], l0));
        t[i + 1] = bn2_add(t[i + 1], bn2_mul(x->c[i], l1));
        t[i + 3] = bn2_add(t[i + 3], bn2_mul(x->c[i], l3));
    }
    bn12_fold(t, x);
}

/* Fp6 = Fp2[v] / (v^3 - xi), v = w^2: the even and odd halves of an Fp12 element. */
typedef struct {
    bnf2 c[3];
} bnf6;

EVM_FN_BIG bnf6 bn6_mul(bnf6 x, bnf6 y) {
    bnf2 t[5];
    for (int k = 0; k < 5; k++) t[k] = bn2_zero();
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) t[i + j] = bn2_add(t[i + j], bn2_mul(x.c[i], y.c[j]));
    bnf6 r;
    r.c[0] = bn2_add(t[0], bn2_mul_xi(t[3]));
    r.c[1] = bn2_add(t[1], bn2_mul_xi(t[4]));
    r.c[2] = t[2];
    return r;
}

EVM_FN_BIG bnf6 bn6_inv(bnf6 x) {
    bnf2 c0 = x.c[0], c1 = x.c[1], c2 = x.c[2];
    bnf2 t0 = bn2_sub(bn2_mul(c0, c0), bn2_mul_xi(bn2_mul(c1, c2)));
    bnf2 t1 = bn2_sub(bn2_mul_xi(bn2_mul(c2, c2)), bn2_mul(c0, c1));
    bnf2 t2 = bn2_sub(bn2_mul(c1, c1), bn2_mul(c0, c2));
    bnf2 d = bn2_add(bn2_mul(c0, t0), bn2_mul_xi(bn2_add(bn2_mul(c2, t1), bn2_mul(c1, t2))));
    d = bn2_inv(d);
    bnf6 r;
    r.c[0] = bn2_mul(t0, d);
    r.c[1] = bn2_mul(t1, d);
    r.c[2] = bn2_mul(t2, d);
    return r;
}

/* 1 / (A + B w) = (A - B w) / (A^2 - B^2 v) with A, B in Fp6. */
EVM_FN_BIG void bn12_inv(const bnf12 *x, bnf12 *r) {
    bnf6 a = {{x->c[0], x->c[2], x->c[4]}}, b = {{x->c[1], x->c[3], x->c[5]}};
    bnf6 aa = bn6_mul(a, a), bb = bn6_mul(b, b);
    bnf6 d; /* A^2 - v B^2 */
    d.c[0] = bn2_sub(aa.c[0], bn2_mul_xi(bb.c[2]));
    d.c[1] = bn2_sub(aa.c[1], bb.c[0]);
    d.c[2] = bn2_sub(aa.c[2], bb.c[1]);
    d = bn6_inv(d);
    a = bn6_mul(a, d);
    b = bn6_mul(b, d);
    for (int i = 0; i < 3; i++) {
        r->c[2 * i] = a.c[i];
        r->c[2 * i + 1] = bn2_neg(b.c[i]);
    }
}

/* Constants (plain form; converted at use): xi^((p-1)/3), xi^((p-1)/2) for the p-Frobenius of
 * a twist point, xi^((p^2-1)/3), xi^((p^2-1)/2) (in Fp) for the p^2 one, and
 * gamma^i = xi^(i (p^2-1)/6) (in Fp) for the p^2-Frobenius of Fp12. */
EVM_TABLE u64 BN_FROB1_X[2][4] = {
    {0x99e39557176f553dULL, 0xb78cc310c2c3330cULL, 0x4c0bec3cf559b143ULL, 0x2fb347984f7911f7ULL},
    {0x1665d51c640fcba2ULL, 0x32ae2a1d0b7c9dceULL, 0x4ba4cc8bd75a0794ULL, 0x16c9e55061ebae20ULL},
};
EVM_TABLE u64 BN_FROB1_Y[2][4] = {
    {0xdc54014671a0135aULL, 0xdbaae0eda9c95998ULL, 0xdc5ec698b6e2f9b9ULL, 0x063cf305489af5dcULL},
    {0x82d37f632623b0e3ULL, 0x21807dc98fa25bd2ULL, 0x0704b5a7ec796f2bULL, 0x07c03cbcac41049aULL},
};
EVM_TABLE u64 BN_FROB2_X[4] = {0xe4bd44e5607cfd48ULL, 0xc28f069fbb966e3dULL, 0x5e6dd9e7e0acccb0ULL, 0x30644e72e131a029ULL};
EVM_TABLE u64 BN_FROB2_Y[4] = {0x3c208c16d87cfd46ULL, 0x97816a916871ca8dULL, 0xb85045b68181585dULL, 0x30644e72e131a029ULL};
EVM_TABLE u64 BN_GAMMA2[6][4] = {
    {0x0000000000000001ULL, 0x0000000000000000ULL, 0x0000000000000000ULL, 0x0000000000000000ULL},
    {0xe4bd44e5607cfd49ULL, 0xc28f069fbb966e3dULL, 0x5e6dd9e7e0acccb0ULL, 0x30644e72e131a029ULL},
    {0xe4bd44e5607cfd48ULL, 0xc28f069fbb966e3dULL, 0x5e6dd9e7e0acccb0ULL, 0x30644e72e131a029ULL},
    {0x3c208c16d87cfd46ULL, 0x97816a916871ca8dULL, 0xb85045b68181585dULL, 0x30644e72e131a029ULL},
    {0x5763473177fffffeULL, 0xd4f263f1acdb5c4fULL, 0x59e26bcea0d48bacULL, 0x0000000000000000ULL},
    {0x5763473177ffffffULL, 0xd4f263f1acdb5c4fULL, 0x59e26bcea0d48bacULL, 0x0000000000000000ULL},
};
/* The hard part of the final exponent, (p^4 - p^2 + 1) / r, big-endian (761 bits). */
EVM_TABLE u8 BN_HARD_BE[96] = {
    0x01, 0xba, 0xaa, 0x71, 0x0b, 0x07, 0x59, 0xad, 0x33, 0x1e, 0xc1, 0x51, 0x83, 0x17, 0x7f, 0xaf,
    0x6c, 0x0e, 0xb5, 0x22, 0xd5, 0xb1, 0x22, 0x78, 0x4e, 0x52, 0x9a, 0x58, 0x61, 0x87, 0x6f, 0x6b,
    0x3b, 0x1b, 0x13, 0x55, 0xd1, 0x89, 0x22, 0x7d, 0x79, 0x58, 0x1e, 0x16, 0xf3, 0xfd, 0x90, 0xc6,
    0x6b, 0x88, 0x7d, 0x56, 0xd5, 0x09, 0x5f, 0x23, 0xaa, 0xa4, 0x41, 0xe3, 0x95, 0x4b, 0xcf, 0x8a,
    0xdc, 0xc7, 0xb4, 0x4c, 0x87, 0xcd, 0xba, 0xcf, 0xf1, 0x15, 0x4e, 0x7e, 0x1d, 0xa0, 0x14, 0xfd,
    0x5a, 0xbf, 0x5c, 0xc4, 0xf4, 0x9c, 0x36, 0xd4, 0xe8, 0x1b, 0xb4, 0x82, 0xcc, 0xdf, 0x42, 0xb1,
};
/* 6t + 2, the optimal ate loop count (65 bits), without its top bit 2^64. */
#define BN_ATE_LOOP 0x9d797039be763ba8ULL

EVM_FN bnf bn_const(const u64 *limbs) { return bn_to_mont(u256_load(limbs)); }
EVM_FN bnf2 bn2_const(const u64 (*pair)[4]) { return bn2_of(bn_const(pair[0]), bn_const(pair[1])); }

/* f^(p^2): w^i picks up gamma^i, Fp2 coefficients are fixed. */
EVM_FN_BIG void bn12_frob2(bnf12 *x) {
    for (int i = 1; i < 6; i++) x->c[i] = bn2_scale(x->c[i], bn_const(BN_GAMMA2[i]));
}

/* f^((p^12 - 1) / r) == 1 */
EVM_FN_BIG int bn_final_exp_is_one(bnf12 *f) {
    bnf12 conj = *f, inv, g;
    for (int i = 1; i < 6; i += 2) conj.c[i] = bn2_neg(conj.c[i]); /* f^(p^6): w -> -w */
    bn12_inv(f, &inv);
    bn12_mul(&conj, &inv, &g); /* f^(p^6 - 1) */
    bnf12 h = g;
    bn12_frob2(&h);
    bn12_mul(&h, &g, &g); /* ^(p^2 + 1) */
    bnf12 r = bn12_one();
    for (int i = 0; i < 8 * 96; i++) {
        bn12_mul(&r, &r, &r);
        if ((BN_HARD_BE[i / 8] >> (7 - i % 8)) & 1) bn12_mul(&r, &g, &r);
    }
    return bn12_is_one(&r);
}

/* An affine point on the twist. */
typedef struct {
    bnf2 x, y;
    int infinity;
} bn_twist;

/* f *= the line through T and Q (the tangent when they are equal) at P = (px, py); T += Q. */
EVM_FN_BIG void bn_line(bnf12 *f, bn_twist *t, const bn_twist *q, bnf px, bnf py) {
    if (t->infinity) return; /* unreachable for points of order r: the loop's multiples are not 0 */
    bnf2 lambda;
    if (bn2_eq(t->x, q->x)) {
        if (!bn2_eq(t->y, q->y) || bn2_is_zero(t->y)) {
            t->infinity = 1; /* a vertical line: its value is sent to 1 */
            return;
        }
        bnf2 xx = bn2_mul(t->x, t->x);
        lambda = bn2_mul(bn2_add(bn2_add(xx, xx), xx), bn2_inv(bn2_add(t->y, t->y)));
    } else {
        lambda = bn2_mul(bn2_sub(q->y, t->y), bn2_inv(bn2_sub(q->x, t->x)));
    }
    /* y_P - y_T w^3 - lambda w (x_P - x_T w^2) */
    bn12_mul_line(f, py, bn2_neg(bn2_scale(lambda, px)), bn2_sub(bn2_mul(lambda, t->x), t->y));
    bnf2 x3 = bn2_sub(bn2_sub(bn2_mul(lambda, lambda), t->x), q->x);
    t->y = bn2_sub(bn2_mul(lambda, bn2_sub(t->x, x3)), t->y);
    t->x = x3;
}

/* f *= the Miller loop of the optimal ate pairing of (Q, P), both finite. */
EVM_FN_BIG void bn_miller(bnf12 *f, const bn_twist *q, bnf px, bnf py) {
    bnf12 m = bn12_one();
    bn_twist t = *q;
    for (int i = 63; i >= 0; i--) {
        bn12_mul(&m, &m, &m);
        bn_line(&m, &t, &t, px, py);
        if ((BN_ATE_LOOP >> i) & 1) bn_line(&m, &t, q, px, py);
    }
    bn_twist q1, q2;
    q1.x = bn2_mul(bn2_conj(q->x), bn2_const(BN_FROB1_X));
    q1.y = bn2_mul(bn2_conj(q->y), bn2_const(BN_FROB1_Y));
    q1.infinity = 0;
    q2.x = bn2_scale(q->x, bn_const(BN_FROB2_X));
    q2.y = bn2_neg(bn2_scale(q->y, bn_const(BN_FROB2_Y)));
    q2.infinity = 0;
    bn_line(&m, &t, &q1, px, py);
    bn_line(&m, &t, &q2, px, py);
    bn12_mul(f, &m, f);
}

/* A G2 point from 128 bytes (EIP-197: x imaginary, x real, y imaginary, y real), checked to be
 * below p, on the twist, and of order r; (0, 0) the infinity. Returns 0 when invalid. */
EVM_FN_BIG int bn_g2_read(const u8 *in, bn_twist *out) {
    bnf xi, xr, yi, yr;
    if (!bn_read(in, &xi) || !bn_read(in + 32, &xr) || !bn_read(in + 64, &yi) || !bn_read(in + 96, &yr))
        return 0;
    out->x = bn2_of(xr, xi);
    out->y = bn2_of(yr, yi);
    out->infinity = bn2_is_zero(out->x) && bn2_is_zero(out->y);
    if (out->infinity) return 1;
    /* b' = 3 / xi */
    bnf three = bn_add(bn_add(bn_one(), bn_one()), bn_one());
    bnf2 b = bn2_mul(bn2_of(three, bn_zero()), bn2_inv(bn2_mul_xi(bn2_one())));
    bnf2 rhs = bn2_add(bn2_mul(out->x, bn2_mul(out->x, out->x)), b);
    if (!bn2_eq(bn2_mul(out->y, out->y), rhs)) return 0;
    bn_g2 j = {out->x, out->y, bn2_one()};
    return bn2_is_zero(bn_g2_mul(j, BN_R_BE, 32).z);
}

/* The pairing check on len bytes (a multiple of 192): 1 when the product of the pairings is 1,
 * 0 when not, -1 when an input is invalid. */
EVM_FN_BIG int evm_bn_pairing(const u8 *in, u64 len) {
    bnf12 f = bn12_one();
    for (u64 at = 0; at < len; at += 192) {
        bn_g1 p;
        bn_twist q;
        if (!bn_g1_read(in + at, &p) || !bn_g2_read(in + at + 64, &q)) return -1;
        if (bn_is_zero(p.z) || q.infinity) continue;
        bn_miller(&f, &q, p.x, p.y);
    }
    return bn_final_exp_is_one(&f);
}

#endif
