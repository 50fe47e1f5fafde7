/* BN254 (alt_bn128): the precompiles ECADD (0x06), ECMUL (0x07) and the pairing check (0x08)
 * of EIP-196/197 at EIP-1108's prices.
 *
 * Fp in Montgomery form on four 64-bit limbs; Fp2 = Fp[u]/(u^2 + 1); Fp6 = Fp2[v]/(v^3 - xi)
 * with xi = 9 + u; Fp12 = Fp6[w]/(w^2 - v), so w^6 = xi (py_ecc's FQ12 is the same field: its
 * w^6 - 9 is our u). G1 in Jacobian coordinates. G2 lives on the twist y^2 = x^3 + 3/xi over
 * Fp2, mapped into E(Fp12) by (x, y) -> (x w^2, y w^3). The pairing is the optimal ate
 * pairing: a Miller loop over 6u + 2 in homogeneous projective twist coordinates whose lines
 * are sparse in Fp12 and scaled by Fp2 factors (which, like the left-out vertical lines, the
 * final exponentiation sends to 1), two more lines with the Frobenius images of Q, then the
 * final exponentiation f^((p^12 - 1) / r): its easy part by conjugation, inversion and the
 * p^2-Frobenius, its hard part by the u-adic chain go-ethereum's bn256 uses. The constants
 * were computed with py_ecc; the differential tests (tests/native/test_precompiles.py) check
 * the whole against py-evm's precompiles.
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

/* ---- Fp6 = Fp2[v] / (v^3 - xi) and Fp12 = Fp6[w] / (w^2 - v) --------------------------------- */

typedef struct {
    bnf2 c[3]; /* coefficients of v^0..v^2 */
} bnf6;

/* An Fp12 element a + b w; as six Fp2 coefficients of w^0..w^5 it is (a0, b0, a1, b1, a2, b2). */
typedef struct {
    bnf6 a, b;
} bnf12;

EVM_FN bnf6 bn6_add(bnf6 x, bnf6 y) {
    for (int i = 0; i < 3; i++) x.c[i] = bn2_add(x.c[i], y.c[i]);
    return x;
}

EVM_FN bnf6 bn6_sub(bnf6 x, bnf6 y) {
    for (int i = 0; i < 3; i++) x.c[i] = bn2_sub(x.c[i], y.c[i]);
    return x;
}

EVM_FN bnf6 bn6_neg(bnf6 x) {
    for (int i = 0; i < 3; i++) x.c[i] = bn2_neg(x.c[i]);
    return x;
}

/* x * v */
EVM_FN bnf6 bn6_mul_v(bnf6 x) {
    bnf6 r = {{bn2_mul_xi(x.c[2]), x.c[0], x.c[1]}};
    return r;
}

/* Karatsuba: 6 Fp2 products. */
EVM_FN_BIG bnf6 bn6_mul(bnf6 x, bnf6 y) {
    bnf2 v0 = bn2_mul(x.c[0], y.c[0]), v1 = bn2_mul(x.c[1], y.c[1]), v2 = bn2_mul(x.c[2], y.c[2]);
    bnf6 r;
    r.c[0] = bn2_add(v0, bn2_mul_xi(bn2_sub(bn2_sub(bn2_mul(bn2_add(x.c[1], x.c[2]), bn2_add(y.c[1], y.c[2])), v1), v2)));
    r.c[1] = bn2_add(bn2_sub(bn2_sub(bn2_mul(bn2_add(x.c[0], x.c[1]), bn2_add(y.c[0], y.c[1])), v0), v1), bn2_mul_xi(v2));
    r.c[2] = bn2_add(bn2_sub(bn2_sub(bn2_mul(bn2_add(x.c[0], x.c[2]), bn2_add(y.c[0], y.c[2])), v0), v2), v1);
    return r;
}

EVM_FN_BIG bnf6 bn6_inv(bnf6 x) {
    bnf2 c0 = x.c[0], c1 = x.c[1], c2 = x.c[2];
    bnf2 t0 = bn2_sub(bn2_mul(c0, c0), bn2_mul_xi(bn2_mul(c1, c2)));
    bnf2 t1 = bn2_sub(bn2_mul_xi(bn2_mul(c2, c2)), bn2_mul(c0, c1));
    bnf2 t2 = bn2_sub(bn2_mul(c1, c1), bn2_mul(c0, c2));
    bnf2 d = bn2_inv(bn2_add(bn2_mul(c0, t0), bn2_mul_xi(bn2_add(bn2_mul(c2, t1), bn2_mul(c1, t2)))));
    bnf6 r = {{bn2_mul(t0, d), bn2_mul(t1, d), bn2_mul(t2, d)}};
    return r;
}

