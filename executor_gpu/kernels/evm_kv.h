/* A store's batch reads and writes through LevelDB's C API (the library plyvel loaded), each a
 * single call from the host. plyvel releases Python's GIL around every get and every write
 * batch put, and a thread that gives the GIL up waits to take it back while another thread
 * runs Python: on a busy node 50,000 gets took seconds instead of 40 ms. Here a whole batch
 * runs in one call, which the host makes without the GIL.
 *
 * Only the CPU library includes this (evm.c). The host passes LevelDB's functions in (this
 * library does not link LevelDB) and the database handle plyvel opened.
 */
#ifndef EVM_KV_H
#define EVM_KV_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef char *(*kv_get_fn)(void *db, const void *options, const char *key, size_t klen, size_t *vlen,
                           char **err);
typedef void (*kv_free_fn)(void *p);
typedef void *(*kv_batch_create_fn)(void);
typedef void (*kv_batch_put_fn)(void *batch, const char *key, size_t klen, const char *val, size_t vlen);
typedef void (*kv_batch_delete_fn)(void *batch, const char *key, size_t klen);
typedef void (*kv_write_fn)(void *db, const void *options, void *batch, char **err);
typedef void (*kv_batch_destroy_fn)(void *batch);

#define KV_ABSENT (-1)
#define KV_FAILED (-2)

/* A key to read: where it is, and its place among the caller's. */
typedef struct {
    const u8 *key;
    u64 size;
    u64 at;
} kv_key;

static int kv_key_order(const void *a, const void *b) {
    const kv_key *x = (const kv_key *)a, *y = (const kv_key *)b;
    int by_bytes = memcmp(x->key, y->key, x->size < y->size ? x->size : y->size);
    if (by_bytes) return by_bytes;
    return (x->size > y->size) - (x->size < y->size);
}

typedef struct {
    kv_get_fn get;
    kv_free_fn release;
    void *db;
    const void *options;
    const kv_key *order; /* the keys sorted: each thread reads a run of neighbours */
    char **values;
    i64 *lens;
} kv_reads;

static void kv_read_range(void *ctx, u64 first, u64 count) {
    const kv_reads *r = (const kv_reads *)ctx;
    for (u64 k = first; k < first + count; k++) {
        u64 i = r->order[k].at;
        char *err = NULL;
        size_t vlen = 0;
        char *value = r->get(r->db, r->options, (const char *)r->order[k].key, r->order[k].size, &vlen, &err);
        if (err) {
            r->release(err);
            if (value) r->release(value);
            value = NULL;
            r->lens[i] = KV_FAILED;
        } else {
            /* found: a copy (malloc'd, never NULL on glibc or musl, even when empty) */
            r->lens[i] = value ? (i64)vlen : KV_ABSENT;
        }
        r->values[i] = value;
    }
}

/* Reads n keys on up to `threads` threads, in key order (LevelDB's gets of random keys ran
 * about 30% faster sorted): value i stays in values[i] (to hand to kv_gather), its size in
 * lens[i] (KV_ABSENT: no such key; KV_FAILED: the read failed). Returns the values' total
 * size, or KV_NO_MEMORY. Key i is keys[offsets[i] .. offsets[i + 1]). */
#define KV_NO_MEMORY (~(u64)0)
EVM_EXPORT u64 kv_get_many(kv_get_fn get, kv_free_fn release, void *db, const void *options, u64 n,
                           const u8 *keys, const u64 *offsets, char **values, i64 *lens, u64 threads) {
    kv_key *order = (kv_key *)malloc((n ? n : 1) * sizeof(kv_key));
    if (!order) return KV_NO_MEMORY;
    for (u64 i = 0; i < n; i++) order[i] = (kv_key){keys + offsets[i], offsets[i + 1] - offsets[i], i};
    qsort(order, n, sizeof(kv_key), kv_key_order);
    kv_reads reads = {get, release, db, options, order, values, lens};
    host_parallel(n, threads, 2048, kv_read_range, &reads);
    free(order);
    u64 total = 0;
    for (u64 i = 0; i < n; i++) total += lens[i] > 0 ? (u64)lens[i] : 0;
    return total;
}

