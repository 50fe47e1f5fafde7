/* The native Merkle-Patricia committer: a block's changes applied to the state tries in one
 * pass per trie, hashed bottom up, the new nodes handed back to be persisted.
 *
 * Only the CPU library includes this (evm.c); the host drives it through ctypes
 * (executor_gpu/native_mpt.py). The rules are Ethereum's (Yellow Paper, appendix D): a node is
 * a leaf [path, value], an extension [path, child] or a branch of 16 children and a value;
 * paths are hex-prefix encoded; a child whose encoding is shorter than 32 bytes is embedded
 * in its parent, any other is referred to by its Keccak-256 hash; the root is always hashed.
 * Keys are 32 bytes (64 nibbles), as in Ethereum's account and storage tries, so a branch
 * never holds a value.
 *
 * C cannot read the node store, so nodes come from the host in rounds. A pass walks from the
 * root down every changed path and builds the new nodes; a node it needs but does not hold
 * is listed (mpt_missing) and the pass goes on with the other paths. The host reads every
 * listed node (one get each), hands them over (mpt_supply) and steps again; the pass re-runs
 * from the root over what it now holds, which costs little next to a read. A pass that
 * needs nothing more is final: its new nodes are encoded and hashed, in worker threads over
 * independent subtries.
 *
 * A state commit runs three phases, each in rounds: the old storage roots of the accounts
 * whose storage changes (lookups in the account trie), the storage tries (independent of one
 * another), then the account trie, whose new values take the old code hash and storage root
 * of an account from its old leaf when the diff keeps them.
 *
 * The host may tell a change's old value (the flat tables hold it). A key's old leaf is then
 * not read: the pass encodes the leaf that value makes at the depth it reached, and when its
 * hash is the one its parent names, that is the leaf (a wrong hint only costs the read). Most
 * of a block's changes update existing keys, so its reads come down to the branches the node
 * cache does not hold; commits keep no leaves in the cache, which such commits never read.
 *
 * A warm (mpt_begin_warm) reads ahead, while a block executes, the account-trie paths its
 * commit will walk: in the same rounds, it walks each key down to its leaf (or to where the
 * key would go) and keeps every node it is handed in the cache, leaves too (a new key's
 * neighbour leaf is read by its insertion). Told a key's old value (mpt_warm_tell), it reads
 * no leaf of that key, as a commit with hints does not, but keeps the leaf that value makes
 * when its hash is right (a new key may land beside it). It changes nothing else. The commit
 * of its root after it goes on from the nodes it decoded (a commit of another root finds them
 * in the cache), so it reads none of them and decodes few.
 */
#ifndef EVM_MPT_H
#define EVM_MPT_H

#include <pthread.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <string.h>

#include "evm_host.h"

/* An account record as the host packs it (offsets in bytes), and its flags. */
enum {
    MA_ADDRESS = 0,
    MA_FLAGS = 20,
    MA_NONCE = 21,
    MA_BALANCE = 29,
    MA_CODE_HASH = 61,
    MA_STORAGE_ROOT = 93,
    MA_SIZE = 125,
    MA_VALUE_MAX = 112, /* bytes of an account's value (RLP) at most */
};
enum {
    MF_DELETE = 1,       /* the account no longer exists */
    MF_KEEP_CODE = 2,    /* its code hash is the old one (MA_CODE_HASH is ignored) */
    MF_KEEP_STORAGE = 4, /* its storage root is the old one (MA_STORAGE_ROOT is ignored) */
    MF_STORAGE = 8,      /* its storage root is its storage trie's after its slot changes */
    MF_RESET = 16,       /* with MF_STORAGE: the slot changes apply to an empty storage trie */
};
enum {
    MS_SIZE = 64,   /* a slot change: the slot and its new value, 32 bytes big-endian each (0 deletes it) */
    MW_TO_END = 65, /* a warm's depth that walks its paths to their ends (keys are 64 nibbles) */
};

enum { MK_LEAF = 1, MK_EXT, MK_BRANCH, MK_HASH };
enum { MP_LOOKUP, MP_STORAGE, MP_ACCOUNTS, MP_WARM, MP_DONE };

typedef struct mnode mnode;
/* 32 bytes: a decoded branch makes one for each of its (up to 16) children by hash. */
struct mnode {
    u8 kind;        /* MK_*; MK_HASH is a child known only by its hash, not yet resolved */
    u8 plen;        /* nibbles of path (leaf, extension); MK_HASH: 1 once done is set */
    u8 dirty;       /* 1 built by this commit, 2 and encoded; 0 read from the store */
    u8 reflen;      /* 32: ref is the node's hash; less: ref is its (embedded) encoding */
    u32 vlen;       /* leaf value's size; MK_HASH: 1 once it proved not to be a told old leaf;
                     * branch, extension: 1 when decoded from a cache entry (ref is the entry) */
    union {
        const u8 *path; /* one nibble a byte */
        mnode *done;    /* MK_HASH in the account trie: what its subtrie became */
    };
    const u8 *ref;
    union {
        const u8 *val; /* leaf */
        mnode *child;  /* extension; for MK_HASH, the node once resolved */
        mnode **kids;  /* branch: 16, NULL where empty */
    };
};

static mnode MPT_MISSING_NODE;
/* What a pass returns for a subtrie it could not finish: a node it needs is missing. */
#define MPT_MISSING (&MPT_MISSING_NODE)