EVM_FN bnf12 bn12_one(void) {
    bnf12 r;
    r.a.c[0] = bn2_one();
    r.a.c[1] = r.a.c[2] = r.b.c[0] = r.b.c[1] = r.b.c[2] = bn2_zero();
    return r;
}

EVM_FN int bn12_is_one(const bnf12 *x) {
    return bn2_eq(x->a.c[0], bn2_one()) && bn2_is_zero(x->a.c[1]) && bn2_is_zero(x->a.c[2]) &&
           bn2_is_zero(x->b.c[0]) && bn2_is_zero(x->b.c[1]) && bn2_is_zero(x->b.c[2]);
}

/* r = x * y (Karatsuba over Fp6: 18 Fp2 products); r may be x or y. */
EVM_FN_BIG void bn12_mul(const bnf12 *x, const bnf12 *y, bnf12 *r) {
    bnf6 aa = bn6_mul(x->a, y->a), bb = bn6_mul(x->b, y->b);
    bnf6 cross = bn6_mul(bn6_add(x->a, x->b), bn6_add(y->a, y->b));
    r->b = bn6_sub(bn6_sub(cross, aa), bb);
    r->a = bn6_add(aa, bn6_mul_v(bb));
}

/* f^(p^6) = a - b w: the conjugate, also the inverse once f is in the cyclotomic subgroup. */
EVM_FN void bn12_conj(bnf12 *x) { x->b = bn6_neg(x->b); }

/* 1 / (a + b w) = (a - b w) / (a^2 - b^2 v) */
EVM_FN_BIG void bn12_inv(const bnf12 *x, bnf12 *r) {
    bnf6 d = bn6_inv(bn6_sub(bn6_mul(x->a, x->a), bn6_mul_v(bn6_mul(x->b, x->b))));
    r->a = bn6_mul(x->a, d);
    r->b = bn6_neg(bn6_mul(x->b, d));
}

/* Constants (plain form, converted where used): delta^i = xi^(i (p-1)/6), by which w^i is
 * multiplied by the p-Frobenius, and gamma^i = xi^(i (p^2-1)/6) (in Fp) for the p^2 one. The
 * twist's Frobenius multiplies x by delta^2 (gamma^2) and y by delta^3 (gamma^3). */
EVM_TABLE u64 BN_DELTA[6][2][4] = {
    {{0x0000000000000001ULL, 0x0000000000000000ULL, 0x0000000000000000ULL, 0x0000000000000000ULL}, {0x0000000000000000ULL, 0x0000000000000000ULL, 0x0000000000000000ULL, 0x0000000000000000ULL}},
    {{0xd60b35dadcc9e470ULL, 0x5c521e08292f2176ULL, 0xe8b99fdd76e68b60ULL, 0x1284b71c2865a7dfULL}, {0xca5cf05f80f362acULL, 0x747992778eeec7e5ULL, 0xa6327cfe12150b8eULL, 0x246996f3b4fae7e6ULL}},
    {{0x99e39557176f553dULL, 0xb78cc310c2c3330cULL, 0x4c0bec3cf559b143ULL, 0x2fb347984f7911f7ULL}, {0x1665d51c640fcba2ULL, 0x32ae2a1d0b7c9dceULL, 0x4ba4cc8bd75a0794ULL, 0x16c9e55061ebae20ULL}},
    {{0xdc54014671a0135aULL, 0xdbaae0eda9c95998ULL, 0xdc5ec698b6e2f9b9ULL, 0x063cf305489af5dcULL}, {0x82d37f632623b0e3ULL, 0x21807dc98fa25bd2ULL, 0x0704b5a7ec796f2bULL, 0x07c03cbcac41049aULL}},
    {{0x848a1f55921ea762ULL, 0xd33365f7be94ec72ULL, 0x80f3c0b75a181e84ULL, 0x05b54f5e64eea801ULL}, {0xc13b4711cd2b8126ULL, 0x3685d2ea1bdec763ULL, 0x9f3a80b03b0b1c92ULL, 0x2c145edbe7fd8aeeULL}},
    {{0x2ea2c810eab7692fULL, 0x425c459b55aa1bd3ULL, 0xe93a3661a4353ff4ULL, 0x0183c1e74f798649ULL}, {0x24c6b8ee6e0c2c4bULL, 0xb080cb99678e2ac0ULL, 0xa27fb246c7729f7dULL, 0x12acf2ca76fd0675ULL}},
};
EVM_TABLE u64 BN_GAMMA2[6][4] = {
    {0x0000000000000001ULL, 0x0000000000000000ULL, 0x0000000000000000ULL, 0x0000000000000000ULL},
    {0xe4bd44e5607cfd49ULL, 0xc28f069fbb966e3dULL, 0x5e6dd9e7e0acccb0ULL, 0x30644e72e131a029ULL},
    {0xe4bd44e5607cfd48ULL, 0xc28f069fbb966e3dULL, 0x5e6dd9e7e0acccb0ULL, 0x30644e72e131a029ULL},
    {0x3c208c16d87cfd46ULL, 0x97816a916871ca8dULL, 0xb85045b68181585dULL, 0x30644e72e131a029ULL},
    {0x5763473177fffffeULL, 0xd4f263f1acdb5c4fULL, 0x59e26bcea0d48bacULL, 0x0000000000000000ULL},
    {0x5763473177ffffffULL, 0xd4f263f1acdb5c4fULL, 0x59e26bcea0d48bacULL, 0x0000000000000000ULL},
};
/* The BN parameter u (t), 63 bits: p and r are polynomials in it, and the optimal ate loop
 * runs over 6u + 2 (65 bits), here without its top bit 2^64. */