/* Copies the n values kv_get_many left into out, concatenated, and frees them. */
EVM_EXPORT void kv_gather(kv_free_fn release, u64 n, char **values, const i64 *lens, u8 *out) {
    for (u64 i = 0; i < n; i++) {
        if (!values[i]) continue;
        if (lens[i] > 0) {
            memcpy(out, values[i], (u64)lens[i]);
            out += lens[i];
        }
        release(values[i]);
        values[i] = NULL;
    }
}

/* One run of a write batch: its n keys, each prefix + its own bytes (keys[key_offsets[i] ..
 * key_offsets[i + 1]), or with key_offsets NULL, the width bytes at keys + i * width), and
 * their values: the next sizes[i] bytes of vals (values concatenated in order), or a delete
 * where sizes[i] < 0. The host passes the parts it staged as they are, not copied together.
 * With rows set (and key_offsets NULL), the run is n of a packed run's rows: the i-th is row
 * rows[i], its key at keys + rows[i] * width, its value sizes[rows[i]] bytes at
 * vals + starts[rows[i]] (one database's share of a block's trie nodes, not gathered). */
typedef struct {
    const u8 *prefix;
    u64 prefix_len;
    u64 n;
    const u8 *keys;
    const u64 *key_offsets;
    u64 width;
    const u8 *vals;
    const i64 *sizes;
    const u64 *rows;
    const u64 *starts;
} kv_run;

/* Writes `runs` runs, in order, in one atomic batch (a key written twice keeps its last
 * write). 1 when written; else 0 and LevelDB's message (truncated) in err. */
EVM_EXPORT int kv_write_many(kv_batch_create_fn create, kv_batch_put_fn put, kv_batch_delete_fn del,
                             kv_write_fn write, kv_batch_destroy_fn destroy, kv_free_fn release, void *db,
                             const void *options, u64 runs, const kv_run *run, char *err, u64 err_size) {
    void *batch = create();
    u8 *joined = NULL; /* prefix + key, for runs with a prefix */
    u64 joined_size = 0;
    for (u64 r = 0; r < runs; r++, run++) {
        for (u64 j = 0, at = 0; j < run->n; j++) {
            const u64 i = run->rows ? run->rows[j] : j;
            if (run->rows) at = run->starts[i];
            const u8 *key = run->key_offsets ? run->keys + run->key_offsets[i] : run->keys + i * run->width;
            size_t klen = run->key_offsets ? run->key_offsets[i + 1] - run->key_offsets[i] : run->width;
            if (run->prefix_len) {
                if (run->prefix_len + klen > joined_size) {
                    u8 *grown = (u8 *)realloc(joined, run->prefix_len + klen);
                    if (!grown) {
                        free(joined);
                        destroy(batch);
                        const char *message = "no memory for a key";
                        u64 k = 0;
                        for (; message[k] && k + 1 < err_size; k++) err[k] = message[k];
                        if (err_size) err[k] = 0;
                        return 0;
                    }
                    joined = grown;
                    joined_size = run->prefix_len + klen;
                }
                memcpy(joined, run->prefix, run->prefix_len);
                memcpy(joined + run->prefix_len, key, klen);
                key = joined;
                klen += run->prefix_len;
            }
            if (run->sizes[i] < 0) {
                del(batch, (const char *)key, klen);
            } else {
                put(batch, (const char *)key, klen, (const char *)run->vals + at, (size_t)run->sizes[i]);
                at += (u64)run->sizes[i];
            }
        }
    }
    free(joined);
    char *failure = NULL;
    write(db, options, batch, &failure);
    destroy(batch);
    if (!failure) return 1;
    u64 k = 0;
    for (; failure[k] && k + 1 < err_size; k++) err[k] = failure[k];
    if (err_size) err[k] = 0;
    release(failure);
    return 0;
}

#endif
