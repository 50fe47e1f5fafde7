/* 256-bit unsigned words as four 64-bit limbs, least significant first. */
#ifndef EVM_U256_H
#define EVM_U256_H

#include "evm_base.h"

typedef struct {
    u64 w[4];
} u256;

EVM_FN u256 u256_of(u64 x) {
    u256 r;
    r.w[0] = x;
    r.w[1] = 0;
    r.w[2] = 0;
    r.w[3] = 0;
    return r;
}

EVM_FN u256 u256_load(const u64 *p) {
    u256 r;
    for (int i = 0; i < 4; i++) r.w[i] = p[i];
    return r;
}

EVM_FN void u256_store(u64 *p, u256 a) {
    for (int i = 0; i < 4; i++) p[i] = a.w[i];
}

/* Stack words are 32-byte aligned: the GPU moves one in two 16-byte accesses instead of four. */
#if defined(__CUDACC__)
typedef struct __attribute__((aligned(16))) {
    u64 lo, hi;
} u64x2;

EVM_FN u256 word_load(const u64 *p) {
    u64x2 a = ((const u64x2 *)p)[0], b = ((const u64x2 *)p)[1];
    u256 r;
    r.w[0] = a.lo;
    r.w[1] = a.hi;
    r.w[2] = b.lo;
    r.w[3] = b.hi;
    return r;
}

EVM_FN void word_store(u64 *p, u256 v) {
    u64x2 a, b;
    a.lo = v.w[0];
    a.hi = v.w[1];
    b.lo = v.w[2];
    b.hi = v.w[3];
    ((u64x2 *)p)[0] = a;
    ((u64x2 *)p)[1] = b;
}
#else
#define word_load u256_load
#define word_store u256_store
#endif

EVM_FN int u256_is_zero(u256 a) { return (a.w[0] | a.w[1] | a.w[2] | a.w[3]) == 0; }

/* True when the value fits in 64 bits (offsets, sizes, gas). */
EVM_FN int u256_fits64(u256 a) { return (a.w[1] | a.w[2] | a.w[3]) == 0; }

EVM_FN int u256_eq(u256 a, u256 b) {
    return ((a.w[0] ^ b.w[0]) | (a.w[1] ^ b.w[1]) | (a.w[2] ^ b.w[2]) | (a.w[3] ^ b.w[3])) == 0;
}

EVM_FN int u256_lt(u256 a, u256 b) {
    for (int i = 3; i >= 0; i--) {
        if (a.w[i] != b.w[i]) return a.w[i] < b.w[i];
    }
    return 0;
}

EVM_FN int u256_is_neg(u256 a) { return (int)(a.w[3] >> 63); }

EVM_FN int u256_slt(u256 a, u256 b) {
    int na = u256_is_neg(a), nb = u256_is_neg(b);
    if (na != nb) return na;
    return u256_lt(a, b);
}

EVM_FN u256 u256_add(u256 a, u256 b) {
    u256 r;
    u64 carry = 0;
    for (int i = 0; i < 4; i++) {
        u64 s = a.w[i] + carry;
        u64 c1 = s < carry;
        r.w[i] = s + b.w[i];
        carry = c1 + (r.w[i] < s);
    }
    return r;
}

EVM_FN u256 u256_sub(u256 a, u256 b) {
    u256 r;
    u64 borrow = 0;
    for (int i = 0; i < 4; i++) {
        u64 d = a.w[i] - b.w[i];
        u64 b1 = a.w[i] < b.w[i];
        r.w[i] = d - borrow;
        borrow = b1 + (d < borrow);
    }
    return r;
}

EVM_FN u256 u256_neg(u256 a) { return u256_sub(u256_of(0), a); }

EVM_FN u256 u256_not(u256 a) {
    for (int i = 0; i < 4; i++) a.w[i] = ~a.w[i];
    return a;
}

/* Full product of two words into eight limbs. */
EVM_FN void u256_mul_wide(u256 a, u256 b, u64 *out) {
    for (int i = 0; i < 8; i++) out[i] = 0;
    for (int i = 0; i < 4; i++) {
        u64 carry = 0;
        for (int j = 0; j < 4; j++) {
            u64 lo = a.w[i] * b.w[j];
            u64 hi = EVM_MULHI(a.w[i], b.w[j]);
            lo += carry;
            hi += lo < carry;
            u64 s = out[i + j] + lo;
            hi += s < lo;
            out[i + j] = s;
            carry = hi;
        }
        out[i + 4] = carry;
    }
}

