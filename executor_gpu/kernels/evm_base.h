/* Portability layer: the same interpreter source compiles as CUDA (NVRTC) and as C (cc).
 *
 * NVRTC compiles C++ without the C library headers, so this file defines the integer
 * types itself and wraps the few compiler intrinsics the interpreter needs.
 */
#ifndef EVM_BASE_H
#define EVM_BASE_H

typedef unsigned long long u64;
typedef long long i64;
typedef unsigned int u32;
typedef int i32;
typedef unsigned char u8;

#if defined(__CUDACC__)
#define EVM_FN static __device__ __forceinline__
/* Big functions are kept out of line so the kernel's code stays small enough for the i-cache. */
#define EVM_FN_BIG static __device__ __noinline__
#define EVM_TABLE static __device__ const
#define EVM_MULHI(a, b) __umul64hi((a), (b))
#define EVM_CLZ32(x) __clz((int)(x))
#define EVM_CLZ64(x) __clzll((long long)(x))
#else
#define EVM_FN static inline
#define EVM_FN_BIG static
#define EVM_TABLE static const
#define EVM_MULHI(a, b) ((u64)(((unsigned __int128)(a) * (unsigned __int128)(b)) >> 64))
#define EVM_CLZ32(x) __builtin_clz(x)
#define EVM_CLZ64(x) __builtin_clzll(x)
#endif

EVM_FN void evm_copy(u8 *dst, const u8 *src, u64 n) {
    for (u64 i = 0; i < n; i++) dst[i] = src[i];
}

/* Copy that tolerates overlap (MCOPY). */
EVM_FN void evm_move(u8 *dst, const u8 *src, u64 n) {
    if (dst < src) {
        for (u64 i = 0; i < n; i++) dst[i] = src[i];
    } else {
        for (u64 i = n; i > 0; i--) dst[i - 1] = src[i - 1];
    }
}

EVM_FN void evm_zero(u8 *dst, u64 n) {
    for (u64 i = 0; i < n; i++) dst[i] = 0;
}

#endif
