#include "apk/apk_digest.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zip/zip.h"

#define MAX_THREADS 8

typedef struct chunk_job {
    const EVP_MD *md;
    const hs_apk_section *sections;
    size_t section_count;
    uint64_t chunk_count;
    size_t digest_len;
    uint8_t *digests; /* chunk_count * digest_len */
    pthread_mutex_t lock;
    uint64_t next;    /* next chunk to hand out */
    bool failed;
    int err;          /* errno of the first failure, 0 for a crypto failure */
} chunk_job;

static uint64_t chunks_in(uint64_t len)
{
    return len / HS_APK_CHUNK_SIZE + (len % HS_APK_CHUNK_SIZE != 0);
}

/* Maps a global chunk index to its section and byte range; false for an
 * index past the last chunk (never handed out, but not assumed). */
static bool locate_chunk(const chunk_job *job, uint64_t index, const hs_apk_section **sec,
                         uint64_t *off, size_t *len)
{
    for (size_t s = 0; s < job->section_count; s++) {
        uint64_t n = chunks_in(job->sections[s].len);
        if (index < n) {
            *sec = &job->sections[s];
            *off = index * HS_APK_CHUNK_SIZE;
            uint64_t rest = job->sections[s].len - *off;
            *len = (size_t)(rest < HS_APK_CHUNK_SIZE ? rest : HS_APK_CHUNK_SIZE);
            return true;
        }
        index -= n;
    }
    return false;
}

static int pread_all(int fd, uint8_t *buf, size_t len, uint64_t off)
{
    while (len > 0) {
        ssize_t n = pread(fd, buf, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? errno : EIO;
        buf += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static bool hash_chunk(const EVP_MD *md, EVP_MD_CTX *ctx, const uint8_t *data, size_t len,
                       uint8_t *out)
{
    uint8_t prefix[5] = {0xa5};
    hs_put_le32(prefix + 1, (uint32_t)len);
    return EVP_DigestInit_ex(ctx, md, NULL) && EVP_DigestUpdate(ctx, prefix, 5) &&
           EVP_DigestUpdate(ctx, data, len) && EVP_DigestFinal_ex(ctx, out, NULL);
}

static void fail_job(chunk_job *job, int err)
{
    pthread_mutex_lock(&job->lock);
    if (!job->failed)
        job->err = err;
    job->failed = true;
    pthread_mutex_unlock(&job->lock);
}

static void *worker(void *arg)
{
    chunk_job *job = arg;
    uint8_t *buf = malloc(HS_APK_CHUNK_SIZE);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (buf == NULL || ctx == NULL) {
        fail_job(job, ENOMEM);
        goto out;
    }
    for (;;) {
        pthread_mutex_lock(&job->lock);
        uint64_t index = job->next++;
        bool stop = job->failed || index >= job->chunk_count;
        pthread_mutex_unlock(&job->lock);
        if (stop)
            break;
        const hs_apk_section *sec = NULL;
        uint64_t off = 0;
        size_t len = 0;
        if (!locate_chunk(job, index, &sec, &off, &len)) {
            fail_job(job, 0);
            break;
        }
        const uint8_t *data = sec->mem != NULL ? sec->mem + off : buf;
        if (sec->mem == NULL) {
            int err = pread_all(sec->fd, buf, len, sec->offset + off);
            if (err != 0) {
                fail_job(job, err);
                break;
            }
        }
        if (!hash_chunk(job->md, ctx, data, len, job->digests + index * job->digest_len)) {
            fail_job(job, 0);
            break;
        }
    }
out:
    EVP_MD_CTX_free(ctx);
    free(buf);
    return NULL;
}

static unsigned thread_count(uint64_t chunks)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    uint64_t n = cpus > 0 ? (uint64_t)cpus : 1;
    if (n > MAX_THREADS)
        n = MAX_THREADS;
    if (n > chunks)
        n = chunks;
    return n > 0 ? (unsigned)n : 1;
}

/* The calling thread runs the side task (if any) while the workers hash,
 * then hashes chunks itself until none are left. */
static hs_result run_workers(chunk_job *job, const hs_apk_side_task *side, const char *what,
                             hs_error *e)
{
    pthread_t threads[MAX_THREADS] = {0}; /* only [0, started) are joined */
    unsigned wanted = thread_count(job->chunk_count), started = 0;
    if (side != NULL && wanted > 1)
        wanted--; /* this thread is busy with the side task first */
    for (; started < wanted; started++)
        if (pthread_create(&threads[started], NULL, worker, job) != 0)
            break;
    bool side_ok = side == NULL || side->run(side->ctx);
    worker(job);
    for (unsigned i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    if (!side_ok)
        return side->fail(side->ctx, e);
    if (job->failed)
        return job->err ? hs_fail(e, HS_E_IO, "%s: reading for the content digest failed: %s",
                                  what, strerror(job->err))
                        : hs_fail(e, HS_E_CRYPTO, "%s: hashing a chunk failed", what);
    return HS_OK;
}

static hs_result final_digest(const chunk_job *job, const char *what, uint8_t *out,
                              size_t *out_len, hs_error *e)
{
    uint8_t prefix[5] = {0x5a};
    hs_put_le32(prefix + 1, (uint32_t)job->chunk_count);
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx != NULL && EVP_DigestInit_ex(ctx, job->md, NULL) &&
              EVP_DigestUpdate(ctx, prefix, 5) &&
              EVP_DigestUpdate(ctx, job->digests, job->chunk_count * job->digest_len) &&
              EVP_DigestFinal_ex(ctx, out, &n);
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return hs_fail(e, HS_E_CRYPTO, "%s: computing the content digest failed", what);
    *out_len = n;
    return HS_OK;
}

hs_result hs_apk_content_digest(const EVP_MD *md, const hs_apk_section *sections,
                                size_t section_count, const hs_apk_side_task *side,
                                const char *what, uint8_t *out, size_t *out_len, hs_error *e)
{
    chunk_job job = {.md = md, .sections = sections, .section_count = section_count,
                     .digest_len = (size_t)EVP_MD_get_size(md)};
    for (size_t s = 0; s < section_count; s++)
        job.chunk_count += chunks_in(sections[s].len);
    /* The count is a u32 in the final hash: 4 PiB, far beyond a ZIP without
     * zip64, but checked rather than assumed. */
    if (job.chunk_count > UINT32_MAX)
        return hs_fail(e, HS_E_FORMAT, "%s: too large for an APK content digest", what);
    job.digests = malloc(job.chunk_count ? job.chunk_count * job.digest_len : 1);
    if (job.digests == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory for chunk digests", what);
    pthread_mutex_init(&job.lock, NULL);
    hs_result r = run_workers(&job, side, what, e);
    if (r == HS_OK)
        r = final_digest(&job, what, out, out_len, e);
    pthread_mutex_destroy(&job.lock);
    free(job.digests);
    return r;
}