/* Product modulo 2^256: skips the limbs that would be discarded. */
EVM_FN u256 u256_mul(u256 a, u256 b) {
    u256 r = u256_of(0);
    for (int i = 0; i < 4; i++) {
        u64 carry = 0;
        for (int j = 0; i + j < 4; j++) {
            u64 lo = a.w[i] * b.w[j];
            u64 hi = EVM_MULHI(a.w[i], b.w[j]);
            lo += carry;
            hi += lo < carry;
            u64 s = r.w[i + j] + lo;
            hi += s < lo;
            r.w[i + j] = s;
            carry = hi;
        }
    }
    return r;
}

/* Shift left by n < 256 bits. */
EVM_FN u256 u256_shl(u256 a, unsigned n) {
    u256 r = u256_of(0);
    unsigned limbs = n / 64, bits = n % 64;
    for (int i = 3; i >= (int)limbs; i--) {
        u64 v = a.w[i - limbs] << bits;
        if (bits && i - (int)limbs - 1 >= 0) v |= a.w[i - limbs - 1] >> (64 - bits);
        r.w[i] = v;
    }
    return r;
}

/* Logical shift right by n < 256 bits. */
EVM_FN u256 u256_shr(u256 a, unsigned n) {
    u256 r = u256_of(0);
    unsigned limbs = n / 64, bits = n % 64;
    for (int i = 0; i + (int)limbs < 4; i++) {
        u64 v = a.w[i + limbs] >> bits;
        if (bits && i + limbs + 1 < 4) v |= a.w[i + limbs + 1] << (64 - bits);
        r.w[i] = v;
    }
    return r;
}

/* Number of significant bits (0 for zero). */
EVM_FN unsigned u256_bitlen(u256 a) {
    for (int i = 3; i >= 0; i--) {
        if (a.w[i]) return (unsigned)(64 * i + 64 - EVM_CLZ64(a.w[i]));
    }
    return 0;
}

/* Knuth's algorithm D on 32-bit digits (Hacker's Delight, divmnu): u has m digits, v has
 * n digits with v[n-1] != 0 and m >= n; writes m-n+1 quotient digits and n remainder digits.
 * 32-bit digits keep every intermediate in 64 bits, which both compilers handle natively. */
#define EVM_DIV_MAX 17
/* The same with the caller's scratch: un holds m + 1 digits, vn n digits; q may be 0 when
 * only the remainder is wanted (MODEXP divides numbers of any length the gas allows). */
EVM_FN void evm_divmod32_buf(const u32 *u, int m, const u32 *v, int n, u32 *q, u32 *r, u32 *un, u32 *vn) {
    const u64 b = 1ULL << 32;
    if (n == 1) {
        u64 k = 0;
        for (int j = m - 1; j >= 0; j--) {
            u64 cur = k * b + u[j];
            u32 qj = (u32)(cur / v[0]);
            if (q) q[j] = qj;
            k = cur - (u64)qj * v[0];
        }
        r[0] = (u32)k;
        return;
    }
    int s = EVM_CLZ32(v[n - 1]);
    for (int i = n - 1; i > 0; i--) vn[i] = (u32)(((u64)v[i] << s) | ((u64)v[i - 1] >> (32 - s)));
    vn[0] = v[0] << s;
    un[m] = (u32)((u64)u[m - 1] >> (32 - s));
    for (int i = m - 1; i > 0; i--) un[i] = (u32)(((u64)u[i] << s) | ((u64)u[i - 1] >> (32 - s)));
    un[0] = u[0] << s;
    for (int j = m - n; j >= 0; j--) {
        u64 num = ((u64)un[j + n] << 32) | un[j + n - 1];
        u64 qhat = num / vn[n - 1];
        u64 rhat = num - qhat * vn[n - 1];
        while (qhat >= b || qhat * vn[n - 2] > ((rhat << 32) | un[j + n - 2])) {
            qhat--;
            rhat += vn[n - 1];
            if (rhat >= b) break;
        }
        i64 t;
        i64 k = 0;
        for (int i = 0; i < n; i++) {
            u64 p = qhat * vn[i];
            t = (i64)un[i + j] - k - (i64)(p & 0xFFFFFFFFULL);
            un[i + j] = (u32)t;
            k = (i64)(p >> 32) - (t >> 32);
        }
        t = (i64)un[j + n] - k;
        un[j + n] = (u32)t;
        if (t < 0) {
            qhat--;
            u64 c = 0;
            for (int i = 0; i < n; i++) {
                u64 sum = (u64)un[i + j] + vn[i] + c;
                un[i + j] = (u32)sum;
                c = sum >> 32;
            }
            un[j + n] += (u32)c;
        }
        if (q) q[j] = (u32)qhat;
    }
    for (int i = 0; i < n - 1; i++) r[i] = (u32)(((u64)un[i] >> s) | ((u64)un[i + 1] << (32 - s)));
    r[n - 1] = un[n - 1] >> s;
}

