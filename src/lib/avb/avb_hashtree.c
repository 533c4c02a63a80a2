#include "avb/avb_hashtree.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "avb/avb_bytes.h"
#include "util/file.h"

#define MAX_LEVELS 32
#define CHUNK_BLOCKS 4096 /* 16 MiB of 4 KiB blocks per read */
#define MAX_THREADS 32
#define MIN_BLOCKS_PER_THREAD 64

typedef struct levels {
    size_t n;
    uint64_t size[MAX_LEVELS];   /* level 0 = hashes of the data */
    uint64_t offset[MAX_LEVELS]; /* in the stored tree (top level first) */
    uint64_t total;
    size_t slot;                 /* digest size rounded up to a power of two */
    size_t digest_len;
} levels;

static hs_result plan_levels(uint64_t image_size, uint32_t block_size, const EVP_MD *md,
                             levels *l, hs_error *e)
{
    memset(l, 0, sizeof *l);
    l->digest_len = (size_t)EVP_MD_get_size(md);
    l->slot = 1;
    while (l->slot < l->digest_len)
        l->slot <<= 1;
    if (block_size < l->slot || block_size > 65536 || (block_size & (block_size - 1)) != 0)
        return hs_fail(e, HS_E_USAGE, "hash tree block size %u is not a power of two in %zu..65536",
                       block_size, l->slot);
    uint64_t size = image_size;
    while (size > block_size) {
        if (l->n == MAX_LEVELS)
            return hs_fail(e, HS_E_USAGE, "image too large for a hash tree");
        uint64_t blocks = size / block_size + (size % block_size != 0);
        uint64_t level;
        if (blocks > UINT64_MAX / l->slot || !hs_avb_round_up(blocks * l->slot, block_size, &level))
            return hs_fail(e, HS_E_USAGE, "image too large for a hash tree");
        l->size[l->n++] = level;
        l->total += level;
        size = level;
    }
    uint64_t off = 0;
    for (size_t i = l->n; i-- > 0;) {
        l->offset[i] = off;
        off += l->size[i];
    }
    return HS_OK;
}

hs_result hs_avb_hashtree_size(uint64_t image_size, uint32_t block_size, const EVP_MD *md,
                               uint64_t *tree_size, hs_error *e)
{
    levels l;
    hs_result r = plan_levels(image_size, block_size, md, &l, e);
    if (r == HS_OK)
        *tree_size = l.total;
    return r;
}

/* A salted hasher: the salt is absorbed once and the state copied per block. */
typedef struct salted {
    EVP_MD_CTX *base, *work;
} salted;

static bool salted_init(salted *s, const EVP_MD *md, const uint8_t *salt, size_t salt_len)
{
    s->base = EVP_MD_CTX_new();
    s->work = EVP_MD_CTX_new();
    return s->base && s->work && EVP_DigestInit_ex(s->base, md, NULL) &&
           EVP_DigestUpdate(s->base, salt, salt_len);
}

static bool salted_hash(salted *s, const uint8_t *data, size_t len, uint8_t *out)
{
    return EVP_MD_CTX_copy_ex(s->work, s->base) && EVP_DigestUpdate(s->work, data, len) &&
           EVP_DigestFinal_ex(s->work, out, NULL);
}

static void salted_free(salted *s)
{
    EVP_MD_CTX_free(s->base);
    EVP_MD_CTX_free(s->work);
}

typedef struct job {
    const EVP_MD *md;
    const uint8_t *salt;
    size_t salt_len;
    const uint8_t *data;
    uint64_t nblocks;
    uint32_t block_size;
    uint8_t *out;
    size_t slot;
    bool ok;
} job;

static void *hash_blocks(void *arg)
{
    job *j = arg;
    salted s;
    j->ok = salted_init(&s, j->md, j->salt, j->salt_len);
    for (uint64_t i = 0; j->ok && i < j->nblocks; i++)
        j->ok = salted_hash(&s, j->data + i * j->block_size, j->block_size, j->out + i * j->slot);
    salted_free(&s);
    return NULL;
}

static unsigned thread_count(uint64_t nblocks)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    uint64_t n = cpus > 0 ? (uint64_t)cpus : 1;
    if (n > MAX_THREADS)
        n = MAX_THREADS;
    if (n > nblocks / MIN_BLOCKS_PER_THREAD)
        n = nblocks / MIN_BLOCKS_PER_THREAD;
    return n == 0 ? 1 : (unsigned)n;
}

/* Hashes nblocks consecutive blocks into consecutive slots, split across
 * threads; the calling thread takes the first share. */
static hs_result hash_blocks_parallel(job tmpl, hs_error *e)
{
    unsigned nt = thread_count(tmpl.nblocks);
    job jobs[MAX_THREADS] = {0}; /* defined even past nt: no reader has to prove nt >= 1 */
    pthread_t tids[MAX_THREADS];
    bool started[MAX_THREADS] = {false};
    uint64_t per = tmpl.nblocks / nt, extra = tmpl.nblocks % nt, first = 0;
    for (unsigned t = 0; t < nt; t++) {
        jobs[t] = tmpl;
        jobs[t].nblocks = per + (t < extra);
        jobs[t].data = tmpl.data + first * tmpl.block_size;
        jobs[t].out = tmpl.out + first * tmpl.slot;
        first += jobs[t].nblocks;
        if (t > 0)
            started[t] = pthread_create(&tids[t], NULL, hash_blocks, &jobs[t]) == 0;
    }
    bool ok = true;
    for (unsigned t = 1; t < nt; t++)
        if (!started[t])
            hash_blocks(&jobs[t]); /* no thread available: do it here */
    hash_blocks(&jobs[0]);
    for (unsigned t = 0; t < nt; t++) {
        if (started[t])
            pthread_join(tids[t], NULL);
        ok = ok && jobs[t].ok;
    }
    return ok ? HS_OK : hs_fail(e, HS_E_CRYPTO, "hashing image blocks failed");
}