#define BN_U 0x44e992b44a6909f1ULL
#define BN_ATE_LOOP 0x9d797039be763ba8ULL

EVM_FN bnf bn_const(const u64 *limbs) { return bn_to_mont(u256_load(limbs)); }
EVM_FN bnf2 bn2_const(const u64 (*pair)[4]) { return bn2_of(bn_const(pair[0]), bn_const(pair[1])); }

/* Coefficient i of w^i (0..5) of x. */
EVM_FN bnf2 *bn12_coeff(bnf12 *x, int i) { return i % 2 ? &x->b.c[i / 2] : &x->a.c[i / 2]; }

/* x^p: each Fp2 coefficient is conjugated, w^i picks up delta^i. */
EVM_FN_BIG void bn12_frob(bnf12 *x) {
    for (int i = 0; i < 6; i++) {
        bnf2 *c = bn12_coeff(x, i);
        *c = bn2_conj(*c);
        if (i) *c = bn2_mul(*c, bn2_const(BN_DELTA[i]));
    }
}

/* x^(p^2): the coefficients are fixed, w^i picks up gamma^i (in Fp). */
EVM_FN_BIG void bn12_frob2(bnf12 *x) {
    for (int i = 1; i < 6; i++) {
        bnf2 *c = bn12_coeff(x, i);
        *c = bn2_scale(*c, bn_const(BN_GAMMA2[i]));
    }
}

/* r = x^u (square-and-multiply over u's 63 bits); r must not be x. */
EVM_FN_BIG void bn12_pow_u(const bnf12 *x, bnf12 *r) {
    *r = *x;
    for (int i = 61; i >= 0; i--) {
        bn12_mul(r, r, r);
        if ((BN_U >> i) & 1) bn12_mul(r, x, r);
    }
}

/* f^((p^12 - 1) / r) == 1. The easy part (p^6 - 1)(p^2 + 1) by conjugation, one inversion and
 * the p^2-Frobenius; the hard part (p^4 - p^2 + 1) / r by the u-adic addition chain of Devegili,
 * Scott and Dahab (as go-ethereum's bn256 has it), which raises to a fixed multiple of it prime
 * to r: the same elements are 1. w holds BN_FINAL_EXP_WORK elements: kept out of the GPU's
 * per-thread stack, which every thread reserves whether it runs a pairing or not. */
