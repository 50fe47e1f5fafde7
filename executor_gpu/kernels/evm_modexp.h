/* MODEXP (0x05): EIP-198's big-integer modular exponentiation at EIP-2565's price.
 *
 * The three lengths are 32-byte words that may be huge; the price is computed with
 * saturating arithmetic, so that a huge length prices the call out of reach before anything
 * is allocated. Once the price is paid the lengths are small (the price grows with their
 * square), and the numbers are worked on in scratch memory the caller gives (modexp_layout):
 * an odd modulus by Montgomery multiplication on 64-bit limbs (high halves from EVM_MULHI), an
 * even one by schoolbook products reduced with Knuth's division on 32-bit digits
 * (evm_divmod32_buf), whose intermediates fit 64 bits on both compilers.
 */
#ifndef EVM_MODEXP_H
#define EVM_MODEXP_H

#include "evm_u256.h"

#define U64_MAX_ 0xFFFFFFFFFFFFFFFFULL

EVM_FN u64 sat_add(u64 a, u64 b) { return a + b < a ? U64_MAX_ : a + b; }
EVM_FN u64 sat_mul(u64 a, u64 b) { return a && b > U64_MAX_ / a ? U64_MAX_ : a * b; }

/* Byte i of the input, zero past its end: precompiles read their input zero-padded. */
EVM_FN u8 in_byte(const u8 *in, u64 len, u64 i) { return i < len ? in[i] : 0; }

/* The 32-byte big-endian word at off, saturated to 2^64 - 1. */
EVM_FN u64 in_length(const u8 *in, u64 len, u64 off) {
    u64 v = 0;
    for (u64 i = 0; i < 32; i++) {
        u8 b = in_byte(in, len, off + i);
        if (i < 24 && b) return U64_MAX_;
        v = v << 8 | b;
    }
    return v;
}

typedef struct {
    u64 base, exp, mod; /* lengths in bytes, saturated */
} ModexpLengths;

EVM_FN ModexpLengths modexp_lengths(const u8 *in, u64 len) {
    ModexpLengths l = {in_length(in, len, 0), in_length(in, len, 32), in_length(in, len, 64)};
    return l;
}

/* EIP-2565: max(200, words(max(base, mod))^2 * iterations / 3); 2^64 - 1 when out of reach. */
EVM_FN u64 modexp_gas(const u8 *in, u64 len, ModexpLengths l) {
    u64 longest = l.base > l.mod ? l.base : l.mod;
    u64 words = longest / 8 + (longest % 8 != 0);
    u64 complexity = sat_mul(words, words);
    /* Iterations: the index of the highest set bit of the exponent's first 32 bytes, plus 8 per
     * byte beyond them, at least 1. */
    u64 at = sat_add(96, l.base), head = l.exp < 32 ? l.exp : 32, iterations = 0;
    for (u64 i = 0; i < head; i++) {
        u8 b = in_byte(in, len, sat_add(at, i));
        if (b) {
            iterations = (head - 1 - i) * 8 + (31 - EVM_CLZ32((u32)b));
            break;
        }
    }
    if (l.exp > 32) iterations = sat_add(iterations, sat_mul(8, l.exp - 32));
    if (iterations == 0) iterations = 1;
    u64 gas = sat_mul(complexity, iterations);
    if (gas == U64_MAX_) return gas;
    gas /= 3;
    return gas < 200 ? 200 : gas;
}

/* Digits held for a number of n bytes. */
EVM_FN u64 modexp_digits(u64 n) { return n / 4 + 1; }

/* Byte offsets of evm_modexp's arrays in its scratch, each 8-byte aligned: 32-bit digits of the
 * modulus, the base, the reduced base, the accumulator, a product and the division's un and vn,
 * then the 64-bit limbs of the Montgomery path's modulus, base, accumulator, R powers and product. */
typedef struct {
    u64 m, base, b, x, t, un, vn, mm, mb, mx, mr, mt, end;
} ModexpLayout;

EVM_FN u64 digit_bytes(u64 n) { return 8 * (n / 2 + 1); }

EVM_FN ModexpLayout modexp_layout(ModexpLengths l) {
    u64 nm = modexp_digits(l.mod), nb = modexp_digits(l.base), limbs = nm / 2 + 1;
    ModexpLayout o;
    o.m = 0;
    o.base = o.m + digit_bytes(nm);
    o.b = o.base + digit_bytes(nb);
    o.x = o.b + digit_bytes(nm);
    o.t = o.x + digit_bytes(nm);
    o.un = o.t + digit_bytes(2 * nm);
    o.vn = o.un + digit_bytes((2 * nm > nb ? 2 * nm : nb) + 1);
    o.mm = o.vn + digit_bytes(nm);
    o.mb = o.mm + 8 * limbs;
    o.mx = o.mb + 8 * limbs;
    o.mr = o.mx + 8 * limbs;
    o.mt = o.mr + 8 * limbs;
    o.end = o.mt + 8 * (limbs + 2);
    return o;
}