EVM_FN void evm_divmod32(const u32 *u, int m, const u32 *v, int n, u32 *q, u32 *r) {
    u32 un[EVM_DIV_MAX + 1], vn[EVM_DIV_MAX];
    evm_divmod32_buf(u, m, v, n, q, r, un, vn);
}

/* Splits 64-bit limbs into 32-bit digits; returns the count without leading zero digits. */
EVM_FN int evm_digits(const u64 *limbs, int nlimbs, u32 *d) {
    int n = 0;
    for (int i = 0; i < nlimbs; i++) {
        d[2 * i] = (u32)limbs[i];
        d[2 * i + 1] = (u32)(limbs[i] >> 32);
    }
    for (int i = 0; i < 2 * nlimbs; i++) {
        if (d[i]) n = i + 1;
    }
    return n;
}

EVM_FN u256 evm_from_digits(const u32 *d, int n) {
    u256 r = u256_of(0);
    for (int i = 0; i < n && i < 8; i++) r.w[i / 2] |= (u64)d[i] << (32 * (i % 2));
    return r;
}

/* Remainder of the number in `limbs` (nlimbs <= 8) by the nonzero word m. */
EVM_FN u256 evm_mod_limbs(const u64 *limbs, int nlimbs, u256 m) {
    u32 ud[16], vd[8], q[16], r[8];
    int un = evm_digits(limbs, nlimbs, ud);
    int vn = evm_digits(m.w, 4, vd);
    if (un < vn) return evm_from_digits(ud, un);
    evm_divmod32(ud, un, vd, vn, q, r);
    return evm_from_digits(r, vn);
}

/* Quotient and remainder; b must be nonzero. */
EVM_FN void u256_divmod(u256 a, u256 b, u256 *q, u256 *r) {
    u32 ud[8], vd[8], qd[8], rd[8];
    int un = evm_digits(a.w, 4, ud);
    int vn = evm_digits(b.w, 4, vd);
    if (un < vn) {
        *q = u256_of(0);
        *r = a;
        return;
    }
    evm_divmod32(ud, un, vd, vn, qd, rd);
    *q = evm_from_digits(qd, un - vn + 1);
    *r = evm_from_digits(rd, vn);
}

/* The EVM opcodes below follow the yellow paper: division by zero gives zero. */

EVM_FN u256 evm_div(u256 a, u256 b) {
    if (u256_is_zero(b)) return b;
    u256 q, r;
    u256_divmod(a, b, &q, &r);
    return q;
}

EVM_FN u256 evm_mod(u256 a, u256 b) {
    if (u256_is_zero(b)) return b;
    u256 q, r;
    u256_divmod(a, b, &q, &r);
    return r;
}

EVM_FN u256 evm_abs(u256 a) { return u256_is_neg(a) ? u256_neg(a) : a; }

EVM_FN u256 evm_sdiv(u256 a, u256 b) {
    if (u256_is_zero(b)) return b;
    u256 q = evm_div(evm_abs(a), evm_abs(b));
    return u256_is_neg(a) != u256_is_neg(b) ? u256_neg(q) : q;
}

EVM_FN u256 evm_smod(u256 a, u256 b) {
    if (u256_is_zero(b)) return b;
    u256 r = evm_mod(evm_abs(a), evm_abs(b));
    return u256_is_neg(a) ? u256_neg(r) : r;
}

EVM_FN u256 evm_addmod(u256 a, u256 b, u256 m) {
    if (u256_is_zero(m)) return m;
    u64 sum[5];
    u256 s = u256_add(a, b);
    for (int i = 0; i < 4; i++) sum[i] = s.w[i];
    sum[4] = u256_lt(s, a) ? 1 : 0;
    return evm_mod_limbs(sum, 5, m);
}

