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

/* LevelDB's order of keys: bytewise, a key before the longer keys it begins. */
static int kv_bytes_order(const u8 *x, u64 x_size, const u8 *y, u64 y_size) {
    int by_bytes = memcmp(x, y, x_size < y_size ? x_size : y_size);
    if (by_bytes) return by_bytes;
    return (x_size > y_size) - (x_size < y_size);
}

static int kv_key_order(const void *a, const void *b) {
    const kv_key *x = (const kv_key *)a, *y = (const kv_key *)b;
    return kv_bytes_order(x->key, x->size, y->key, y->size);
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
 * where sizes[i] < 0. The host passes the parts it staged as they are, not copied together. */
typedef struct {
    const u8 *prefix;
    u64 prefix_len;
    u64 n;
    const u8 *keys;
    const u64 *key_offsets;
    u64 width;
    const u8 *vals;
    const i64 *sizes;
} kv_run;

/* One put or delete of a write batch, its key whole (prefix and name). */
typedef struct {
    const u8 *key;
    u64 size;
    u64 seq; /* its place in the runs: of two writes of one key, the later one wins */
    const u8 *val;
    i64 vlen; /* < 0: a delete */
} kv_write;

static int kv_write_order(const void *a, const void *b) {
    const kv_write *x = *(const kv_write *const *)a, *y = *(const kv_write *const *)b;
    int by_key = kv_bytes_order(x->key, x->size, y->key, y->size);
    if (by_key) return by_key;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Below this many writes a batch is sorted by comparisons alone: the radix passes clear and
 * sum 65,536 counters each, which costs more than sorting the pool journal's group commits of
 * a few hundred records. */
#define KV_RADIX_FROM 4096

/* The writes in key order (ties in write order): a radix sort of each key's first 8 bytes,
 * then a comparison sort of each run sharing them (a block's random keys: runs of one, a
 * contract's storage rows: runs of a contract). qsort over all 330,000 of a block took about
 * 100 ms longer (2-core box). */
static int kv_sort_writes(kv_write *writes, u64 count, kv_write **sorted) {
    if (count < KV_RADIX_FROM) {
        for (u64 i = 0; i < count; i++) sorted[i] = &writes[i];
        qsort(sorted, count, sizeof(kv_write *), kv_write_order);
        return 1;
    }
    typedef struct {
        u64 head;
        kv_write *write;
    } kv_radix;
    kv_radix *items = (kv_radix *)malloc((count ? count : 1) * sizeof(kv_radix));
    kv_radix *spare = (kv_radix *)malloc((count ? count : 1) * sizeof(kv_radix));
    u64 *counts = (u64 *)malloc(65536 * sizeof(u64));
    if (!items || !spare || !counts) {
        free(items);
        free(spare);
        free(counts);
        return 0;
    }
    for (u64 i = 0; i < count; i++) {
        u64 head = 0;
        for (u64 b = 0; b < 8; b++) head = head << 8 | (b < writes[i].size ? writes[i].key[b] : 0);
        items[i] = (kv_radix){head, &writes[i]};
    }
    for (u64 shift = 0; shift < 64; shift += 16) {
        memset(counts, 0, 65536 * sizeof(u64));
        for (u64 i = 0; i < count; i++) counts[(items[i].head >> shift) & 0xffff]++;
        for (u64 d = 0, sum = 0; d < 65536; d++) {
            u64 here = counts[d];
            counts[d] = sum;
            sum += here;
        }
        for (u64 i = 0; i < count; i++) spare[counts[(items[i].head >> shift) & 0xffff]++] = items[i];
        kv_radix *swap = items;
        items = spare;
        spare = swap;
    }
    for (u64 i = 0; i < count; i++) sorted[i] = items[i].write;
    for (u64 first = 0; first < count;) {
        u64 end = first + 1;
        while (end < count && items[end].head == items[first].head) end++;
        if (end - first > 1) qsort(sorted + first, end - first, sizeof(kv_write *), kv_write_order);
        first = end;
    }
    free(items);
    free(spare);
    free(counts);
    return 1;
}

static int kv_fail(char *err, u64 err_size, const char *message) {
    u64 k = 0;
    for (; message[k] && k + 1 < err_size; k++) err[k] = message[k];
    if (err_size) err[k] = 0;
    return 0;
}

/* Writes `runs` runs in one atomic batch, a key written twice keeping its last write. The
 * batch goes to LevelDB in key order: its memtable is a skip list, and inserting a block's
 * 330,000 random trie-node keys took 2-3 us each, in order 0.75 us (2-core box). 1 when
 * written; else 0 and LevelDB's message (truncated) in err. */
EVM_EXPORT int kv_write_many(kv_batch_create_fn create, kv_batch_put_fn put, kv_batch_delete_fn del,
                             kv_write_fn write, kv_batch_destroy_fn destroy, kv_free_fn release, void *db,
                             const void *options, u64 runs, const kv_run *run, char *err, u64 err_size) {
    u64 count = 0, key_bytes = 0;
    for (u64 r = 0; r < runs; r++) {
        count += run[r].n;
        key_bytes += run[r].n * run[r].prefix_len +
                     (run[r].key_offsets ? run[r].key_offsets[run[r].n] - run[r].key_offsets[0] : run[r].n * run[r].width);
    }
    kv_write *order = (kv_write *)malloc((count ? count : 1) * sizeof(kv_write));
    u8 *keys = (u8 *)malloc(key_bytes ? key_bytes : 1);
    if (!order || !keys) {
        free(order);
        free(keys);
        return kv_fail(err, err_size, "no memory for a write batch's keys");
    }
    u64 seq = 0;
    u8 *next = keys;
    for (u64 r = 0; r < runs; r++, run++) {
        for (u64 i = 0, at = 0; i < run->n; i++, seq++) {
            const u8 *name = run->key_offsets ? run->keys + run->key_offsets[i] : run->keys + i * run->width;
            u64 size = run->key_offsets ? run->key_offsets[i + 1] - run->key_offsets[i] : run->width;
            if (run->prefix_len) memcpy(next, run->prefix, run->prefix_len);
            memcpy(next + run->prefix_len, name, size);
            order[seq] = (kv_write){next, run->prefix_len + size, seq, run->vals + at, run->sizes[i]};
            next += run->prefix_len + size;
            if (run->sizes[i] >= 0) at += (u64)run->sizes[i];
        }
    }
    kv_write **sorted = (kv_write **)malloc((count ? count : 1) * sizeof(kv_write *));
    if (!sorted || !kv_sort_writes(order, count, sorted)) {
        free(sorted);
        free(order);
        free(keys);
        return kv_fail(err, err_size, "no memory to sort a write batch");
    }
    void *batch = create();
    for (u64 k = 0; k < count; k++) {
        const kv_write *w = sorted[k];
        if (w->vlen < 0) {
            del(batch, (const char *)w->key, w->size);
        } else {
            put(batch, (const char *)w->key, w->size, (const char *)w->val, (size_t)w->vlen);
        }
    }
    free(sorted);
    free(order);
    free(keys);
    char *failure = NULL;
    write(db, options, batch, &failure);
    destroy(batch);
    if (!failure) return 1;
    kv_fail(err, err_size, failure);
    release(failure);
    return 0;
}

#endif
