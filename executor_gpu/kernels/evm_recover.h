/* Batch sender recovery for the host: many transaction signatures at once, on CPU threads.
 *
 * Only the CPU library includes this (evm.c). The elliptic-curve work is libsecp256k1's, the
 * library coincurve ships: the host passes its function pointers and a verify context, so
 * this file needs neither its headers nor a link against it. Without a context it is the
 * interpreter's own curve code (tx_recover, the GPU's batch recovery), for tests and figures.
 * Each thread takes a contiguous share of the batch; the host releases the GIL for the call
 * (ctypes does).
 */
#ifndef EVM_RECOVER_H
#define EVM_RECOVER_H

#include <pthread.h>

#include "evm_keccak.h"
#include "evm_precompile.h"

/* libsecp256k1's opaque recoverable signature (65 bytes) and public key (64 bytes). */
typedef struct { u8 data[65]; } secp_recsig;
typedef struct { u8 data[64]; } secp_pubkey;

typedef int (*secp_parse_fn)(const void *ctx, secp_recsig *sig, const u8 *in64, int recid);
typedef int (*secp_recover_fn)(const void *ctx, secp_pubkey *pub, const secp_recsig *sig, const u8 *msg32);
typedef int (*secp_serialize_fn)(const void *ctx, u8 *out, size_t *outlen, const secp_pubkey *pub,
                                 unsigned int flags);

#define SECP_EC_UNCOMPRESSED 2u /* SECP256K1_FLAGS_TYPE_COMPRESSION */

typedef struct {
    const void *ctx; /* 0: tx_recover instead of libsecp256k1 */
    secp_parse_fn parse;
    secp_recover_fn recover;
    secp_serialize_fn serialize;
    const u8 *hashes;  /* 32 bytes each */
    const u8 *sigs;    /* r (32) s (32) y parity (1) each */
    u8 *addresses;     /* 20 bytes each, written */
    u8 *ok;            /* 1 when recovered, 0 when the signature recovers no key */
} recover_job;

/* libsecp256k1's recovery of one signature under the transaction rules. */
static int secp_lib_recover(const recover_job *job, const u8 *hash, const u8 *sig, u8 *address) {
    secp_recsig parsed;
    secp_pubkey pub;
    u8 out[65];
    size_t outlen = sizeof out;
    if (!tx_signature_ok(sig) || !job->parse(job->ctx, &parsed, sig, sig[64])) return 0;
    if (!job->recover(job->ctx, &pub, &parsed, hash)) return 0;
    if (!job->serialize(job->ctx, out, &outlen, &pub, SECP_EC_UNCOMPRESSED) || outlen != 65) return 0;
    /* The address is the last 20 bytes of keccak256 of the key's 64 coordinate bytes. */
    u8 digest[32];
    u256_to_be(evm_keccak(out + 1, 64), digest);
    for (int b = 0; b < 20; b++) address[b] = digest[12 + b];
    return 1;
}

static void recover_one(const recover_job *job, u64 i) {
    const u8 *hash = job->hashes + 32 * i, *sig = job->sigs + 65 * i;
    u8 *address = job->addresses + 20 * i;
    job->ok[i] = (u8)(job->ctx ? secp_lib_recover(job, hash, sig, address) : tx_recover(hash, sig, address));
}

#define HOST_MAX_THREADS 64

typedef struct {
    void (*run)(void *ctx, u64 first, u64 count);
    void *ctx;
    u64 first, count;
} host_share;

static void *host_share_run(void *arg) {
    const host_share *share = (const host_share *)arg;
    share->run(share->ctx, share->first, share->count);
    return 0;
}

/* Runs run(ctx, first, count) over [0, n) in contiguous shares on up to `threads` threads
 * (fewer for small n: a thread is worth starting for `min_share` items or more). */
static void host_parallel(u64 n, u64 threads, u64 min_share, void (*run)(void *, u64, u64), void *ctx) {
    if (threads > HOST_MAX_THREADS) threads = HOST_MAX_THREADS;
    if (threads > n / min_share) threads = n / min_share;
    if (threads < 2) {
        run(ctx, 0, n);
        return;
    }
    host_share shares[HOST_MAX_THREADS];
    pthread_t ids[HOST_MAX_THREADS];
    u64 started = 0, at = 0;
    for (u64 t = 0; t < threads; t++) {
        shares[t] = (host_share){run, ctx, at, n / threads + (t < n % threads)};
        at += shares[t].count;
        /* The last share runs on this thread; a thread that cannot start runs here too. */
        if (t + 1 < threads && pthread_create(&ids[t], 0, host_share_run, &shares[t]) == 0) {
            started |= 1ULL << t;
        } else {
            host_share_run(&shares[t]);
        }
    }
    for (u64 t = 0; t + 1 < threads; t++)
        if (started & (1ULL << t)) pthread_join(ids[t], 0);
}

static void recover_range(void *job, u64 first, u64 count) {
    for (u64 i = first; i < first + count; i++) recover_one((const recover_job *)job, i);
}

/* Recovers n signers on up to `threads` threads. */
static void host_recover_batch(const recover_job *batch, u64 n, u64 threads) {
    host_parallel(n, threads, 16, recover_range, (void *)batch);
}

#endif