EVM_FN u256 evm_mulmod(u256 a, u256 b, u256 m) {
    if (u256_is_zero(m)) return m;
    u64 prod[8];
    u256_mul_wide(a, b, prod);
    return evm_mod_limbs(prod, 8, m);
}

EVM_FN u256 evm_exp(u256 base, u256 e) {
    u256 r = u256_of(1);
    unsigned bits = u256_bitlen(e);
    for (unsigned i = 0; i < bits; i++) {
        if ((e.w[i / 64] >> (i % 64)) & 1) r = u256_mul(r, base);
        if (i + 1 < bits) base = u256_mul(base, base);
    }
    return r;
}

EVM_FN u256 evm_signextend(u256 b, u256 x) {
    if (!u256_fits64(b) || b.w[0] >= 31) return x;
    unsigned bit = (unsigned)b.w[0] * 8 + 7;
    u256 mask = u256_sub(u256_shl(u256_of(1), bit + 1), u256_of(1));
    if ((x.w[bit / 64] >> (bit % 64)) & 1) {
        for (int i = 0; i < 4; i++) x.w[i] |= ~mask.w[i];
    } else {
        for (int i = 0; i < 4; i++) x.w[i] &= mask.w[i];
    }
    return x;
}

EVM_FN u256 evm_byte(u256 i, u256 x) {
    if (!u256_fits64(i) || i.w[0] >= 32) return u256_of(0);
    unsigned shift = 8 * (31 - (unsigned)i.w[0]);
    return u256_of((x.w[shift / 64] >> (shift % 64)) & 0xFF);
}

EVM_FN u256 evm_shl(u256 shift, u256 x) {
    if (!u256_fits64(shift) || shift.w[0] >= 256) return u256_of(0);
    return u256_shl(x, (unsigned)shift.w[0]);
}

EVM_FN u256 evm_shr(u256 shift, u256 x) {
    if (!u256_fits64(shift) || shift.w[0] >= 256) return u256_of(0);
    return u256_shr(x, (unsigned)shift.w[0]);
}

EVM_FN u256 evm_sar(u256 shift, u256 x) {
    int neg = u256_is_neg(x);
    if (!u256_fits64(shift) || shift.w[0] >= 256) return neg ? u256_not(u256_of(0)) : u256_of(0);
    unsigned n = (unsigned)shift.w[0];
    u256 r = u256_shr(x, n);
    if (neg && n) {
        u256 fill = u256_shl(u256_not(u256_of(0)), 256 - n);
        for (int i = 0; i < 4; i++) r.w[i] |= fill.w[i];
    }
    return r;
}

/* Big-endian bytes <-> words, as the EVM's memory and hashes are laid out. */
/* The limb of significance k of the n-byte big-endian number at p, of which only the first
 * avail bytes are there: the others read as zero. */
EVM_FN u64 be_limb(const u8 *p, u64 n, u64 avail, u64 k) {
    u64 v = 0;
    if (n > 8 * k) {
        u64 above = n - 8 * k; /* bytes of this limb and the ones above it */
        u64 count = above < 8 ? above : 8;
        for (u64 i = above - count; i < above; i++) v = (v << 8) | (i < avail ? p[i] : 0);
    }
    return v;
}

/* Limb by limb in registers: or-ing bytes into r.w[pos / 8] stalled on store forwarding
 * (CPU) and put r in local memory (GPU); PUSH runs this on every other opcode. */
EVM_FN u256 u256_from_be_cut(const u8 *p, u64 n, u64 avail) {
    u256 r;
    r.w[0] = be_limb(p, n, avail, 0);
    r.w[1] = be_limb(p, n, avail, 1);
    r.w[2] = be_limb(p, n, avail, 2);
    r.w[3] = be_limb(p, n, avail, 3);
    return r;
}

EVM_FN u256 u256_from_be(const u8 *p, u64 n) { return u256_from_be_cut(p, n, n); }

EVM_FN void u256_to_be(u256 a, u8 *p) {
    for (int i = 0; i < 32; i++) {
        int pos = 31 - i;
        p[i] = (u8)(a.w[pos / 8] >> (8 * (pos % 8)));
    }
}

#endif