#define BN_FINAL_EXP_WORK 12
EVM_FN_BIG int bn_final_exp_is_one(const bnf12 *f, bnf12 *w) {
    bnf12 *t = w, *inv = w + 1, *fp = w + 2, *fp2 = w + 3, *fp3 = w + 4, *fu = w + 5, *fu2 = w + 6;
    bnf12 *fu3 = w + 7, *y0 = w + 8, *y4 = w + 9, *y6 = w + 10, *tmp = w + 11;
    *t = *f;
    bn12_conj(t);
    bn12_inv(f, inv);
    bn12_mul(t, inv, t); /* f^(p^6 - 1) */
    *inv = *t;
    bn12_frob2(inv);
    bn12_mul(t, inv, t); /* ^(p^2 + 1): t is in the cyclotomic subgroup, conj inverts it */
    *fp = *fp2 = *t;
    bn12_frob(fp);
    bn12_frob2(fp2);
    *fp3 = *fp2;
    bn12_frob(fp3);
    bn12_pow_u(t, fu);
    bn12_pow_u(fu, fu2);
    bn12_pow_u(fu2, fu3);
    bn12_mul(fp, fp2, y0);
    bn12_mul(y0, fp3, y0);
    bnf12 *y1 = t, *y2 = fp, *y3 = fp2, *y5 = fp3, *t0 = inv, *t1 = tmp;
    bn12_conj(y1);
    *y2 = *fu2;
    bn12_frob2(y2);
    *y3 = *fu;
    bn12_frob(y3);
    bn12_conj(y3);
    *tmp = *fu2;
    bn12_frob(tmp);
    bn12_mul(fu, tmp, y4);
    bn12_conj(y4);
    *y5 = *fu2;
    bn12_conj(y5);
    *tmp = *fu3;
    bn12_frob(tmp);
    bn12_mul(fu3, tmp, y6);
    bn12_conj(y6);
    bn12_mul(y6, y6, t0);
    bn12_mul(t0, y4, t0);
    bn12_mul(t0, y5, t0);
    bn12_mul(y3, y5, t1);
    bn12_mul(t1, t0, t1);
    bn12_mul(t0, y2, t0);
    bn12_mul(t1, t1, t1);
    bn12_mul(t1, t0, t1);
    bn12_mul(t1, t1, t1);
    bn12_mul(t1, y1, t0);
    bn12_mul(t1, y0, t1);
    bn12_mul(t0, t0, t0);
    bn12_mul(t0, t1, t0);
    return bn12_is_one(t0);
}

/* f *= l0 + l1 w + l3 w^3 (a line's value; w^3 = v w): a = (l0, 0, 0), b = (l1, l3, 0). */
EVM_FN_BIG void bn12_mul_line(bnf12 *f, bnf2 l0, bnf2 l1, bnf2 l3) {
    bnf6 a = f->a, b = f->b;
    bnf6 aa; /* a * l0 */
    for (int i = 0; i < 3; i++) aa.c[i] = bn2_mul(a.c[i], l0);
    /* b * (l1 + l3 v), sparse Karatsuba */
    bnf2 v0 = bn2_mul(b.c[0], l1), v1 = bn2_mul(b.c[1], l3);
    bnf6 bb;
    bb.c[0] = bn2_add(v0, bn2_mul_xi(bn2_mul(b.c[2], l3)));
    bb.c[1] = bn2_sub(bn2_sub(bn2_mul(bn2_add(b.c[0], b.c[1]), bn2_add(l1, l3)), v0), v1);
    bb.c[2] = bn2_add(bn2_mul(b.c[2], l1), v1);
    /* (a + b)(l0 + l1 + l3 v) for the cross term */
    bnf6 s = bn6_add(a, b), cross;
    bnf2 m0 = bn2_add(l0, l1);
    bnf2 u0 = bn2_mul(s.c[0], m0), u1 = bn2_mul(s.c[1], l3);
    cross.c[0] = bn2_add(u0, bn2_mul_xi(bn2_mul(s.c[2], l3)));
    cross.c[1] = bn2_sub(bn2_sub(bn2_mul(bn2_add(s.c[0], s.c[1]), bn2_add(m0, l3)), u0), u1);
    cross.c[2] = bn2_add(bn2_mul(s.c[2], m0), u1);
    f->b = bn6_sub(bn6_sub(cross, aa), bb);
    f->a = bn6_add(aa, bn6_mul_v(bb));
}

/* An affine point on the twist. */
typedef struct {
    bnf2 x, y;
    int infinity;
} bn_twist;

/* A point of the twist in homogeneous projective coordinates (x = X / Z, y = Y / Z). */
typedef struct {
    bnf2 x, y, z;
} bn_proj;

/* f *= the tangent at T evaluated at P = (px, py); T = 2T. The line
 * y_P - y_T w^3 - lambda w (x_P - x_T w^2), lambda = 3X^2 / (2YZ), times 2YZ^2 (an Fp2 factor,
 * which the final exponentiation sends to 1). */