/* The big-endian number of n bytes at in[at..] as little-endian 32-bit digits; returns the
 * count without leading zero digits. */
EVM_FN_BIG u64 load_digits(const u8 *in, u64 len, u64 at, u64 n, u32 *d) {
    u64 nd = modexp_digits(n);
    for (u64 k = 0; k < nd; k++) {
        u32 v = 0;
        for (int j = 3; j >= 0; j--) {
            u64 from_end = 4 * k + (u64)j; /* 0 is the number's last byte */
            v = v << 8 | (from_end < n ? in_byte(in, len, sat_add(at, n - 1 - from_end)) : 0);
        }
        d[k] = v;
    }
    while (nd && !d[nd - 1]) nd--;
    return nd;
}

/* x = x * y mod m, all n digits; t holds 2n digits, un 2n + 1 and vn n. */
EVM_FN_BIG void modexp_mulmod(u32 *x, const u32 *y, const u32 *m, u64 n, u32 *t, u32 *un, u32 *vn) {
    for (u64 i = 0; i < 2 * n; i++) t[i] = 0;
    for (u64 i = 0; i < n; i++) {
        u64 carry = 0, xi = x[i];
        for (u64 j = 0; j < n; j++) {
            u64 p = xi * y[j] + t[i + j] + carry;
            t[i + j] = (u32)p;
            carry = p >> 32;
        }
        t[i + n] = (u32)carry;
    }
    evm_divmod32_buf(t, (int)(2 * n), m, (int)n, 0, x, un, vn);
}

/* (hi, lo) = a + b * c + d: never overflows 128 bits. */
EVM_FN u64 mac64(u64 a, u64 b, u64 c, u64 d, u64 *lo) {
    u64 l = b * c, h = EVM_MULHI(b, c);
    l += a;
    h += l < a;
    l += d;
    h += l < d;
    *lo = l;
    return h;
}

/* x = x * y / 2^(64n) mod m (Montgomery, CIOS) for odd m of n limbs, x and y below m;
 * inv = -m^-1 mod 2^64; t holds n + 2 limbs. */
EVM_FN_BIG void mont_mul(u64 *x, const u64 *y, const u64 *m, u64 n, u64 inv, u64 *t) {
    for (u64 i = 0; i < n + 2; i++) t[i] = 0;
    for (u64 i = 0; i < n; i++) {
        u64 c = 0, yi = y[i];
        for (u64 j = 0; j < n; j++) c = mac64(t[j], x[j], yi, c, &t[j]);
        u64 s = t[n] + c;
        t[n + 1] = s < c;
        t[n] = s;
        u64 q = t[0] * inv, lo;
        c = mac64(t[0], q, m[0], 0, &lo);
        for (u64 j = 1; j < n; j++) c = mac64(t[j], q, m[j], c, &t[j - 1]);
        s = t[n] + c;
        t[n - 1] = s;
        t[n] = t[n + 1] + (s < c);
    }
    /* t < 2m: subtract m once when t >= m. */
    int ge = t[n] != 0;
    if (!ge) {
        ge = 1;
        for (u64 j = n; j-- > 0;) {
            if (t[j] != m[j]) {
                ge = t[j] > m[j];
                break;
            }
        }
    }
    u64 borrow = 0;
    for (u64 j = 0; j < n; j++) {
        u64 d = t[j] - (ge ? m[j] : 0), b2 = t[j] < (ge ? m[j] : 0);
        x[j] = d - borrow;
        borrow = b2 | (d < borrow);
    }
}

/* x = 2x mod m (x < m), n limbs. */
EVM_FN void mont_double(u64 *x, const u64 *m, u64 n) {
    u64 top = x[n - 1] >> 63;
    for (u64 j = n; j-- > 1;) x[j] = x[j] << 1 | x[j - 1] >> 63;
    x[0] <<= 1;
    int ge = (int)top;
    if (!ge) {
        ge = 1;
        for (u64 j = n; j-- > 0;) {
            if (x[j] != m[j]) {
                ge = x[j] > m[j];
                break;
            }
        }
    }
    if (!ge) return;
    u64 borrow = 0;
    for (u64 j = 0; j < n; j++) {
        u64 d = x[j] - m[j], b2 = x[j] < m[j];
        x[j] = d - borrow;
        borrow = b2 | (d < borrow);
    }
}

EVM_FN void pack_limbs(const u32 *d, u64 n, u64 *out) {
    for (u64 i = 0; i < n; i++) out[i] = (u64)d[2 * i] | (u64)d[2 * i + 1] << 32;
}