/* Fills buf with n image bytes at pos: file data up to src_size, then zeros. */
static hs_result read_chunk(int fd, const char *path, uint64_t pos, uint64_t src_size, uint8_t *buf,
                            size_t n, hs_error *e)
{
    size_t from_file = pos >= src_size ? 0 : (src_size - pos < n ? (size_t)(src_size - pos) : n);
    hs_result r = from_file ? hs_avb_pread_all(fd, buf, from_file, pos, path, e) : HS_OK;
    if (r == HS_OK && from_file < n)
        memset(buf + from_file, 0, n - from_file);
    return r;
}

static hs_result hash_level0(int fd, const char *path, uint64_t src_size, uint64_t image_size,
                             uint32_t block_size, const levels *l, job tmpl, int copy_fd,
                             const char *copy_what, uint8_t *level0, hs_error *e)
{
    size_t chunk = (size_t)CHUNK_BLOCKS * block_size;
    uint8_t *buf = malloc(chunk);
    if (buf == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory for a %zu-byte read buffer", chunk);
    hs_result r = HS_OK;
    for (uint64_t pos = 0; pos < image_size && r == HS_OK; pos += chunk) {
        size_t n = image_size - pos < chunk ? (size_t)(image_size - pos) : chunk;
        r = read_chunk(fd, path, pos, src_size, buf, n, e);
        if (r == HS_OK && copy_fd >= 0)
            r = hs_write_fd_all(copy_fd, buf, n, copy_what, e);
        if (r == HS_OK && l->n > 0) {
            tmpl.data = buf;
            tmpl.nblocks = n / block_size;
            tmpl.out = level0 + (pos / block_size) * l->slot;
            r = hash_blocks_parallel(tmpl, e);
        }
        if (r == HS_OK && l->n == 0) {
            /* A single-block image: the root is the hash of that block. */
            salted s;
            if (!salted_init(&s, tmpl.md, tmpl.salt, tmpl.salt_len) ||
                !salted_hash(&s, buf, block_size, tmpl.out))
                r = hs_fail(e, HS_E_CRYPTO, "hashing the image failed");
            salted_free(&s);
        }
    }
    free(buf);
    return r;
}

hs_result hs_avb_hashtree_build(int fd, const char *path, uint64_t src_size, uint64_t image_size,
                                uint32_t block_size, const EVP_MD *md, const uint8_t *salt,
                                size_t salt_len, int copy_fd, const char *copy_what,
                                hs_avb_hashtree *out, hs_error *e)
{
    memset(out, 0, sizeof *out);
    levels l;
    hs_result r = plan_levels(image_size, block_size, md, &l, e);
    if (r != HS_OK)
        return r;
    if (image_size == 0 || image_size % block_size != 0 || src_size > image_size)
        return hs_fail(e, HS_E_USAGE,
                       "%s: hash tree input of %llu bytes is not a non-zero multiple of %u", path,
                       (unsigned long long)image_size, block_size);
    if (l.total > SIZE_MAX)
        return hs_fail(e, HS_E_NOMEM, "%s: hash tree too large for memory", path);
    out->tree = calloc(1, l.total ? (size_t)l.total : 1);
    if (out->tree == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory for a %llu-byte hash tree", path,
                       (unsigned long long)l.total);
    out->tree_size = l.total;
    out->root_len = l.digest_len;
    job tmpl = {md, salt, salt_len, NULL, 0, block_size, out->root, l.slot, false};
    r = hash_level0(fd, path, src_size, image_size, block_size, &l, tmpl, copy_fd, copy_what,
                    l.n ? out->tree + l.offset[0] : NULL, e);
    /* Upper levels hash the (already padded) level below, block by block. */
    for (size_t i = 1; i < l.n && r == HS_OK; i++) {
        tmpl.data = out->tree + l.offset[i - 1];
        tmpl.nblocks = l.size[i - 1] / block_size;
        tmpl.out = out->tree + l.offset[i];
        r = hash_blocks_parallel(tmpl, e);
    }
    if (r == HS_OK && l.n > 0) {
        salted s;
        if (!salted_init(&s, md, salt, salt_len) ||
            !salted_hash(&s, out->tree + l.offset[l.n - 1], (size_t)l.size[l.n - 1], out->root))
            r = hs_fail(e, HS_E_CRYPTO, "%s: hashing the hash tree root failed", path);
        salted_free(&s);
    }
    if (r != HS_OK)
        hs_avb_hashtree_free(out);
    return r;
}

void hs_avb_hashtree_free(hs_avb_hashtree *t)
{
    free(t->tree);
    memset(t, 0, sizeof *t);
}