EVM_FN_BIG void bn_double_step(bnf12 *f, bn_proj *t, bnf px, bnf py) {
    bnf2 xx = bn2_mul(t->x, t->x);
    bnf2 w = bn2_add(bn2_add(xx, xx), xx); /* 3X^2 */
    bnf2 s = bn2_mul(t->y, t->z);          /* YZ */
    bnf2 l0 = bn2_scale(bn2_mul(bn2_add(s, s), t->z), py);
    bnf2 l1 = bn2_neg(bn2_scale(bn2_mul(w, t->z), px));
    bnf2 yy = bn2_mul(t->y, t->y);
    bnf2 l3 = bn2_sub(bn2_mul(w, t->x), bn2_mul(bn2_add(yy, yy), t->z));
    bn12_mul_line(f, l0, l1, l3);
    /* W = 3X^2, S = YZ, B = XYS, H = W^2 - 8B: X' = 2HS, Y' = W(4B - H) - 8Y^2S^2, Z' = 8S^3 */
    bnf2 b = bn2_mul(bn2_mul(t->x, t->y), s);
    bnf2 b4 = bn2_add(b, b);
    b4 = bn2_add(b4, b4);
    bnf2 h = bn2_sub(bn2_mul(w, w), bn2_add(b4, b4));
    bnf2 ss = bn2_mul(s, s);
    bnf2 y8 = bn2_mul(yy, ss);
    y8 = bn2_add(y8, y8);
    y8 = bn2_add(y8, y8);
    y8 = bn2_add(y8, y8);
    bnf2 hs = bn2_mul(h, s);
    t->x = bn2_add(hs, hs);
    t->y = bn2_sub(bn2_mul(w, bn2_sub(b4, h)), y8);
    bnf2 s3 = bn2_mul(ss, s);
    s3 = bn2_add(s3, s3);
    s3 = bn2_add(s3, s3);
    t->z = bn2_add(s3, s3);
}

/* f *= the line through T and Q (affine, T != +-Q: T and Q are distinct multiples of a point
 * of order r below r) at P; T += Q. With theta = y_Q Z - Y, delta = x_Q Z - X (lambda =
 * theta / delta), the line y_P - lambda x_P w + (lambda x_Q - y_Q) w^3 times delta. */
EVM_FN_BIG void bn_add_step(bnf12 *f, bn_proj *t, const bn_twist *q, bnf px, bnf py) {
    bnf2 theta = bn2_sub(bn2_mul(q->y, t->z), t->y), delta = bn2_sub(bn2_mul(q->x, t->z), t->x);
    bn12_mul_line(f, bn2_scale(delta, py), bn2_neg(bn2_scale(theta, px)),
                  bn2_sub(bn2_mul(theta, q->x), bn2_mul(delta, q->y)));
    /* A = theta^2 Z - delta^3 - 2 delta^2 X: X' = delta A, Y' = theta(delta^2 X - A) - delta^3 Y,
     * Z' = delta^3 Z */
    bnf2 dd = bn2_mul(delta, delta), ddd = bn2_mul(dd, delta), ddx = bn2_mul(dd, t->x);
    bnf2 a = bn2_sub(bn2_sub(bn2_mul(bn2_mul(theta, theta), t->z), ddd), bn2_add(ddx, ddx));
    t->y = bn2_sub(bn2_mul(theta, bn2_sub(ddx, a)), bn2_mul(ddd, t->y));
    t->x = bn2_mul(delta, a);
    t->z = bn2_mul(ddd, t->z);
}

/* f *= the Miller loop of the optimal ate pairing of (Q, P), both finite: over 6u + 2, then
 * the lines with pi(Q) and -pi^2(Q) (pi the p-Frobenius on the twist). */
EVM_FN_BIG void bn_miller(bnf12 *f, const bn_twist *q, bnf px, bnf py) {
    bnf12 m = bn12_one();
    bn_proj t = {q->x, q->y, bn2_one()};
    for (int i = 63; i >= 0; i--) {
        bn12_mul(&m, &m, &m);
        bn_double_step(&m, &t, px, py);
        if ((BN_ATE_LOOP >> i) & 1) bn_add_step(&m, &t, q, px, py);
    }
    bn_twist q1, q2;
    q1.x = bn2_mul(bn2_conj(q->x), bn2_const(BN_DELTA[2]));
    q1.y = bn2_mul(bn2_conj(q->y), bn2_const(BN_DELTA[3]));
    q2.x = bn2_scale(q->x, bn_const(BN_GAMMA2[2]));
    q2.y = bn2_neg(bn2_scale(q->y, bn_const(BN_GAMMA2[3])));
    q1.infinity = q2.infinity = 0;
    bn_add_step(&m, &t, &q1, px, py);
    bn_add_step(&m, &t, &q2, px, py);
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
 * 0 when not, -1 when an input is invalid. w holds BN_FINAL_EXP_WORK elements. */
EVM_FN_BIG int evm_bn_pairing(const u8 *in, u64 len, bnf12 *w) {
    bnf12 f = bn12_one();
    for (u64 at = 0; at < len; at += 192) {
        bn_g1 p;
        bn_twist q;
        if (!bn_g1_read(in + at, &p) || !bn_g2_read(in + at + 64, &q)) return -1;
        if (bn_is_zero(p.z) || q.infinity) continue;
        bn_miller(&f, &q, p.x, p.y);
    }
    return bn_final_exp_is_one(&f, w);
}

#endif