/* Square-and-multiply over the exponent's bits (l.exp bytes after the base), most significant
 * first, leading zeros skipped: runs square before each bit after the first set one, multiply
 * for each set bit. */
#define MODEXP_EACH_BIT(in, len, l, square, multiply)                         \
    do {                                                                       \
        u64 at_ = sat_add(96, (l).base);                                       \
        int started_ = 0;                                                      \
        for (u64 i_ = 0; i_ < (l).exp; i_++) {                                 \
            u8 byte_ = in_byte(in, len, sat_add(at_, i_));                     \
            for (int bit_ = 7; bit_ >= 0; bit_--) {                            \
                if (started_) square;                                          \
                if ((byte_ >> bit_) & 1) {                                     \
                    multiply;                                                  \
                    started_ = 1;                                              \
                }                                                              \
            }                                                                  \
        }                                                                      \
    } while (0)

/* base^exp mod mod (0 when mod is 0; 0^0 = 1) as l.mod big-endian bytes at out; scratch holds
 * modexp_layout(l).end bytes, 8-byte aligned. An odd modulus takes Montgomery's path. */
EVM_FN_BIG void evm_modexp(const u8 *in, u64 len, ModexpLengths l, u8 *scratch, u8 *out) {
    ModexpLayout o = modexp_layout(l);
    u32 *m = (u32 *)(scratch + o.m), *base = (u32 *)(scratch + o.base), *b = (u32 *)(scratch + o.b);
    u32 *x = (u32 *)(scratch + o.x), *t = (u32 *)(scratch + o.t), *un = (u32 *)(scratch + o.un);
    u32 *vn = (u32 *)(scratch + o.vn);
    u64 n = load_digits(in, len, sat_add(96, sat_add(l.base, l.exp)), l.mod, m);
    u64 nb = load_digits(in, len, 96, l.base, base);
    for (u64 i = 0; i < n + 1; i++) x[i] = 0;
    if (n > 0) {
        if (nb >= n) {
            evm_divmod32_buf(base, (int)nb, m, (int)n, 0, b, un, vn);
        } else {
            for (u64 i = 0; i < n; i++) b[i] = i < nb ? base[i] : 0;
        }
        if (m[0] & 1) {
            /* Montgomery form: values times R = 2^(64 limbs), mod m. */
            u64 limbs = (n + 1) / 2;
            m[n] = b[n] = 0; /* the odd digit count's padding */
            u64 *mm = (u64 *)(scratch + o.mm), *mb = (u64 *)(scratch + o.mb);
            u64 *mx = (u64 *)(scratch + o.mx), *mr = (u64 *)(scratch + o.mr), *mt = (u64 *)(scratch + o.mt);
            pack_limbs(m, limbs, mm);
            u64 inv = mm[0]; /* Newton's iteration for m^-1 mod 2^64: correct bits double each time */
            for (int i = 0; i < 5; i++) inv *= 2 - mm[0] * inv;
            inv = 0 - inv;
            /* R mod m (the accumulator's 1) and R^2 mod m by doubling 1 mod m. */
            for (u64 i = 0; i < limbs; i++) mx[i] = 0;
            mx[0] = n > 1 || m[0] > 1;
            for (u64 i = 0; i < 64 * limbs; i++) mont_double(mx, mm, limbs);
            for (u64 i = 0; i < limbs; i++) mr[i] = mx[i];
            for (u64 i = 0; i < 64 * limbs; i++) mont_double(mr, mm, limbs);
            pack_limbs(b, limbs, mb);
            mont_mul(mb, mr, mm, limbs, inv, mt);
            MODEXP_EACH_BIT(in, len, l, mont_mul(mx, mx, mm, limbs, inv, mt), mont_mul(mx, mb, mm, limbs, inv, mt));
            for (u64 i = 0; i < limbs; i++) mr[i] = i == 0; /* out of Montgomery form: times 1 / R */
            mont_mul(mx, mr, mm, limbs, inv, mt);
            for (u64 i = 0; i < n; i++) x[i] = (u32)(mx[i / 2] >> (32 * (i % 2)));
        } else {
            x[0] = n > 1 || m[0] > 1; /* 1 mod m */
            MODEXP_EACH_BIT(in, len, l, modexp_mulmod(x, x, m, n, t, un, vn), modexp_mulmod(x, b, m, n, t, un, vn));
        }
    }
    for (u64 i = 0; i < l.mod; i++) {
        u64 k = l.mod - 1 - i; /* byte k counted from the number's end */
        out[i] = k / 4 < n ? (u8)(x[k / 4] >> (8 * (k % 4))) : 0;
    }
}

#endif