static const u8 MPT_NIBBLES[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
static const u8 MPT_EMPTY_CODE_HASH[32] = {
    0xc5, 0xd2, 0x46, 0x01, 0x86, 0xf7, 0x23, 0x3c, 0x92, 0x7e, 0x7d, 0xb2, 0xdc, 0xc7, 0x03, 0xc0,
    0xe5, 0x00, 0xb6, 0x53, 0xca, 0x82, 0x27, 0x3b, 0x7b, 0xfa, 0xd8, 0x04, 0x5d, 0x85, 0xa4, 0x70,
};

/* ---- memory: bump arenas, freed a commit at a time ------------------------------------------ */

typedef struct mblock mblock;
struct mblock {
    mblock *next;
    u64 size, used;
};
#define MPT_BLOCK_HEAD 32 /* a block's header, rounded up to keep allocations aligned */

#define MPT_BLOCK (1u << 20)
#define MPT_KEEP (64u << 20) /* block bytes an arena keeps between commits */

typedef struct {
    mblock *head;  /* blocks in use, the current one first */
    mblock *spare; /* blocks of MPT_BLOCK bytes kept from earlier commits */
} marena;

static void *mpt_alloc(marena *a, u64 n) {
    n = (n + 15) & ~(u64)15;
    mblock *b = a->head;
    if (!b || b->used + n > b->size) {
        if (n <= MPT_BLOCK && a->spare) {
            b = a->spare;
            a->spare = b->next;
        } else {
            u64 size = n > MPT_BLOCK ? n : MPT_BLOCK;
            b = (mblock *)malloc(MPT_BLOCK_HEAD + size);
            if (!b) abort(); /* out of memory: the node cannot go on */
            b->size = size;
        }
        b->next = a->head;
        b->used = 0;
        a->head = b;
    }
    void *p = (u8 *)b + MPT_BLOCK_HEAD + b->used;
    b->used += n;
    return p;
}

/* Frees everything allocated; keeps up to keep bytes of blocks for the next commit (reused
 * memory is already mapped: fresh pages would cost a fault each). */
static void mpt_arena_reset(marena *a, u64 keep) {
    u64 kept = 0;
    for (mblock *b = a->spare; b; b = b->next) kept += b->size;
    while (a->head) {
        mblock *b = a->head;
        a->head = b->next;
        if (b->size == MPT_BLOCK && kept + MPT_BLOCK <= keep) {
            b->next = a->spare;
            a->spare = b;
            kept += MPT_BLOCK;
        } else {
            free(b);
        }
    }
}

static void mpt_arena_free(marena *a) {
    mpt_arena_reset(a, 0);
    while (a->spare) {
        mblock *next = a->spare->next;
        free(a->spare);
        a->spare = next;
    }
}

static mnode *mpt_node(marena *a, u8 kind) {
    mnode *n = (mnode *)mpt_alloc(a, sizeof(mnode));
    memset(n, 0, sizeof(mnode));
    n->kind = kind;
    return n;
}

/* ---- the session: one commit at a time ------------------------------------------------------ */

typedef struct {
    const u8 *nib; /* 64 nibbles */
    const u8 *val; /* the new value (raw tries and slots) */
    u64 vlen;
    const u8 *old; /* the old value as the host knows it (a hint), NULL when not told */
    u64 oldlen;
    i64 account; /* account tries: the record of the change, else -1; a warm's: the key's index */
    u8 del;
} mchange;

typedef struct {
    mchange *c; /* sorted by key */
    u64 n;
    u8 root[32];   /* the trie's root before, then after */
    mnode *result; /* the new root node once a pass finished (NULL: empty) */
    int done;
    i64 account;    /* storage tries: their account's record */
    mchange lookup; /* and that account's change: its key and old value, to look up its root */
} mjob;

/* What one worker thread produced: new nodes and their hashes. */
typedef struct {
    marena arena;
    u8 *hashes;
    const u8 **enc;
    u64 *len;
    u64 n, cap;
} mworker;

typedef struct {
    u64 key;     /* the hash's first 8 bytes */
    const u8 *hash;
    mnode *node; /* NULL while listed as missing */
    int again;   /* a warm's node listed and not read: the next pass lists it again */
} mslot;

/* A slot of a hash table keyed by node hash: the hash's first 8 bytes, kept beside the
 * pointer so that a probe rarely follows a pointer that is not the one. */
typedef struct {
    u64 key;
    u8 *entry; /* starts with the 32-byte hash; NULL where the slot is free */
} mkeyed;

/* One generation of the node cache: encodings by hash, each entry in the arena as the hash,
 * the length (8 bytes; MPT_DEAD set once a commit replaced the node) and the encoding. */
#define MPT_ENTRY 192 /* bytes a cached node takes, about: an account leaf, its entry and slots */
#define MPT_DEAD ((u64)1 << 63)
typedef struct {
    marena arena;
    mkeyed *slots;
    u64 mask, used, bytes;
} mgen;

typedef struct {
    marena work;  /* everything of one commit but the workers' output */
    mslot *map;   /* nodes held, by hash */
    u64 mask, used;
    u8 *missing;  /* hashes the last step listed */
    u64 nmissing, capmissing;
    int phase;
    u8 *accounts; /* the host's account records (storage roots are filled in); none for a raw trie */
    u64 naccounts;
    const u8 **values; /* each record's new value (its leaf's), NULL while none; and its size */
    u64 *vlens;
    mjob *storage;
    u64 nstorage;
    mjob main;    /* the account trie, or the one trie of a raw commit (or of a warm) */
    u64 nwarm;    /* a warm's keys */
    const u8 *warm_paths; /* their paths, 32 bytes each, and a table of their indexes + 1 by path */
    u32 *warm_index;
    u64 warm_mask;
    int warmed;   /* the map holds the nodes of a warm of the trie under warm_root */
    int warm_stop; /* set by another thread (mpt_warm_stop): the warm's pass ends early */
    u64 warm_depth; /* a warm reads its paths' nodes down to this depth (nibbles) */
    int trim;       /* a top warm's decoded nodes are in the arena: freed, their pages go back */
    u8 warm_root[32];
    u64 threads;
    mworker *workers;
    /* Nodes the last commits created, for the next ones (whose paths start in them): two
     * generations; when the young one outgrows half the budget, the old one is dropped and
     * the young one becomes old. A node met in the old one moves to the young one. */
    mgen cache[2];
    u64 cache_budget;
    char err[200];
    pthread_mutex_t lock; /* the map, the cache and the missing list while a pass runs in threads */
    int parallel;         /* such a pass is running: take the lock */
} msession;

/* The arena a thread of a parallel account pass allocates from (NULL: the session's work
 * arena, the calling thread's). */
static __thread marena *mpt_pass_arena;

static marena *mpt_arena(msession *s) { return mpt_pass_arena ? mpt_pass_arena : &s->work; }

/* The session's lock, taken only while a pass runs in threads (a commit's hundred thousand
 * lookups on one thread pay nothing for it). */
static void mpt_lock(msession *s) {
    if (s->parallel) pthread_mutex_lock(&s->lock);
}

static void mpt_unlock(msession *s) {
    if (s->parallel) pthread_mutex_unlock(&s->lock);
}

static void mpt_fail_locked(msession *s, const char *what, const u8 *hash) {
    if (s->err[0]) return;
    u64 n = 0;
    for (const char *p = what; *p && n < 120; p++) s->err[n++] = *p;
    if (hash) {
        static const char HEX[] = "0123456789abcdef";
        s->err[n++] = ' ';
        for (int i = 0; i < 32; i++) {
            s->err[n++] = HEX[hash[i] >> 4];
            s->err[n++] = HEX[hash[i] & 15];
        }
    }
    s->err[n] = 0;
}

static void mpt_fail(msession *s, const char *what, const u8 *hash) {
    mpt_lock(s);
    mpt_fail_locked(s, what, hash);
    mpt_unlock(s);
}

/* Keccak-256 of n bytes at p, as bytes: the interpreter's permutation, absorbing whole lanes
 * (the CPU library runs on little-endian hosts, where a lane is its bytes in memory order). */
static void mpt_keccak(const u8 *p, u64 n, u8 *out) {
    u64 st[25] = {0}, lane;
    for (; n >= KECCAK_RATE; n -= KECCAK_RATE, p += KECCAK_RATE) {
        for (int i = 0; i < KECCAK_RATE / 8; i++) memcpy(&lane, p + 8 * i, 8), st[i] ^= lane;
        keccak_f1600(st);
    }
    u8 last[KECCAK_RATE] = {0};
    memcpy(last, p, n);
    last[n] ^= 0x01;
    last[KECCAK_RATE - 1] ^= 0x80;
    for (int i = 0; i < KECCAK_RATE / 8; i++) memcpy(&lane, last + 8 * i, 8), st[i] ^= lane;
    keccak_f1600(st);
    memcpy(out, st, 32);
}

static u64 mpt_key(const u8 *hash) {
    u64 key;
    memcpy(&key, hash, 8);
    return key;
}

/* A warm's index slot of a path: paths need not be hashes (StateDB.warm_top's count up in
 * their first nibbles, the rest zero), so their first bytes are mixed (splitmix64's end):
 * taken as they are, a million of them fell into a sixteenth of the slots. */
static u64 mpt_path_key(const u8 *path) {
    u64 x = mpt_key(path);
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static void mpt_map_grow(msession *s) {
    u64 cap = s->map ? 2 * (s->mask + 1) : 1024;
    mslot *old = s->map;
    u64 old_cap = s->map ? s->mask + 1 : 0;
    s->map = (mslot *)calloc(cap, sizeof(mslot));
    if (!s->map) abort();
    s->mask = cap - 1;
    for (u64 i = 0; i < old_cap; i++) {
        if (!old[i].hash) continue;
        u64 h = old[i].key & s->mask;
        while (s->map[h].hash) h = (h + 1) & s->mask;
        s->map[h] = old[i];
    }
    free(old);
}

/* The map's slot for hash; added empty (and *added set) when absent. */
static mslot *mpt_slot(msession *s, const u8 *hash, int *added) {
    if (2 * (s->used + 1) > s->mask + 1) mpt_map_grow(s);
    u64 key = mpt_key(hash), h = key & s->mask;
    *added = 0;
    while (s->map[h].hash) {
        if (s->map[h].key == key && memcmp(s->map[h].hash, hash, 32) == 0) return &s->map[h];
        h = (h + 1) & s->mask;
    }
    s->map[h].key = key;
    s->map[h].hash = hash;
    s->used++;
    *added = 1;
    return &s->map[h];
}

static u64 mpt_entry_len(const u8 *entry) {
    u64 len;
    memcpy(&len, entry + 32, 8);
    return len & ~MPT_DEAD;
}

static int mpt_entry_dead(const u8 *entry) {
    u64 len;
    memcpy(&len, entry + 32, 8);
    return (len & MPT_DEAD) != 0;
}

static void mpt_entry_mark(u8 *entry, int dead) {
    u64 len = mpt_entry_len(entry) | (dead ? MPT_DEAD : 0);
    memcpy(entry + 32, &len, 8);
}

/* The cache entry of hash in generation g, or NULL. */
static const u8 *mpt_gen_find(const mgen *g, const u8 *hash) {
    if (!g->slots) return NULL;
    u64 key = mpt_key(hash);
    for (u64 h = key & g->mask; g->slots[h].entry; h = (h + 1) & g->mask) {
        if (g->slots[h].key == key && memcmp(g->slots[h].entry, hash, 32) == 0) return g->slots[h].entry;
    }
    return NULL;
}

/* Adds a node to generation g, which holds up to about budget bytes: its table starts at the
 * size that many nodes need (growing it in one block's commit rehashed millions of entries:
 * a 300 ms stall on a 1M-account state). Its entry (one there already is current again). */
static u8 *mpt_gen_add(mgen *g, u64 budget, const u8 *hash, const u8 *node, u64 len) {
    if (2 * (g->used + 1) > (g->slots ? g->mask + 1 : 0)) {
        u64 cap = 4096, old_cap = g->slots ? g->mask + 1 : 0;
        while (cap < 2 * old_cap || cap < 2 * (budget / MPT_ENTRY)) cap *= 2;
        mkeyed *old = g->slots;
        g->slots = (mkeyed *)calloc(cap, sizeof(mkeyed));
        if (!g->slots) abort();
        g->mask = cap - 1;
        for (u64 i = 0; i < old_cap; i++) {
            if (!old[i].entry) continue;
            u64 h = old[i].key & g->mask;
            while (g->slots[h].entry) h = (h + 1) & g->mask;
            g->slots[h] = old[i];
        }
        free(old);
    }
    u64 key = mpt_key(hash), h = key & g->mask;
    for (; g->slots[h].entry; h = (h + 1) & g->mask) {
        if (g->slots[h].key == key && memcmp(g->slots[h].entry, hash, 32) == 0) {
            mpt_entry_mark(g->slots[h].entry, 0);
            return g->slots[h].entry;
        }
    }
    u8 *entry = (u8 *)mpt_alloc(&g->arena, 40 + len);
    memcpy(entry, hash, 32);
    memcpy(entry + 32, &len, 8);
    memcpy(entry + 40, node, len);
    g->slots[h] = (mkeyed){key, entry};
    g->used++;
    g->bytes += 40 + len + 2 * sizeof(mkeyed);
    return entry;
}

static void mpt_gen_free(mgen *g) {
    mpt_arena_free(&g->arena);
    free(g->slots);
    memset(g, 0, sizeof(mgen));
}

/* 1 when the encoding is a leaf's: two items, the first a path with the leaf flag. */
static int mpt_is_leaf(const u8 *p, u64 len) {
    u64 off, size, o1, n1, o2, n2;
    if (rlp_item(p, len, &off, &size) != 1 || rlp_item(p + off, size, &o1, &n1) != 0 || n1 == 0) return 0;
    u64 second = off + o1 + n1;
    if (second >= len || rlp_item(p + second, len - second, &o2, &n2) < 0 || second + o2 + n2 != len) return 0;
    return p[off + o1] >> 4 >= 2;
}

/* The young generation is full: it becomes the old one, and the old one's nodes go, but for
 * those no commit replaced since (so still in the head's tries, unless a block was dropped)
 * and the young one lacks: up to a quarter of the budget of them start the new young one.
 * Dropping them too made a node the blocks did not pass for two generations a read again
 * (on a 1M-account state, most of the lowest branches: 9,000-12,000 reads a block). */
static void mpt_cache_rotate(msession *s) {
    mgen young = {0}, *old = &s->cache[1];
    for (u64 i = 0; old->slots && i <= old->mask && young.bytes < s->cache_budget / 4; i++) {
        const u8 *entry = old->slots[i].entry;
        if (!entry || mpt_entry_dead(entry) || mpt_gen_find(&s->cache[0], entry)) continue;
        mpt_gen_add(&young, s->cache_budget / 2, entry, entry + 40, mpt_entry_len(entry));
    }
    mpt_gen_free(old);
    s->cache[1] = s->cache[0];
    s->cache[0] = young;
}

/* Keeps a commit's new node for the next commits, within the budget: branches and extensions
 * (a leaf is read only to insert a key beside it or to delete one near it). */
static void mpt_cache_add(msession *s, const u8 *hash, const u8 *node, u64 len) {
    if (!s->cache_budget || mpt_is_leaf(node, len)) return;
    mpt_gen_add(&s->cache[0], s->cache_budget / 2, hash, node, len);
    if (s->cache[0].bytes > s->cache_budget / 2) mpt_cache_rotate(s);
}

/* A node a commit replaced: when it came from the cache, its entry is marked, so that no
 * rotation keeps it (a node of the commit's output with the same hash clears the mark). */
static void mpt_retire(msession *s, mnode *m) {
    if (m->kind == MK_LEAF || !m->vlen) return;
    mpt_lock(s);
    mpt_entry_mark((u8 *)m->ref, 1);
    mpt_unlock(s);
}

static void mpt_list(msession *s, const u8 *hash);
static mnode *mpt_decode(msession *s, const u8 *p, u64 len);

/* The node n stands for: itself, or the node its hash names, from this commit's reads or the
 * cache; MPT_MISSING (and listed for the host to read) when the session does not hold it. */
static mnode *mpt_resolve(msession *s, mnode *n) {
    if (!n || n->kind != MK_HASH) return n;
    if (n->child) return n->child; /* resolved by an earlier pass */
    mpt_lock(s);
    int added;
    mslot *e = mpt_slot(s, n->ref, &added);
    if (!e->node) {
        const u8 *entry = mpt_gen_find(&s->cache[0], n->ref);
        if (!entry && (entry = mpt_gen_find(&s->cache[1], n->ref)) != NULL) {
            /* in use: keep it young */
            entry = mpt_gen_add(&s->cache[0], s->cache_budget / 2, entry, entry + 40, mpt_entry_len(entry));
        }
        if (!entry) {
            /* first met (or a warm's not read last time): the host reads it */
            if (added || e->again) mpt_list(s, n->ref);
            e->again = 0;
            mpt_unlock(s);
            return MPT_MISSING;
        }
        /* Decoded outside the lock, so that a parallel pass's threads decode their subtries'
         * nodes at once (on the 16-core host, a commit's eight threads took twice the CPU time
         * of the 2-core box's two for about the same wall time); the slot is found again
         * after, as another thread may have grown the map or decoded the same node meanwhile.
         * Used in place: the cache drops a generation only after the commit's last pass. */
        mpt_unlock(s);
        mnode *decoded = mpt_decode(s, entry + 40, mpt_entry_len(entry));
        if (decoded) {
            decoded->ref = entry;
            decoded->reflen = 32;
            if (decoded->kind != MK_LEAF) decoded->vlen = 1;
        }
        mpt_lock(s);
        if (s->parallel) e = mpt_slot(s, n->ref, &added);
        if (!decoded) {
            mpt_fail_locked(s, "malformed state trie node", entry);
            mpt_unlock(s);
            return MPT_MISSING;
        }
        if (!e->node) {
            e->hash = entry;
            e->node = decoded;
        }
    }
    mnode *node = e->node; /* e moves when another thread grows the map */
    mpt_unlock(s);
    n->child = node;
    return node;
}

/* ---- decoding nodes read from the store ----------------------------------------------------- */

/* A child item: empty, a hash (a stub to resolve) or an embedded node; 0 when malformed. */
static int mpt_child(msession *s, const u8 *raw, u64 rawlen, const u8 *pay, u64 paylen, int list, mnode **out) {
    if (list) {
        if (rawlen >= 32) return 0;
        mnode *e = mpt_decode(s, raw, rawlen);
        if (!e) return 0;
        e->ref = raw;
        e->reflen = (u8)rawlen;
        *out = e;
        return 1;
    }
    if (paylen == 0) {
        *out = NULL;
        return 1;
    }
    if (paylen != 32) return 0;
    mnode *stub = mpt_node(mpt_arena(s), MK_HASH);
    stub->ref = pay;
    stub->reflen = 32;
    *out = stub;
    return 1;
}

/* The node encoded at p[0..len); NULL when malformed. Its ref is left for the caller. */
static mnode *mpt_decode(msession *s, const u8 *p, u64 len) {
    u64 off, size;
    if (rlp_item(p, len, &off, &size) != 1 || off + size != len) return NULL;
    const u8 *raw[17], *pay[17];
    u64 rawlen[17], paylen[17], count = 0, at = off;
    int list[17];
    while (at < len) {
        if (count == 17) return NULL;
        u64 o, n;
        int k = rlp_item(p + at, len - at, &o, &n);
        if (k < 0) return NULL;
        raw[count] = p + at;
        rawlen[count] = o + n;
        pay[count] = p + at + o;
        paylen[count] = n;
        list[count] = k;
        count++;
        at += o + n;
    }
    if (count == 17) {
        if (list[16] || paylen[16]) return NULL; /* a value in a branch: keys are not 32 bytes */
        mnode *b = mpt_node(mpt_arena(s), MK_BRANCH);
        b->kids = (mnode **)mpt_alloc(mpt_arena(s), 16 * sizeof(mnode *));
        for (int i = 0; i < 16; i++) {
            if (!mpt_child(s, raw[i], rawlen[i], pay[i], paylen[i], list[i], &b->kids[i])) return NULL;
        }
        return b;
    }
    if (count != 2 || list[0] || paylen[0] == 0) return NULL;
    int flag = pay[0][0] >> 4;
    if (flag > 3) return NULL;
    int odd = flag & 1;
    u64 plen = 2 * paylen[0] - 2 + (u64)odd;
    if (plen > 64) return NULL;
    u8 *path = (u8 *)mpt_alloc(mpt_arena(s), plen + 1);
    for (u64 i = 0; i < plen; i++) path[i] = key_nibble(pay[0], i + (odd ? 1 : 2));
    mnode *n = mpt_node(mpt_arena(s), flag >= 2 ? MK_LEAF : MK_EXT);
    n->path = path;
    n->plen = (u8)plen;
    if (n->kind == MK_LEAF) {
        if (list[1]) return NULL;
        n->val = pay[1];
        n->vlen = paylen[1];
        return n;
    }
    if (plen == 0 || !mpt_child(s, raw[1], rawlen[1], pay[1], paylen[1], list[1], &n->child) || !n->child) return NULL;
    return n;
}

/* ---- the update pass ------------------------------------------------------------------------ */

typedef struct {
    const u8 *nib;
    const u8 *val;
    u64 vlen;
} mitem;

static u64 mpt_lcp(const u8 *a, const u8 *b, u64 n) {
    u64 i = 0;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

static mnode *mpt_leaf(msession *s, const u8 *path, u64 plen, const u8 *val, u64 vlen) {
    mnode *n = mpt_node(mpt_arena(s), MK_LEAF);
    n->dirty = 1;
    n->path = path;
    n->plen = (u8)plen;
    n->val = val;
    n->vlen = vlen;
    return n;
}

static mnode *mpt_ext(msession *s, const u8 *path, u64 plen, mnode *child) {
    mnode *n = mpt_node(mpt_arena(s), MK_EXT);
    n->dirty = 1;
    n->path = path;
    n->plen = (u8)plen;
    n->child = child;
    return n;
}

/* node under the path prefix[0..plen): a leaf's or extension's path grows, a branch gets an
 * extension above it. */
static mnode *mpt_prefixed(msession *s, const u8 *prefix, u64 plen, mnode *node) {
    node = mpt_resolve(s, node);
    if (!plen || !node || node == MPT_MISSING) return node;
    if (node->kind == MK_BRANCH) return mpt_ext(s, prefix, plen, node);
    u8 *path = (u8 *)mpt_alloc(mpt_arena(s), plen + node->plen);
    memcpy(path, prefix, plen);
    memcpy(path + plen, node->path, node->plen);
    if (node->kind == MK_LEAF) return mpt_leaf(s, path, plen + node->plen, node->val, node->vlen);
    return mpt_ext(s, path, plen + node->plen, node->child);
}

static mnode *mpt_branch(msession *s, mnode **kids) {
    mnode *n = mpt_node(mpt_arena(s), MK_BRANCH);
    n->dirty = 1;
    n->kids = (mnode **)mpt_alloc(mpt_arena(s), 16 * sizeof(mnode *));
    memcpy(n->kids, kids, 16 * sizeof(mnode *));
    return n;
}

/* A trie of items (sorted, distinct keys) from nothing, at depth. */
static mnode *mpt_build(msession *s, const mitem *items, u64 n, u64 depth) {
    if (n == 0) return NULL;
    if (n == 1) return mpt_leaf(s, items[0].nib + depth, 64 - depth, items[0].val, items[0].vlen);
    /* sorted: the first and last keys share what all share */
    u64 shared = mpt_lcp(items[0].nib + depth, items[n - 1].nib + depth, 64 - depth);
    mnode *kids[16] = {0};
    u64 d = depth + shared;
    for (u64 i = 0; i < n;) {
        u64 j = i;
        while (j < n && items[j].nib[d] == items[i].nib[d]) j++;
        kids[items[i].nib[d]] = mpt_build(s, items + i, j - i, d + 1);
        i = j;
    }
    mnode *b = mpt_branch(s, kids);
    return shared ? mpt_ext(s, items[0].nib + depth, shared, b) : b;
}

/* The RLP string item (header and payload) of n bytes at p, written at out; its size. */
static u64 mpt_put_string(u8 *out, const u8 *p, u64 n);
static u64 mpt_string_size(const u8 *p, u64 n);
static u8 *mpt_put_head(u8 *out, u64 n, u8 base);
static u64 mpt_hex_prefix(const u8 *path, u64 plen, int leaf, u8 *out);

/* The storage root and code hash of a stored account, RLP [nonce, balance, storage root,
 * code hash]; 0 when it is malformed. */
static int mpt_account_roots(const u8 *p, u64 len, const u8 **root, const u8 **code) {
    u64 off, size;
    if (rlp_item(p, len, &off, &size) != 1 || off + size != len) return 0;
    const u8 *items[4];
    u64 at = off;
    for (int i = 0; i < 4; i++) {
        u64 o, n;
        if (at >= len || rlp_item(p + at, len - at, &o, &n) != 0 || (i >= 2 && n != 32)) return 0;
        items[i] = p + at + o;
        at += o + n;
    }
    *root = items[2];
    *code = items[3];
    return at == len;
}

/* An account's new value, written at out (MA_VALUE_MAX bytes at most): the change's record,
 * with the old account's code hash and storage root where the record keeps them (old NULL:
 * the account is new). Its size; 0 when old is malformed. */
static u64 mpt_account_rlp(const u8 *rec, const u8 *old, u64 oldlen, u8 *out) {
    const u8 *code = rec + MA_CODE_HASH, *root = rec + MA_STORAGE_ROOT;
    u8 flags = rec[MA_FLAGS];
    if (flags & (MF_KEEP_CODE | MF_KEEP_STORAGE)) {
        const u8 *old_code = MPT_EMPTY_CODE_HASH, *old_root = EMPTY_ROOT_BYTES;
        if (old && !mpt_account_roots(old, oldlen, &old_root, &old_code)) return 0;
        if (flags & MF_KEEP_CODE) code = old_code;
        if (flags & MF_KEEP_STORAGE) root = old_root;
    }
    u64 nz = 0, bz = 0;
    while (nz < 8 && rec[MA_NONCE + nz] == 0) nz++;
    while (bz < 32 && rec[MA_BALANCE + bz] == 0) bz++;
    u8 *p = out + 2;
    p += mpt_put_string(p, rec + MA_NONCE + nz, 8 - nz);
    p += mpt_put_string(p, rec + MA_BALANCE + bz, 32 - bz);
    p += mpt_put_string(p, root, 32);
    p += mpt_put_string(p, code, 32);
    u64 size = (u64)(p - out) - 2;
    out[0] = 0xF8; /* the body is 68 to 109 bytes: a list with a one-byte length */
    out[1] = (u8)size;
    return size + 2;
}

/* mpt_account_rlp's value in the session's memory. 0 when old is malformed. */
static int mpt_account_value(msession *s, const u8 *rec, const u8 *old, u64 oldlen, const u8 **val, u64 *vlen) {
    u8 buf[MA_VALUE_MAX];
    u64 size = mpt_account_rlp(rec, old, oldlen, buf);
    if (!size) return 0;
    u8 *out = (u8 *)mpt_alloc(mpt_arena(s), size);
    memcpy(out, buf, size);
    *val = out;
    *vlen = size;
    return 1;
}

/* Accounts' values after changes, outside a commit: for record i (MA_SIZE bytes each) and the
 * account's old value (olds + offsets[i], lens[i] bytes; lens[i] < 0: none), its new value at
 * out + i * MA_VALUE_MAX and its size into sizes[i]: -1 for a deleted account, 0 when the old
 * value is malformed. */
EVM_EXPORT void mpt_account_rows(const u8 *records, u64 n, const u8 *olds, const u64 *offsets,
                                 const i64 *lens, u8 *out, i64 *sizes) {
    for (u64 i = 0; i < n; i++) {
        const u8 *rec = records + i * MA_SIZE;
        if (rec[MA_FLAGS] & MF_DELETE) {
            sizes[i] = -1;
            continue;
        }
        const u8 *old = lens[i] < 0 ? NULL : olds + offsets[i];
        sizes[i] = (i64)mpt_account_rlp(rec, old, lens[i] < 0 ? 0 : (u64)lens[i], out + i * MA_VALUE_MAX);
    }
}

/* A flat writer's staging of n rows (accounts' or slots': a flat key is prefix, then a name
 * of width bytes): for each row i it is told to stage (stage[i]) whose new value (news, back
 * to back; new_lens[i] < 0: deleted) differs from its old one (olds, back to back;
 * old_lens[i] < 0: none), changed[i] = 1, its name into names, its new value into values and
 * its size into sizes (-1: a delete), and into undo the record that restores it: its flat
 * key, the old value's size (2 bytes, big-endian; 0: none) and the old value. Returns how many
 * it staged; *undo_size gets the bytes of undo. The room needed: names width n, values the
 * news' bytes, undo (width + 3) n plus the olds' bytes. */
EVM_EXPORT u64 mpt_flat_changes(u64 n, const u8 *stage, const u8 *keys, u64 width, u8 prefix,
                                const u8 *olds, const i64 *old_lens, const u8 *news,
                                const i64 *new_lens, u8 *changed, u8 *names, u8 *values,
                                i64 *sizes, u8 *undo, u64 *undo_size) {
    u64 count = 0;
    const u8 *old = olds, *new_ = news;
    u8 *value = values, *record = undo;
    for (u64 i = 0; i < n; i++) {
        u64 old_len = old_lens[i] < 0 ? 0 : (u64)old_lens[i], new_len = new_lens[i] < 0 ? 0 : (u64)new_lens[i];
        changed[i] = stage[i] && (old_lens[i] != new_lens[i] || memcmp(old, new_, new_len) != 0);
        if (changed[i]) {
            memcpy(names + width * count, keys + width * i, width);
            memcpy(value, new_, new_len);
            value += new_len;
            sizes[count++] = new_lens[i] < 0 ? -1 : (i64)new_len;
            *record++ = prefix;
            memcpy(record, keys + width * i, width);
            record[width] = (u8)(old_len >> 8);
            record[width + 1] = (u8)old_len;
            memcpy(record + width + 2, old, old_len);
            record += width + 2 + old_len;
        }
        old += old_len;
        new_ += new_len;
    }
    *undo_size = (u64)(record - undo);
    return count;
}

/* The item a change sets (old: the value it replaces, NULL when none); 0 when malformed. */
static int mpt_item(msession *s, const mchange *c, const u8 *old, u64 oldlen, mitem *item) {
    item->nib = c->nib;
    item->val = c->val;
    item->vlen = c->vlen;
    if (c->account < 0) return 1;
    if (!mpt_account_value(s, s->accounts + c->account * MA_SIZE, old, oldlen, &item->val, &item->vlen)) {
        mpt_fail(s, "malformed account in the state trie", NULL);
        return 0;
    }
    s->values[c->account] = item->val; /* the last pass's stays: the final value */
    s->vlens[c->account] = item->vlen;
    return 1;
}

/* First change (of n, sorted) whose key from depth on is >= path[0..plen) (upper: >). */
static u64 mpt_bound(const mchange *c, u64 n, u64 depth, const u8 *path, u64 plen, int upper) {
    u64 lo = 0, hi = n;
    while (lo < hi) {
        u64 mid = (lo + hi) / 2;
        int cmp = memcmp(c[mid].nib + depth, path, plen);
        if (cmp < 0 || (upper && cmp == 0)) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* The node the unresolved stub n (at depth) stands for, when it is the old leaf of the one
 * change c and the host told c's old value: that leaf's encoding hashes to the stub's hash.
 * Else what mpt_resolve finds (a read). */
static mnode *mpt_resolve_for(msession *s, mnode *n, u64 depth, const mchange *c, u64 count) {
    if (count != 1 || !c->old || !n || n->kind != MK_HASH || n->child || n->vlen || c->oldlen > 160)
        return mpt_resolve(s, n);
    u8 hp[33], enc[200], hash[32];
    u64 hplen = mpt_hex_prefix(c->nib + depth, 64 - depth, 1, hp);
    u8 *p = mpt_put_head(enc, mpt_string_size(hp, hplen) + mpt_string_size(c->old, c->oldlen), 0xC0);
    p += mpt_put_string(p, hp, hplen);
    p += mpt_put_string(p, c->old, c->oldlen);
    mpt_keccak(enc, (u64)(p - enc), hash);
    if (memcmp(hash, n->ref, 32) != 0) {
        n->vlen = 1; /* a branch, or another key's leaf: later passes do not try again */
        return mpt_resolve(s, n);
    }
    /* a warm keeps it: a new key landing beside it in the commit reads it (its changes are two) */
    if (s->phase == MP_WARM) mpt_gen_add(&s->cache[0], s->cache_budget / 2, n->ref, enc, (u64)(p - enc));
    mnode *leaf = mpt_node(mpt_arena(s), MK_LEAF); /* dirty 0: as if read from the store */
    leaf->path = c->nib + depth;
    leaf->plen = (u8)(64 - depth);
    leaf->val = c->old;
    leaf->vlen = (u32)c->oldlen;
    leaf->ref = n->ref;
    leaf->reflen = 32;
    n->child = leaf; /* resolved: later passes go straight to it */
    return leaf;
}

static mnode *mpt_update(msession *s, mnode *n, u64 depth, const mchange *c, u64 count);

/* The changes under one child of a branch, and what that child became. */
typedef struct {
    mnode *kid;
    const mchange *c;
    u64 count, depth;
    mnode *result;
} mgroup;

typedef struct {
    msession *s;
    marena *arena; /* NULL: the session's work arena (the calling thread) */
    mgroup *groups;
    u64 ngroups, *next;
    pthread_mutex_t *lock;
} mpass;

static void *mpt_pass_thread(void *arg) {
    mpass *p = (mpass *)arg;
    mpt_pass_arena = p->arena;
    for (;;) {
        pthread_mutex_lock(p->lock);
        u64 i = (*p->next)++;
        pthread_mutex_unlock(p->lock);
        if (i >= p->ngroups) break;
        mgroup *g = p->groups + i;
        g->result = mpt_update(p->s, g->kid, g->depth, g->c, g->count);
    }
    mpt_pass_arena = NULL;
    return NULL;
}

/* A parallel account pass needs a session of this many threads (a host with cores to spare:
 * on two busy cores it was 5% slower) and a block that changes this many accounts. */
#define MPT_PASS_MIN_THREADS 3
#define MPT_PASS_MIN_CHANGES 1024

/* Updates the groups' children. Under the account trie's root they are independent subtries,
 * updated in the session's threads: they share only the node map, the cache and the missing
 * list (behind s->lock), and each thread allocates from its own arena. */
static void mpt_update_groups(msession *s, mgroup *groups, u64 ngroups, u64 depth, u64 count) {
    u64 threads = s->threads < ngroups ? s->threads : ngroups;
    if (depth > 0 || s->phase != MP_ACCOUNTS || !s->naccounts || count < MPT_PASS_MIN_CHANGES ||
        s->threads < MPT_PASS_MIN_THREADS || threads < 2) {
        for (u64 i = 0; i < ngroups; i++)
            groups[i].result = mpt_update(s, groups[i].kid, groups[i].depth, groups[i].c, groups[i].count);
        return;
    }
    pthread_t ids[16];
    mpass args[16];
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    u64 next = 0, started = 1;
    s->parallel = 1; /* before the threads start: they see it */
    for (u64 t = 0; t < threads; t++) {
        args[t] = (mpass){s, t ? &s->workers[t].arena : NULL, groups, ngroups, &next, &lock};
        if (t > 0 && pthread_create(&ids[t], NULL, mpt_pass_thread, &args[t]) != 0) break;
        started = t + 1;
    }
    mpt_pass_thread(&args[0]);
    for (u64 t = 1; t < started; t++) pthread_join(ids[t], NULL);
    s->parallel = 0;
}

/* A branch (kids, at depth) after changes; n the branch they belonged to (NULL: a new one). */
static mnode *mpt_update_branch(msession *s, mnode *n, mnode **old, u64 depth, const mchange *c, u64 count) {
    mnode *kids[16];
    memcpy(kids, old, sizeof(kids));
    mgroup groups[16];
    u64 ngroups = 0;
    for (u64 i = 0; i < count;) {
        u8 x = c[i].nib[depth];
        u64 j = i;
        while (j < count && c[j].nib[depth] == x) j++;
        groups[ngroups++] = (mgroup){kids[x], c + i, j - i, depth + 1, NULL};
        i = j;
    }
    mpt_update_groups(s, groups, ngroups, depth, count);
    int missing = 0, changed = n == NULL;
    for (u64 i = 0; i < ngroups; i++) {
        u8 x = groups[i].c[0].nib[depth];
        if (groups[i].result == MPT_MISSING) missing = 1;
        else if (groups[i].result != kids[x]) kids[x] = groups[i].result, changed = 1;
    }
    if (missing) return MPT_MISSING;
    if (!changed) return n;
    int live = 0, only = 0;
    for (int x = 0; x < 16; x++) {
        if (kids[x]) live++, only = x;
    }
    if (live >= 2) return mpt_branch(s, kids);
    if (live == 0) return NULL;
    /* one child left: it moves up, its path one nibble longer */
    return mpt_prefixed(s, MPT_NIBBLES + only, 1, kids[only]);
}

/* A leaf (at depth) after changes that all share its path up to depth. */
static mnode *mpt_update_leaf(msession *s, mnode *n, u64 depth, const mchange *c, u64 count) {
    u64 at = mpt_bound(c, count, depth, n->path, n->plen, 0);
    int hit = at < count && memcmp(c[at].nib + depth, n->path, n->plen) == 0;
    u64 live = 0;
    for (u64 i = 0; i < count; i++) live += !c[i].del;
    if (!live && !hit) return n; /* deletions of absent keys */
    mitem *items = (mitem *)mpt_alloc(mpt_arena(s), (live + 1) * sizeof(mitem));
    u64 m = 0;
    for (u64 i = 0; i < count; i++) {
        if (i == at && !hit) { /* the old leaf, in key order */
            u8 *nib = (u8 *)mpt_alloc(mpt_arena(s), 64);
            memcpy(nib, c[0].nib, depth);
            memcpy(nib + depth, n->path, n->plen);
            items[m++] = (mitem){nib, n->val, n->vlen};
        }
        if (c[i].del) continue;
        if (!mpt_item(s, c + i, i == at && hit ? n->val : NULL, n->vlen, items + m)) return MPT_MISSING;
        m++;
    }
    if (at == count && !hit) {
        u8 *nib = (u8 *)mpt_alloc(mpt_arena(s), 64);
        memcpy(nib, c[0].nib, depth);
        memcpy(nib + depth, n->path, n->plen);
        items[m++] = (mitem){nib, n->val, n->vlen};
    }
    return mpt_build(s, items, m, depth);
}

/* An extension (at depth) after changes. */
static mnode *mpt_update_ext(msession *s, mnode *n, u64 depth, const mchange *c, u64 count) {
    u64 a = mpt_bound(c, count, depth, n->path, n->plen, 0);
    u64 b = mpt_bound(c, count, depth, n->path, n->plen, 1);
    int diverge = 0; /* a change that leaves the path and sets a key */
    for (u64 i = 0; i < count && !diverge; i++) diverge = (i < a || i >= b) && !c[i].del;
    if (!diverge) { /* changes off the path only delete absent keys */
        mnode *r = mpt_update(s, n->child, depth + n->plen, c + a, b - a);
        if (r == MPT_MISSING || r == n->child) return r == MPT_MISSING ? r : n;
        return mpt_prefixed(s, n->path, n->plen, r);
    }
    /* split the path where the first or last change leaves it (sorted: they bound the rest) */
    u64 lo = mpt_lcp(n->path, c[0].nib + depth, n->plen), hi = mpt_lcp(n->path, c[count - 1].nib + depth, n->plen);
    u64 shared = lo < hi ? lo : hi, rest = n->plen - shared - 1;
    mnode *kids[16] = {0};
    kids[n->path[shared]] = rest ? mpt_ext(s, n->path + shared + 1, rest, n->child) : n->child;
    mnode *r = mpt_update_branch(s, NULL, kids, depth + shared, c, count);
    return r == MPT_MISSING ? r : mpt_prefixed(s, n->path, shared, r);
}

/* The node n (at depth; NULL for none) after changes (sorted; keys share its path to depth):
 * n itself when nothing changed, NULL when the subtrie became empty, MPT_MISSING when a node
 * it needs is missing (listed) or malformed (s->err). */
static mnode *mpt_update(msession *s, mnode *n, u64 depth, const mchange *c, u64 count) {
    if (!count) return n;
    if (n && n->kind == MK_HASH && n->plen) return n->done; /* an earlier pass finished it */
    mnode *m = mpt_resolve_for(s, n, depth, c, count);
    if (m == MPT_MISSING) return m;
    if (!m) {
        mitem *items = (mitem *)mpt_alloc(mpt_arena(s), count * sizeof(mitem));
        u64 k = 0;
        for (u64 i = 0; i < count; i++) {
            if (c[i].del) continue;
            if (!mpt_item(s, c + i, NULL, 0, items + k)) return MPT_MISSING;
            k++;
        }
        return mpt_build(s, items, k, depth);
    }
    mnode *r;
    if (m->kind == MK_LEAF && depth + m->plen == 64) r = mpt_update_leaf(s, m, depth, c, count);
    else if (m->kind == MK_EXT && depth + m->plen < 64) r = mpt_update_ext(s, m, depth, c, count);
    else if (m->kind == MK_BRANCH && depth < 64) r = mpt_update_branch(s, m, m->kids, depth, c, count);
    else {
        mpt_fail(s, "malformed state trie node: a path of the wrong length", NULL);
        return MPT_MISSING;
    }
    if (r == MPT_MISSING) return r;
    if (r != m) mpt_retire(s, m);
    r = r == m ? n : r;
    /* Later passes of a state's account trie skip what is finished (a pass re-runs from the
     * root; on a restarted node a block took 4-5). A stub meets the same changes in every pass
     * unless two places of the trie hold the same node (decoded once, its stubs shared): its
     * keys are Keccak hashes, so no two of its subtries are alike. Storage tries may be alike
     * (and share nodes), and a raw trie's keys are anything, so theirs re-run. */
    if (n && n->kind == MK_HASH && s->phase == MP_ACCOUNTS && s->naccounts) n->done = r, n->plen = 1;
    return r;
}

/* The value of the key of change c in the trie under n: 1 found, 0 absent (or its walk
 * reached depth `stop`, in nibbles, before its end), 2 a node is missing (listed), -1
 * malformed. */
static int mpt_walk(msession *s, mnode *n, const mchange *c, u64 stop, const u8 **val, u64 *vlen) {
    const u8 *nib = c->nib;
    u64 depth = 0;
    for (;;) {
        n = mpt_resolve_for(s, n, depth, c, 1);
        if (n == MPT_MISSING) return 2;
        if (!n || depth >= stop) return 0;
        if (n->kind == MK_BRANCH) {
            if (depth >= 64) return -1;
            n = n->kids[nib[depth++]];
            continue;
        }
        if (depth + n->plen > 64 || memcmp(n->path, nib + depth, n->plen) != 0) return 0;
        depth += n->plen;
        if (n->kind == MK_LEAF) {
            if (depth != 64) return -1;
            *val = n->val;
            *vlen = n->vlen;
            return 1;
        }
        n = n->child;
    }
}

/* mpt_walk to the key's end. */
static int mpt_get(msession *s, mnode *n, const mchange *c, const u8 **val, u64 *vlen) {
    return mpt_walk(s, n, c, MW_TO_END, val, vlen);
}

/* ---- encoding and hashing ------------------------------------------------------------------- */

static u64 mpt_head_size(u64 n) {
    u64 k = 0;
    if (n < 56) return 1;
    while (n >> (8 * k)) k++;
    return 1 + k;
}

static u8 *mpt_put_head(u8 *out, u64 n, u8 base) {
    if (n < 56) {
        *out++ = (u8)(base + n);
        return out;
    }
    u64 k = mpt_head_size(n) - 1;
    *out++ = (u8)(base + 55 + k);
    for (u64 i = k; i > 0; i--) *out++ = (u8)(n >> (8 * (i - 1)));
    return out;
}

static u64 mpt_string_size(const u8 *p, u64 n) { return n == 1 && p[0] < 0x80 ? 1 : mpt_head_size(n) + n; }

static u64 mpt_put_string(u8 *out, const u8 *p, u64 n) {
    if (n == 1 && p[0] < 0x80) {
        out[0] = p[0];
        return 1;
    }
    u8 *q = mpt_put_head(out, n, 0x80);
    memcpy(q, p, n);
    return (u64)(q - out) + n;
}

/* Hex-prefix encoding of a path (at most 33 bytes); its size. */
static u64 mpt_hex_prefix(const u8 *path, u64 plen, int leaf, u8 *out) {
    u64 odd = plen & 1, n = plen / 2 + 1;
    out[0] = (u8)(((leaf ? 2 : 0) + odd) << 4 | (odd ? path[0] : 0));
    for (u64 i = odd; i < plen; i += 2) out[1 + i / 2] = (u8)(path[i] << 4 | path[i + 1]);
    return n;
}

static u64 mpt_ref_size(const mnode *n) { return !n ? 1 : n->reflen == 32 ? 33 : n->reflen; }

static u8 *mpt_put_ref(u8 *out, const mnode *n) {
    if (!n) {
        *out++ = 0x80;
    } else if (n->reflen == 32) {
        *out++ = 0xA0;
        memcpy(out, n->ref, 32);
        out += 32;
    } else {
        memcpy(out, n->ref, n->reflen);
        out += n->reflen;
    }
    return out;
}

/* Encodes the new nodes of the subtrie n, children first, hashing those of 32 bytes or more
 * (and n itself when it is a root) into w's output. */
static void mpt_encode(mworker *w, mnode *n, int root) {
    if (!n || n->dirty != 1) return;
    u8 hp[33];
    u64 hplen = 0, payload;
    if (n->kind == MK_BRANCH) {
        payload = 1;
        for (int i = 0; i < 16; i++) {
            mpt_encode(w, n->kids[i], 0);
            payload += mpt_ref_size(n->kids[i]);
        }
    } else {
        hplen = mpt_hex_prefix(n->path, n->plen, n->kind == MK_LEAF, hp);
        payload = mpt_string_size(hp, hplen);
        if (n->kind == MK_LEAF) {
            payload += mpt_string_size(n->val, n->vlen);
        } else {
            mpt_encode(w, n->child, 0);
            payload += mpt_ref_size(n->child);
        }
    }
    u64 size = mpt_head_size(payload) + payload;
    u8 *enc = (u8 *)mpt_alloc(&w->arena, size), *p = mpt_put_head(enc, payload, 0xC0);
    if (n->kind == MK_BRANCH) {
        for (int i = 0; i < 16; i++) p = mpt_put_ref(p, n->kids[i]);
        *p++ = 0x80;
    } else {
        p += mpt_put_string(p, hp, hplen);
        if (n->kind == MK_LEAF) p += mpt_put_string(p, n->val, n->vlen);
        else p = mpt_put_ref(p, n->child);
    }
    n->dirty = 2;
    if (size < 32 && !root) {
        n->ref = enc;
        n->reflen = (u8)size;
        return;
    }
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 4096;
        w->hashes = (u8 *)realloc(w->hashes, 32 * w->cap);
        w->enc = (const u8 **)realloc((void *)w->enc, w->cap * sizeof(u8 *));
        w->len = (u64 *)realloc(w->len, w->cap * sizeof(u64));
        if (!w->hashes || !w->enc || !w->len) abort();
    }
    u8 *hash = w->hashes + 32 * w->n;
    mpt_keccak(enc, size, hash);
    w->enc[w->n] = enc;
    w->len[w->n] = size;
    w->n++;
    /* the output array may move: the node keeps a copy of its hash */
    u8 *ref = (u8 *)mpt_alloc(&w->arena, 32);
    memcpy(ref, hash, 32);
    n->ref = ref;
    n->reflen = 32;
}

typedef struct {
    mworker *w;
    mnode **tasks;
    u64 ntasks, *next;
    pthread_mutex_t *lock;
} mthread;

static void *mpt_thread(void *arg) {
    mthread *t = (mthread *)arg;
    for (;;) {
        pthread_mutex_lock(t->lock);
        u64 i = (*t->next)++;
        pthread_mutex_unlock(t->lock);
        if (i >= t->ntasks) return NULL;
        mpt_encode(t->w, t->tasks[i], 0);
    }
}

/* The new subtries two levels below n (or the top of its new nodes), as parallel tasks. */
static void mpt_tasks(mnode *n, int level, mnode **tasks, u64 *count, u64 cap) {
    if (!n || n->dirty != 1) return;
    if (level == 2 || n->kind == MK_LEAF || *count + 16 > cap) {
        if (level > 0) tasks[(*count)++] = n;
        return;
    }
    if (n->kind == MK_EXT) {
        mpt_tasks(n->child, level, tasks, count, cap);
        return;
    }
    for (int i = 0; i < 16; i++) mpt_tasks(n->kids[i], level + 1, tasks, count, cap);
}

/* Encodes and hashes the new tries of jobs: independent subtries in the worker threads, then
 * the tops; each job's root hash lands in its root. */
static void mpt_finish(msession *s, mjob **jobs, u64 njobs) {
    u64 cap = 0, ntasks = 0;
    for (u64 i = 0; i < njobs; i++) cap += 256 + 16;
    mnode **tasks = (mnode **)mpt_alloc(mpt_arena(s), cap * sizeof(mnode *));
    for (u64 i = 0; i < njobs; i++) mpt_tasks(jobs[i]->result, 0, tasks, &ntasks, cap);
    u64 threads = s->threads < ntasks ? s->threads : ntasks;
    if (threads > 1) {
        pthread_t ids[64];
        mthread args[64];
        pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
        u64 next = 0, started = 0;
        for (u64 t = 0; t < threads && t < 64; t++) {
            args[t] = (mthread){s->workers + t, tasks, ntasks, &next, &lock};
            if (t == 0 || pthread_create(&ids[t], NULL, mpt_thread, &args[t]) == 0) started = t + 1;
            else break;
        }
        mpt_thread(&args[0]);
        for (u64 t = 1; t < started; t++) pthread_join(ids[t], NULL);
    }
    for (u64 i = 0; i < ntasks; i++) mpt_encode(s->workers, tasks[i], 0);
    for (u64 i = 0; i < njobs; i++) {
        mnode *r = jobs[i]->result;
        if (!r) {
            memcpy(jobs[i]->root, EMPTY_ROOT_BYTES, 32);
            continue;
        }
        mpt_encode(s->workers, r, 1);
        memcpy(jobs[i]->root, r->ref, 32);
    }
}

/* ---- the host's interface ------------------------------------------------------------------- */

/* A change's place in its job's order: its key's first 16 nibbles as a number, then the rest. */
typedef struct {
    u64 head;
    const mchange *c;
} msortkey;

static int mpt_sortkey_order(const void *a, const void *b) {
    const msortkey *x = (const msortkey *)a, *y = (const msortkey *)b;
    if (x->head != y->head) return x->head < y->head ? -1 : 1;
    return memcmp(x->c->nib + 16, y->c->nib + 16, 48);
}

/* Sorts a job's changes by key: a radix sort of their keys' heads, then a comparison sort of
 * each run of equal heads (hashed keys have none): 6x faster than qsort on the nibbles where
 * they lie (20,000 keys: 0.6 ms against 3.5; 100,000: 4.8 against 28). Fails on a key given
 * twice. */
static void mpt_sort(msession *s, mjob *j) {
    u64 n = j->n;
    if (n > 1) {
        msortkey *a = (msortkey *)mpt_alloc(mpt_arena(s), n * sizeof(msortkey));
        msortkey *b = (msortkey *)mpt_alloc(mpt_arena(s), n * sizeof(msortkey));
        for (u64 i = 0; i < n; i++) {
            u64 head = 0;
            for (int k = 0; k < 16; k++) head = head << 4 | j->c[i].nib[k];
            a[i].head = head;
            a[i].c = j->c + i;
        }
        for (int shift = 0; shift < 64; shift += 8) {
            u64 at[257] = {0};
            for (u64 i = 0; i < n; i++) at[((a[i].head >> shift) & 255) + 1]++;
            for (int d = 0; d < 256; d++) at[d + 1] += at[d];
            for (u64 i = 0; i < n; i++) b[at[(a[i].head >> shift) & 255]++] = a[i];
            msortkey *t = a;
            a = b;
            b = t;
        }
        for (u64 i = 0, end; i < n; i = end) {
            for (end = i + 1; end < n && a[end].head == a[i].head; end++) {}
            if (end - i > 1) qsort(a + i, end - i, sizeof(msortkey), mpt_sortkey_order);
        }
        mchange *sorted = (mchange *)mpt_alloc(mpt_arena(s), n * sizeof(mchange));
        for (u64 i = 0; i < n; i++) sorted[i] = *a[i].c;
        memcpy(j->c, sorted, n * sizeof(mchange));
    }
    for (u64 i = 1; i < j->n; i++) {
        if (memcmp(j->c[i - 1].nib, j->c[i].nib, 64) == 0) mpt_fail(s, "a key changed twice in one commit", NULL);
    }
}

/* The nibbles of a 32-byte key. */
static u8 *mpt_nibbles(msession *s, const u8 *key) {
    u8 *nib = (u8 *)mpt_alloc(mpt_arena(s), 64);
    for (int i = 0; i < 64; i++) nib[i] = key_nibble(key, (u64)i);
    return nib;
}

/* The nibbles of the Keccak-256 hash of n bytes at p. */
static u8 *mpt_hashed_key(msession *s, const u8 *p, u64 n) {
    u8 hash[32];
    mpt_keccak(p, n, hash);
    return mpt_nibbles(s, hash);
}

/* Forgets the last commit, for one of the trie under root (NULL: a warm). The nodes a warm of
 * that root decoded stay, with what its walks learnt of them (the nodes stubs resolve to, the
 * old leaves hints proved): a warm reads and changes nothing, so its commit goes on from them
 * instead of decoding them again. A commit's nodes never stay: it leaves finished subtries in
 * its stubs. */
static void mpt_reset(msession *s, const u8 *root) {
    int keep = s->warmed && root && memcmp(root, s->warm_root, 32) == 0;
    s->warmed = 0;
    for (u64 t = 0; t < s->threads; t++) {
        mpt_arena_reset(&s->workers[t].arena, MPT_KEEP / s->threads);
        s->workers[t].n = 0;
    }
    if (keep) {
        /* a node the warm listed and was not handed: the commit lists it again */
        for (u64 i = 0; s->map && i <= s->mask; i++) {
            if (s->map[i].hash && !s->map[i].node) s->map[i].again = 1;
        }
    } else {
        mpt_arena_reset(&s->work, MPT_KEEP);
#ifdef __GLIBC__
        /* A top warm decodes about 1 KB a node (a GB for a million), in blocks malloc takes
         * from its heap once it raised its mmap threshold: their pages go back to the system
         * (once: a block's commit reuses its own memory). */
        if (s->trim) malloc_trim(0);
#endif
        s->trim = 0;
        if (s->map && s->mask + 1 > 8 * (s->used + 1024)) { /* far larger than the last commit needed */
            free(s->map);
            s->map = NULL;
            s->mask = 0;
        } else if (s->map) {
            memset(s->map, 0, (s->mask + 1) * sizeof(mslot));
        }
        s->used = 0;
    }
    s->nmissing = 0;
    s->err[0] = 0;
    s->storage = NULL;
    s->nstorage = 0;
    s->accounts = NULL;
    s->naccounts = 0;
    s->values = NULL;
    s->vlens = NULL;
    memset(&s->main, 0, sizeof(mjob));
}

static void mpt_set_root(mjob *j, const u8 *root) {
    memcpy(j->root, root, 32);
    j->result = NULL;
    j->done = 0;
}

/* A session with threads worker threads and a node cache of at most cache_budget bytes. */
EVM_EXPORT void *mpt_open(u64 threads, u64 cache_budget) {
    msession *s = (msession *)calloc(1, sizeof(msession));
    if (!s) return NULL;
    s->cache_budget = cache_budget;
    s->threads = threads < 1 ? 1 : threads > 64 ? 64 : threads;
    pthread_mutex_init(&s->lock, NULL);
    s->workers = (mworker *)calloc(s->threads, sizeof(mworker));
    if (!s->workers) {
        free(s);
        return NULL;
    }
    return s;
}

EVM_EXPORT void mpt_close(void *h) {
    msession *s = (msession *)h;
    mpt_arena_free(&s->work);
    for (u64 t = 0; t < s->threads; t++) {
        mpt_arena_free(&s->workers[t].arena);
        free(s->workers[t].hashes);
        free((void *)s->workers[t].enc);
        free(s->workers[t].len);
    }
    free(s->workers);
    mpt_gen_free(&s->cache[0]);
    mpt_gen_free(&s->cache[1]);
    free(s->map);
    free(s->missing);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* Starts a commit of one trie: n changes of keys (32 bytes each, the trie paths), value i of
 * lens[i] bytes in vals, in order; lens[i] < 0 deletes the key. */
EVM_EXPORT void mpt_begin_trie(void *h, const u8 *root, u64 n, const u8 *keys, const u8 *vals, const i64 *lens) {
    msession *s = (msession *)h;
    mpt_reset(s, root);
    mpt_set_root(&s->main, root);
    s->main.c = (mchange *)mpt_alloc(mpt_arena(s), (n + 1) * sizeof(mchange));
    s->main.n = n;
    u64 total = 0;
    for (u64 i = 0; i < n; i++) total += lens[i] > 0 ? (u64)lens[i] : 0;
    u8 *copy = (u8 *)mpt_alloc(mpt_arena(s), total + 1), *nibs = (u8 *)mpt_alloc(mpt_arena(s), 64 * n + 1);
    memcpy(copy, vals, total);
    for (u64 i = 0, at = 0; i < n; i++) {
        mchange *c = s->main.c + i;
        for (int k = 0; k < 64; k++) nibs[64 * i + k] = key_nibble(keys + 32 * i, (u64)k);
        c->nib = nibs + 64 * i;
        c->old = NULL;
        c->account = -1;
        c->del = lens[i] < 0;
        c->val = copy + at;
        c->vlen = c->del ? 0 : (u64)lens[i];
        at += c->vlen;
        if (!c->del && !c->vlen) c->del = 1; /* an empty value is no value */
    }
    mpt_sort(s, &s->main);
    s->phase = MP_ACCOUNTS;
}

/* The old value of the i-th hint, copied: lens[i] bytes of the concatenated vals (those
 * before it skipped at *at); NULL when lens[i] < 0 (not told) or when there are no hints. As a
 * slot's (big-endian, no leading zeros) it becomes the trie's value, an RLP string. */
static const u8 *mpt_hint(msession *s, const u8 *vals, const i64 *lens, u64 i, u64 *at, int slot, u64 *len) {
    if (!lens || lens[i] < 0) return NULL;
    const u8 *p = vals + *at;
    u64 n = (u64)lens[i];
    *at += n;
    if (n == 0 || n > (slot ? 32u : 160u)) return NULL;
    u8 *copy = (u8 *)mpt_alloc(mpt_arena(s), n + 1);
    *len = slot ? mpt_put_string(copy, p, n) : n;
    if (!slot) memcpy(copy, p, n);
    return copy;
}

/* Starts a commit of a state diff: n account records (MA_SIZE bytes each) under root, and
 * for the i-th record with MF_STORAGE, slot_counts[i] slot changes (MS_SIZE bytes each) taken
 * in order from slots. paths, when not NULL: the records' keys in the account trie (the
 * Keccak-256 of each address, 32 bytes each), which the host already has; slot_paths, when
 * not NULL, likewise the slots' keys in their storage tries, one for each slot change.
 * Hints, when old_lens / old_slot_lens are not NULL: the i-th account's old value (its trie
 * value, RLP) is old_lens[i] bytes of old (-1: not told), and the k-th slot change's old
 * value (big-endian, no leading zeros) old_slot_lens[k] bytes of old_slots. */
EVM_EXPORT void mpt_begin_state(void *h, const u8 *root, u64 n, const u8 *records, const u8 *paths,
                                const u8 *slots, const u8 *slot_paths, const u64 *slot_counts, const u8 *old,
                                const i64 *old_lens, const u8 *old_slots, const i64 *old_slot_lens) {
    msession *s = (msession *)h;
    mpt_reset(s, root);
    mpt_set_root(&s->main, root);
    s->accounts = (u8 *)mpt_alloc(mpt_arena(s), n * MA_SIZE + 1);
    memcpy(s->accounts, records, n * MA_SIZE);
    s->naccounts = n;
    s->values = (const u8 **)mpt_alloc(mpt_arena(s), (n + 1) * sizeof(u8 *));
    s->vlens = (u64 *)mpt_alloc(mpt_arena(s), (n + 1) * sizeof(u64));
    memset(s->values, 0, (n + 1) * sizeof(u8 *));
    s->main.c = (mchange *)mpt_alloc(mpt_arena(s), (n + 1) * sizeof(mchange));
    s->main.n = n;
    u64 jobs = 0;
    for (u64 i = 0; i < n; i++) jobs += (records[i * MA_SIZE + MA_FLAGS] & MF_STORAGE) != 0;
    s->storage = (mjob *)mpt_alloc(mpt_arena(s), (jobs + 1) * sizeof(mjob));
    s->nstorage = jobs;
    const u8 *slot = slots;
    u64 old_at = 0, old_slot_at = 0, slot_index = 0;
    for (u64 i = 0, k = 0; i < n; i++) {
        const u8 *rec = s->accounts + i * MA_SIZE;
        mchange *c = s->main.c + i;
        c->nib = paths ? mpt_nibbles(s, paths + 32 * i) : mpt_hashed_key(s, rec + MA_ADDRESS, 20);
        c->account = (i64)i;
        c->del = (rec[MA_FLAGS] & MF_DELETE) != 0;
        c->old = mpt_hint(s, old, old_lens, i, &old_at, 0, &c->oldlen);
        if (!(rec[MA_FLAGS] & MF_STORAGE)) continue;
        mjob *j = s->storage + k++;
        memset(j, 0, sizeof(mjob));
        j->account = (i64)i;
        j->lookup = *c;
        j->n = slot_counts[i];
        j->c = (mchange *)mpt_alloc(mpt_arena(s), (j->n + 1) * sizeof(mchange));
        /* a reset storage starts empty; else its root is looked up first (MP_LOOKUP) */
        memcpy(j->root, EMPTY_ROOT_BYTES, 32);
        j->done = (rec[MA_FLAGS] & MF_RESET) != 0;
        for (u64 m = 0; m < j->n; m++, slot += MS_SIZE) {
            mchange *sc = j->c + m;
            const u8 *slot_path = slot_paths ? slot_paths + 32 * ((u64)(slot - slots) / MS_SIZE) : NULL;
            sc->nib = slot_path ? mpt_nibbles(s, slot_path) : mpt_hashed_key(s, slot, 32);
            sc->account = -1;
            sc->old = mpt_hint(s, old_slots, old_slot_lens, slot_index++, &old_slot_at, 1, &sc->oldlen);
            u64 z = 0;
            while (z < 32 && slot[32 + z] == 0) z++;
            sc->del = z == 32;
            if (sc->del) continue;
            u8 *val = (u8 *)mpt_alloc(mpt_arena(s), 33);
            sc->vlen = mpt_put_string(val, slot + 32 + z, 32 - z);
            sc->val = val;
        }
        mpt_sort(s, j);
    }
    mpt_sort(s, &s->main);
    s->phase = MP_LOOKUP;
}

/* Starts a warm of the node cache along n keys of the account trie under root (32 bytes each,
 * the paths), down to depth (in nibbles: the nodes at that depth are the last read; MW_TO_END:
 * to the paths' ends, the nodes a commit of those keys walks): steps list the nodes on their
 * paths the session lacks, as a commit's do, and mpt_supply keeps each node it is handed in
 * the cache. The cache may grow past its budget meanwhile: the commit after it drops a
 * generation if need be, once it is done with the nodes (a warm's decoded nodes point into
 * the young generation). Without a cache, there is nothing to warm: the first step says done. */
EVM_EXPORT void mpt_begin_warm(void *h, const u8 *root, u64 n, const u8 *paths, u64 depth) {
    msession *s = (msession *)h;
    mpt_reset(s, NULL);
    s->warm_depth = depth;
    s->trim |= depth != MW_TO_END;
    mpt_set_root(&s->main, root);
    s->warmed = 1;
    __atomic_store_n(&s->warm_stop, 0, __ATOMIC_RELAXED);
    memcpy(s->warm_root, root, 32);
    if (!s->cache_budget) n = 0;
    s->main.c = (mchange *)mpt_alloc(mpt_arena(s), (n + 1) * sizeof(mchange));
    memset(s->main.c, 0, (n + 1) * sizeof(mchange));
    s->main.n = s->nwarm = n;
    u8 *copy = (u8 *)mpt_alloc(mpt_arena(s), 32 * n + 1);
    memcpy(copy, paths, 32 * n);
    s->warm_paths = copy;
    for (s->warm_mask = 15; s->warm_mask + 1 < 2 * n; s->warm_mask = 2 * s->warm_mask + 1) {}
    s->warm_index = (u32 *)mpt_alloc(mpt_arena(s), (s->warm_mask + 1) * sizeof(u32));
    memset(s->warm_index, 0, (s->warm_mask + 1) * sizeof(u32));
    for (u64 i = 0; i < n; i++) {
        s->main.c[i].nib = mpt_nibbles(s, paths + 32 * i);
        s->main.c[i].account = (i64)i;
        u64 h = mpt_path_key(paths + 32 * i) & s->warm_mask;
        while (s->warm_index[h]) h = (h + 1) & s->warm_mask;
        s->warm_index[h] = (u32)(i + 1);
    }
    s->phase = MP_WARM;
}

/* The index of a warm's key by its path; -1 when it has none such. */
static i64 mpt_warm_key(const msession *s, const u8 *path) {
    for (u64 h = mpt_path_key(path) & s->warm_mask; s->warm_index[h]; h = (h + 1) & s->warm_mask) {
        u64 i = s->warm_index[h] - 1;
        if (memcmp(s->warm_paths + 32 * i, path, 32) == 0) return (i64)i;
    }
    return -1;
}

/* Ends the warm running in another thread at once (its step returns -1); the one call on a
 * session that may come from another thread while it works. */
EVM_EXPORT void mpt_warm_stop(void *h) { __atomic_store_n(&((msession *)h)->warm_stop, 1, __ATOMIC_RELAXED); }

/* Tells a warm the old values (trie values, RLP) of n keys (paths[i], 32 bytes), value i
 * lens[i] bytes of vals (-1: none): the walks of its keys among them still short of the end
 * take it as a commit takes a hint (a leaf whose hash it gives is not read). */
EVM_EXPORT void mpt_warm_tell(void *h, u64 n, const u8 *paths, const u8 *vals, const i64 *lens) {
    msession *s = (msession *)h;
    if (s->phase != MP_WARM || !s->nwarm) return;
    const u8 **told = (const u8 **)mpt_alloc(mpt_arena(s), (s->nwarm + 1) * sizeof(u8 *));
    u64 *told_len = (u64 *)mpt_alloc(mpt_arena(s), (s->nwarm + 1) * sizeof(u64));
    memset(told, 0, (s->nwarm + 1) * sizeof(u8 *));
    for (u64 i = 0, at = 0; i < n; i++) {
        u64 len = 0;
        const u8 *old = mpt_hint(s, vals, lens, i, &at, 0, &len);
        i64 key = old ? mpt_warm_key(s, paths + 32 * i) : -1;
        if (key >= 0) told[key] = old, told_len[key] = len;
    }
    for (u64 k = 0; k < s->main.n; k++) {
        mchange *c = s->main.c + k;
        if (told[c->account]) c->old = told[c->account], c->oldlen = told_len[c->account];
    }
}

/* A stub for a trie's root (NULL for the empty trie). */
static mnode *mpt_root_stub(msession *s, const u8 *root) {
    if (memcmp(root, EMPTY_ROOT_BYTES, 32) == 0) return NULL;
    mnode *stub = mpt_node(mpt_arena(s), MK_HASH);
    stub->ref = root;
    stub->reflen = 32;
    return stub;
}

/* Runs a pass over the jobs not done; 1 when all are. */
static int mpt_pass(msession *s, mjob *jobs, u64 n) {
    int all = 1;
    for (u64 i = 0; i < n; i++) {
        mjob *j = jobs + i;
        if (j->done) continue;
        mnode *r = mpt_update(s, mpt_root_stub(s, j->root), 0, j->c, j->n);
        if (r == MPT_MISSING) {
            all = 0;
            continue;
        }
        j->done = 1;
        j->result = r;
        if (r && r->dirty == 0) { /* unchanged (only absent keys deleted): same root */
            j->result = NULL;
            j->done = 2;
        }
    }
    return all;
}

/* Lists a node the pass needs: the host reads it before the next step. */
static void mpt_list(msession *s, const u8 *hash) {
    if (s->nmissing == s->capmissing) {
        s->capmissing = s->capmissing ? 2 * s->capmissing : 1024;
        s->missing = (u8 *)realloc(s->missing, 32 * s->capmissing);
        if (!s->missing) abort();
    }
    memcpy(s->missing + 32 * s->nmissing++, hash, 32);
}

/* The jobs' results hashed; a job whose trie did not change keeps its root. */
static void mpt_finish_jobs(msession *s, mjob *jobs, u64 n) {
    mjob **list = (mjob **)mpt_alloc(mpt_arena(s), (n + 1) * sizeof(mjob *));
    u64 k = 0;
    for (u64 i = 0; i < n; i++) {
        if (jobs[i].done == 1) list[k++] = jobs + i;
    }
    mpt_finish(s, list, k);
}

/* Looks up the old storage roots of the storage jobs that start from one; 1 when all are
 * known. */
static int mpt_lookup_roots(msession *s) {
    int all = 1;
    for (u64 i = 0; i < s->nstorage; i++) {
        mjob *j = s->storage + i;
        if (j->done) continue;
        const u8 *val, *root, *code;
        u64 vlen;
        int r = mpt_get(s, mpt_root_stub(s, s->main.root), &j->lookup, &val, &vlen);
        if (r == 2) {
            all = 0;
            continue;
        }
        if (r < 0) mpt_fail(s, "malformed state trie node", NULL);
        if (r == 1 && !mpt_account_roots(val, vlen, &root, &code)) {
            mpt_fail(s, "malformed account in the state trie", NULL);
        } else if (r == 1) {
            memcpy(j->root, root, 32);
        }
        j->done = 1;
    }
    return all;
}

/* A warm's pass: walks every key still short of its end (kept at the front); 1 when none is
 * left that a read could take further. */
static int mpt_warm_pass(msession *s) {
    mjob *j = &s->main;
    mnode *root = mpt_root_stub(s, j->root);
    u64 left = 0;
    for (u64 i = 0; i < j->n; i++) {
        const u8 *val;
        u64 vlen;
        if (i % 256 == 0 && __atomic_load_n(&s->warm_stop, __ATOMIC_RELAXED)) {
            mpt_fail(s, "the warm was stopped", NULL); /* a commit waits for the session */
            return 0;
        }
        if (mpt_walk(s, root, j->c + i, s->warm_depth, &val, &vlen) == 2) j->c[left++] = j->c[i];
    }
    j->n = left;
    return !left || !s->nmissing; /* keys left, and nothing to read: none can go on */
}

/* Goes on with the commit: 0 when it is done (mpt_root, mpt_output), -1 on an error
 * (mpt_error), else the number of nodes it needs (mpt_missing; hand them to mpt_supply). */
EVM_EXPORT i64 mpt_step(void *h) {
    msession *s = (msession *)h;
    s->nmissing = 0;
    if (s->phase == MP_WARM) {
        int all = mpt_warm_pass(s);
        if (s->err[0]) return -1;
        if (!all) return (i64)s->nmissing;
        s->phase = MP_DONE;
        return 0;
    }
    if (s->phase == MP_LOOKUP) {
        int all = mpt_lookup_roots(s);
        if (s->err[0]) return -1;
        if (!all) return (i64)s->nmissing;
        for (u64 i = 0; i < s->nstorage; i++) s->storage[i].done = 0;
        s->phase = MP_STORAGE;
    }
    if (s->phase == MP_STORAGE) {
        int all = mpt_pass(s, s->storage, s->nstorage);
        if (s->err[0]) return -1;
        if (!all) return (i64)s->nmissing;
        mpt_finish_jobs(s, s->storage, s->nstorage);
        for (u64 i = 0; i < s->nstorage; i++) {
            u8 *rec = s->accounts + s->storage[i].account * MA_SIZE;
            memcpy(rec + MA_STORAGE_ROOT, s->storage[i].root, 32);
            rec[MA_FLAGS] &= (u8)~MF_KEEP_STORAGE;
        }
        s->phase = MP_ACCOUNTS;
    }
    if (s->phase == MP_ACCOUNTS) {
        int all = mpt_pass(s, &s->main, 1);
        if (s->err[0]) return -1;
        if (!all) return (i64)s->nmissing;
        mpt_finish_jobs(s, &s->main, 1);
        for (u64 t = 0; t < s->threads; t++) {
            mworker *w = s->workers + t;
            for (u64 i = 0; i < w->n; i++) mpt_cache_add(s, w->hashes + 32 * i, w->enc[i], w->len[i]);
        }
        s->phase = MP_DONE;
    }
    return s->err[0] ? -1 : 0;
}

EVM_EXPORT const u8 *mpt_missing(void *h) { return ((msession *)h)->missing; }

EVM_EXPORT const char *mpt_error(void *h) { return ((msession *)h)->err; }

/* Hands over the nodes the last step listed, in its order: node i is lens[i] bytes of buf. A
 * warm keeps them in the cache, and takes a node of 0 bytes as one not read yet: its next
 * step lists it again if a walk still needs it (one told its key's old value may not). */
EVM_EXPORT void mpt_supply(void *h, const u8 *buf, const u64 *lens) {
    msession *s = (msession *)h;
    int warm = s->phase == MP_WARM;
    for (u64 i = 0, at = 0; i < s->nmissing; at += lens[i], i++) {
        int added;
        if (warm && !lens[i]) {
            mpt_slot(s, s->missing + 32 * i, &added)->again = 1;
            continue;
        }
        if (warm) { /* kept in the cache, and used from there as the cache's nodes are */
            if (!mpt_decode(s, buf + at, lens[i])) {
                mpt_fail(s, "malformed state trie node", s->missing + 32 * i);
                continue;
            }
            u8 *entry = mpt_gen_add(&s->cache[0], s->cache_budget / 2, s->missing + 32 * i, buf + at, lens[i]);
            mnode *n = mpt_decode(s, entry + 40, lens[i]);
            n->ref = entry;
            n->reflen = 32;
            if (n->kind != MK_LEAF) n->vlen = 1;
            mslot *e = mpt_slot(s, entry, &added);
            e->hash = entry;
            e->node = n;
            continue;
        }
        u8 *copy = (u8 *)mpt_alloc(mpt_arena(s), lens[i] + 32);
        memcpy(copy, s->missing + 32 * i, 32);
        memcpy(copy + 32, buf + at, lens[i]);
        mnode *n = mpt_decode(s, copy + 32, lens[i]);
        if (!n) {
            mpt_fail(s, "malformed state trie node", copy);
            continue;
        }
        n->ref = copy;
        n->reflen = 32;
        /* the slot's key moves to the copy: the listed hash may live in a root that changes */
        mslot *e = mpt_slot(s, copy, &added);
        e->hash = copy;
        e->node = n;
    }
    s->nmissing = 0;
}

/* After a state commit, each account record's new value (RLP, as its trie leaf and flat row
 * hold it) into out (room for MA_VALUE_MAX bytes a record), concatenated, and its size into
 * lens[i]; -1 for a deleted account. */
EVM_EXPORT void mpt_account_values(void *h, u8 *out, i64 *lens) {
    msession *s = (msession *)h;
    for (u64 i = 0; i < s->naccounts; i++) {
        lens[i] = s->values[i] ? (i64)s->vlens[i] : -1;
        if (!s->values[i]) continue;
        memcpy(out, s->values[i], s->vlens[i]);
        out += s->vlens[i];
    }
}

/* The root after the commit (32 bytes). */
EVM_EXPORT void mpt_root(void *h, u8 *out) { memcpy(out, ((msession *)h)->main.root, 32); }

/* The number of new nodes to persist; their total size into *bytes. */
EVM_EXPORT u64 mpt_output_size(void *h, u64 *bytes) {
    msession *s = (msession *)h;
    u64 n = 0, total = 0;
    for (u64 t = 0; t < s->threads; t++) {
        n += s->workers[t].n;
        for (u64 i = 0; i < s->workers[t].n; i++) total += s->workers[t].len[i];
    }
    *bytes = total;
    return n;
}

typedef struct {
    const u8 *hash, *enc;
    u64 len;
} mout;

/* Copies out the new nodes in hash order: their hashes (32 bytes each), encodings
 * (concatenated), sizes. LevelDB inserted a block's batch into its memtable about twice as
 * fast in key order, and the host's sort of the batch is quick over runs already in order.
 * A counting sort on the first two bytes; the hashes are uniform, so the insertion sort
 * after it only swaps the few neighbours that share them. */
EVM_EXPORT void mpt_output(void *h, u8 *hashes, u8 *data, u64 *lens) {
    msession *s = (msession *)h;
    u64 n = 0, *start = (u64 *)mpt_alloc(mpt_arena(s), 65537 * sizeof(u64));
    memset(start, 0, 65537 * sizeof(u64));
    for (u64 t = 0; t < s->threads; t++) {
        mworker *w = s->workers + t;
        n += w->n;
        for (u64 i = 0; i < w->n; i++) start[((u64)w->hashes[32 * i] << 8 | w->hashes[32 * i + 1]) + 1]++;
    }
    for (u64 b = 0; b < 65536; b++) start[b + 1] += start[b];
    mout *out = (mout *)mpt_alloc(mpt_arena(s), (n + 1) * sizeof(mout));
    for (u64 t = 0; t < s->threads; t++) {
        mworker *w = s->workers + t;
        for (u64 i = 0; i < w->n; i++) {
            const u8 *hash = w->hashes + 32 * i;
            out[start[(u64)hash[0] << 8 | hash[1]]++] = (mout){hash, w->enc[i], w->len[i]};
        }
    }
    for (u64 i = 1; i < n; i++) {
        mout x = out[i];
        u64 j = i;
        for (; j > 0 && memcmp(out[j - 1].hash, x.hash, 32) > 0; j--) out[j] = out[j - 1];
        out[j] = x;
    }
    for (u64 i = 0; i < n; i++) {
        memcpy(hashes + 32 * i, out[i].hash, 32);
        memcpy(data, out[i].enc, out[i].len);
        data += out[i].len;
        lens[i] = out[i].len;
    }
}

#endif
