#include "apk/apk_digest.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zip/zip.h"

#define MAX_THREADS 8

struct hs_apk_digest_job {
    const EVP_MD *md;
    const hs_apk_section *sections;
    size_t section_count;
    const char *what;
    uint64_t chunk_count;
    size_t digest_len;
    uint8_t *digests; /* chunk_count * digest_len */
    pthread_mutex_t lock;
    pthread_cond_t opened;
    bool open;        /* the sections' fd bytes past their prefixes are written */
    uint64_t next;    /* next chunk to hand out */
    bool failed;
    int err;          /* errno of the first failure, 0 for a crypto failure */
    pthread_t threads[MAX_THREADS];
    unsigned started; /* threads[0, started) are joined by finish */
};

static uint64_t chunks_in(uint64_t len)
{
    return len / HS_APK_CHUNK_SIZE + (len % HS_APK_CHUNK_SIZE != 0);
}

/* Maps a global chunk index to its section and byte range; false for an
 * index past the last chunk (never handed out, but not assumed). */
static bool locate_chunk(const hs_apk_digest_job *job, uint64_t index,
                         const hs_apk_section **sec, uint64_t *off, size_t *len)
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

static void fail_locked(hs_apk_digest_job *job, int err)
{
    if (!job->failed)
        job->err = err;
    job->failed = true;
}

static void fail_job(hs_apk_digest_job *job, int err)
{
    pthread_mutex_lock(&job->lock);
    fail_locked(job, err);
    pthread_mutex_unlock(&job->lock);
}

/* False when the job failed (or was cancelled) while waiting. */
static bool wait_open(hs_apk_digest_job *job)
{
    pthread_mutex_lock(&job->lock);
    while (!job->open)
        pthread_cond_wait(&job->opened, &job->lock);
    bool ok = !job->failed;
    pthread_mutex_unlock(&job->lock);
    return ok;
}

/* The chunk [off, off + len) of sec into buf: its part in the section's
 * prefix from prefix_fd, the rest from fd once it is written. 0 or errno;
 * ECANCELED when the job failed meanwhile. */
static int read_chunk(hs_apk_digest_job *job, const hs_apk_section *sec, uint64_t off,
                      size_t len, uint8_t *buf)
{
    size_t head = 0;
    if (off < sec->prefix_len) {
        uint64_t in_prefix = sec->prefix_len - off;
        head = in_prefix < len ? (size_t)in_prefix : len;
        int err = pread_all(sec->prefix_fd, buf, head, sec->offset + off);
        if (err != 0 || head == len)
            return err;
    }
    if (!wait_open(job))
        return ECANCELED;
    return pread_all(sec->fd, buf + head, len - head, sec->offset + off + head);
}

void hs_apk_digest_work(hs_apk_digest_job *job)
{
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
            int err = read_chunk(job, sec, off, len, buf);
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
}

static void *worker(void *arg)
{
    hs_apk_digest_work(arg);
    return NULL;
}

unsigned hs_apk_digest_workers(unsigned busy)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    uint64_t n = cpus > 0 ? (uint64_t)cpus : 1;
    if (n > MAX_THREADS)
        n = MAX_THREADS;
    /* The caller's own thread works too: more threads than CPUs would
     * only take turns, and slow the caller's busy threads. */
    return n > 1 + (uint64_t)busy ? (unsigned)(n - 1 - busy) : 0;
}

static void free_job(hs_apk_digest_job *job)
{
    pthread_cond_destroy(&job->opened);
    pthread_mutex_destroy(&job->lock);
    free(job->digests);
    free(job);
}

hs_result hs_apk_digest_start(const EVP_MD *md, const hs_apk_section *sections,
                              size_t section_count, unsigned workers, const char *what,
                              hs_apk_digest_job **out, hs_error *e)
{
    *out = NULL;
    hs_apk_digest_job *job = calloc(1, sizeof *job);
    if (job == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory for the content digest", what);
    *job = (hs_apk_digest_job){.md = md, .sections = sections, .section_count = section_count,
                               .what = what, .digest_len = (size_t)EVP_MD_get_size(md)};
    for (size_t s = 0; s < section_count; s++)
        job->chunk_count += chunks_in(sections[s].len);
    /* The count is a u32 in the final hash: 4 PiB, far beyond a ZIP without
     * zip64, but checked rather than assumed. */
    if (job->chunk_count > UINT32_MAX) {
        free(job);
        return hs_fail(e, HS_E_FORMAT, "%s: too large for an APK content digest", what);
    }
    job->digests = malloc(job->chunk_count ? job->chunk_count * job->digest_len : 1);
    if (job->digests == NULL) {
        free(job);
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory for chunk digests", what);
    }
    pthread_mutex_init(&job->lock, NULL);
    pthread_cond_init(&job->opened, NULL);
    if (workers > MAX_THREADS)
        workers = MAX_THREADS;
    /* A worker without a chunk of its own is a thread for nothing; a
     * thread that cannot be created leaves its share to the others. */
    for (; job->started < workers && job->started < job->chunk_count; job->started++)
        if (pthread_create(&job->threads[job->started], NULL, worker, job) != 0)
            break;
    *out = job;
    return HS_OK;
}

void hs_apk_digest_open(hs_apk_digest_job *job)
{
    pthread_mutex_lock(&job->lock);
    job->open = true;
    pthread_cond_broadcast(&job->opened);
    pthread_mutex_unlock(&job->lock);
}

void hs_apk_digest_cancel(hs_apk_digest_job *job)
{
    pthread_mutex_lock(&job->lock);
    if (!job->open) {
        fail_locked(job, ECANCELED);
        job->open = true;
        pthread_cond_broadcast(&job->opened);
    }
    pthread_mutex_unlock(&job->lock);
}

static hs_result final_digest(const hs_apk_digest_job *job, uint8_t *out, size_t *out_len,
                              hs_error *e)
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
        return hs_fail(e, HS_E_CRYPTO, "%s: computing the content digest failed", job->what);
    *out_len = n;
    return HS_OK;
}

hs_result hs_apk_digest_finish(hs_apk_digest_job *job, uint8_t *out, size_t *out_len,
                               hs_error *e)
{
    hs_apk_digest_cancel(job); /* unless opened */
    hs_apk_digest_work(job);
    for (unsigned i = 0; i < job->started; i++)
        pthread_join(job->threads[i], NULL);
    hs_result r;
    if (job->failed)
        r = job->err ? hs_fail(e, HS_E_IO, "%s: reading for the content digest failed: %s",
                               job->what, strerror(job->err))
                     : hs_fail(e, HS_E_CRYPTO, "%s: hashing a chunk failed", job->what);
    else
        r = final_digest(job, out, out_len, e);
    free_job(job);
    return r;
}

hs_result hs_apk_content_digest(const EVP_MD *md, const hs_apk_section *sections,
                                size_t section_count, const hs_apk_side_task *side,
                                const char *what, uint8_t *out, size_t *out_len, hs_error *e)
{
    hs_apk_digest_job *job = NULL;
    hs_result r = hs_apk_digest_start(md, sections, section_count, hs_apk_digest_workers(0),
                                      what, &job, e);
    if (r != HS_OK)
        return r;
    hs_apk_digest_open(job);
    /* The workers hash while this thread runs the side task, then this
     * thread joins them. */
    bool side_ok = side == NULL || side->run(side->ctx);
    r = hs_apk_digest_finish(job, out, out_len, e);
    return side_ok ? r : side->fail(side->ctx, e);
}
